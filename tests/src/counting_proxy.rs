//! A counting HTTP/1.1 proxy in front of a DynamoDB-compatible server (moto), so tests can state
//! what an operation costs in requests and items, which a timing cannot prove.
//!
//! Every request is forwarded byte for byte (head and body) over a fresh upstream connection and
//! the answer is relayed byte for byte; moto does not check signatures, so the SDK's signing is
//! unaffected. Per DynamoDB operation (`X-Amz-Target: DynamoDB_20120810.<Op>`) it counts
//! requests, failed answers, and items (see [`OpCounts`]). Counts are updated before the answer
//! is relayed, so once an SDK call returns its cost is in [`CountingProxy::snapshot`].
//!
//! [`CountingProxy::start_serialised`] forwards one request at a time: moto does not make a
//! conditional write atomic under concurrent requests as DynamoDB does, so serialising here keeps
//! the races between our own clients real.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Longest request or response head accepted (moto's are far shorter).
const MAX_HEAD_BYTES: usize = 64 * 1024;
const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// Where requests without a DynamoDB target are counted.
pub const OTHER: &str = "(other)";

/// What one operation cost. Items are counted only for answers with a 2xx status (a refused
/// conditional write wrote nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub requests: u64,
    /// Answers with a status outside 2xx (conditional failures, throttling, ...).
    pub failed: u64,
    /// Items put, updated or deleted: PutItem/UpdateItem/DeleteItem 1, BatchWriteItem its
    /// PutRequests + DeleteRequests, TransactWriteItems its Puts + Updates + Deletes.
    pub written: u64,
    /// The deletes among `written`.
    pub deleted: u64,
    /// ConditionChecks of TransactWriteItems (checked, not written).
    pub checked: u64,
    /// GetItem 1, BatchGetItem and TransactGetItems the keys asked for, Query/Scan the answer's
    /// `Count`.
    pub read: u64,
}

impl OpCounts {
    fn add(&mut self, other: &OpCounts) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.written += other.written;
        self.deleted += other.deleted;
        self.checked += other.checked;
        self.read += other.read;
    }
}

/// Counts per operation name (`PutItem`, `Query`, ..., or [`OTHER`]), in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub ops: BTreeMap<String, OpCounts>,
}

impl Counts {
    /// One operation's counts (zero when it was never called).
    pub fn op(&self, name: &str) -> OpCounts {
        self.ops.get(name).copied().unwrap_or_default()
    }

    /// The sum over every operation.
    pub fn total(&self) -> OpCounts {
        let mut sum = OpCounts::default();
        for c in self.ops.values() {
            sum.add(c);
        }
        sum
    }
}

impl fmt::Display for Counts {
    /// One line per operation: `Op requests=.. failed=.. written=.. deleted=.. checked=.. read=..`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (op, c) in &self.ops {
            writeln!(
                f,
                "{op:<20} requests={:<6} failed={:<4} written={:<7} deleted={:<7} checked={:<4} read={}",
                c.requests, c.failed, c.written, c.deleted, c.checked, c.read
            )?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Shared {
    counts: Mutex<Counts>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// `Some` in serialised mode: held around each forward.
    serial: Option<tokio::sync::Mutex<()>>,
    upstream: String,
}

/// The proxy; it stops (with every connection it serves) when dropped.
pub struct CountingProxy {
    url: String,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Starts a proxy on 127.0.0.1 (a port the OS picks) to `upstream` (`http://host:port`),
    /// forwarding requests as they come.
    pub async fn start(upstream: &str) -> io::Result<Self> {
        Self::spawn(upstream, false).await
    }

    /// Same, but forwarding one request at a time (the next waits until the answer is relayed).
    pub async fn start_serialised(upstream: &str) -> io::Result<Self> {
        Self::spawn(upstream, true).await
    }

    async fn spawn(upstream: &str, serial: bool) -> io::Result<Self> {
        let parsed = url::Url::parse(upstream).map_err(|e| invalid(format!("upstream {upstream:?}: {e}")))?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(invalid(format!("upstream {upstream:?} has no host and port")));
        };
        if parsed.scheme() != "http" {
            return Err(invalid(format!("upstream {upstream:?}: only http is proxied")));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            serial: serial.then(|| tokio::sync::Mutex::new(())),
            upstream: format!("{host}:{port}"),
            ..Shared::default()
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self { url, shared, accept })
    }

    /// The URL to point a client at (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn snapshot(&self) -> Counts {
        self.shared.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Forgets the counts and the in-flight high-water mark.
    pub fn reset(&self) {
        if let Ok(mut c) = self.shared.counts.lock() {
            *c = Counts::default();
        }
        self.shared.max_in_flight.store(0, Ordering::SeqCst);
    }

    /// The most requests that were being forwarded upstream at once since start or `reset`.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it drops (and aborts) them all.
        self.accept.abort();
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    connections.spawn(serve_connection(socket, shared.clone()));
                }
                Err(e) => eprintln!("counting proxy: accept failed: {e}"),
            },
            // Reap finished connections so the set does not grow with every one.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves requests from one client connection (keep-alive) until either side closes it.
async fn serve_connection(socket: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = socket.into_split();
    let mut client = BufReader::new(read);
    loop {
        let request = match read_message(&mut client, None).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                eprintln!("counting proxy: bad request: {e}");
                let _ = write
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                return;
            }
        };
        let response = {
            let _turn = match &shared.serial {
                Some(lock) => Some(lock.lock().await),
                None => None,
            };
            let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let response = forward(&shared.upstream, &request).await;
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            response
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                eprintln!("counting proxy: upstream {} failed: {e}", shared.upstream);
                let _ = write
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                return;
            }
        };
        count(&shared, &request, &response);
        for interim in &response.interim {
            if write.write_all(interim).await.is_err() {
                return;
            }
        }
        if write.write_all(&response.head).await.is_err() || write.write_all(&response.raw_body).await.is_err() {
            return;
        }
        let close = request.wants_close() || response.wants_close() || response.until_eof;
        if close {
            let _ = write.shutdown().await;
            return;
        }
    }
}

/// One exchange over a fresh upstream connection (no stale keep-alive connection to guess about).
async fn forward(upstream: &str, request: &Message) -> io::Result<Message> {
    let mut stream = TcpStream::connect(upstream).await?;
    stream.write_all(&request.head).await?;
    stream.write_all(&request.raw_body).await?;
    stream.flush().await?;
    let mut reader = BufReader::new(stream);
    let mut interim = Vec::new();
    loop {
        let mut response = read_message(&mut reader, Some(request))
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed without answering"))?;
        // 1xx (say 100 Continue) precede the real answer; 101 would switch protocols: not ours.
        if (100..200).contains(&response.status) && response.status != 101 {
            interim.push(response.head);
            continue;
        }
        response.interim = interim;
        return Ok(response);
    }
}

/// An HTTP/1.1 request or response: the head and body exactly as received, plus what counting
/// needs (status, headers, the body with any chunked framing removed).
#[derive(Default)]
struct Message {
    head: Vec<u8>,
    raw_body: Vec<u8>,
    body: Vec<u8>,
    /// The request's method, or the response's status.
    method: String,
    status: u16,
    headers: Vec<(String, String)>,
    /// Responses only: the body ran until the upstream closed.
    until_eof: bool,
    /// Responses only: 1xx heads that came before this one.
    interim: Vec<Vec<u8>>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn wants_close(&self) -> bool {
        self.header("connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

/// Reads one message; `None` when the peer closed before sending anything. `request` is given
/// when reading its response (a HEAD answer, 1xx, 204 and 304 have no body).
async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    request: Option<&Message>,
) -> io::Result<Option<Message>> {
    let mut m = Message::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            if m.head.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a head"));
        }
        m.head.extend_from_slice(&line);
        if m.head.len() > MAX_HEAD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if m.method.is_empty() && m.status == 0 {
            parse_start_line(&mut m, text, request.is_some())?;
        } else if text.is_empty() {
            break;
        } else if let Some((name, value)) = text.split_once(':') {
            m.headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let no_body = request.is_some_and(|r| r.method.eq_ignore_ascii_case("HEAD"))
        || (request.is_some() && ((100..200).contains(&m.status) || m.status == 204 || m.status == 304));
    if no_body {
        return Ok(Some(m));
    }
    if m.chunked() {
        read_chunked(reader, &mut m).await?;
    } else if let Some(len) = m.header("content-length") {
        let len: usize = len.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
        m.raw_body = vec![0; len];
        reader.read_exact(&mut m.raw_body).await?;
        m.body = m.raw_body.clone();
    } else if request.is_some() {
        // A response without framing ends when the upstream closes (a request has no body).
        reader.read_to_end(&mut m.raw_body).await?;
        m.body = m.raw_body.clone();
        m.until_eof = true;
    }
    Ok(Some(m))
}

fn parse_start_line(m: &mut Message, text: &str, is_response: bool) -> io::Result<()> {
    let mut parts = text.split_whitespace();
    let first = parts.next().unwrap_or_default();
    if is_response {
        let status = parts.next().and_then(|s| s.parse().ok());
        m.status =
            status.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {text:?}")))?;
    } else if first.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "empty request line"));
    } else {
        m.method = first.to_owned();
    }
    Ok(())
}

/// Chunked framing: relayed as received, decoded into `body` for counting.
async fn read_chunked<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, m: &mut Message) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a chunked body"));
        }
        m.raw_body.extend_from_slice(&line);
        let size_text = String::from_utf8_lossy(&line);
        let size_text = size_text.trim().split(';').next().unwrap_or_default().trim().to_owned();
        let size = usize::from_str_radix(&size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line).await? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside trailers"));
                }
                m.raw_body.extend_from_slice(&line);
                if line == b"\r\n" || line == b"\n" {
                    return Ok(());
                }
            }
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).await?;
        m.raw_body.extend_from_slice(&chunk);
        m.body.extend_from_slice(&chunk[..size]);
    }
}

fn count(shared: &Shared, request: &Message, response: &Message) {
    let op = request.header("x-amz-target").and_then(|t| t.strip_prefix(TARGET_PREFIX)).unwrap_or(OTHER).to_owned();
    let ok = (200..300).contains(&response.status);
    let mut c = OpCounts { requests: 1, failed: u64::from(!ok), ..OpCounts::default() };
    if ok {
        items(&op, request, response, &mut c);
    }
    if let Ok(mut counts) = shared.counts.lock() {
        counts.ops.entry(op).or_default().add(&c);
    }
}

fn items(op: &str, request: &Message, response: &Message, c: &mut OpCounts) {
    let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
    let len = |v: &Value| v.as_array().map_or(0, |a| a.len() as u64);
    match op {
        "PutItem" | "UpdateItem" => c.written = 1,
        "DeleteItem" => {
            c.written = 1;
            c.deleted = 1;
        }
        "GetItem" => c.read = 1,
        "BatchWriteItem" => {
            let body = json(&request.body);
            for w in body["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(|t| t.values())
                .flat_map(|v| v.as_array())
                .flatten()
            {
                if w.get("PutRequest").is_some() {
                    c.written += 1;
                } else if w.get("DeleteRequest").is_some() {
                    c.written += 1;
                    c.deleted += 1;
                }
            }
        }
        "TransactWriteItems" => {
            for item in json(&request.body)["TransactItems"].as_array().into_iter().flatten() {
                if item.get("Put").is_some() || item.get("Update").is_some() {
                    c.written += 1;
                } else if item.get("Delete").is_some() {
                    c.written += 1;
                    c.deleted += 1;
                } else if item.get("ConditionCheck").is_some() {
                    c.checked += 1;
                }
            }
        }
        "BatchGetItem" => {
            let body = json(&request.body);
            c.read =
                body["RequestItems"].as_object().into_iter().flat_map(|t| t.values()).map(|t| len(&t["Keys"])).sum();
        }
        "TransactGetItems" => c.read = len(&json(&request.body)["TransactItems"]),
        "Query" | "Scan" => c.read = json(&response.body)["Count"].as_u64().unwrap_or(0),
        _ => {}
    }
}
