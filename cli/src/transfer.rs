//! Whole workspaces in and out: export to a file, import from one, copy between two APIs.
//! Bundles are streamed (file to socket, socket to file, socket to socket), never held whole;
//! only an inline export answer (at most about 5 MB) is read as one JSON value.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::api::{open_link, put_link, put_part, segment, Api, Ui};
use crate::error::{Failure, Result};

/// Bundles up to this size go inline in the import request (Lambda takes 6 MB bodies, the
/// envelope around the bundle needs a little); larger ones are uploaded first.
pub const DEFAULT_INLINE_MAX: u64 = 5_000_000;

#[derive(Debug, Clone, Default)]
pub struct ExportOpts {
    pub scope: Option<String>,
    pub include_secrets: bool,
    /// Run it as a job from the start (else only when the route answers 413).
    pub run_async: bool,
}

#[derive(Debug, Clone)]
pub struct ImportOpts {
    pub scope: Option<String>,
    pub force_new_id: bool,
    pub run_async: bool,
    /// Bundles larger than this are uploaded and imported by a job.
    pub inline_max: u64,
}

/// Where an export's bundle is.
pub enum Exported {
    /// In the answer itself (small).
    Inline { data: Value },
    /// Staged: a link to GET, with what the server says its bytes are.
    Staged { url: String, size: u64, sha256: String },
}

pub struct Export {
    pub bundle: Exported,
    pub job_id: Option<String>,
    pub message: String,
}

/// Asks for the export: synchronously unless `run_async`, then as a job when the route says
/// the workspace is too large for one request (413).
pub fn start_export(api: &Api, ui: &Ui, id: &str, opts: &ExportOpts) -> Result<Export> {
    let mut body = Map::new();
    if let Some(scope) = &opts.scope {
        body.insert("scope".into(), json!(scope));
    }
    if opts.include_secrets {
        body.insert("include_secrets".into(), json!(true));
    }
    if opts.run_async {
        body.insert("async".into(), json!(true));
    }
    let path = format!("/workspaces/{}/export-tables", segment(id));
    let mut answer = api.post(&path, &Value::Object(body.clone()))?;
    if answer.status == 413 && !opts.run_async {
        body.insert("async".into(), json!(true));
        answer = api.post(&path, &Value::Object(body))?;
    }
    let answer = answer.ok()?;
    if answer.status == 202 {
        let job_id = job_id_of(answer.data())?;
        let job = api.wait_job(&job_id, ui, "export")?;
        let bundle =
            staged(&job["result"]).ok_or_else(|| Failure::server(format!("job {job_id} has no bundle link")))?;
        return Ok(Export { bundle, job_id: Some(job_id.clone()), message: format!("exported by job {job_id}") });
    }
    let message = answer.message();
    let mut answer = answer;
    let data = answer.body.get_mut("data").map(Value::take).unwrap_or(Value::Null);
    let bundle = match staged(&data) {
        Some(s) => s,
        None if data.is_object() => Exported::Inline { data },
        None => return Err(Failure::server("the export answer holds no bundle")),
    };
    Ok(Export { bundle, job_id: None, message })
}

fn job_id_of(data: &Value) -> Result<String> {
    data["job_id"].as_str().map(str::to_owned).ok_or_else(|| Failure::server("a 202 answer without job_id"))
}

fn staged(data: &Value) -> Option<Exported> {
    let b = data.get("bundle")?;
    Some(Exported::Staged {
        url: b.get("url")?.as_str()?.to_owned(),
        size: b.get("size")?.as_u64()?,
        sha256: b.get("sha256")?.as_str()?.to_ascii_lowercase(),
    })
}

/// Counts and hashes what passes through (and moves a progress bar).
struct Tap<T> {
    inner: T,
    hasher: Sha256,
    count: u64,
    bar: ProgressBar,
}

impl<T> Tap<T> {
    fn new(inner: T, bar: ProgressBar) -> Self {
        Tap { inner, hasher: Sha256::new(), count: 0, bar }
    }
    fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<T: Read> Read for Tap<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl<T: Write> Write for Tap<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn check_whole(count: u64, digest: &str, size: u64, sha256: &str) -> Result<()> {
    if count != size || digest != sha256 {
        return Err(Failure::server(format!(
            "the bundle did not arrive whole: got {count} bytes with sha256 {digest}, the server reported {size} \
             bytes with sha256 {sha256}"
        )));
    }
    Ok(())
}

pub struct Saved {
    pub bytes: u64,
    pub sha256: String,
    pub seconds: f64,
}

/// Writes the bundle to `out` (through `<out>.part`, renamed when whole and verified).
pub fn save(api: &Api, ui: &Ui, bundle: &Exported, out: &Path) -> Result<Saved> {
    let part = part_path(out);
    let result = save_part(api, ui, bundle, &part);
    match result {
        Ok(saved) => {
            std::fs::rename(&part, out)
                .map_err(|e| Failure::local(format!("renaming {} to {}: {e}", part.display(), out.display())))?;
            Ok(saved)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

fn part_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    out.with_file_name(name)
}

fn save_part(api: &Api, ui: &Ui, bundle: &Exported, part: &Path) -> Result<Saved> {
    let started = Instant::now();
    let file = File::create(part).map_err(|e| Failure::local(format!("creating {}: {e}", part.display())))?;
    let local = |e: std::io::Error| Failure::local(format!("writing {}: {e}", part.display()));
    match bundle {
        Exported::Inline { data } => {
            let mut out = Tap::new(BufWriter::new(file), ProgressBar::hidden());
            serde_json::to_writer(&mut out, data)
                .map_err(|e| Failure::local(format!("writing {}: {e}", part.display())))?;
            out.flush().map_err(local)?;
            Ok(Saved { bytes: out.count, sha256: out.digest(), seconds: started.elapsed().as_secs_f64() })
        }
        Exported::Staged { url, size, sha256 } => {
            let (_, body) = open_link(&api.agent, url)?;
            let mut input = Tap::new(body, ui.bytes_bar("download", Some(*size)));
            let mut out = BufWriter::with_capacity(256 * 1024, file);
            let copied = pump(&mut input, &mut out, part);
            input.bar.finish();
            copied?;
            out.flush().map_err(local)?;
            check_whole(input.count, &input.digest(), *size, sha256)?;
            Ok(Saved { bytes: input.count, sha256: input.digest(), seconds: started.elapsed().as_secs_f64() })
        }
    }
}

/// Copies `input` to `out`: a read error is the network's (7), a write error ours (1).
fn pump(input: &mut dyn Read, out: &mut dyn Write, path: &Path) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::server(format!("downloading the bundle: {e}"))),
        };
        out.write_all(&buf[..n]).map_err(|e| Failure::local(format!("writing {}: {e}", path.display())))?;
    }
}

/// A bundle to import.
pub enum Source<'a> {
    File(&'a Path),
    /// An inline export's bundle, serialised (small).
    Bytes(Vec<u8>),
    /// A staged bundle on another API, streamed from its link into the upload.
    Link {
        url: String,
        size: u64,
        sha256: String,
        agent: &'a ureq::Agent,
    },
}

pub struct Imported {
    pub bytes: u64,
    /// "inline" (in the import request) or "upload" (uploaded, then imported by a job).
    pub via: &'static str,
    pub job_id: Option<String>,
    pub bundle_id: Option<String>,
    pub result: Value,
    pub message: String,
    pub seconds: f64,
    /// Of the upload alone (the bytes' transfer), when there was one.
    pub upload_seconds: Option<f64>,
    /// How many parts the upload went in (1 for a single PUT), when there was one.
    pub parts: Option<usize>,
}

fn open_file(path: &Path) -> Result<(u64, File)> {
    let file = File::open(path).map_err(|e| Failure::local(format!("{}: {e}", path.display())))?;
    let len = file.metadata().map_err(|e| Failure::local(format!("{}: {e}", path.display())))?.len();
    Ok((len, file))
}

/// Imports `source` into workspace `into`: in the request when small enough, else uploaded and
/// imported by a job. A synchronous import refused as too large (413) goes the second way.
pub fn import(api: &Api, ui: &Ui, source: Source<'_>, into: &str, opts: &ImportOpts) -> Result<Imported> {
    let started = Instant::now();
    let size = match &source {
        Source::File(path) => open_file(path)?.0,
        Source::Bytes(b) => b.len() as u64,
        Source::Link { size, .. } => *size,
    };
    let inline_ok = !matches!(source, Source::Link { .. }) && size <= opts.inline_max;
    if inline_ok {
        let answer = import_inline(api, &source, into, opts)?;
        if answer.status != 413 {
            let answer = answer.ok()?;
            let (job_id, result, message) = if answer.status == 202 {
                let job_id = job_id_of(answer.data())?;
                let job = api.wait_job(&job_id, ui, "import")?;
                (
                    Some(job_id.clone()),
                    job["result"].clone(),
                    format!("imported by job {job_id}: {}", counts(&job["result"])),
                )
            } else {
                (None, answer.data().clone(), answer.message())
            };
            let seconds = started.elapsed().as_secs_f64();
            let via = "inline";
            return Ok(Imported {
                bytes: size,
                via,
                job_id,
                bundle_id: None,
                result,
                message,
                seconds,
                upload_seconds: None,
                parts: None,
            });
        }
    }
    // Upload (in parts), then a job.
    let upload_started = Instant::now();
    let (bundle_id, parts) = match source {
        Source::File(path) => {
            let (len, file) = open_file(path)?;
            let mut body = Tap::new(BufReader::with_capacity(256 * 1024, file), ui.bytes_bar("upload", Some(len)));
            let sent = upload(api, len, &mut body);
            body.bar.finish();
            sent?
        }
        Source::Bytes(bytes) => {
            let mut body = Tap::new(&bytes[..], ui.bytes_bar("upload", Some(size)));
            let sent = upload(api, size, &mut body);
            body.bar.finish();
            sent?
        }
        Source::Link { url: from, size, sha256, agent } => {
            let (_, download) = open_link(agent, &from)?;
            let mut body = Tap::new(download, ui.bytes_bar("copy", Some(size)));
            let sent = upload(api, size, &mut body);
            body.bar.finish();
            let staged = sent?;
            // Checked before the import: a bundle that did not arrive whole is never imported.
            check_whole(body.count, &body.digest(), size, &sha256)?;
            staged
        }
    };
    let upload_seconds = Some(upload_started.elapsed().as_secs_f64());
    let mut request = import_fields(into, opts);
    request.insert("export_data".into(), json!({"bundle_id": bundle_id}));
    request.insert("async".into(), json!(true));
    let answer = api.post("/workspaces/import-tables", &Value::Object(request))?.ok()?;
    let (job_id, result, message) = if answer.status == 202 {
        let job_id = job_id_of(answer.data())?;
        let job = api.wait_job(&job_id, ui, "import")?;
        (Some(job_id.clone()), job["result"].clone(), format!("imported by job {job_id}: {}", counts(&job["result"])))
    } else {
        (None, answer.data().clone(), answer.message())
    };
    let seconds = started.elapsed().as_secs_f64();
    let bundle_id = Some(bundle_id);
    let parts = Some(parts);
    Ok(Imported { bytes: size, via: "upload", job_id, bundle_id, result, message, seconds, upload_seconds, parts })
}

/// Stages `len` bytes read from `body` and answers the bundle id: in parts (`POST
/// /workspaces/bundles {"size"}`, a PUT per part link, then the completion), holding one part in
/// memory at a time, so no request carries the whole bundle. A server that answers one link for
/// the whole bundle gets one PUT, streamed. Answers the bundle id and how many parts went.
fn upload(api: &Api, len: u64, body: &mut dyn Read) -> Result<(String, usize)> {
    let slot = api.post("/workspaces/bundles", &json!({"size": len}))?.ok()?;
    let data = slot.data();
    let bundle_id = data["bundle_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::server("POST /workspaces/bundles answered no bundle_id"))?;
    let Some(parts) = data["parts"].as_array() else {
        let url = (data["upload_url"].as_str())
            .ok_or_else(|| Failure::server("POST /workspaces/bundles answered no parts and no upload_url"))?;
        put_link(&api.agent, url, len, body)?;
        return Ok((bundle_id, 1));
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut sent = Vec::with_capacity(parts.len());
    for part in parts {
        let (Some(number), Some(part_len), Some(url)) =
            (part["part_number"].as_u64(), part["size"].as_u64(), part["url"].as_str())
        else {
            return Err(Failure::server(format!("a part without part_number, size or url: {part}")));
        };
        let part_len = usize::try_from(part_len).map_err(|_| Failure::server("a part larger than memory"))?;
        buf.resize(part_len, 0);
        body.read_exact(&mut buf).map_err(|e| Failure::server(format!("reading part {number} of the bundle: {e}")))?;
        let etag = put_part(&api.agent, url, &buf)?;
        sent.push(json!({"part_number": number, "etag": etag}));
    }
    let complete = data["complete_path"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("/workspaces/bundles/{}/complete", segment(&bundle_id)));
    let count = sent.len();
    api.post(&complete, &json!({"upload_id": data["upload_id"], "parts": sent}))?.ok()?;
    Ok((bundle_id, count))
}

/// The counts of an import's answer, in the words of its synchronous message.
fn counts(result: &Value) -> String {
    let n = |k: &str| result["summary"][k].as_u64().unwrap_or(0);
    format!(
        "{} projects, created {} tables, merged {}, inserted {} rows, updated {}",
        n("projects_imported"),
        n("tables_created"),
        n("tables_merged"),
        n("rows_inserted"),
        n("rows_updated")
    )
}

fn import_fields(into: &str, opts: &ImportOpts) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("workspace_id".into(), json!(into));
    if let Some(scope) = &opts.scope {
        m.insert("scope".into(), json!(scope));
    }
    if opts.force_new_id {
        m.insert("force_new_id".into(), json!(true));
    }
    m
}

/// `{"workspace_id": …, …, "export_data": <the bundle's bytes as they are>}`, sent as it is read.
fn import_inline(api: &Api, source: &Source<'_>, into: &str, opts: &ImportOpts) -> Result<crate::api::Answer> {
    let mut fields = import_fields(into, opts);
    if opts.run_async {
        fields.insert("async".into(), json!(true));
    }
    let mut head = serde_json::to_vec(&Value::Object(fields)).map_err(|e| Failure::local(e.to_string()))?;
    head.pop(); // the closing brace
    head.extend_from_slice(b",\"export_data\":");
    let tail: &[u8] = b"}";
    match source {
        Source::File(path) => {
            let (len, file) = open_file(path)?;
            let total = head.len() as u64 + len + tail.len() as u64;
            let mut body = (&head[..]).chain(BufReader::with_capacity(256 * 1024, file)).chain(tail);
            api.post_reader("/workspaces/import-tables", total, &mut body)
        }
        Source::Bytes(bytes) => {
            let total = (head.len() + bytes.len() + tail.len()) as u64;
            let mut body = (&head[..]).chain(&bytes[..]).chain(tail);
            api.post_reader("/workspaces/import-tables", total, &mut body)
        }
        Source::Link { .. } => Err(Failure::local("a linked bundle is never sent inline")),
    }
}
