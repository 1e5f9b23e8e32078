//! The local adapter: one file per key under a root folder, links signed by [`LinkSigner`].
//!
//! An upload writes a hidden temp file next to its target and renames it on `finish`, so a
//! reader sees the whole object or nothing (a rename within one folder is atomic). Temp names
//! start with a dot, which no key segment may (see [`check_key`]), so they never collide with
//! keys; `sweep` clears the ones a crashed process left behind.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use sha2::{Digest, Sha256};

use super::{
    bare_etag, check_key, check_prefix, lifetime, part_count, part_len, BundleStore, LinkSigner, PartedUpload,
    SentPart, Upload,
};
use crate::store::{Blobs, StoreError, StoreResult};

/// The part size of a parted upload to the folder: every part goes through the local upload
/// route, a Lambda function, whose event stops at 6 MB, even base64-encoded (4 MiB * 4/3 = 5.6 MB).
pub const LOCAL_PART_SIZE: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct FolderBundles {
    root: PathBuf,
    signer: LinkSigner,
}

impl FolderBundles {
    /// A store rooted at `root`, created when missing. Blocking (one mkdir), like opening the
    /// SQLite store: it runs once at start.
    pub fn open(root: &Path, signer: LinkSigner) -> StoreResult<Self> {
        std::fs::create_dir_all(root).map_err(|e| io_error("creating", root, e))?;
        Ok(Self { root: root.to_path_buf(), signer })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`; the key is checked first, so the path cannot leave the root.
    pub fn path_of(&self, key: &str) -> StoreResult<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// The object's open file, size and path; `None` when absent (or not a regular file).
    async fn open_file(&self, key: &str) -> StoreResult<Option<(tokio::fs::File, u64, PathBuf)>> {
        let path = self.path_of(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("opening", &path, e)),
        };
        let meta = file.metadata().await.map_err(|e| io_error("reading", &path, e))?;
        Ok(meta.is_file().then_some((file, meta.len(), path)))
    }
}

/// An upload id as this adapter makes them (32 hex digits): it goes into file names.
fn check_upload_id(upload_id: &str) -> StoreResult<()> {
    if upload_id.len() == 32 && upload_id.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("'{upload_id}' is not an upload id")))
    }
}

/// The hidden files of a parted upload sit next to the object: `.<name>.<upload id>.<n>.part`
/// (dot-led, so never a key; swept with the folder like any temp file).
fn part_file_prefix(dest: &Path, upload_id: &str) -> StoreResult<(PathBuf, String)> {
    match (dest.parent(), dest.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), format!(".{}.{upload_id}.", name.to_string_lossy()))),
        _ => Err(StoreError::Internal(format!("bundle path {} names no file", dest.display()))),
    }
}

async fn has_files_starting(dir: &Path, prefix: &str) -> StoreResult<bool> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if is_absent(&e) => return Ok(false),
        Err(e) => return Err(io_error("listing", dir, e)),
    };
    while let Some(entry) = entries.next_entry().await.map_err(|e| io_error("listing", dir, e))? {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A part's ETag: the first 128 bits of its SHA-256, quoted as S3 quotes its ETags.
fn etag_of(digest: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// No file there: nothing under that name, or a path through an object rather than a folder.
fn is_absent(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

fn io_error(op: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Internal(format!("bundle folder: {op} {}: {e}", path.display()))
}

fn too_large(size: u64, max_bytes: u64) -> StoreError {
    StoreError::TooLarge(format!("the object is {size} bytes, more than the {max_bytes} allowed here"))
}

#[async_trait]
impl BundleStore for FolderBundles {
    async fn create_upload(&self, key: &str) -> StoreResult<Box<dyn Upload>> {
        let dest = self.path_of(key)?;
        let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Err(StoreError::Internal(format!("bundle key {key:?} names no file")));
        };
        tokio::fs::create_dir_all(dir).await.map_err(|e| io_error("creating", dir, e))?;
        let temp = dir.join(format!(".{}.{:016x}.part", name.to_string_lossy(), rand::random::<u64>()));
        let file = tokio::fs::File::create_new(&temp).await.map_err(|e| io_error("creating", &temp, e))?;
        Ok(Box::new(FolderUpload { file: Some(BufWriter::new(file)), temp, dest, size: 0, resumable: false }))
    }

    async fn resume_upload(&self, key: &str, state: &serde_json::Value) -> StoreResult<Box<dyn Upload>> {
        let dest = self.path_of(key)?;
        let bad = || StoreError::Internal(format!("not a resumable upload of {key:?}: {state}"));
        let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else { return Err(bad()) };
        let temp_name = state.get("temp").and_then(serde_json::Value::as_str).ok_or_else(bad)?;
        let size = state.get("size").and_then(serde_json::Value::as_u64).ok_or_else(bad)?;
        // Only a temp file of this very key, in its own folder: the state never names a path.
        let ours =
            temp_name.strip_prefix(&format!(".{}.", name.to_string_lossy())).and_then(|t| t.strip_suffix(".part"));
        if !ours.is_some_and(|t| t.len() == 16 && t.chars().all(|c| c.is_ascii_hexdigit())) {
            return Err(bad());
        }
        let temp = dir.join(temp_name);
        let mut file =
            tokio::fs::OpenOptions::new().write(true).open(&temp).await.map_err(|e| io_error("reopening", &temp, e))?;
        // Whatever was written after the checkpoint goes: the job writes it again.
        file.set_len(size).await.map_err(|e| io_error("truncating", &temp, e))?;
        file.seek(std::io::SeekFrom::End(0)).await.map_err(|e| io_error("seeking", &temp, e))?;
        Ok(Box::new(FolderUpload { file: Some(BufWriter::new(file)), temp, dest, size, resumable: true }))
    }

    async fn open_stream(&self, key: &str) -> StoreResult<Option<(u64, super::ByteStream)>> {
        use futures::StreamExt;
        let Some((file, size, path)) = self.open_file(key).await? else { return Ok(None) };
        let shown = path.display().to_string();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)
            .map(move |chunk| chunk.map_err(|e| StoreError::Unavailable(format!("reading {shown}: {e}"))));
        Ok(Some((size, stream.boxed())))
    }

    async fn get(&self, key: &str, max_bytes: u64) -> StoreResult<Option<Vec<u8>>> {
        let Some((file, size, path)) = self.open_file(key).await? else { return Ok(None) };
        if size > max_bytes {
            return Err(too_large(size, max_bytes));
        }
        // Bounded read: capacity from the size we just checked, and never more than the limit.
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| io_error("reading", &path, e))?;
        if bytes.len() as u64 > max_bytes {
            return Err(too_large(bytes.len() as u64, max_bytes));
        }
        Ok(Some(bytes))
    }

    async fn read_range(&self, key: &str, start: u64, end: u64) -> StoreResult<Vec<u8>> {
        use tokio::io::AsyncSeekExt;
        let Some((mut file, size, path)) = self.open_file(key).await? else { return Err(super::gone(key)) };
        let (start, end) = (start.min(size), end.min(size));
        let mut bytes = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
        if start < end {
            file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| io_error("seeking", &path, e))?;
            file.take(end - start).read_to_end(&mut bytes).await.map_err(|e| io_error("reading", &path, e))?;
        }
        Ok(bytes)
    }

    async fn head(&self, key: &str) -> StoreResult<Option<u64>> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("reading", &path, e)),
        }
    }

    async fn download_url(&self, key: &str, expires_at: i64, public_base: &str) -> StoreResult<String> {
        check_key(key)?;
        lifetime(expires_at)?;
        Ok(self.signer.url("GET", key, expires_at, public_base))
    }

    async fn upload_url(&self, key: &str, expires_at: i64, public_base: &str) -> StoreResult<String> {
        check_key(key)?;
        lifetime(expires_at)?;
        Ok(self.signer.url("PUT", key, expires_at, public_base))
    }

    async fn parted_upload(
        &self,
        key: &str,
        size: u64,
        expires_at: i64,
        public_base: &str,
    ) -> StoreResult<PartedUpload> {
        check_key(key)?;
        lifetime(expires_at)?;
        if size == 0 {
            return Err(StoreError::Invalid("a parted upload needs at least one byte".into()));
        }
        let upload_id = hex::encode(rand::random::<[u8; 16]>());
        let id = || ("uploadId", upload_id.clone());
        let part_urls = (1..=part_count(size, LOCAL_PART_SIZE))
            .map(|n| {
                let len = part_len(size, LOCAL_PART_SIZE, n);
                let query = [id(), ("partNumber", n.to_string()), ("size", len.to_string())];
                self.signer.url_with("PUT", key, &query, expires_at, public_base)
            })
            .collect();
        Ok(PartedUpload { upload_id, part_size: LOCAL_PART_SIZE, part_urls })
    }

    /// Written to a temp file and renamed: a part sent again replaces the old one whole.
    async fn upload_part(&self, key: &str, upload_id: &str, part_number: u32, bytes: &[u8]) -> StoreResult<String> {
        check_upload_id(upload_id)?;
        let (dir, prefix) = part_file_prefix(&self.path_of(key)?, upload_id)?;
        tokio::fs::create_dir_all(&dir).await.map_err(|e| io_error("creating", &dir, e))?;
        let path = dir.join(format!("{prefix}{part_number}.part"));
        let temp = dir.join(format!("{prefix}{part_number}.{:016x}.tmp", rand::random::<u64>()));
        let written = async {
            let mut file = tokio::fs::File::create_new(&temp).await?;
            file.write_all(bytes).await?;
            file.sync_data().await?;
            tokio::fs::rename(&temp, &path).await
        };
        if let Err(e) = written.await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_error("writing", &path, e));
        }
        Ok(etag_of(&Sha256::digest(bytes)))
    }

    /// The parts are copied in order into one temp file (a chunk at a time, each checked
    /// against its ETag as it goes), which is renamed into place; then the parts go.
    async fn complete_parts(&self, key: &str, upload_id: &str, parts: &[SentPart]) -> StoreResult<()> {
        check_upload_id(upload_id)?;
        let dest = self.path_of(key)?;
        let (dir, prefix) = part_file_prefix(&dest, upload_id)?;
        if parts.is_empty() {
            return Err(StoreError::Invalid("a completion must list at least one part".into()));
        }
        if !has_files_starting(&dir, &prefix).await? {
            return Err(StoreError::NotFound(format!(
                "upload {upload_id} has no parts (never started, completed or expired)"
            )));
        }
        let mut upload = self.create_upload(key).await?;
        let copied = async {
            let mut chunk = vec![0u8; 256 * 1024];
            for part in parts {
                let path = dir.join(format!("{prefix}{}.part", part.number));
                let mut file = match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(e) if is_absent(&e) => {
                        return Err(StoreError::Invalid(format!("part {} was never uploaded", part.number)))
                    }
                    Err(e) => return Err(io_error("opening", &path, e)),
                };
                let mut hasher = Sha256::new();
                loop {
                    let n = file.read(&mut chunk).await.map_err(|e| io_error("reading", &path, e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&chunk[..n]);
                    upload.write(&chunk[..n]).await?;
                }
                if bare_etag(&etag_of(&hasher.finalize())) != bare_etag(&part.etag) {
                    return Err(StoreError::Invalid(format!("part {}'s ETag is not {}", part.number, part.etag)));
                }
            }
            Ok(())
        };
        if let Err(e) = copied.await {
            let _ = upload.abort().await;
            return Err(e);
        }
        upload.finish().await?;
        // Every part of this upload goes, listed or not (as S3 discards unlisted parts).
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(|e| io_error("listing", &dir, e))?;
        while let Some(entry) = entries.next_entry().await.map_err(|e| io_error("listing", &dir, e))? {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        Ok(())
    }

    async fn sweep(&self, prefix: &str, max_age: Duration) -> StoreResult<usize> {
        check_prefix(prefix)?;
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        tokio::task::spawn_blocking(move || sweep_blocking(&root, &prefix, max_age))
            .await
            .map_err(|e| StoreError::Internal(format!("bundle folder: sweep task: {e}")))?
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(io_error("deleting", &path, e)),
        }
    }
}

/// Walks only the folder the prefix's directory part names, deleting regular files (not
/// symlinks: nothing outside the root is touched) whose key starts with `prefix` and whose
/// modification time is older than `max_age`.
fn sweep_blocking(root: &Path, prefix: &str, max_age: Duration) -> StoreResult<usize> {
    let cutoff = SystemTime::now().checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
    let start = match prefix.rfind('/') {
        Some(i) => root.join(&prefix[..i]),
        None => root.to_path_buf(),
    };
    let mut pending = vec![start];
    let mut deleted = 0;
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("listing", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error("listing", &dir, e))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("reading", &path, e)),
            };
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            let key = match path.strip_prefix(root) {
                Ok(rel) => rel.to_string_lossy().replace('\\', "/"),
                Err(_) => continue,
            };
            let old = meta.modified().map(|m| m < cutoff).unwrap_or(false);
            if meta.is_file() && old && key.starts_with(prefix) {
                match std::fs::remove_file(&path) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("deleting", &path, e)),
                }
            }
        }
    }
    Ok(deleted)
}

#[async_trait]
impl Blobs for FolderBundles {
    async fn put_blob(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let mut upload = self.create_upload(key).await?;
        if let Err(e) = upload.write(&bytes).await {
            let _ = upload.abort().await;
            return Err(e);
        }
        upload.finish().await.map(|_| ())
    }

    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.get(key, u64::MAX).await
    }

    async fn delete_blob(&self, key: &str) -> StoreResult<()> {
        self.delete(key).await
    }
}

struct FolderUpload {
    /// `None` once finished or aborted, so `Drop` knows whether the temp file is still ours.
    file: Option<BufWriter<tokio::fs::File>>,
    temp: PathBuf,
    dest: PathBuf,
    size: u64,
    /// A job checkpointed it: a resumed write may still need the temp file, so `Drop` (which a
    /// crashing job never runs anyway) leaves it; the job's own cleanup or the sweep removes it.
    resumable: bool,
}

impl FolderUpload {
    fn file(&mut self) -> StoreResult<&mut BufWriter<tokio::fs::File>> {
        self.file.as_mut().ok_or_else(|| StoreError::Internal("bundle upload already closed".into()))
    }

    async fn complete(&mut self) -> StoreResult<()> {
        let temp = self.temp.clone();
        let file = self.file()?;
        file.flush().await.map_err(|e| io_error("writing", &temp, e))?;
        // Durable before visible: a crash after the rename must not leave a short file.
        file.get_ref().sync_all().await.map_err(|e| io_error("syncing", &temp, e))?;
        tokio::fs::rename(&temp, &self.dest).await.map_err(|e| io_error("renaming", &temp, e))?;
        self.file = None;
        Ok(())
    }
}

#[async_trait]
impl Upload for FolderUpload {
    async fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        let temp = self.temp.clone();
        if let Err(e) = self.file()?.write_all(bytes).await {
            // Part of `bytes` may be in the file: the upload is spoilt, so it ends here.
            self.file = None;
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_error("writing", &temp, e));
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> StoreResult<u64> {
        // On failure `Drop` removes the temp file.
        self.complete().await?;
        Ok(self.size)
    }

    async fn abort(mut self: Box<Self>) -> StoreResult<()> {
        self.file = None;
        match tokio::fs::remove_file(&self.temp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("deleting", &self.temp, e)),
        }
    }

    /// Durable to here: a resumed write truncates the temp file back to this size.
    async fn checkpoint(&mut self) -> StoreResult<Option<serde_json::Value>> {
        let temp = self.temp.clone();
        let file = self.file()?;
        file.flush().await.map_err(|e| io_error("writing", &temp, e))?;
        file.get_ref().sync_data().await.map_err(|e| io_error("syncing", &temp, e))?;
        let name = temp.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.resumable = true;
        Ok(Some(serde_json::json!({"temp": name, "size": self.size})))
    }

    fn suspend(mut self: Box<Self>) {
        // Not removed by `Drop`: `resume_upload` picks the temp file up again.
        self.file = None;
    }
}

impl Drop for FolderUpload {
    fn drop(&mut self) {
        if self.file.take().is_some() && !self.resumable {
            // Best effort, and quick: one unlink. A leftover is swept later anyway.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
