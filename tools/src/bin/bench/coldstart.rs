//! The cold-start part of `make bench`: each function binary's init, as Lambda reports it (Init
//! Duration: from the process's start to its first `GET /runtime/invocation/next`), beside a
//! hello-world Lambda on the same `lambda_http` (`tools/hello-lambda`), so what a function adds
//! over the runtime itself shows as a ratio; and the size of each binary.
//!
//! Each run starts the binary as a child process against a stub of the Lambda Runtime API (plain
//! HTTP/1.1 on 127.0.0.1, a thread of its own) with the environment Lambda and the SAM template
//! give it, and times from just before `spawn` to the stub's receiving the first `/next`, which
//! is never answered: the child is killed and reaped there. The AWS SDK's endpoints (and the
//! instance metadata service) point at a second stub that counts the connections it accepts: a
//! function that connects anywhere during init pays for it on every cold start, so that is a
//! finding. Binaries are interleaved within each round, so machine noise spreads over all alike.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::flag;

/// The cold-start table's header.
pub const HEADER: &str =
    "| function | init median ms | init p90 ms | × hello | connections at init | x86_64 MB | arm64 MB |\n\
                          |---|---|---|---|---|---|---|";
/// The baseline's package and binary name.
pub const HELLO: &str = "hello-lambda";
/// A run whose child neither calls `/next` nor exits by then is a failure, not a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(10);
const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const MB: f64 = 1_048_576.0;

/// Reads the section's flags (`--cold-runs`, `--arm64-dir`, `--functions`), finds the release
/// binaries next to `exe` (the bench binary) and runs [`section`].
pub fn run(args: &[String], exe: &Path) -> Result<Vec<String>, String> {
    let runs = match flag(args, "--cold-runs") {
        None if args.iter().any(|a| a == "--smoke") => 2,
        None => 20,
        Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or("--cold-runs: a positive number")?,
    };
    // tools/.. : the workspace root, whose functions/ names the function binaries.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("no workspace root")?;
    let functions = root.join("functions");
    let mut names: Vec<String> = std::fs::read_dir(&functions)
        .map_err(|e| format!("cold: {}: {e}", functions.display()))?
        .filter_map(Result::ok)
        .filter(|d| d.path().is_dir())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    // The local-only bundle routes are never deployed (in AWS their links are presigned S3 URLs):
    // configured for AWS they refuse to start, by design.
    names.retain(|n| !shared::routes::ROUTES.iter().any(|r| r.local_only && r.function == n));
    names.sort();
    if let Some(only) = flag(args, "--functions") {
        let only: Vec<&str> = only.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
        if let Some(unknown) = only.iter().find(|f| !names.iter().any(|n| n == *f)) {
            return Err(format!("--functions: no function '{unknown}' under {}", functions.display()));
        }
        names.retain(|n| only.contains(&n.as_str()));
    }
    let release = exe.parent().ok_or("the bench binary has no folder")?;
    let missing: Vec<&str> =
        names.iter().map(String::as_str).chain([HELLO]).filter(|n| !release.join(n).is_file()).collect();
    if !missing.is_empty() {
        let packages: Vec<String> = missing.iter().map(|m| format!("-p {m}")).collect();
        return Err(format!(
            "cold: no binary of {} in {} (build them first: cargo build --release {})",
            missing.join(", "),
            release.display(),
            packages.join(" ")
        ));
    }
    // cargo lambda's layout: <target>/lambda/<function>/bootstrap.
    let arm64 = flag(args, "--arm64-dir").map(PathBuf::from).or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        Some(target.join("lambda")).filter(|d| d.is_dir())
    });
    let binaries: Vec<(String, PathBuf)> = names.into_iter().map(|n| (n.clone(), release.join(n))).collect();
    section(&binaries, &release.join(HELLO), arm64.as_deref(), runs)
}

/// Prints the section's lines (table rows, `ratio | ` and `error | ` lines); an error when there
/// was a finding, after the table.
pub fn report(lines: &[String]) -> Result<(), String> {
    println!("\nCold starts (exec to the first /next of the Runtime API, as Lambda's Init Duration):\n\n{HEADER}");
    for line in lines.iter().filter(|l| !l.starts_with("ratio | ") && !l.starts_with("error | ")) {
        println!("{line}");
    }
    println!("\nRatios (same run):");
    for line in lines.iter().filter_map(|l| l.strip_prefix("ratio | ")) {
        println!("- {line}");
    }
    let errors: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("error | ")).collect();
    if errors.is_empty() {
        return Ok(());
    }
    println!("\nFindings:");
    for e in &errors {
        println!("- {e}");
    }
    Err(format!("cold: {} finding(s), see above", errors.len()))
}

/// Measures `runs` rounds of hello-world then every binary of `binaries` (name, path), after a
/// first round reported apart (a binary's first start reads it from disk unless the page cache
/// has it: the machine's state, not the binary's init). Answers the table rows (hello-world
/// first), `ratio | ` summary lines and one `error | ` line per finding (a connection during
/// init, a child that never reached `/next`); an error only when hello-world itself fails.
pub fn section(
    binaries: &[(String, PathBuf)],
    hello: &Path,
    arm64_dir: Option<&Path>,
    runs: usize,
) -> Result<Vec<String>, String> {
    let mut all = vec![(HELLO.to_owned(), hello.to_owned())];
    all.extend(binaries.iter().cloned());
    let mut measured: Vec<Measured> = all.iter().map(|_| Measured::default()).collect();
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").map_err(|e| e.to_string())?);
    bar.enable_steady_tick(Duration::from_millis(120));
    for round in 0..=runs {
        for ((name, bin), m) in all.iter().zip(&mut measured) {
            // A child that failed once (a configuration error, most likely) fails alike again.
            if m.failed.is_some() {
                continue;
            }
            let what = if round == 0 { "first round".to_owned() } else { format!("round {round}/{runs}") };
            bar.set_message(format!("cold starts: {what}, {name}"));
            let (ms, requests) = measure(name, bin);
            match ms {
                Ok(ms) if round == 0 => m.first = Some(ms),
                Ok(ms) => m.ms.push(ms),
                Err(e) => m.failed = Some(e),
            }
            m.connections = m.connections.max(requests.len());
            for r in requests {
                if !m.requests.contains(&r) {
                    m.requests.push(r);
                }
            }
        }
    }
    bar.finish_and_clear();
    if let Some(e) = &measured[0].failed {
        return Err(format!("cold: the hello-world baseline ({}) did not start: {e}", hello.display()));
    }
    let hello_ms = median(&measured[0].ms);
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut sizes = Vec::new();
    for ((name, bin), m) in all.iter().zip(&measured) {
        let x86 = size_mb(bin);
        let arm = arm64_dir.map(|d| d.join(name).join("bootstrap")).filter(|p| p.is_file()).and_then(|p| size_mb(&p));
        // Per binary: [x86_64, arm64] in MB.
        sizes.push((name.as_str(), [x86, arm]));
        let show = |mb: Option<f64>| mb.map_or_else(|| "not built".to_owned(), |mb| format!("{mb:.1}"));
        let (x86, arm) = (show(x86), show(arm));
        match &m.failed {
            Some(e) => {
                lines.push(format!("| {name} | FAILED: {} | – | – | {} | {x86} | {arm} |", cell(e), m.connections));
                errors.push(format!("error | {name}: {e}"));
            }
            None => {
                let med = median(&m.ms);
                lines.push(format!(
                    "| {name} | {med:.1} | {:.1} | {:.2} | {} | {x86} | {arm} |",
                    p90(&m.ms),
                    med / hello_ms.max(1e-9),
                    m.connections
                ));
            }
        }
        if m.connections > 0 {
            errors.push(format!(
                "error | {name} opened {} connection(s) before its first /next (every cold start pays for them): {}",
                m.connections,
                m.requests.join("; ")
            ));
        }
    }

    let functions: Vec<(&str, f64)> = all
        .iter()
        .zip(&measured)
        .skip(1)
        .filter(|(_, m)| m.failed.is_none())
        .map(|((name, _), m)| (name.as_str(), median(&m.ms)))
        .collect();
    let slowest = functions.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
    let fastest = functions.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some((slow, slow_ms)), Some((fast, fast_ms))) = (slowest, fastest) {
        let fastest = if fast == slow {
            String::new()
        } else {
            format!("; the fastest, {fast}, {:.2}x", fast_ms / hello_ms.max(1e-9))
        };
        lines.push(format!(
            "ratio | init: the slowest function, {slow}, median {slow_ms:.1} ms = {:.2}x hello-world's \
             {hello_ms:.1} ms{fastest} ({runs} interleaved rounds on this machine; Lambda's Init Duration adds \
             its sandbox's own start to this)",
            slow_ms / hello_ms.max(1e-9),
        ));
    }
    let first = all
        .iter()
        .zip(&measured)
        .skip(1)
        .filter_map(|((name, _), m)| m.first.map(|ms| (name.as_str(), ms)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some(h), Some((name, ms))) = (measured[0].first, first) {
        lines.push(format!(
            "ratio | first round, not counted above (each binary's first start here, read from disk unless the \
             page cache has it): hello-world {h:.1} ms, the slowest function {name} {ms:.1} ms"
        ));
    }
    let hello_size = sizes.first().and_then(|s| s.1[0]);
    let largest = |arch: usize| {
        sizes.iter().skip(1).filter_map(|s| s.1[arch].map(|mb| (s.0, mb))).max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let x86 = largest(0).map_or_else(
        || "x86_64: no function binary".to_owned(),
        |(name, mb)| match hello_size {
            Some(h) => format!("x86_64: {name}, {mb:.1} MB ({:.1}x hello-world's {h:.1} MB)", mb / h.max(1e-9)),
            None => format!("x86_64: {name}, {mb:.1} MB"),
        },
    );
    let arm = match (arm64_dir, largest(1)) {
        (_, Some((name, mb))) => format!("arm64: {name}, {mb:.1} MB"),
        (Some(d), None) => format!("arm64: none built in {}", d.display()),
        (None, None) => "arm64: none built (cargo lambda build --release --arm64, or --arm64-dir)".to_owned(),
    };
    lines.push(format!("ratio | largest binary: {x86}; {arm} (stripped, 1 MB = 1,048,576 bytes)"));
    lines.extend(errors);
    Ok(lines)
}

/// One binary's runs so far.
#[derive(Default)]
struct Measured {
    /// The first round's (not in `ms`).
    first: Option<f64>,
    ms: Vec<f64>,
    /// The most connections one run opened before its first `/next`.
    connections: usize,
    /// What those connections asked for (distinct request lines, and the AWS call each names).
    requests: Vec<String>,
    /// Why it never reached `/next` (then no more runs of it).
    failed: Option<String>,
}

/// Starts `bin` once against fresh stubs and times it to its first `/next` (ms); kills and reaps
/// it there. An error (with the tail of its output) when it exits first, reports an init error,
/// or does neither within [`RUN_TIMEOUT`]. Beside it, each connection the SDK endpoints' stub
/// accepted meanwhile.
fn measure(name: &str, bin: &Path) -> (Result<f64, String>, Vec<String>) {
    let (tx, rx) = mpsc::channel();
    let stubs = Stub::start(RuntimeApi { tx, parked: Vec::new() }, serve_runtime)
        .and_then(|runtime| Ok((runtime, Stub::start(Vec::new(), serve_endpoint)?)));
    let (runtime, endpoints) = match stubs {
        Ok(stubs) => stubs,
        Err(e) => return (Err(e), Vec::new()),
    };
    let mut cmd = command(name, bin, runtime.addr, endpoints.addr);
    let started = Instant::now();
    let result = match cmd.spawn() {
        Err(e) => Err(format!("starting {}: {e}", bin.display())),
        Ok(mut child) => {
            let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
            let waited = wait_next(&mut child, &rx, started);
            let _ = child.kill();
            let _ = child.wait();
            let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
            waited.map_err(|e| {
                let (which, text) = if stderr.trim().is_empty() { ("stdout", &stdout) } else { ("stderr", &stderr) };
                format!("{e}; {which}: {}", tail(text))
            })
        }
    };
    // Both stubs stop only once every connection queued so far is served (and counted).
    let _ = runtime.stop();
    match endpoints.stop() {
        Ok(requests) => (result, requests),
        Err(e) => (result.and(Err(e)), Vec::new()),
    }
}

/// Reads a child's pipe to its end in a thread of its own (so a chatty child never blocks on it).
fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// Waits for the runtime stub's first `/next`: its time since `started` in ms.
fn wait_next(child: &mut std::process::Child, rx: &mpsc::Receiver<Seen>, started: Instant) -> Result<f64, String> {
    let mut other = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(Seen::Next(at)) => return Ok(at.duration_since(started).as_secs_f64() * 1e3),
            Ok(Seen::Other(what)) => other.push(what),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the Runtime API stub stopped".into()),
        }
        let asked = |other: &[String]| {
            if other.is_empty() {
                String::new()
            } else {
                format!(" (it sent {})", other.join("; "))
            }
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                other.extend(rx.try_iter().filter_map(|s| match s {
                    Seen::Other(what) => Some(what),
                    Seen::Next(_) => None,
                }));
                return Err(format!("exited ({status}) before its first /next{}", asked(&other)));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
        if started.elapsed() > RUN_TIMEOUT {
            return Err(format!("no /next within {} s{}", RUN_TIMEOUT.as_secs(), asked(&other)));
        }
    }
}

/// The environment the Lambda service gives a function (only PATH and HOME of this process's own,
/// so a developer's local AWS endpoints and credentials do not leak in), with the app's
/// configuration as template.yaml's Globals set it in AWS, the SDK endpoints at `endpoints`.
fn command(name: &str, bin: &Path, runtime: SocketAddr, endpoints: SocketAddr) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear();
    for keep in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.envs(lambda_env(name, &runtime.to_string(), &format!("http://{endpoints}")))
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The variables of [`command`]: `runtime_api` is host:port, `endpoint` a URL.
fn lambda_env(name: &str, runtime_api: &str, endpoint: &str) -> Vec<(String, String)> {
    let mut env: Vec<(&str, String)> = vec![
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", format!("workspaces-{name}")),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]00000000000000000000000000000000".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/workspaces-{name}")),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("_HANDLER", "bootstrap".into()),
        ("TZ", ":UTC".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "ASIABENCHCOLDSTART00".into()),
        ("AWS_SECRET_ACCESS_KEY", "bench-cold-start-dummy-secret-access-key".into()),
        ("AWS_SESSION_TOKEN", "bench-cold-start-dummy-session-token".into()),
        // Every SDK client, and the instance metadata service (credentials, region), to the
        // counting stub: nothing should reach it before the first /next.
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.to_owned()),
        ("AWS_ENDPOINT_URL_S3", endpoint.to_owned()),
        ("AWS_ENDPOINT_URL_SQS", endpoint.to_owned()),
        ("AWS_ENDPOINT_URL_STS", endpoint.to_owned()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint.to_owned()),
        // template.yaml, Globals/Function/Environment (the parameters' defaults where it has them).
        ("WORKSPACES_STORE", "dynamodb://workspaces-Table-BENCH".into()),
        ("WORKSPACES_JWT_SECRET", super::SECRET.into()),
        ("WORKSPACES_JWT_PUBLIC_KEY", String::new()),
        ("WORKSPACES_JWT_ISSUER", String::new()),
        ("WORKSPACES_JWT_AUDIENCE", String::new()),
        ("WORKSPACES_BUNDLES", "s3://workspaces-bundlesbucket-bench".into()),
        ("WORKSPACES_BUNDLE_TTL_SECS", "3600".into()),
        ("WORKSPACES_JOBS_QUEUE", "https://sqs.us-east-1.amazonaws.com/123456789012/workspaces-JobsQueue-BENCH".into()),
        ("RUST_LOG", "info".into()),
    ];
    // The worker's own variable (JobsWorkerFunction's Environment).
    if name == "jobs-worker" {
        env.push(("WORKSPACES_JOB_BUDGET_SECS", "780".into()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// What the Runtime API stub saw: the first `/next` (when its request head arrived), or any
/// other request (an init error report, most likely).
enum Seen {
    Next(Instant),
    Other(String),
}

struct RuntimeApi {
    tx: mpsc::Sender<Seen>,
    /// Connections whose `/next` is never answered, open until the stub stops.
    parked: Vec<TcpStream>,
}

fn serve_runtime(api: &mut RuntimeApi, mut stream: TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    while let Some(req) = read_request(&mut stream) {
        if req.method == "STOP" {
            return false;
        }
        if req.method == "GET" && req.path == NEXT {
            let _ = api.tx.send(Seen::Next(req.at));
            api.parked.push(stream);
            return true;
        }
        let _ = api.tx.send(Seen::Other(format!("{} {} {}", req.method, req.path, req.body.trim())));
        let _ =
            stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
    }
    true
}

/// The SDK endpoints' stub: counts each connection (what it asked for) and answers 500.
fn serve_endpoint(seen: &mut Vec<String>, mut stream: TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    match read_request(&mut stream) {
        Some(req) if req.method == "STOP" => return false,
        Some(req) => seen.push(format!("{} {}{}", req.method, req.path, req.what)),
        None => seen.push("a connection without a request".into()),
    }
    let _ = stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    true
}

/// A listener on 127.0.0.1:0 and the thread that serves its connections one at a time with
/// `serve` until `serve` sees the stop request; the thread's answer is its state.
struct Stub<T> {
    addr: SocketAddr,
    thread: JoinHandle<T>,
}

impl<T: Send + 'static> Stub<T> {
    fn start(mut state: T, serve: fn(&mut T, TcpStream) -> bool) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("a stub listener: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if !serve(&mut state, stream) {
                    break;
                }
            }
            state
        });
        Ok(Stub { addr, thread })
    }

    /// Queues the stop request behind every connection accepted by the system so far (the
    /// accept queue is first in, first out), so all of them are served first; the state.
    fn stop(self) -> Result<T, String> {
        let mut wake = TcpStream::connect(self.addr).map_err(|e| format!("stopping a stub: {e}"))?;
        wake.write_all(b"STOP / HTTP/1.1\r\n\r\n").map_err(|e| format!("stopping a stub: {e}"))?;
        self.thread.join().map_err(|_| "a stub's thread panicked".to_owned())
    }
}

struct Request {
    method: String,
    path: String,
    /// The AWS service and operation it names, if any (` (dynamodb DescribeTable)`).
    what: String,
    body: String,
    /// When its head had arrived.
    at: Instant,
}

/// One HTTP/1.1 request (head, and a body of `content-length`, at most 64 KiB); `None` at the
/// end of the stream, on a read error or timeout, or a head past 64 KiB.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    const MAX: usize = 64 * 1024;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 && buf.len() < MAX => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut first = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (first.next().unwrap_or_default().to_owned(), first.next().unwrap_or_default().to_owned());
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0).min(MAX);
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    body.truncate(length);
    Some(Request { method, path, what: aws_call(&header), body: String::from_utf8_lossy(&body).into_owned(), at })
}

/// What an AWS SDK request is, from its headers: the service of its signature's credential scope
/// (`Credential=<key>/<date>/<region>/<service>/aws4_request`) and its `x-amz-target`, if any.
fn aws_call(header: &dyn Fn(&str) -> Option<String>) -> String {
    let service = header("authorization").and_then(|a| {
        let scope = a.split("Credential=").nth(1)?.split([',', ' ']).next()?.to_owned();
        scope.split('/').nth(3).map(str::to_owned)
    });
    let target = header("x-amz-target");
    match (service, target) {
        (None, None) => String::new(),
        (s, t) => format!(" ({})", [s, t].into_iter().flatten().collect::<Vec<_>>().join(" ")),
    }
}

/// The last lines of a child's output, on one line (at most about 600 characters).
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let joined = lines[lines.len().saturating_sub(4)..].join(" ⏎ ");
    let skip = joined.chars().count().saturating_sub(600);
    if skip == 0 {
        return if joined.is_empty() { "(no output)".into() } else { joined };
    }
    format!("…{}", joined.chars().skip(skip).collect::<String>())
}

/// Text fit for one cell of a markdown table.
fn cell(text: &str) -> String {
    text.replace('|', "/")
}

fn size_mb(path: &Path) -> Option<f64> {
    std::fs::metadata(path).ok().map(|m| m.len() as f64 / MB)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(values: &[f64]) -> f64 {
    let v = sorted(values);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The nearest-rank 90th percentile.
fn p90(values: &[f64]) -> f64 {
    let v = sorted(values);
    let rank = (v.len() * 9).div_ceil(10);
    v.get(rank.saturating_sub(1)).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lambda_environment_is_a_valid_aws_configuration() {
        let env = lambda_env("save-workspace", "127.0.0.1:9001", "http://127.0.0.1:9002").into_iter().collect();
        let config = shared::config::Config::from_map(&env).unwrap();
        assert!(matches!(config.store, shared::config::StoreUrl::DynamoDb { .. }));
        assert!(matches!(config.bundles, shared::config::BundlesUrl::S3 { .. }));
        assert!(matches!(config.jobs_queue, shared::config::QueueUrl::Sqs(_)));
    }

    #[test]
    fn median_and_p90() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(p90(&ten), 9.0);
        assert_eq!(p90(&[5.0]), 5.0);
    }

    #[test]
    fn reads_a_request_head_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        let head =
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nX-Amz-Target: DynamoDB_20120810.DescribeTable\r\n\
                    Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, \
                    SignedHeaders=host, Signature=0\r\n\r\nboom";
        client.write_all(head.as_bytes()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let req = read_request(&mut server).unwrap();
        assert_eq!((req.method.as_str(), req.path.as_str(), req.body.as_str()), ("POST", "/", "boom"));
        assert_eq!(req.what, " (dynamodb DynamoDB_20120810.DescribeTable)");
    }
}
