//! `bench [--rows 200000] [--small 10000] [--backends embedded,aws] [--sections routes,jobs,cold,overhead]
//!   [--job-rows 1000000] [--job-rows-aws 20000] [--cold-runs 20] [--arm64-dir PATH] [--functions a,b]
//!   [--overhead-calls 200] [--overhead-calls-aws 50] [--overhead-stored 1000] [--overhead-rows 100000]
//!   [--overhead-rows-aws 20000]
//!   [--charts DIR] [--smoke]`
//!
//! Measures, in one run, import and export throughput of a synthetic platform-shaped workspace
//! on each backend (SQLite + folder; DynamoDB + S3 on the local server `make bench` starts), and
//! the export's peak memory at two sizes, then prints the figures and their ratios. Each phase
//! runs in a child process of its own, so each peak-memory figure is that phase's alone. On
//! DynamoDB each phase also counts its requests and items written and read (through the test
//! kit's counting proxy), which grow with the rows moved, never with what is already stored.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use blackbox_tests::counting_proxy::CountingProxy;
use indicatif::{ProgressBar, ProgressStyle};
use lambda_http::Body;
use serde_json::{json, Value};
use shared::routes::Endpoint;
use shared::App;

mod chart;
mod coldstart;
mod jobs;
mod overhead;
mod overhead_raw;

const ORG: &str = "bench";
const USER: &str = "bench";
const SECRET: &str = "bench-secret";
const PROJECTS: usize = 10;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--child") {
        tokio::runtime::Runtime::new().map_err(|e| e.to_string()).and_then(|rt| rt.block_on(child(&args[1..])))
    } else {
        parent(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[derive(Debug, Clone, Copy, Default)]
struct Phase {
    rows: f64,
    secs: f64,
    bytes: f64,
    peak_kb: f64,
    /// DynamoDB requests and items written and read (the counting proxy; 0 on SQLite).
    requests: f64,
    written: f64,
    read: f64,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.rows / self.secs.max(1e-9)
    }
}

fn parent(args: &[String]) -> Result<(), String> {
    // --smoke: every section at sizes that take seconds, so CI runs the harness on its debug
    // build and it cannot rot; its figures mean nothing.
    let smoke = args.iter().any(|a| a == "--smoke");
    let number = |name: &str, default: usize, smoke_default: usize| {
        let default = if smoke { smoke_default } else { default };
        flag(args, name).map_or(Ok(default), |v| v.parse()).map_err(|_| format!("{name}: a number"))
    };
    let rows = number("--rows", 200_000, 300)?;
    let small = number("--small", 10_000, 100)?;
    let backends = flag(args, "--backends").unwrap_or_else(|| "embedded,aws".into());
    let sections = flag(args, "--sections").unwrap_or_else(|| "routes,jobs,cold,overhead".into());
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let tmp = std::env::temp_dir().join(format!("ws-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let sqs = std::env::var("AWS_ENDPOINT_URL_SQS").unwrap_or_default();
    // A store, bundle place and jobs queue of its own per backend and tag.
    let env_for = |backend: &str, tag: &str| -> Result<Vec<(String, String)>, String> {
        match backend {
            "embedded" => Ok(vec![
                ("WORKSPACES_STORE".into(), format!("sqlite://{}", tmp.join(format!("{tag}.db")).display())),
                ("WORKSPACES_BUNDLES".into(), format!("file://{}", tmp.join(tag).display())),
                ("WORKSPACES_JOBS_QUEUE".into(), format!("sqlite://{}", tmp.join(format!("{tag}-queue.db")).display())),
            ]),
            "aws" => {
                let name = format!("bench-{tag}-{}", std::process::id());
                Ok(vec![
                    ("WORKSPACES_STORE".into(), format!("dynamodb://{name}")),
                    ("WORKSPACES_BUNDLES".into(), format!("s3://{name}/bundles")),
                    // moto's queue URLs: <endpoint>/<its default account>/<name>.
                    ("WORKSPACES_JOBS_QUEUE".into(), format!("{}/123456789012/{name}", sqs.trim_end_matches('/'))),
                ])
            }
            other => Err(format!("--backends: unknown backend '{other}' (embedded, aws)")),
        }
    };
    let backends: Vec<&str> = backends.split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
    // Lines the charts are drawn from (`mem | …` from jobs, the overhead section's table rows).
    let mut chart_lines: Vec<String> = Vec::new();

    if sections.contains("routes") {
        let mut results: Vec<(String, usize, Phase, Phase, Phase)> = Vec::new();
        for &backend in &backends {
            for &n in &[small, rows] {
                let env = env_for(backend, &n.to_string())?;
                let import = run_child(&exe, &env, "import", n, &format!("{backend}: import {n} rows"))?;
                let export = run_child(&exe, &env, "export", n, &format!("{backend}: export {n} rows"))?;
                let one = run_child(&exe, &env, "one", n, &format!("{backend}: import 1 row beside {n}"))?;
                results.push((backend.to_owned(), n, import, export, one));
            }
        }
        report(&results, rows, small);
    }
    if sections.contains("jobs") {
        let mut lines = Vec::new();
        for &backend in &backends {
            // moto walks every item of a table on each Query and keeps S3 in memory: on it the
            // jobs section runs small and shows counts, not speed.
            // moto's 20k-row job runs in parts as small as the tests force (at least 10).
            let plan = match backend {
                "aws" => jobs::Plan {
                    memory_mb: if smoke { vec![1] } else { vec![1, 10] },
                    job_rows: number("--job-rows-aws", 20_000, 200)?,
                    chunk_rows: Some(if smoke { 20 } else { 500 }),
                    part_chunks: Some(4),
                    kill_left_secs: if smoke { 3 } else { 60 },
                },
                _ => jobs::Plan {
                    memory_mb: if smoke { vec![1, 2] } else { vec![10, 500] },
                    job_rows: number("--job-rows", 1_000_000, 2_000)?,
                    chunk_rows: smoke.then_some(100),
                    part_chunks: smoke.then_some(4),
                    kill_left_secs: if smoke { 3 } else { 60 },
                },
            };
            let env = |tag: &str| env_for(backend, tag).unwrap_or_default();
            lines.extend(jobs::section(&exe, backend, &env, &plan)?);
        }
        println!("\nImport jobs (the worker's code, fed from the backend's own queue):\n\n{}", jobs::HEADER);
        for line in lines.iter().filter(|l| !l.starts_with("ratio |") && !l.starts_with("mem |")) {
            println!("{line}");
        }
        println!("\nRatios (same run):");
        for line in lines.iter().filter_map(|l| l.strip_prefix("ratio | ")) {
            println!("- {line}");
        }
        chart_lines.extend(lines.into_iter().filter(|l| l.starts_with("mem |")));
    }
    if sections.contains("overhead") {
        let (mut latency, mut throughput, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
        for &backend in &backends {
            // moto walks every item of a table on each Query: on it the rows stay modest.
            let plan = overhead::Plan {
                // moto answers a 1,000-item list in about 2 s: fewer calls there.
                calls: match backend {
                    "aws" => number("--overhead-calls-aws", 50, 20)?,
                    _ => number("--overhead-calls", 200, 20)?,
                },
                stored: number("--overhead-stored", 1000, 50)?,
                rows: match backend {
                    "aws" => number("--overhead-rows-aws", 20_000, 200)?,
                    _ => number("--overhead-rows", 100_000, 200)?,
                },
            };
            let env = |tag: &str| env_for(backend, tag);
            let rows = overhead::section(&exe, backend, &env, &plan)?;
            latency.extend(rows.latency);
            throughput.extend(rows.throughput);
            kinds.extend(rows.kinds);
        }
        println!("\nHandler overhead (one request through shared::http::serve against the raw calls it needs, interleaved):\n");
        println!("{}", overhead::LATENCY_HEADER);
        latency.iter().for_each(|l| println!("{l}"));
        println!("\nThroughput against raw calls (same server, same rows):\n");
        println!("{}", overhead::THROUGHPUT_HEADER);
        throughput.iter().for_each(|l| println!("{l}"));
        if !kinds.is_empty() {
            println!("\nDynamoDB requests by kind (per call; throughput rows: per operation):");
            kinds.iter().for_each(|k| println!("{k}"));
        }
        println!(
            "\nTargets (same run): handler/raw median <= {} on the DynamoDB-compatible server, ours/raw rows/s >= {}",
            overhead::TARGET_RATIO,
            overhead::TARGET_THROUGHPUT
        );
        overhead::verdicts(&latency, &throughput).iter().for_each(|v| println!("- {v}"));
        chart_lines.extend(latency);
    }
    // Cold starts: the function binaries' init beside hello-world's (coldstart.rs).
    let cold = if sections.contains("cold") { coldstart::report(&coldstart::run(args, &exe)?) } else { Ok(()) };
    if let Some(dir) = flag(args, "--charts") {
        write_charts(std::path::Path::new(&dir), &chart_lines)?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    cold
}

/// `memory.svg` (peak RSS of import and export jobs against bundle size, from the jobs
/// section's `mem |` lines) and `latency.svg` (handler / raw median per endpoint and backend,
/// from the overhead section's table rows), when those sections ran.
fn write_charts(dir: &std::path::Path, lines: &[String]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--charts {}: {e}", dir.display()))?;
    let cells = |l: &str| l.split('|').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let number = |c: &str| c.trim_end_matches('x').replace(',', "").parse::<f64>().ok();
    let mut memory: Vec<chart::Series> = Vec::new();
    for l in lines.iter().filter(|l| l.starts_with("mem |")) {
        let c = cells(l);
        if let [_, backend, kind, mb, peak] = c.as_slice() {
            let name = format!("{kind} job ({backend})");
            let (Some(x), Some(y)) = (number(mb), number(peak)) else { continue };
            match memory.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push((x, y)),
                None => memory.push(chart::Series { name, points: vec![(x, y)] }),
            }
        }
    }
    if !memory.is_empty() {
        let svg = chart::lines("Peak RSS of one worker against bundle size", "bundle MB", "peak RSS MB", &memory);
        std::fs::write(dir.join("memory.svg"), svg).map_err(|e| e.to_string())?;
    }
    // Overhead rows: | backend | operation | ours median | ours p99 | raw median | raw p99 | ours/raw | …
    let mut categories: Vec<String> = Vec::new();
    let mut ratios: Vec<chart::Series> = Vec::new();
    for l in lines.iter().filter(|l| l.starts_with("| ") && !l.starts_with("| backend")) {
        let c = cells(l);
        let (Some(backend), Some(op), Some(ratio)) = (c.first(), c.get(1), c.get(6).and_then(|r| number(r))) else {
            continue;
        };
        let x = match categories.iter().position(|k| k == op) {
            Some(i) => i,
            None => {
                categories.push(op.clone());
                categories.len() - 1
            }
        };
        match ratios.iter_mut().find(|s| &s.name == backend) {
            Some(s) => s.points.push((x as f64, ratio)),
            None => ratios.push(chart::Series { name: backend.clone(), points: vec![(x as f64, ratio)] }),
        }
    }
    if !ratios.is_empty() {
        let svg = chart::bars("Handler / raw calls, median latency", "ratio", &categories, &ratios, Some(1.15));
        std::fs::write(dir.join("latency.svg"), svg).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Runs one child phase (`--child <args>`) with `env`, a spinner labelled `label` meanwhile;
/// answers the JSON line it printed last.
fn run_phase(exe: &std::path::Path, env: &[(String, String)], args: &[String], label: &str) -> Result<Value, String> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").map_err(|e| e.to_string())?);
    bar.set_message(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    let out = child_command(exe, env, args).output().map_err(|e| format!("starting {label}: {e}"))?;
    bar.finish_and_clear();
    if !out.status.success() {
        return Err(format!("{label} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let last = line.lines().rfind(|l| !l.contains("\"tick\"")).unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("{label}: {e}"))
}

fn child_command(exe: &std::path::Path, env: &[(String, String)], args: &[String]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("WORKSPACES_JWT_SECRET", SECRET)
        .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()));
    cmd
}

fn run_child(
    exe: &std::path::Path,
    env: &[(String, String)],
    phase: &str,
    rows: usize,
    label: &str,
) -> Result<Phase, String> {
    let v = run_phase(exe, env, &[phase.to_owned(), "--rows".into(), rows.to_string()], label)?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let p = Phase {
        rows: f("rows"),
        secs: f("secs"),
        bytes: f("bytes"),
        peak_kb: f("peak_kb"),
        requests: f("requests"),
        written: f("written"),
        read: f("read"),
    };
    println!(
        "{label}: {:.2} s, {:.0} rows/s, {:.1} MB bundle, peak RSS {:.0} MB, {:.0} requests, {:.0} items written, {:.0} read",
        p.secs,
        p.rate(),
        p.bytes / 1e6,
        p.peak_kb / 1024.0,
        p.requests,
        p.written,
        p.read
    );
    Ok(p)
}

fn report(results: &[(String, usize, Phase, Phase, Phase)], rows: usize, small: usize) {
    println!(
        "\n| backend | rows | import rows/s | import requests | import items written (per row) | export rows/s \
         | export requests | export items read (per row) | one-row import: requests, items written \
         | bundle MB | export peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (b, n, i, e, one) in results {
        println!(
            "| {b} | {n} | {:.0} | {:.0} | {:.0} ({:.2}) | {:.0} | {:.0} | {:.0} ({:.2}) | {:.0}, {:.0} | {:.1} | {:.0} |",
            i.rate(),
            i.requests,
            i.written,
            i.written / i.rows.max(1.0),
            e.rate(),
            e.requests,
            e.read,
            e.read / e.rows.max(1.0),
            one.requests,
            one.written,
            e.bytes / 1e6,
            e.peak_kb / 1024.0
        );
    }
    let find = |b: &str, n: usize| results.iter().find(|(rb, rn, _, _, _)| rb == b && *rn == n);
    println!("\nRatios (same run):");
    for b in ["embedded", "aws"] {
        if let (Some(big), Some(little)) = (find(b, rows), find(b, small)) {
            println!(
                "- {b}: export peak memory {rows} rows / {small} rows = {:.2}x while the bundle grew {:.1}x",
                big.3.peak_kb / little.3.peak_kb.max(1.0),
                big.3.bytes / little.3.bytes.max(1.0)
            );
            println!("- {b}: export rate / import rate at {rows} rows = {:.2}x", big.3.rate() / big.2.rate().max(1e-9));
        }
    }
    if let (Some(a), Some(e)) = (find("aws", rows), find("embedded", rows)) {
        println!(
            "- DynamoDB+S3 (local server) / SQLite+folder at {rows} rows: import {:.2}x, export {:.2}x",
            a.2.rate() / e.2.rate().max(1e-9),
            a.3.rate() / e.3.rate().max(1e-9)
        );
    }
    println!(
        "- staging starts above WORKSPACES_INLINE_LIMIT_BYTES = {} bytes of encoded answer",
        shared::config::DEFAULT_INLINE_LIMIT_BYTES
    );
}

fn peak_kb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// What every child phase works with: the app on the child's configuration, the bench user's
/// token and principal.
pub struct Child {
    app: std::sync::Arc<App>,
    token: String,
    principal: shared::model::Principal,
}

impl Child {
    /// A POST through the real HTTP edge (`http::serve`): status and envelope.
    async fn call(&self, endpoint: Endpoint, path: &str, body: Value) -> Result<(u16, Value), String> {
        self.request("POST", endpoint, path, Some(body)).await
    }

    /// Any request through the real HTTP edge; `path` (below the API prefix) may have a query.
    async fn request(
        &self,
        method: &str,
        endpoint: Endpoint,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let (status, text) = self.request_text(method, endpoint, path, body).await?;
        let answer: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text:.200}"))?;
        Ok((status, answer))
    }

    /// [`request`](Self::request), answered as the edge renders it (status, body text), unparsed:
    /// a timed call measures the handler, not the bench reading its answer.
    async fn request_text(
        &self,
        method: &str,
        endpoint: Endpoint,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), String> {
        let req = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:9000/jarvispy/{ORG}/{USER}/api/v1{path}"))
            .header("authorization", format!("Bearer {}", self.token))
            .header("host", "127.0.0.1:9000")
            .body(body.map_or(Body::Empty, |b| Body::Text(b.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = shared::http::serve(&self.app, endpoint, req).await.map_err(|e| e.to_string())?;
        let text = match resp.body() {
            Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        Ok((resp.status().as_u16(), text))
    }
}

async fn child(args: &[String]) -> Result<(), String> {
    let phase = args.first().cloned().unwrap_or_default();
    // On DynamoDB every request goes through the counting proxy, so the phase's requests and
    // items are reported beside its time.
    let dynamodb = std::env::var("WORKSPACES_STORE").is_ok_and(|s| s.starts_with("dynamodb://"));
    let proxy = match std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        Ok(upstream) if dynamodb => {
            let proxy = CountingProxy::start(&upstream).await.map_err(|e| format!("counting proxy: {e}"))?;
            // Before any SDK config is loaded, and while this process has one thread doing work.
            std::env::set_var("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
            Some(proxy)
        }
        _ => None,
    };
    let config = shared::config::Config::from_env().map_err(|e| e.to_string())?;
    shared::app::provision_local(&config, blackbox_tests::LINKS).await.map_err(|e| e.to_string())?;
    let app = std::sync::Arc::new(App::from_config(config, blackbox_tests::LINKS).await.map_err(|e| e.to_string())?);
    let token = shared::auth::mint_hs256(SECRET, ORG, USER, "user", 3600)?;
    let principal = shared::auth::Verifier::from_config(&app.config.jwt)
        .map_err(|e| e.to_string())?
        .verify(&token)
        .map_err(|e| e.message)?;
    let c = Child { app, token, principal };
    let proxy = proxy.map(std::sync::Arc::new);
    if let Some(proxy) = &proxy {
        proxy.reset();
        // With --ticks, the counts so far every half second: what a process killed mid-phase
        // had done is the last tick its parent read.
        if args.iter().any(|a| a == "--ticks") {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let t = proxy.snapshot().total();
                    println!("{}", json!({"tick": true, "requests": t.requests, "written": t.written}));
                }
            });
        }
    }
    let mut out = match phase.as_str() {
        "import" | "export" | "one" => route_phase(&c, &phase, args).await?,
        "stage" => jobs::stage(&c, args).await?,
        "job-start" => jobs::start(&c, args).await?,
        "export-start" => jobs::start_export(&c, args).await?,
        "job-work" => jobs::work(&c, args).await?,
        "overhead-latency" => overhead::latency(&c, proxy.as_deref(), args).await?,
        "overhead-throughput" => overhead::throughput(&c, proxy.as_deref(), args).await?,
        other => return Err(format!("unknown phase {other}")),
    };
    let counts = proxy.as_ref().map(|p| p.snapshot().total()).unwrap_or_default();
    out["phase"] = json!(phase);
    out["peak_kb"] = json!(peak_kb());
    out["requests"] = json!(counts.requests);
    out["written"] = json!(counts.written);
    out["read"] = json!(counts.read);
    println!("{out}");
    Ok(())
}

/// The synchronous routes' phases: import (a staged bundle by id), export, one more row.
async fn route_phase(c: &Child, phase: &str, args: &[String]) -> Result<Value, String> {
    let rows: usize = flag(args, "--rows").and_then(|v| v.parse().ok()).ok_or("--rows")?;
    let (endpoint, path, body, bytes) = match phase {
        "import" => {
            // Larger than a request body: staged in the bundle store and imported by id.
            let bundle = serde_json::to_vec(&synthetic_bundle(rows)).map_err(|e| e.to_string())?;
            let id = shared::api::bundles::new_bundle_id();
            let key = shared::api::bundles::bundle_key(&shared::api::bundles::tenant(&c.principal), &id);
            let mut up = c.app.bundles.create_upload(&key).await.map_err(|e| e.to_string())?;
            up.write(&bundle).await.map_err(|e| e.to_string())?;
            up.finish().await.map_err(|e| e.to_string())?;
            let body = json!({"export_data": {"bundle_id": id}, "workspace_id": "ws_bench", "scope": "user"});
            (Endpoint::ImportTables, "/workspaces/import-tables", body, bundle.len())
        }
        "export" => (Endpoint::ExportTables, "/workspaces/ws_bench/export-tables", json!({"scope": "user"}), 0),
        // One new row into the workspace the import filled: what it writes must not grow with it.
        _ => {
            let schema = json!([{"name": "datasource_id", "type": "text", "nullable": "NO", "default": null},
                                {"name": "password", "type": "text", "nullable": "YES", "default": null}]);
            let bundle = json!({"workspace_id": "ws_bench", "projects": {}, "tables": {
                "datasources_ws_bench": {"schema": schema, "data": [{"datasource_id": "one-more", "password": "pw"}]}}});
            let body = json!({"export_data": bundle, "workspace_id": "ws_bench", "scope": "user"});
            (Endpoint::ImportTables, "/workspaces/import-tables", body, 0)
        }
    };
    let started = Instant::now();
    let (status, answer) = c.call(endpoint, path, body).await?;
    let secs = started.elapsed().as_secs_f64();
    if status != 200 {
        return Err(format!("{phase}: {status} {}", answer["message"]));
    }
    let (rows_done, bytes) = match phase {
        "import" | "one" => {
            let s = &answer["data"]["summary"];
            (s["rows_inserted"].as_f64().unwrap_or(0.0) + s["rows_updated"].as_f64().unwrap_or(0.0), bytes as f64)
        }
        _ => (
            answer["data"]["summary"]["total_rows"].as_f64().unwrap_or(0.0),
            answer["data"]["bundle"]["size"].as_f64().unwrap_or(answer.to_string().len() as f64),
        ),
    };
    Ok(json!({"rows": rows_done, "secs": secs, "bytes": bytes}))
}

/// A workspace shaped like the platform's sample: `PROJECTS` projects, each with concepts and
/// cells (about 1 KB a row), plus the workspace's datasources and concepts in every project.
fn synthetic_bundle(rows: usize) -> Value {
    let per_table = (rows.saturating_sub(PROJECTS * 3) / (PROJECTS * 2)).max(1);
    let schema = |cols: &[(&str, &str, &str)]| -> Value {
        cols.iter()
            .map(|(n, t, nullable)| json!({"name": n, "type": t, "nullable": nullable, "default": null}))
            .collect()
    };
    let concept_schema = schema(&[
        ("predicate_name", "text", "NO"),
        ("fields", "json", "YES"),
        ("rules", "text", "YES"),
        ("row_count", "integer", "YES"),
    ]);
    let cell_schema = schema(&[("id", "text", "NO"), ("position", "integer", "YES"), ("content", "text", "YES")]);
    let text = "ownership(Owner, Company, Shares) :- ownership_csv(Owner, Company, Shares). ".repeat(11);
    let ws_tables = json!({
        "datasources_ws_bench": {"schema": schema(&[("datasource_id", "text", "NO"), ("password", "text", "YES")]),
            "data": (0..PROJECTS).map(|i| json!({"datasource_id": format!("ds{i}"), "password": "pw"})).collect::<Vec<_>>(), "row_count": PROJECTS},
    });
    let mut projects = serde_json::Map::new();
    let mut project_rows = Vec::new();
    for p in 0..PROJECTS {
        let pid = format!("p{p:03}bench");
        let mut tables = ws_tables.as_object().cloned().unwrap_or_default();
        let concepts: Vec<Value> = (0..per_table)
            .map(|i| json!({"predicate_name": format!("c{i:07}"), "fields": {"a": i}, "rules": text, "row_count": i}))
            .collect();
        let cells: Vec<Value> =
            (0..per_table).map(|i| json!({"id": format!("cell{i:07}"), "position": i, "content": text})).collect();
        tables.insert(
            format!("concepts_{pid}"),
            json!({"schema": concept_schema, "data": concepts, "row_count": per_table}),
        );
        tables.insert(format!("cells_{pid}"), json!({"schema": cell_schema, "data": cells, "row_count": per_table}));
        projects.insert(pid.clone(), json!({"project_id": pid, "scope": "user", "tables": tables}));
        project_rows.push(json!({"project_id": pid, "name": format!("Project {p}"), "author": USER, "scope": "user",
            "to_persist": true, "created_at": "2025-11-18T18:36:05.571279+00:00", "updated_at": "2025-11-18T18:36:05.571279+00:00"}));
    }
    let projects_schema = schema(&[
        ("project_id", "text", "NO"),
        ("name", "text", "YES"),
        ("author", "text", "YES"),
        ("scope", "text", "YES"),
        ("to_persist", "boolean", "YES"),
    ]);
    json!({
        "scope": "user",
        "workspace_level_tables": ["projects_ws_bench"],
        "projects": projects,
        "tables": {"projects_ws_bench": {"schema": projects_schema, "data": project_rows, "row_count": PROJECTS, "table_type": "workspace_level"}},
        "workspace_id": "ws_bench",
    })
}
