//! The jobs part of `make bench`: import jobs of staged bundles, worked by the same worker code
//! Lambda runs (`jobs::lambda::handle_event`, fed by `pump` from the backend's own queue), each
//! phase in a child process of its own so its peak RSS is its alone.
//!
//! - memory: a 10 MB and a 500 MB bundle imported as a job by one worker: the worker's peak RSS.
//! - one worker against fan-out: the same bundle imported once as one part by one worker, once
//!   in parts (the default part size) by `FAN_OUT_WORKERS` concurrent workers; rows/s, wall
//!   time, invocations and (DynamoDB) requests and items written per row.
//! - a killed worker: the fan-out import again, its worker process killed (SIGKILL) at a random
//!   point and a fresh one started; what that cost against the clean run (wall time, requests,
//!   items written) and whether the result is still exact.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::model::Scope;
use shared::routes::Endpoint;

use super::{flag, Child};

/// Concurrent workers of a fanned-out job (the template's MaximumConcurrency is 10).
pub const FAN_OUT_WORKERS: usize = 4;
const PROJECTS: usize = 10;

/// The stage phase: streams a bundle of `--rows` rows of about `--row-bytes` bytes each into the
/// bundle store under `--bundle`, 64 KiB at a time (never whole in memory). Prints its size.
pub async fn stage(c: &Child, args: &[String]) -> Result<Value, String> {
    let rows: usize = flag(args, "--rows").and_then(|v| v.parse().ok()).ok_or("--rows")?;
    let row_bytes: usize = flag(args, "--row-bytes").and_then(|v| v.parse().ok()).ok_or("--row-bytes")?;
    let id = flag(args, "--bundle").ok_or("--bundle")?;
    let key = shared::api::bundles::bundle_key(&shared::api::bundles::tenant(&c.principal), &id);
    let mut up = c.app.bundles.create_upload(&key).await.map_err(|e| e.to_string())?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    let content = "x".repeat(row_bytes.saturating_sub(48).max(1));
    let per_project = rows.div_ceil(PROJECTS);
    let w = |buf: &mut Vec<u8>, s: &str| buf.extend_from_slice(s.as_bytes());
    let projects: Vec<Value> = (0..PROJECTS)
        .map(|p| json!({"project_id": format!("p{p:03}bench"), "name": format!("Project {p}"), "scope": "user"}))
        .collect();
    let schema = json!([{"name": "project_id", "type": "text", "nullable": "NO", "default": null},
                        {"name": "name", "type": "text", "nullable": "YES", "default": null},
                        {"name": "scope", "type": "text", "nullable": "YES", "default": null}]);
    w(
        &mut buf,
        r#"{"scope":"user","workspace_id":"ws_bench","workspace_level_tables":["projects_ws_bench"],"tables":{"projects_ws_bench":"#,
    );
    w(
        &mut buf,
        &json!({"schema": schema, "data": projects, "row_count": PROJECTS, "table_type": "workspace_level"})
            .to_string(),
    );
    w(&mut buf, r#"},"projects":{"#);
    let cells = r#"[{"name":"id","type":"text","nullable":"NO","default":null},{"name":"position","type":"integer","nullable":"YES","default":null},{"name":"content","type":"text","nullable":"YES","default":null}]"#;
    let mut written = 0;
    for p in 0..PROJECTS {
        let n = per_project.min(rows - written);
        let pid = format!("p{p:03}bench");
        if p > 0 {
            w(&mut buf, ",");
        }
        w(
            &mut buf,
            &format!(
                r#""{pid}":{{"project_id":"{pid}","scope":"user","tables":{{"cells_{pid}":{{"schema":{cells},"row_count":{n},"data":["#
            ),
        );
        for i in 0..n {
            if i > 0 {
                buf.push(b',');
            }
            write!(buf, r#"{{"id":"cell{i:08}","position":{i},"content":"{content}"}}"#).map_err(|e| e.to_string())?;
            if buf.len() >= 1 << 16 {
                up.write(&buf).await.map_err(|e| e.to_string())?;
                buf.clear();
            }
        }
        w(&mut buf, "]}}}");
        written += n;
    }
    w(&mut buf, "}}");
    up.write(&buf).await.map_err(|e| e.to_string())?;
    let size = up.finish().await.map_err(|e| e.to_string())?;
    Ok(json!({"rows": written + PROJECTS, "bytes": size}))
}

/// The job-start phase: `POST import-tables` with `"async": true` and `--bundle` into
/// `--workspace`, as a client would; prints the job id.
pub async fn start(c: &Child, args: &[String]) -> Result<Value, String> {
    let id = flag(args, "--bundle").ok_or("--bundle")?;
    let ws = flag(args, "--workspace").ok_or("--workspace")?;
    let body = json!({"export_data": {"bundle_id": id}, "workspace_id": ws, "scope": "user", "async": true});
    let (status, answer) = c.call(Endpoint::ImportTables, "/workspaces/import-tables", body).await?;
    if status != 202 {
        return Err(format!("starting the import job: {status} {}", answer["message"]));
    }
    let job = answer["data"]["job_id"].as_str().ok_or("no job_id")?;
    Ok(json!({"job": job}))
}

/// The export-start phase: `POST export-tables` with `"async": true` of `--workspace`; prints
/// the job id.
pub async fn start_export(c: &Child, args: &[String]) -> Result<Value, String> {
    let ws = flag(args, "--workspace").ok_or("--workspace")?;
    let path = format!("/workspaces/{ws}/export-tables");
    let (status, answer) = c.call(Endpoint::ExportTables, &path, json!({"scope": "user", "async": true})).await?;
    if status != 202 {
        return Err(format!("starting the export job: {status} {}", answer["message"]));
    }
    let job = answer["data"]["job_id"].as_str().ok_or("no job_id")?;
    Ok(json!({"job": job}))
}

/// The job-work phase: `--workers` concurrent loops, each one Lambda invocation per message
/// (`--left-secs` of time each), until job `--job` has ended. Prints the work's figures.
pub async fn work(c: &Child, args: &[String]) -> Result<Value, String> {
    let job_id = flag(args, "--job").ok_or("--job")?;
    let workers: usize = flag(args, "--workers").and_then(|v| v.parse().ok()).unwrap_or(1);
    let left = Duration::from_secs(flag(args, "--left-secs").and_then(|v| v.parse().ok()).unwrap_or(120));
    let receiver =
        shared::app::open_queue(&c.app.config.jobs_queue, blackbox_tests::LINKS).await.map_err(|e| e.to_string())?;
    let owner = c.principal.owner(Scope::User);
    let done = Arc::new(AtomicBool::new(false));
    let invocations = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (app, receiver, done, invocations) = (c.app.clone(), receiver.clone(), done.clone(), invocations.clone());
        set.spawn(async move {
            while !done.load(Ordering::Relaxed) {
                // As the template sets it: longer than an invocation, so a message comes again
                // only once its worker has given up or died (SQS counts every receive).
                let taken = shared::jobs::lambda::pump(
                    &*receiver,
                    1,
                    left + Duration::from_secs(5),
                    Duration::from_millis(500),
                    |event| async { Ok(shared::jobs::lambda::handle_event(&app, event, left).await) },
                )
                .await?;
                invocations.fetch_add(taken, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        });
    }
    let job = loop {
        let job = c.app.jobs.get_job(&owner, &job_id).await.map_err(|e| e.to_string())?.ok_or("the job is gone")?;
        if job.state.is_final() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| e.to_string())??;
    }
    let result = job.result.clone().unwrap_or(Value::Null);
    let summary = &result["summary"];
    // An import's summary counts rows written; an export's, rows in the bundle.
    let rows = summary["total_rows"]
        .as_f64()
        .unwrap_or(summary["rows_inserted"].as_f64().unwrap_or(0.0) + summary["rows_updated"].as_f64().unwrap_or(0.0));
    let state = serde_json::to_value(job.state).unwrap_or_default();
    if job.error.is_some() {
        return Err(format!("job {job_id} {state}: {:?}", job.error));
    }
    Ok(json!({"rows": rows, "secs": secs, "invocations": invocations.load(Ordering::Relaxed), "state": state}))
}

/// What the jobs section runs on one backend.
pub struct Plan {
    /// Bundle sizes whose one-worker import job's peak RSS is measured.
    pub memory_mb: Vec<usize>,
    /// Rows of the bundle imported with one worker, fanned out, and fanned out with a kill.
    pub job_rows: usize,
    /// `WORKSPACES_IMPORT_CHUNK_ROWS` and `WORKSPACES_IMPORT_PART_CHUNKS` of the fanned-out runs
    /// (`None`: the defaults).
    pub chunk_rows: Option<usize>,
    pub part_chunks: Option<usize>,
    /// The killed worker's invocation time; its messages come again that plus 5 s later.
    pub kill_left_secs: u64,
}

/// One measured job run.
#[derive(Default, Clone, Copy)]
struct Run {
    rows: f64,
    secs: f64,
    peak_kb: f64,
    invocations: f64,
    requests: f64,
    written: f64,
}

impl Run {
    fn of(v: &Value) -> Self {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        Run {
            rows: f("rows"),
            secs: f("secs"),
            peak_kb: f("peak_kb"),
            invocations: f("invocations"),
            requests: f("requests"),
            written: f("written"),
        }
    }

    fn add(self, o: Run) -> Run {
        Run {
            rows: o.rows,
            secs: self.secs + o.secs,
            peak_kb: self.peak_kb.max(o.peak_kb),
            invocations: self.invocations + o.invocations,
            requests: self.requests + o.requests,
            written: self.written + o.written,
        }
    }
}

type Env = Vec<(String, String)>;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// Stages a bundle of `rows` rows of `row_bytes` and starts its import job into `ws`: the job id.
fn stage_and_start(
    exe: &std::path::Path,
    env: &Env,
    rows: usize,
    row_bytes: usize,
    ws: &str,
    label: &str,
) -> Result<(String, f64, String), String> {
    let bundle = shared::api::bundles::new_bundle_id();
    let staged = super::run_phase(
        exe,
        env,
        &strings(&["stage", "--rows", &rows.to_string(), "--row-bytes", &row_bytes.to_string(), "--bundle", &bundle]),
        &format!("{label}: staging the bundle"),
    )?;
    let job = start_job(exe, env, &bundle, ws, label)?;
    Ok((job, staged["bytes"].as_f64().unwrap_or(0.0), bundle))
}

fn start_job(exe: &std::path::Path, env: &Env, bundle: &str, ws: &str, label: &str) -> Result<String, String> {
    let started = super::run_phase(
        exe,
        env,
        &strings(&["job-start", "--bundle", bundle, "--workspace", ws]),
        &format!("{label}: starting the job"),
    )?;
    started["job"].as_str().map(str::to_owned).ok_or_else(|| format!("{label}: no job id"))
}

fn run_work(exe: &std::path::Path, env: &Env, job: &str, workers: usize, label: &str) -> Result<Run, String> {
    let args = strings(&["job-work", "--job", job, "--workers", &workers.to_string()]);
    Ok(Run::of(&super::run_phase(exe, env, &args, label)?))
}

/// A pseudo-random fraction in [lo, hi) (the clock's nanoseconds; a bench needs no better).
fn fraction(lo: f64, hi: f64) -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    lo + (hi - lo) * f64::from(nanos % 1_000_000) / 1e6
}

/// The jobs section on one backend (`env_for(tag)`: a store, bundles and queue of its own per tag).
pub fn section(
    exe: &std::path::Path,
    backend: &str,
    env_for: &dyn Fn(&str) -> Env,
    plan: &Plan,
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    let mut memory = Vec::new();
    for &mb in &plan.memory_mb {
        let env = env_for(&format!("mem{mb}"));
        let label = format!("{backend}: import job of a {mb} MB bundle, one worker");
        let (job, bytes, _) = stage_and_start(exe, &env, mb * 1000, 1000, "ws_mem", &label)?;
        let run = run_work(exe, &env, &job, 1, &label)?;
        println!("{label}: {:.1} s, {:.0} rows, peak RSS {:.0} MB", run.secs, run.rows, run.peak_kb / 1024.0);
        // The same workspace back out, as an export job: its worker's peak RSS too.
        let export_label = format!("{backend}: export job of the {mb} MB workspace, one worker");
        let started = super::run_phase(exe, &env, &strings(&["export-start", "--workspace", "ws_mem"]), &export_label)?;
        let export_job = started["job"].as_str().ok_or_else(|| format!("{export_label}: no job id"))?;
        let export = run_work(exe, &env, export_job, 1, &export_label)?;
        println!("{export_label}: {:.1} s, peak RSS {:.0} MB", export.secs, export.peak_kb / 1024.0);
        lines.push(format!("mem | {backend} | import | {:.1} | {:.1}", bytes / 1e6, run.peak_kb / 1024.0));
        lines.push(format!("mem | {backend} | export | {:.1} | {:.1}", bytes / 1e6, export.peak_kb / 1024.0));
        memory.push((mb, bytes, run, export));
    }
    for (mb, bytes, run, export) in &memory {
        lines.push(format!(
            "| {backend} | export job, {mb} MB workspace, 1 worker | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            export.rows,
            export.secs,
            export.rows / export.secs.max(1e-9),
            export.invocations,
            export.requests,
            export.written,
            export.peak_kb / 1024.0
        ));
        lines.push(format!(
            "| {backend} | import job, {mb} MB bundle ({:.0} MB), 1 worker | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            bytes / 1e6,
            run.rows,
            run.secs,
            run.rows / run.secs.max(1e-9),
            run.invocations,
            run.requests,
            run.written,
            run.peak_kb / 1024.0
        ));
    }
    if let [(small_mb, small_bytes, small, small_export), .., (big_mb, big_bytes, big, big_export)] = memory.as_slice()
    {
        lines.push(format!(
            "ratio | {backend}: peak RSS {big_mb} MB / {small_mb} MB bundle: import job {:.2}x, export job {:.2}x, while the bundle grew {:.0}x",
            big.peak_kb / small.peak_kb.max(1.0),
            big_export.peak_kb / small_export.peak_kb.max(1.0),
            big_bytes / small_bytes.max(1.0)
        ));
    }

    let n = plan.job_rows;
    let mut env = env_for("jobs");
    if let Some(rows) = plan.chunk_rows {
        env.push(("WORKSPACES_IMPORT_CHUNK_ROWS".into(), rows.to_string()));
    }
    if let Some(chunks) = plan.part_chunks {
        env.push(("WORKSPACES_IMPORT_PART_CHUNKS".into(), chunks.to_string()));
    }
    // One part: the whole job in one worker's invocations.
    let mut one_env: Env = env.iter().filter(|(k, _)| k != "WORKSPACES_IMPORT_PART_CHUNKS").cloned().collect();
    one_env.push(("WORKSPACES_IMPORT_PART_CHUNKS".into(), "100000".into()));
    let label = format!("{backend}: {n}-row import job, one part, one worker");
    let (job, bytes, bundle) = stage_and_start(exe, &one_env, n, 200, "ws_one", &label)?;
    let one = run_work(exe, &one_env, &job, 1, &label)?;
    let label = format!("{backend}: {n}-row import job, fanned out, {FAN_OUT_WORKERS} workers");
    let job = start_job(exe, &env, &bundle, "ws_fan", &label)?;
    let fan = run_work(exe, &env, &job, FAN_OUT_WORKERS, &label)?;

    for (what, run, workers) in
        [("one part, 1 worker", one, 1), (&*format!("fanned out, {FAN_OUT_WORKERS} workers"), fan, FAN_OUT_WORKERS)]
    {
        lines.push(format!(
            "| {backend} | {n}-row import job ({:.0} MB), {what} | {:.0} | {:.1} | {:.0} ({:.0} per worker) | {:.0} | {:.0} ({:.2} per row) | {:.0} ({:.2} per row) | {:.0} |",
            bytes / 1e6,
            run.rows,
            run.secs,
            run.rows / run.secs.max(1e-9),
            run.rows / run.secs.max(1e-9) / workers as f64,
            run.invocations,
            run.requests,
            run.requests / run.rows.max(1.0),
            run.written,
            run.written / run.rows.max(1.0),
            run.peak_kb / 1024.0
        ));
    }
    // Killed at a random point of what the clean run took, then a fresh worker process.
    let label = format!("{backend}: {n}-row import job, fanned out, worker process killed");
    let job = start_job(exe, &env, &bundle, "ws_kill", &label)?;
    let args = strings(&[
        "job-work",
        "--job",
        &job,
        "--workers",
        &FAN_OUT_WORKERS.to_string(),
        "--left-secs",
        &plan.kill_left_secs.to_string(),
        "--ticks",
    ]);
    let mut victim = super::child_command(exe, &env, &args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{label}: {e}"))?;
    let stdout = victim.stdout.take().ok_or("no stdout")?;
    let last_tick = std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut last = Value::Null;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            last = serde_json::from_str(&line).unwrap_or(last);
        }
        last
    });
    let at = fan.secs * fraction(0.2, 0.8);
    println!("{label}: killing the worker process after {at:.1} s");
    std::thread::sleep(Duration::from_secs_f64(at));
    let _ = victim.kill();
    let _ = victim.wait();
    let before = Run::of(&last_tick.join().map_err(|_| "reading the killed worker's output")?);
    // Each worker claims for its invocation's time (60 s here, the function timeout in AWS): the
    // fresh one resumes once the dead one's claim has expired.
    let resumed = match run_work(exe, &env, &job, FAN_OUT_WORKERS, &format!("{label}: resuming")) {
        Ok(run) => run,
        // Shown, not hidden: the table says the killed job did not end right, and why.
        Err(e) => {
            println!("{e}");
            lines.push(format!(
                "| {backend} | same job, worker process killed after {at:.1} s: FAILED | {} |",
                e.replace('|', "/")
            ));
            lines.push(format!(
                "ratio | {backend}: one worker and fan-out as above; the killed job FAILED (see its row)"
            ));
            return Ok(lines);
        }
    };
    let killed = Run { secs: at, ..before }.add(resumed);

    lines.push(format!(
        "| {backend} | same job, worker process killed after {at:.1} s, then resumed | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        killed.rows,
        killed.secs,
        killed.rows / killed.secs.max(1e-9),
        killed.invocations,
        killed.requests,
        killed.written,
        killed.peak_kb / 1024.0
    ));
    let exact = |r: &Run| (r.rows - n as f64 - PROJECTS as f64).abs() < 0.5;
    lines.push(format!(
        "ratio | {backend}: fan-out / one worker wall time = {:.2}x, requests {:.2}x, items written {:.2}x; \
         killed+resumed / clean: wall time {:.2}x, requests {:.2}x, items written {:.2}x; every run imported exactly {} rows: {}",
        fan.secs / one.secs.max(1e-9),
        fan.requests / one.requests.max(1.0),
        fan.written / one.written.max(1.0),
        killed.secs / fan.secs.max(1e-9),
        killed.requests / fan.requests.max(1.0),
        killed.written / fan.written.max(1.0),
        n + PROJECTS,
        [one, fan, killed].iter().all(exact)
    ));
    Ok(lines)
}

/// The jobs table's header.
pub const HEADER: &str = "| backend | job | rows | wall s | rows/s | invocations | DynamoDB requests | items written | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|";
