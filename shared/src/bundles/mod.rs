//! The object store for export bundles (and for rows too large for a DynamoDB item): one trait,
//! two adapters (a local folder, S3), one conformance suite (`tests/tests/bundle_conformance.rs`).
//!
//! Bundles can be far larger than a Lambda response or its memory, so they are written as a
//! stream ([`Upload`]) and handed to clients as links that need no token ([`BundleStore::download_url`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::{Blobs, StoreError, StoreResult};

pub mod folder;
pub mod links;

pub use links::{LinkError, LinkSigner};

#[async_trait]
pub trait BundleStore: Blobs + Send + Sync {
    /// Starts a streamed write of `key`. Memory stays bounded by one part (~8 MiB) however
    /// large the object.
    async fn create_upload(&self, key: &str) -> StoreResult<Box<dyn Upload>>;

    /// The whole object, or `None`. An object larger than `max_bytes` is `TooLarge` (checked
    /// before reading, so a huge object never lands in memory).
    async fn get(&self, key: &str, max_bytes: u64) -> StoreResult<Option<Vec<u8>>>;

    /// The object as a stream of chunks, with its size, or `None`: for serving a bundle without
    /// holding it in memory.
    async fn open_stream(&self, key: &str) -> StoreResult<Option<(u64, ByteStream)>>;

    /// Bytes `start..end` of the object (end exclusive, clipped to its size), for reading one
    /// piece of a large bundle without the rest. An absent object is `Conflict`: a caller names
    /// a range only of an object it has seen, so it went away (expired, replaced) meanwhile.
    async fn read_range(&self, key: &str, start: u64, end: u64) -> StoreResult<Vec<u8>>;

    /// Size in bytes, or `None` when absent.
    async fn head(&self, key: &str) -> StoreResult<Option<u64>>;

    /// A URL that a plain HTTP GET with no token can fetch until `expires_at` (unix seconds).
    /// S3: a presigned GET. Folder: a signed link to the local-only download route under
    /// `public_base` (e.g. `http://127.0.0.1:9000`).
    async fn download_url(&self, key: &str, expires_at: i64, public_base: &str) -> StoreResult<String>;

    /// Same for a plain HTTP PUT of the object's bytes (presigned PUT / signed local upload link).
    async fn upload_url(&self, key: &str, expires_at: i64, public_base: &str) -> StoreResult<String>;

    /// Starts an upload of `size` bytes that a client sends in parts, so no single request (or
    /// Lambda event) carries the whole object: one URL per part, each signed for its part's exact
    /// length. S3: a multipart upload (CreateMultipartUpload now, presigned UploadPart URLs).
    /// Folder: signed part links to the local upload route. See [`PartedUpload`].
    async fn parted_upload(
        &self,
        key: &str,
        size: u64,
        expires_at: i64,
        public_base: &str,
    ) -> StoreResult<PartedUpload>;

    /// Stores part `part_number` of a parted upload; answers its ETag. What a part URL does, as
    /// a store call (the local upload route serves part links with it).
    async fn upload_part(&self, key: &str, upload_id: &str, part_number: u32, bytes: &[u8]) -> StoreResult<String>;

    /// Makes the object of `parts` (ascending numbers, each with the ETag its upload answered)
    /// visible under `key`, whole or not at all (S3: CompleteMultipartUpload). An unknown
    /// upload, part or ETag is `Invalid`; parts not listed are discarded, as S3 does. The parts
    /// are kept when it fails, so it can be tried again.
    async fn complete_parts(&self, key: &str, upload_id: &str, parts: &[SentPart]) -> StoreResult<()>;

    /// Deletes objects under `prefix` older than `max_age`; returns how many. Folder: a real
    /// sweep. S3: `Ok(0)`, as a bucket lifecycle rule expires them.
    async fn sweep(&self, prefix: &str, max_age: Duration) -> StoreResult<usize>;

    /// Deletes `key`; deleting an absent key is not an error.
    async fn delete(&self, key: &str) -> StoreResult<()>;

    /// Opens again a write of `key` that an [`Upload::checkpoint`] described (in another
    /// invocation, after a crash): it goes on exactly after the checkpointed bytes.
    async fn resume_upload(&self, key: &str, state: &serde_json::Value) -> StoreResult<Box<dyn Upload>>;
}

/// One object being written. Dropping it without `finish` or `abort` abandons the write:
/// nothing becomes visible, and the adapter cleans up what it can.
#[async_trait]
pub trait Upload: Send {
    async fn write(&mut self, bytes: &[u8]) -> StoreResult<()>;

    /// Completes the object; returns its size. Nothing is visible under the key before this.
    async fn finish(self: Box<Self>) -> StoreResult<u64>;

    async fn abort(self: Box<Self>) -> StoreResult<()>;

    /// A point a job can resume the write from: sends what is buffered now where the store
    /// allows it (S3: as a part, once at least 5 MiB are buffered) and answers the state
    /// [`BundleStore::resume_upload`] takes; `None` while too little is buffered to cut a part.
    async fn checkpoint(&mut self) -> StoreResult<Option<serde_json::Value>>;

    /// Leaves the write open, as it was at the last checkpoint, for `resume_upload` (a job
    /// pausing at the end of its invocation); nothing is cleaned up.
    fn suspend(self: Box<Self>);
}

pub type DynBundles = Arc<dyn BundleStore>;

/// Where a client sends an object in parts: PUT bytes `(n - 1) * part_size ..` (the last part
/// shorter) to `part_urls[n - 1]` with exactly that length and keep each answer's `ETag`
/// header; [`BundleStore::complete_parts`] then joins them. S3's multipart upload through
/// presigned part URLs; the folder answers its signed part links the same way, so one client
/// serves both stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartedUpload {
    pub upload_id: String,
    pub part_size: u64,
    pub part_urls: Vec<String>,
}

/// Parts of an object of `size` bytes: how many, and the length of part `n` (1-based).
pub fn part_count(size: u64, part_size: u64) -> u64 {
    size.div_ceil(part_size.max(1))
}

pub fn part_len(size: u64, part_size: u64, n: u64) -> u64 {
    let start = (n.saturating_sub(1)).saturating_mul(part_size);
    size.saturating_sub(start).min(part_size)
}

/// One part as a completion lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPart {
    pub number: u32,
    pub etag: String,
}

/// An ETag as compared: S3 answers it quoted, clients may send it quoted, escaped or bare.
pub fn bare_etag(etag: &str) -> &str {
    let etag = etag.trim();
    let etag = etag.strip_prefix("&quot;").and_then(|e| e.strip_suffix("&quot;")).unwrap_or(etag);
    etag.trim_matches('"')
}

/// An object's bytes as they come off disk or the network.
pub type ByteStream = futures::stream::BoxStream<'static, StoreResult<bytes::Bytes>>;

/// Whether `c` may appear in a key. Kept to characters that are safe unescaped in a URL path,
/// a file name and an S3 key alike, so both adapters accept exactly the same keys.
pub fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '/' | '-')
}

/// Rejects keys outside `[A-Za-z0-9_.@+/-]`, absolute ones, and empty or dot-led segments
/// (which rules out `..` and the folder adapter's hidden temp files). Keys are built by our
/// code, so a bad one is a bug: `Internal`.
pub fn check_key(key: &str) -> StoreResult<()> {
    let valid = !key.is_empty()
        && key.chars().all(is_key_char)
        && key.split('/').all(|segment| !segment.is_empty() && !segment.starts_with('.'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::Internal(format!("invalid bundle key {key:?}")))
    }
}

/// Same rules for a sweep prefix, which may also be empty (everything) or end with `/`.
pub fn check_prefix(prefix: &str) -> StoreResult<()> {
    match prefix.strip_suffix('/').unwrap_or(prefix) {
        "" => Ok(()),
        trimmed => check_key(trimmed),
    }
}

/// What `read_range` answers for an object that is not there (any more).
pub fn gone(key: &str) -> StoreError {
    StoreError::Conflict(format!("object {key} is no longer there"))
}

/// Unix seconds now (0 if the clock is before 1970, which only makes links look expired).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How long a link made now for `expires_at` lives; a time already past is a caller bug.
pub fn lifetime(expires_at: i64) -> StoreResult<Duration> {
    let secs = expires_at.saturating_sub(now_unix());
    match u64::try_from(secs) {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(StoreError::Internal(format!("a link expiring at {expires_at} would already be expired"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_relative_paths() {
        for ok in ["a", "exports/acme/ann/x-1.json", "a@b+c_d.e/f"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "../a", "a/../b", "a/./b", ".hidden", "a\\b", "a b", "é", "a?b", "a%2e"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("exports/").is_ok());
        assert!(check_prefix("exports/ac").is_ok());
        assert!(check_prefix("../").is_err());
    }

    #[test]
    fn parts_cover_the_object_exactly() {
        assert_eq!(part_count(10, 4), 3);
        assert_eq!((1..=3).map(|n| part_len(10, 4, n)).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert_eq!(part_count(8, 4), 2);
        assert_eq!(part_len(8, 4, 2), 4);
        assert_eq!(part_count(1, 4), 1);
    }

    #[test]
    fn lifetimes_must_be_in_the_future() {
        assert!(lifetime(now_unix() - 1).is_err());
        assert!(lifetime(now_unix() + 60).is_ok_and(|d| d.as_secs() >= 59));
    }
}
