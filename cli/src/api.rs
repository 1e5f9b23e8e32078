//! The HTTP side: one blocking agent, the API's envelopes, signed links and job polling.

use std::io::Read;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use ureq::http::Response;
use ureq::{Agent, Body, SendBody};

use crate::config::Conn;
use crate::error::{Failure, Kind, Result};

/// Envelopes are small; an inline export answer is at most about 6 MB (Lambda's limit).
const MAX_ENVELOPE_BYTES: u64 = 64 * 1024 * 1024;

pub fn agent() -> Agent {
    Agent::config_builder()
        // Every status comes back as a response: the envelope's message is what we show.
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(15)))
        // A synchronous request is cut at 30 s by the HTTP API; a large local one may take longer.
        .timeout_recv_response(Some(Duration::from_secs(900)))
        .user_agent(concat!("workspaces-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A URL for messages: signed links carry their authority in the query, so it is left out.
pub fn shown(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn transport(url: &str, e: ureq::Error) -> Failure {
    Failure::server(format!("{}: {e}", shown(url)))
}

/// An answer of the API: its status and JSON body (`Null` when the body was not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    text: String,
}

impl Answer {
    pub fn read(mut resp: Response<Body>) -> Result<Answer> {
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_ENVELOPE_BYTES)
            .read_to_vec()
            .map_err(|e| Failure::server(format!("reading the answer: {e}")))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = if body.is_null() {
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned()
        } else {
            String::new()
        };
        Ok(Answer { status, body, text })
    }

    pub fn message(&self) -> String {
        match self.body.get("message").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None if !self.text.trim().is_empty() => self.text.trim().to_owned(),
            None => format!("HTTP {}", self.status),
        }
    }

    pub fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The envelope of a 2xx answer; any other status is its failure, with the server's message.
    pub fn ok(self) -> Result<Answer> {
        if self.success() {
            Ok(self)
        } else {
            Err(Failure::http(self.status, self.message()))
        }
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

pub struct Api {
    pub agent: Agent,
    pub base: String,
    token: String,
}

impl Api {
    pub fn new(conn: &Conn) -> Api {
        Api { agent: agent(), base: conn.url.clone(), token: conn.token.clone() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub fn get(&self, path: &str) -> Result<Answer> {
        let url = self.url(path);
        let resp = self.agent.get(&url).header("authorization", self.auth()).call().map_err(|e| transport(&url, e))?;
        Answer::read(resp)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        let bytes = serde_json::to_vec(body).map_err(|e| Failure::local(e.to_string()))?;
        let mut reader = &bytes[..];
        self.post_reader(path, bytes.len() as u64, &mut reader)
    }

    /// A POST whose JSON body is read as it is sent (`len` bytes; a file inside an envelope).
    pub fn post_reader(&self, path: &str, len: u64, body: &mut dyn Read) -> Result<Answer> {
        let url = self.url(path);
        let resp = self
            .agent
            .post(&url)
            .header("authorization", self.auth())
            .header("content-type", "application/json")
            .header("content-length", len.to_string())
            .send(SendBody::from_reader(body))
            .map_err(|e| transport(&url, e))?;
        Answer::read(resp)
    }

    /// `GET /workspaces/jobs/{id}`'s job.
    pub fn job(&self, job_id: &str) -> Result<Value> {
        Ok(self.get(&format!("/workspaces/jobs/{}", segment(job_id)))?.ok()?.data().clone())
    }

    /// Polls a job until it ends, showing its progress; a failed job is the failure the
    /// synchronous route would have answered, a cancelled one a conflict.
    pub fn wait_job(&self, job_id: &str, ui: &Ui, what: &str) -> Result<Value> {
        let bar = ui.job_bar(&format!("{what} job {job_id}"));
        let mut pause = Duration::from_millis(100);
        loop {
            let job = self.job(job_id)?;
            show_progress(&bar, &job);
            match job["state"].as_str().unwrap_or_default() {
                "succeeded" => {
                    bar.finish();
                    return Ok(job);
                }
                "failed" => {
                    bar.abandon();
                    let status = job["error"]["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
                    let message = job["error"]["message"].as_str().unwrap_or("the job failed").to_owned();
                    return Err(Failure::http(status, format!("job {job_id} failed: {message}")));
                }
                "cancelled" => {
                    bar.abandon();
                    return Err(Failure::new(Kind::Conflict, format!("job {job_id} was cancelled")));
                }
                _ => {}
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

fn show_progress(bar: &ProgressBar, job: &Value) {
    let counter = |name: &str| {
        let c = &job["progress"][name];
        (c["done"].as_u64().unwrap_or(0), c["total"].as_u64().unwrap_or(0))
    };
    let (rows, rows_total) = counter("rows");
    let (tables, tables_total) = counter("tables");
    if rows_total > 0 {
        bar.set_length(rows_total);
        bar.set_position(rows.min(rows_total));
    }
    let state = job["state"].as_str().unwrap_or("?");
    bar.set_message(format!("{state}, tables {tables}/{tables_total}"));
}

/// Reads a bundle link (a presigned S3 URL or the local download route): no token.
pub fn open_link(agent: &Agent, url: &str) -> Result<(u64, Box<dyn Read + Send + Sync>)> {
    let resp = agent.get(url).call().map_err(|e| transport(url, e))?;
    if resp.status().as_u16() != 200 {
        let answer = Answer::read(resp)?;
        return Err(Failure::http(answer.status, format!("{}: {}", shown(url), answer.message())));
    }
    let len = resp.body().content_length().unwrap_or(0);
    let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
    Ok((len, Box::new(reader)))
}

/// PUTs `len` bytes read from `body` to an upload link (no token: the link is its authority).
pub fn put_link(agent: &Agent, url: &str, len: u64, body: &mut dyn Read) -> Result<()> {
    let resp = agent
        .put(url)
        .header("content-length", len.to_string())
        .header("content-type", "application/json")
        .send(SendBody::from_reader(body))
        .map_err(|e| transport(url, e))?;
    let answer = Answer::read(resp)?;
    if answer.success() {
        Ok(())
    } else {
        Err(Failure::http(answer.status, format!("upload to {}: {}", shown(url), answer.message())))
    }
}

/// PUTs one part of a parted upload (no token: the link is its authority) and answers the
/// `ETag` header its completion must name. A dropped connection or a 5xx is tried again, up to
/// three times: the part is in memory, so sending it again is cheap and exact.
pub fn put_part(agent: &Agent, url: &str, bytes: &[u8]) -> Result<String> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let sent = agent
            .put(url)
            .header("content-length", bytes.len().to_string())
            .header("content-type", "application/octet-stream")
            .send(bytes);
        match sent {
            Ok(resp) if resp.status().is_success() => {
                let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                return etag.ok_or_else(|| Failure::server(format!("{} answered a part without an ETag", shown(url))));
            }
            Ok(resp) if resp.status().is_server_error() && attempt < 3 => {}
            Ok(resp) => {
                let answer = Answer::read(resp)?;
                return Err(Failure::http(
                    answer.status,
                    format!("part upload to {}: {}", shown(url), answer.message()),
                ));
            }
            Err(_) if attempt < 3 => {}
            Err(e) => return Err(transport(url, e)),
        }
        // 0.5 s, then 1 s; the progress bar simply waits.
        std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
    }
}

/// A path segment: ids are letters, digits and `_ - . @ +`; anything else is escaped.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Progress bars, on stderr and only when it is a terminal.
pub struct Ui {
    pub bars: bool,
}

impl Ui {
    pub fn new(bars: bool) -> Ui {
        Ui { bars }
    }

    fn bar(&self, len: Option<u64>, template: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }

    pub fn bytes_bar(&self, what: &str, len: Option<u64>) -> ProgressBar {
        let template = if len.is_some() {
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
        } else {
            "{prefix} {spinner} {bytes} {binary_bytes_per_sec}"
        };
        let bar = self.bar(len, template);
        bar.set_prefix(what.to_owned());
        bar
    }

    pub fn job_bar(&self, what: &str) -> ProgressBar {
        let bar = self.bar(None, "{prefix} [{bar:30}] {pos}/{len} rows, {msg} ({elapsed})");
        bar.set_prefix(what.to_owned());
        if self.bars {
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        bar
    }
}

/// The machine-readable form of a failure (`--json`).
pub fn failure_json(f: &Failure) -> Value {
    json!({"status": "error", "exit_code": f.kind.code(), "http_status": f.status, "message": f.message})
}
