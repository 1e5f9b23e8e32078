//! The `overhead` section: each endpoint's handler (a request through `shared::http::serve`)
//! against the raw calls its semantics need (`overhead_raw.rs`), interleaved call by call so
//! machine noise hits both alike; then export and import of many rows against minimal raw
//! pagination and batch writes. On DynamoDB the counting proxy gives both sides' requests.

use std::time::Instant;

use std::collections::BTreeMap;

use blackbox_tests::counting_proxy::{CountingProxy, Counts};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use shared::api::projects::{projects_columns, projects_owner};
use shared::model::{now_timestamp, Owner, Scope, WorkspaceDraft};
use shared::naming::projects_table;
use shared::routes::Endpoint;
use shared::tables::{Commit, TableWrite, WsKey};

use crate::overhead_raw::{project_row, BundleRows, Raw};
use crate::{flag, run_phase, synthetic_bundle, Child, USER};

/// The workspaces the latency phase uses, beside the filler that makes the stored count.
const WS_SAVE_OURS: &str = "ws_save_ours";
const WS_SAVE_RAW: &str = "ws_save_raw";
const WS_LOAD: &str = "ws_load";
const WS_PROJECTS: &str = "ws_projects";
const NAMED: [&str; 4] = [WS_SAVE_OURS, WS_SAVE_RAW, WS_LOAD, WS_PROJECTS];
/// Project saves go round this many workspaces per side: every commit adds a catalog entry
/// listing all the table's layers until compaction folds them (after 20 minutes), so one
/// workspace saved hundreds of times in a row would measure that history, on both sides alike,
/// rather than a save.
const PROJECT_SAVE_SPREAD: usize = 10;

/// The workspace the `i`th project save of one side goes to.
fn project_save_ws(ours: bool, i: usize) -> String {
    format!("ws_psave_{}_{:02}", if ours { "ours" } else { "raw" }, i % PROJECT_SAVE_SPREAD)
}
/// Projects in the workspace that list and load read.
const PROJECTS: usize = 10;
/// Untimed calls of each side before an operation's timed ones (connections, caches).
const WARMUP: usize = 2;

pub const TARGET_RATIO: f64 = 1.15;
pub const TARGET_THROUGHPUT: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    SaveWorkspace,
    LoadWorkspace,
    ListWorkspaces,
    SaveProject,
    ListProjects,
    LoadProject,
}

const OPS: [Op; 6] =
    [Op::SaveWorkspace, Op::LoadWorkspace, Op::ListWorkspaces, Op::SaveProject, Op::ListProjects, Op::LoadProject];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::SaveWorkspace => "save workspace",
            Op::LoadWorkspace => "load workspace",
            Op::ListWorkspaces => "list workspaces",
            Op::SaveProject => "save project",
            Op::ListProjects => "list projects",
            Op::LoadProject => "load project",
        }
    }
}

/// A backend's environment for a child phase, by tag (`main.rs` `env_for`).
pub type EnvFor<'a> = dyn Fn(&str) -> Result<Vec<(String, String)>, String> + 'a;

/// Sizes of one backend's run.
pub struct Plan {
    pub calls: usize,
    pub stored: usize,
    pub rows: usize,
}

/// One backend's lines: latency table rows, throughput table rows, requests by kind.
pub struct Rows {
    pub latency: Vec<String>,
    pub throughput: Vec<String>,
    pub kinds: Vec<String>,
}

/// Runs both phases for `backend` (each a child process with a store of its own) and answers
/// the latency table's rows and the throughput table's rows.
pub fn section(exe: &std::path::Path, backend: &str, env: &EnvFor<'_>, plan: &Plan) -> Result<Rows, String> {
    let args = |phase: &str, more: &[(&str, usize)]| -> Vec<String> {
        let mut a = vec![phase.to_owned()];
        for (k, v) in more {
            a.extend([(*k).to_owned(), v.to_string()]);
        }
        a
    };
    let latency = run_phase(
        exe,
        &env("overhead-latency")?,
        &args("overhead-latency", &[("--calls", plan.calls), ("--stored", plan.stored)]),
        &format!("{backend}: handler vs raw calls, {} calls each", plan.calls),
    )?;
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let (mut latency_rows, mut kinds) = (Vec::new(), Vec::new());
    let mut kinds_of = |op: &Value| {
        if op["ours_kinds"].as_str().is_some_and(|k| !k.is_empty()) {
            kinds.push(format!(
                "- {backend}, {}: ours {}; raw {}",
                op["op"].as_str().unwrap_or("?"),
                op["ours_kinds"].as_str().unwrap_or(""),
                op["raw_kinds"].as_str().unwrap_or("")
            ));
        }
    };
    for op in latency["ops"].as_array().into_iter().flatten() {
        kinds_of(op);
        latency_rows.push(format!(
            "| {backend} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2}x | {:.1} | {:.1} |",
            op["op"].as_str().unwrap_or("?"),
            f(op, "ours_median"),
            f(op, "ours_p99"),
            f(op, "raw_median"),
            f(op, "raw_p99"),
            f(op, "ours_median") / f(op, "raw_median").max(1e-9),
            f(op, "ours_requests"),
            f(op, "raw_requests"),
        ));
    }
    let throughput = run_phase(
        exe,
        &env("overhead-throughput")?,
        &args("overhead-throughput", &[("--rows", plan.rows)]),
        &format!("{backend}: export and import of {} rows vs raw calls", plan.rows),
    )?;
    let mut throughput_rows = Vec::new();
    for op in throughput["ops"].as_array().into_iter().flatten() {
        kinds_of(op);
        let rows = f(op, "rows");
        let (ours, raw) = (rows / f(op, "ours_secs").max(1e-9), rows / f(op, "raw_secs").max(1e-9));
        throughput_rows.push(format!(
            "| {backend} | {} | {rows:.0} | {ours:.0} | {raw:.0} | {:.2}x | {:.0}, {:.0} | {:.0}, {:.0} |",
            op["op"].as_str().unwrap_or("?"),
            ours / raw.max(1e-9),
            f(op, "ours_requests"),
            f(op, "ours_written"),
            f(op, "raw_requests"),
            f(op, "raw_written"),
        ));
    }
    Ok(Rows { latency: latency_rows, throughput: throughput_rows, kinds })
}

/// Which rows meet their target: the latency ratio (column 7) on `aws`, every throughput ratio
/// (column 6).
pub fn verdicts(latency: &[String], throughput: &[String]) -> Vec<String> {
    let cells = |l: &str| l.split('|').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let ratio = |c: &[String], i: usize| c.get(i).and_then(|r| r.trim_end_matches('x').parse::<f64>().ok());
    let mut out = Vec::new();
    for l in latency {
        let c = cells(l);
        if let (Some("aws"), Some(r)) = (c.first().map(String::as_str), ratio(&c, 6)) {
            let met = if r <= TARGET_RATIO { "met" } else { "missed" };
            out.push(format!("{}, {}: handler/raw {r:.2}x, {met}", c[0], c[1]));
        }
    }
    for l in throughput {
        let c = cells(l);
        if let Some(r) = ratio(&c, 5) {
            let met = if r >= TARGET_THROUGHPUT { "met" } else { "missed" };
            out.push(format!("{}, {}: ours/raw rows/s {r:.2}x, {met}", c[0], c[1]));
        }
    }
    out
}

pub const LATENCY_HEADER: &str = "| backend | operation | ours median ms | ours p99 ms | raw median ms | raw p99 ms \
     | ours/raw (median) | requests/call ours | requests/call raw |\n|---|---|---|---|---|---|---|---|---|";
pub const THROUGHPUT_HEADER: &str = "| backend | operation | rows | ours rows/s | raw rows/s | ours/raw \
     | ours: requests, items written | raw: requests, items written |\n|---|---|---|---|---|---|---|---|";

/// The raw side on the child's own store (`WORKSPACES_STORE`), through the same SDK
/// configuration (and so the same counting proxy) as the app's.
async fn raw_for_env() -> Result<Raw, String> {
    let store = std::env::var("WORKSPACES_STORE").map_err(|_| "WORKSPACES_STORE unset".to_owned())?;
    if let Some(table) = store.strip_prefix("dynamodb://") {
        let client = aws_sdk_dynamodb::Client::new(adapter_aws::sdk_config().await);
        return Ok(Raw::Dynamo { client, table: table.to_owned() });
    }
    let path = store.strip_prefix("sqlite://").ok_or_else(|| format!("{store}: neither sqlite:// nor dynamodb://"))?;
    // The adapter's connection settings (adapters/sqlite layout.rs `connect`); the file is in WAL mode.
    let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| e.to_string())?;
    Ok(Raw::Sqlite(Box::new(conn)))
}

fn counts(proxy: Option<&CountingProxy>) -> (u64, u64) {
    proxy.map(|p| p.snapshot().total()).map_or((0, 0), |t| (t.requests, t.written))
}

fn snapshot(proxy: Option<&CountingProxy>) -> Counts {
    proxy.map(CountingProxy::snapshot).unwrap_or_default()
}

/// Adds the requests of each kind made between `before` and `after` to `kinds`.
fn add_kinds(kinds: &mut BTreeMap<String, u64>, before: &Counts, after: &Counts) {
    for (op, c) in &after.ops {
        let n = c.requests - before.op(op).requests;
        if n > 0 {
            *kinds.entry(op.clone()).or_default() += n;
        }
    }
}

/// `GetItem 2, Query 1` per call.
fn kinds_text(kinds: &BTreeMap<String, u64>, calls: usize) -> String {
    let per = |n: u64| n as f64 / calls.max(1) as f64;
    kinds.iter().map(|(op, n)| format!("{op} {}", per(*n))).collect::<Vec<_>>().join(", ")
}

fn draft(id: &str) -> WorkspaceDraft {
    WorkspaceDraft {
        id: id.to_owned(),
        name: format!("Workspace {id}"),
        description: None,
        metadata: Default::default(),
        scope: Scope::User,
        writer: USER.to_owned(),
        now: now_timestamp(),
        expected_version: None,
    }
}

/// Project rows `ids` in workspace `ws`, written in one commit (as one import would).
async fn commit_projects(c: &Child, ws: &WsKey, ids: &[String]) -> Result<(), String> {
    let now = now_timestamp();
    let rows =
        ids.iter().map(|id| (id.clone(), project_row(id, &format!("Project {id}"), USER, &now, &now, 1))).collect();
    let commit = Commit {
        id: format!("bench-{}", ws.workspace_id),
        upserts: vec![TableWrite {
            name: projects_table(&ws.workspace_id),
            owner: projects_owner(),
            columns: projects_columns(),
            key_column: "project_id".into(),
            rows,
        }],
        ..Commit::default()
    };
    let base = c.app.store.snapshot(ws).await.map_err(|e| e.to_string())?.revision();
    c.app.store.commit(ws, base, commit).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Child phase `overhead-latency --calls N --stored M`: M workspaces stored (the named ones
/// included), then each operation N times through the handler and N times raw, alternating
/// which goes first.
pub async fn latency(c: &Child, proxy: Option<&CountingProxy>, args: &[String]) -> Result<Value, String> {
    let number = |name: &str| flag(args, name).and_then(|v| v.parse::<usize>().ok()).ok_or(format!("{name}: a number"));
    let (calls, stored) = (number("--calls")?, number("--stored")?);
    let owner = c.principal.owner(Scope::User);
    let saving: Vec<String> =
        (0..PROJECT_SAVE_SPREAD).flat_map(|i| [project_save_ws(true, i), project_save_ws(false, i)]).collect();
    let ids: Vec<String> = (0..stored.saturating_sub(NAMED.len() + saving.len()))
        .map(|i| format!("ws_fill_{i:05}"))
        .chain(NAMED.iter().map(|s| (*s).to_owned()))
        .chain(saving.iter().cloned())
        .collect();
    let stored = ids.len();
    stream::iter(ids)
        .map(|id| {
            let owner = owner.clone();
            async move { c.app.store.save_workspace(&owner, draft(&id)).await.map_err(|e| e.to_string()) }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    let listed: Vec<String> = (0..PROJECTS).map(|p| format!("p{p:03}")).collect();
    commit_projects(c, &WsKey::new(owner.clone(), WS_PROJECTS), &listed).await?;
    // The saving workspaces start with their projects table, as any workspace past its first save.
    for ws in &saving {
        commit_projects(c, &WsKey::new(owner.clone(), ws.as_str()), &["p_seed".to_owned()]).await?;
    }
    let mut raw = raw_for_env().await?;
    let mut out = Vec::new();
    for op in OPS {
        let (mut ours, mut raws, mut ours_requests, mut raw_requests) = (Vec::new(), Vec::new(), 0u64, 0u64);
        let (mut ours_kinds, mut raw_kinds) = (BTreeMap::new(), BTreeMap::new());
        for i in 0..WARMUP + calls {
            let order = if i % 2 == 0 { [true, false] } else { [false, true] };
            for is_ours in order {
                let before = snapshot(proxy);
                let started = Instant::now();
                let found = match is_ours {
                    true => once_ours(c, op, i).await?,
                    false => once_raw(&mut raw, &owner, op, i).await?,
                };
                let ms = started.elapsed().as_secs_f64() * 1e3;
                let after = snapshot(proxy);
                let requests = after.total().requests - before.total().requests;
                // Both sides must have found the same thing, or the comparison means nothing.
                if i == 0 {
                    let expected = match op {
                        Op::ListWorkspaces => stored,
                        Op::ListProjects => PROJECTS,
                        _ => 1,
                    };
                    if found != expected {
                        let side = if is_ours { "handler" } else { "raw" };
                        return Err(format!("{}: the {side} found {found}, not {expected}", op.name()));
                    }
                }
                if i < WARMUP {
                    continue;
                }
                let (samples, total, kinds) = if is_ours {
                    (&mut ours, &mut ours_requests, &mut ours_kinds)
                } else {
                    (&mut raws, &mut raw_requests, &mut raw_kinds)
                };
                samples.push(ms);
                *total += requests;
                add_kinds(kinds, &before, &after);
            }
        }
        let per_call = |n: u64| n as f64 / calls.max(1) as f64;
        out.push(json!({
            "op": op.name(),
            "ours_median": percentile(&mut ours, 0.5), "ours_p99": percentile(&mut ours, 0.99),
            "raw_median": percentile(&mut raws, 0.5), "raw_p99": percentile(&mut raws, 0.99),
            "ours_requests": per_call(ours_requests), "raw_requests": per_call(raw_requests),
            "ours_kinds": kinds_text(&ours_kinds, calls), "raw_kinds": kinds_text(&raw_kinds, calls),
        }));
    }
    Ok(json!({ "ops": out }))
}

/// The nearest-rank percentile `q` of `samples`.
fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len().max(1));
    samples.get(rank - 1).copied().unwrap_or(0.0)
}

/// One handler call of `op`: how many items it answered (1 for a save or a load).
async fn once_ours(c: &Child, op: Op, i: usize) -> Result<usize, String> {
    let (method, endpoint, path, body) = match op {
        Op::SaveWorkspace => (
            "POST",
            Endpoint::SaveWorkspace,
            "/workspaces/save".to_owned(),
            Some(json!({"id": WS_SAVE_OURS, "name": format!("n{i}")})),
        ),
        Op::LoadWorkspace => ("GET", Endpoint::LoadWorkspace, format!("/workspaces/{WS_LOAD}/load"), None),
        Op::ListWorkspaces => ("GET", Endpoint::ListWorkspaces, "/workspaces/list".to_owned(), None),
        Op::SaveProject => (
            "POST",
            Endpoint::SaveProject,
            format!("/projects/{}/save", project_save_ws(true, i)),
            Some(json!({"project": {"id": "p_saved", "name": format!("n{i}")}})),
        ),
        Op::ListProjects => ("GET", Endpoint::ListProjects, format!("/projects/{WS_PROJECTS}/list"), None),
        Op::LoadProject => {
            ("GET", Endpoint::LoadProject, format!("/projects/{WS_PROJECTS}/load?project_id=p003"), None)
        }
    };
    let (status, text) = c.request_text(method, endpoint, &path, body).await?;
    // Parsed only where it is checked (the first call, a failure): the clock is still running.
    if i > 0 && status == 200 {
        return Ok(1);
    }
    let answer: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", op.name()))?;
    if status != 200 {
        return Err(format!("{}: {status} {}", op.name(), answer["message"]));
    }
    Ok(answer["data"].as_array().map_or(1, Vec::len))
}

/// One raw run of `op`, answering as [`once_ours`] does.
async fn once_raw(raw: &mut Raw, owner: &Owner, op: Op, i: usize) -> Result<usize, String> {
    let ws = |id: &str| WsKey::new(owner.clone(), id);
    let name = format!("n{i}");
    match op {
        Op::SaveWorkspace => raw.save_workspace(owner, WS_SAVE_RAW, &name, USER).await.map(|_| 1),
        Op::LoadWorkspace => raw.load_workspace(owner, WS_LOAD).await.map(usize::from),
        Op::ListWorkspaces => raw.list_workspaces(owner).await,
        Op::SaveProject => raw.save_project(&ws(&project_save_ws(false, i)), "p_saved", &name, USER).await.map(|_| 1),
        Op::ListProjects => raw.list_projects(&ws(WS_PROJECTS)).await,
        Op::LoadProject => raw.load_project(&ws(WS_PROJECTS), "p003").await.map(usize::from),
    }
}

/// The bundle's rows as the raw import writes them: every table (the workspace's and each
/// project's), keyed by its first column (the synthetic bundle's key columns), each row once.
fn bundle_rows(bytes: &[u8]) -> Result<BundleRows, String> {
    let bundle: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let project_tables = bundle["projects"].as_object().into_iter().flat_map(|p| p.values()).map(|p| &p["tables"]);
    let mut seen = std::collections::HashMap::new();
    for tables in std::iter::once(&bundle["tables"]).chain(project_tables) {
        for (name, table) in tables.as_object().into_iter().flatten() {
            let key_column = table["schema"][0]["name"].as_str().ok_or(format!("{name}: no schema"))?;
            for row in table["data"].as_array().into_iter().flatten() {
                let key =
                    shared::tables::key_text(row.get(key_column)).ok_or(format!("{name}: a row without a key"))?;
                let text = serde_json::to_string(row).map_err(|e| e.to_string())?;
                seen.insert((name.clone(), key), text);
            }
        }
    }
    Ok(seen.into_iter().map(|((t, k), row)| (t, k, row)).collect())
}

/// Stages `bytes` in the bundle store: the id an import names.
async fn stage(c: &Child, bytes: &[u8]) -> Result<String, String> {
    let id = shared::api::bundles::new_bundle_id();
    let key = shared::api::bundles::bundle_key(&shared::api::bundles::tenant(&c.principal), &id);
    let mut up = c.app.bundles.create_upload(&key).await.map_err(|e| e.to_string())?;
    up.write(bytes).await.map_err(|e| e.to_string())?;
    up.finish().await.map_err(|e| e.to_string())?;
    Ok(id)
}

/// Child phase `overhead-throughput --rows R`: import of a new workspace, its export, and a
/// re-import of the same rows, each through the handler and raw.
pub async fn throughput(c: &Child, proxy: Option<&CountingProxy>, args: &[String]) -> Result<Value, String> {
    let rows: usize = flag(args, "--rows").and_then(|v| v.parse().ok()).ok_or("--rows: a number")?;
    let bytes = serde_json::to_vec(&synthetic_bundle(rows)).map_err(|e| e.to_string())?;
    let (first, again) = (stage(c, &bytes).await?, stage(c, &bytes).await?);
    let mut raw = raw_for_env().await?;
    let raw_ws = WsKey::new(c.principal.owner(Scope::User), "ws_raw").key();
    let mut out = Vec::new();
    let mut rows_moved = 0usize;
    let mut tables: Vec<(String, usize)> = Vec::new();
    for (op, bundle, raw_part, raw_existing) in [
        ("import (new workspace)", Some(&first), "raw1", None),
        ("export", None, "raw1", None),
        ("re-import (same rows)", Some(&again), "raw2", Some("raw1")),
    ] {
        let before = counts(proxy);
        let before_kinds = snapshot(proxy);
        let started = Instant::now();
        let (status, answer) = match bundle {
            Some(id) => {
                let body = json!({"export_data": {"bundle_id": id}, "workspace_id": "ws_tp", "scope": "user"});
                c.request("POST", Endpoint::ImportTables, "/workspaces/import-tables", Some(body)).await?
            }
            None => {
                let body = json!({"scope": "user"});
                c.request("POST", Endpoint::ExportTables, "/workspaces/ws_tp/export-tables", Some(body)).await?
            }
        };
        let ours_secs = started.elapsed().as_secs_f64();
        if status != 200 {
            return Err(format!("{op}: {status} {}", answer["message"]));
        }
        let ours = counts(proxy);
        let ours_kinds = snapshot(proxy);
        // Raw gets the rows parsed and serialised before its clock starts: the bound is the
        // store's calls alone, while ours also reads and parses the staged bundle.
        let parsed = bundle.map(|_| bundle_rows(&bytes)).transpose()?;
        let started = Instant::now();
        match parsed {
            Some(parsed) => {
                raw.import(&raw_ws, &parsed, raw_part, raw_existing).await?;
                rows_moved = parsed.len();
                let mut per_table = std::collections::BTreeMap::new();
                for (t, _, _) in &parsed {
                    *per_table.entry(t.clone()).or_insert(0usize) += 1;
                }
                tables = per_table.into_iter().collect();
            }
            None => {
                raw.export(&raw_ws, &tables, raw_part).await?;
            }
        }
        let raw_secs = started.elapsed().as_secs_f64();
        let after = counts(proxy);
        let (mut ours_by_kind, mut raw_by_kind) = (BTreeMap::new(), BTreeMap::new());
        add_kinds(&mut ours_by_kind, &before_kinds, &ours_kinds);
        add_kinds(&mut raw_by_kind, &ours_kinds, &snapshot(proxy));
        out.push(json!({
            "ours_kinds": kinds_text(&ours_by_kind, 1), "raw_kinds": kinds_text(&raw_by_kind, 1),
            "op": op, "rows": rows_moved, "ours_secs": ours_secs, "raw_secs": raw_secs,
            "ours_requests": ours.0 - before.0, "ours_written": ours.1 - before.1,
            "raw_requests": after.0 - ours.0, "raw_written": after.1 - ours.1,
        }));
    }
    Ok(json!({ "ops": out }))
}
