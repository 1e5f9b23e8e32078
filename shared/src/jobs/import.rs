//! Import jobs: the streaming import engine (`api::import`), cut across invocations and workers.
//!
//! - The `Run` task plans (pass 1 over the whole bundle: a bad bundle fails the job with the
//!   synchronous route's 422 before anything is staged), keeps the plan in the bundle store, holds
//!   the planned revision against compaction, begins a staging and splits the chunks into
//!   *parts*. One part is worked right there; more are fanned out, one queue message each, to
//!   concurrent worker invocations.
//! - A part writes its chunks (pass 2) into the staging, recording each in the job record by
//!   compare-and-set (its tally, the part's next chunk) after the rows are staged. A chunk is
//!   recorded once even when written twice (a redelivered or resumed part): staged rows replace
//!   rows of the same key, and a tally only counts for the part's next chunk. Out of time, a part
//!   hands itself to a fresh invocation.
//! - The task that records the last chunk commits: one `finish_staging`, rebased onto the
//!   workspace's current head. Its result is what the synchronous route puts in `data`.
//!
//! A restart (SQLite keeps only the current revision, so a write to the workspace while the job
//! ran leaves its plan without the revision it was made on) drops the staging and plans again on
//! the current revision, under a new *epoch*: work of the old epoch still in flight finds its
//! staging aborted or its epoch gone and records nothing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::worker::{Outcome, Run, Stop};
use super::{enqueue, JobPrincipal};
use crate::api::bundles::{job_artefact_key, resolve_export_data, tenant, ExportData};
use crate::api::import::{
    finish, plan, write_chunk, BlockingRead, BundleSource, ChunkLimits, ImportPlan, ImportRequest, PlanContext,
    StoredSource, Tallies,
};
use crate::api::{Call, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::model::{now_timestamp, Principal};
use crate::queue::JobTask;
use crate::store::jobs::{Counter, JobKind, Progress};
use crate::store::StoreError;
use crate::tables::WsKey;

/// Largest bundle an import job reads: pass 1 keeps 16 bytes per row while it indexes keys, so
/// a worker's memory bounds the rows, not the bytes (see docs/api.md, Jobs).
pub const MAX_JOB_BUNDLE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// A job never fans out wider than this; more chunks make longer parts.
pub const MAX_PARTS: usize = 100;
/// How long a lease holds the planned revision past now; every invocation takes it again.
const LEASE_SECS: u64 = 2 * 3600;
/// A plan is read back whole by every part: 2 bits a row and ~100 bytes a chunk.
const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

/// Where an import job reads its bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobBundle {
    key: String,
    bundle_id: String,
    /// The route copied an inline `export_data` there: the job deletes it when it ends, and
    /// messages name it `export_data`, as the synchronous route does.
    owned: bool,
}

/// `POST …/workspaces/import-tables` with `"async": true`: 202 with the job. An inline bundle
/// is copied into the bundle store (a job record holds no bundle); a staged one must exist now
/// (404 at once rather than a failed job).
pub async fn start(
    app: &App,
    principal: &Principal,
    call: &Call,
    request: ImportRequest,
    export_data: Value,
) -> Result<Reply, ApiError> {
    let bundle = match resolve_export_data(principal, export_data)? {
        ExportData::Staged { key, bundle_id } => {
            if app.bundles.head(&key).await?.is_none() {
                return Err(ApiError::not_found(format!(
                    "Bundle '{bundle_id}' not found (never uploaded, or expired)"
                )));
            }
            JobBundle { key, bundle_id, owned: false }
        }
        ExportData::Inline(bundle) => {
            let bundle_id = crate::api::bundles::new_bundle_id();
            let key = job_artefact_key(&tenant(principal), &bundle_id, "bundle");
            let bytes = serde_json::to_vec(&bundle).map_err(ApiError::internal)?;
            put_object(app, &key, &bytes).await?;
            JobBundle { key, bundle_id, owned: true }
        }
    };
    let job_request = json!({
        "principal": JobPrincipal::from(principal),
        "workspace_id": request.workspace_id,
        "import": request,
        "bundle": bundle,
    });
    let (reply, created) = crate::api::jobs::start_job(app, principal, call, JobKind::Import, job_request).await?;
    if !created && bundle.owned {
        // The same request found its job, which reads its own copy.
        let _ = app.bundles.delete(&bundle.key).await;
    }
    Ok(reply)
}

async fn put_object(app: &App, key: &str, bytes: &[u8]) -> Result<(), ApiError> {
    let mut upload = app.bundles.create_upload(key).await?;
    if let Err(e) = upload.write(bytes).await {
        let _ = upload.abort().await;
        return Err(e.into());
    }
    upload.finish().await?;
    Ok(())
}

/// What an import job keeps between tasks (the `run` of its checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    epoch: u32,
    /// The workspace existed when the job first planned: planning again without it is a 409
    /// (it was deleted meanwhile), never a new workspace.
    existed: bool,
    /// The revision the plan was made on, held by a lease.
    rev: u64,
    parts: Vec<Part>,
    tallies: Tallies,
    /// Rows and bundle bytes of the recorded chunks (progress).
    rows_done: u64,
    bytes_done: u64,
    totals: Totals,
    /// Set (by compare-and-set) before the finish begins: from then on the commit decides how
    /// the job ends, and a task failing or cancelled meanwhile defers to it rather than aborting
    /// the staging under it (see `worker::Run::finish`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    committing: bool,
}

/// Chunks `next..end` of the plan are still to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    next: u32,
    end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Totals {
    tables: u64,
    rows: u64,
    bytes: u64,
}

impl State {
    fn done(&self) -> bool {
        self.parts.iter().all(|p| p.next >= p.end)
    }

    fn progress(&self) -> Progress {
        let tables = if self.done() { self.totals.tables } else { 0 };
        Progress {
            tables: Counter { done: tables, total: Some(self.totals.tables) },
            rows: Counter { done: self.rows_done, total: Some(self.totals.rows) },
            bytes: Counter { done: self.bytes_done, total: Some(self.totals.bytes) },
        }
    }
}

/// The job's request, read back.
struct Job {
    principal: Principal,
    request: ImportRequest,
    bundle: JobBundle,
    ws: WsKey,
}

impl Job {
    fn of(run: &Run<'_>) -> Result<Self, Stop> {
        Self::of_record(&run.job)
            .ok_or_else(|| Stop::Failed(ApiError::internal(format!("job {}: its request does not read", run.job.id))))
    }

    fn of_record(job: &crate::store::jobs::JobRecord) -> Option<Self> {
        let field = |name: &str| job.request.get(name).cloned().unwrap_or_default();
        let principal: JobPrincipal = serde_json::from_value(field("principal")).ok()?;
        let principal = Principal::from(&principal);
        let request: ImportRequest = serde_json::from_value(field("import")).ok()?;
        let bundle: JobBundle = serde_json::from_value(field("bundle")).ok()?;
        let ws = WsKey::new(principal.owner(request.scope), &request.workspace_id);
        Some(Self { principal, request, bundle, ws })
    }

    fn source(&self, app: &App) -> Labeled {
        let inner = StoredSource {
            bundles: app.bundles.clone(),
            key: self.bundle.key.clone(),
            bundle_id: self.bundle.bundle_id.clone(),
            max_bytes: MAX_JOB_BUNDLE_BYTES,
        };
        let label = if self.bundle.owned { "export_data".to_owned() } else { inner.label() };
        Labeled { inner, label }
    }

    fn staging(&self, job_id: &str, epoch: u32) -> String {
        format!("{job_id}-{epoch}")
    }

    fn plan_key(&self, job_id: &str, epoch: u32) -> String {
        job_artefact_key(&tenant(&self.principal), job_id, &format!("plan-{epoch}"))
    }
}

/// A staged bundle named as the caller named it.
struct Labeled {
    inner: StoredSource,
    label: String,
}

#[async_trait::async_trait]
impl BundleSource for Labeled {
    async fn open(&self) -> Result<BlockingRead, ApiError> {
        self.inner.open().await
    }

    async fn read_range(&self, start: u64, end: u64) -> Result<bytes::Bytes, ApiError> {
        self.inner.read_range(start, end).await
    }

    fn label(&self) -> String {
        self.label.clone()
    }
}

/// The checkpoint's state; `Restart` when a task found the plan's revision gone.
enum Saved {
    Fresh,
    Restart { epoch: u32, existed: bool },
    At(State),
}

fn saved(run: &Run<'_>) -> Result<Saved, Stop> {
    let Some(value) = run.state() else { return Ok(Saved::Fresh) };
    if let Some(epoch) = value.get("restart").and_then(Value::as_u64) {
        let existed = value.get("existed").and_then(Value::as_bool).unwrap_or(false);
        return Ok(Saved::Restart { epoch: u32::try_from(epoch).unwrap_or(u32::MAX), existed });
    }
    serde_json::from_value(value.clone())
        .map(Saved::At)
        .map_err(|e| Stop::Failed(ApiError::internal(format!("job {}: its checkpoint does not read: {e}", run.job.id))))
}

/// The `Run` task (claimed): plans when nothing is planned yet, then works the only part, or
/// sends every part still to do to the queue.
pub async fn run(run: &mut Run<'_>) -> Result<Outcome, Stop> {
    let job = Job::of(run)?;
    let state = match saved(run)? {
        Saved::Fresh => begin(run, &job, 0, false).await?,
        Saved::Restart { epoch, existed } => {
            drop_epoch(run.app, &job, &run.job.id, epoch.saturating_sub(1)).await;
            begin(run, &job, epoch, existed).await?
        }
        Saved::At(state) => state,
    };
    if state.parts.len() <= 1 {
        return work(run, &job, 0).await;
    }
    // Also when this message came again after the parts were sent: a part sent twice is
    // harmless (each chunk is recorded once), a part never sent would stall the job.
    for (i, part) in state.parts.iter().enumerate() {
        if part.next < part.end {
            let part = u32::try_from(i).unwrap_or(u32::MAX);
            enqueue(run.app, &run.job, JobTask::Part { part }).await.map_err(Stop::from)?;
        }
    }
    if state.done() {
        return work(run, &job, 0).await;
    }
    Ok(Outcome::Handed)
}

/// A fanned-out part's task.
pub async fn part(run: &mut Run<'_>, part: u32) -> Result<Outcome, Stop> {
    let job = Job::of(run)?;
    match saved(run)? {
        // Planned again since this message was sent: the Run task sends the new parts.
        Saved::Fresh | Saved::Restart { .. } => Ok(Outcome::Handed),
        Saved::At(_) => work(run, &job, part as usize).await,
    }
}

/// Plans on the current revision, keeps the plan, holds the revision, begins the staging and
/// records the parts. `existed`: an earlier epoch found the workspace.
async fn begin(run: &mut Run<'_>, job: &Job, epoch: u32, existed: bool) -> Result<State, Stop> {
    let app = run.app;
    let snapshot = app.store.snapshot(&job.ws).await?;
    let workspace_exists = app.store.get_workspace(&job.ws.owner, &job.request.workspace_id).await?.is_some();
    if existed && !workspace_exists {
        return Err(deleted(job));
    }
    let limits = ChunkLimits { max_rows: app.config.import_chunk_rows, ..ChunkLimits::default() };
    let ctx = PlanContext {
        principal: &job.principal,
        target: &job.ws,
        request: &job.request,
        workspace_exists,
        sync_max_rows: None,
        limits,
        now: now_timestamp(),
    };
    let plan = plan(&job.source(app), &*snapshot, &ctx).await?;
    drop(snapshot);
    let bytes =
        serde_json::to_vec(&plan).map_err(|e| Stop::Retry(format!("an import plan does not serialize: {e}")))?;
    put_object(app, &job.plan_key(&run.job.id, epoch), &bytes).await?;
    hold(app, job, &run.job.id, plan.base_revision).await?;
    app.job_tables.begin_staging(&job.ws, &job.staging(&run.job.id, epoch), &plan.staging_tables()).await?;
    let state = State {
        epoch,
        existed: existed || workspace_exists,
        rev: plan.base_revision,
        parts: split(plan.chunks.len(), app.config.import_part_chunks as usize),
        tallies: Tallies::new(&plan),
        rows_done: 0,
        bytes_done: 0,
        committing: false,
        totals: Totals {
            tables: plan.tables.len() as u64,
            rows: plan.chunks.iter().map(|c| c.rows).sum(),
            bytes: plan.chunks.last().map_or(0, |c| c.end),
        },
    };
    let value = serde_json::to_value(&state).map_err(|e| Stop::Retry(e.to_string()))?;
    run.save(state.progress(), value).await?;
    Ok(state)
}

/// `chunks` chunks in parts of about `per_part` (at most [`MAX_PARTS`] parts, at least one).
fn split(chunks: usize, per_part: usize) -> Vec<Part> {
    let parts = chunks.div_ceil(per_part.max(1)).clamp(1, MAX_PARTS);
    let per = chunks.div_ceil(parts);
    let at = |i: usize| u32::try_from((i * per).min(chunks)).unwrap_or(u32::MAX);
    (0..parts).map(|i| Part { next: at(i), end: at(i + 1) }).collect()
}

async fn hold(app: &App, job: &Job, lease: &str, rev: u64) -> Result<(), Stop> {
    let until = u64::try_from(crate::bundles::now_unix()).unwrap_or(0) + LEASE_SECS;
    app.job_tables.hold_revision(&job.ws, lease, rev, until).await.map_err(Stop::from)
}

/// Works part `k` of the current epoch, then commits when no chunk of any part is left.
async fn work(run: &mut Run<'_>, job: &Job, k: usize) -> Result<Outcome, Stop> {
    let app = run.app;
    let Saved::At(state) = saved(run)? else { return Ok(Outcome::Handed) };
    let epoch = state.epoch;
    let Some(plan) = load_plan(run, job, epoch).await? else { return gone_or(run, epoch, "its plan is gone").await };
    let has_chunks = state.parts.get(k).is_some_and(|p| p.next < p.end);
    if has_chunks {
        let Some(snapshot) = app.job_tables.snapshot_at(&job.ws, state.rev).await? else {
            return restart(run, epoch).await;
        };
        hold(app, job, &run.job.id, state.rev).await?;
        let source = job.source(app);
        let staging = job.staging(&run.job.id, epoch);
        loop {
            let Saved::At(now) = saved(run)? else { return Ok(Outcome::Handed) };
            if now.epoch != epoch {
                return Ok(Outcome::Handed);
            }
            let Some(part) = now.parts.get(k).copied().filter(|p| p.next < p.end) else { break };
            let i = part.next as usize;
            let out = write_chunk(&plan, i, &source, &*snapshot).await?;
            let (rows, bytes) = plan.chunks.get(i).map_or((0, 0), |c| (c.rows, c.end - c.start));
            let table = out.table.clone();
            if let Err(e) = app.job_tables.stage_rows(&job.ws, &staging, &table, out.rows).await {
                // Its staging aborted: cancelled, or planned again meanwhile.
                return match e {
                    StoreError::Conflict(_) => gone_or(run, epoch, &e.to_string()).await,
                    e => Err(e.into()),
                };
            }
            record(run, epoch, k, part.next, &out.tally, rows, bytes).await?;
            if run.out_of_time() {
                return Ok(Outcome::Paused);
            }
        }
    }
    let Saved::At(state) = saved(run)? else { return Ok(Outcome::Handed) };
    if state.epoch != epoch || !state.done() {
        return Ok(Outcome::Handed);
    }
    commit(run, job, &plan, &state).await
}

/// The plan of `epoch`, as its `Run` task stored it (`None`: gone).
async fn load_plan(run: &Run<'_>, job: &Job, epoch: u32) -> Result<Option<ImportPlan>, Stop> {
    let Some(bytes) = run.app.bundles.get(&job.plan_key(&run.job.id, epoch), MAX_PLAN_BYTES).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Stop::Failed(ApiError::internal(format!("job {}: its plan does not read: {e}", run.job.id))))
}

/// Any task of a job whose commit has begun: it finishes that commit.
pub async fn resume_commit(run: &mut Run<'_>) -> Result<Outcome, Stop> {
    let job = Job::of(run)?;
    let Saved::At(state) = saved(run)? else { return Ok(Outcome::Handed) };
    let Some(plan) = load_plan(run, &job, state.epoch).await? else {
        return gone_or(run, state.epoch, "its plan is gone").await;
    };
    commit(run, &job, &plan, &state).await
}

/// Records chunk `chunk` of part `k`: its tally counts only while it is the part's next chunk
/// (a chunk written twice is recorded once). A cancel stops the job here.
async fn record(
    run: &mut Run<'_>,
    epoch: u32,
    k: usize,
    chunk: u32,
    tally: &crate::api::import::ChunkTally,
    rows: u64,
    bytes: u64,
) -> Result<(), Stop> {
    run.update(|job| {
        if job.cancel_requested || job.state.is_final() {
            return;
        }
        let mut progress = None;
        edit_state(job, |state| {
            let Some(part) = state.parts.get_mut(k).filter(|p| p.next == chunk) else { return };
            if state.epoch != epoch {
                return;
            }
            part.next += 1;
            state.tallies.add(tally);
            state.rows_done += rows;
            state.bytes_done += bytes;
            progress = Some(state.progress());
        });
        if let Some(p) = progress {
            job.progress = super::worker::forward(job.progress, p);
        }
    })
    .await?;
    // The record as stored by this update: a cancel asked for meanwhile is seen here.
    if run.job.cancel_requested {
        return Err(Stop::Cancelled);
    }
    Ok(())
}

/// The last chunk is recorded: one finish makes every staged row visible, on the current head.
async fn commit(run: &mut Run<'_>, job: &Job, plan: &ImportPlan, state: &State) -> Result<Outcome, Stop> {
    let app = run.app;
    let (staged, reply) = finish(plan, &state.tallies)?;
    // Exclusive with a failure or cancel recording the end first (both are compare-and-set on
    // the record): whichever lands first decides.
    let epoch = state.epoch;
    run.update(|job| {
        if job.state.is_final() || job.cancel_requested {
            return;
        }
        edit_state(job, |s| {
            if s.epoch == epoch {
                s.committing = true;
            }
        });
    })
    .await?;
    if run.job.state.is_final() {
        return Ok(Outcome::Handed);
    }
    if !committing(&run.job) {
        return if run.job.cancel_requested { Err(Stop::Cancelled) } else { Ok(Outcome::Handed) };
    }
    let staging = job.staging(&run.job.id, state.epoch);
    match app.job_tables.finish_staging(&job.ws, &staging, staged).await {
        Ok(_) => {}
        Err(StoreError::Conflict(why)) => {
            // Nothing aborts a committing staging: a refusal is the workspace's delete.
            run.reload().await?;
            if run.job.state.is_final() {
                return Ok(Outcome::Handed);
            }
            tracing::info!(job = %run.job.id, %why, "an import job's finish was refused");
            return Err(deleted(job));
        }
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = app.job_tables.release_revision(&job.ws, &run.job.id).await {
        // It expires by itself; compaction waits for it until then.
        tracing::warn!(job = %run.job.id, error = %e, "releasing an import job's lease");
    }
    Ok(Outcome::Done(reply.data))
}

fn deleted(job: &Job) -> Stop {
    Stop::Failed(ApiError::conflict(format!(
        "Workspace '{}' was deleted while the import ran; nothing was imported",
        job.request.workspace_id
    )))
}

/// A task found its staging or plan gone: when the job was cancelled or planned again, that is
/// why (nothing to do); otherwise it is a fault.
async fn gone_or(run: &mut Run<'_>, epoch: u32, why: &str) -> Result<Outcome, Stop> {
    run.reload().await?;
    if run.job.cancel_requested {
        return Err(Stop::Cancelled);
    }
    if run.job.state.is_final() {
        return Ok(Outcome::Handed);
    }
    match saved(run)? {
        Saved::At(state) if state.epoch == epoch => Err(Stop::Retry(format!("job {}: {why}", run.job.id))),
        _ => Ok(Outcome::Handed),
    }
}

/// The plan's revision can no longer be read (SQLite moved on): the job plans again. The `Run`
/// task does it (it holds the claim), so the restart is marked and that task sent.
async fn restart(run: &mut Run<'_>, epoch: u32) -> Result<Outcome, Stop> {
    tracing::info!(job = %run.job.id, epoch, "the workspace moved past an import job's revision: planning again");
    run.update(|job| {
        let Some(Value::Object(checkpoint)) = job.checkpoint.as_mut() else { return };
        let Some(state) = checkpoint.get("run").and_then(|v| serde_json::from_value::<State>(v.clone()).ok()) else {
            return;
        };
        if state.epoch == epoch {
            checkpoint.insert("run".into(), json!({"restart": epoch + 1, "existed": state.existed}));
        }
    })
    .await?;
    Ok(Outcome::Restart)
}

/// Drops epoch `epoch`'s staging and plan (nothing of it was visible).
async fn drop_epoch(app: &App, job: &Job, job_id: &str, epoch: u32) {
    if let Err(e) = app.job_tables.abort_staging(&job.ws, &job.staging(job_id, epoch)).await {
        tracing::warn!(job = %job_id, error = %e, "aborting an import job's staging");
    }
    let _ = app.bundles.delete(&job.plan_key(job_id, epoch)).await;
}

/// A failed or cancelled import: its staging is dropped (none of it was ever visible) and its
/// lease released.
pub async fn abandon(run: &Run<'_>) -> Result<(), ApiError> {
    let Ok(job) = Job::of(run) else { return Ok(()) };
    if let Ok(Saved::At(state)) = saved(run) {
        run.app.job_tables.abort_staging(&job.ws, &job.staging(&run.job.id, state.epoch)).await?;
    }
    run.app.job_tables.release_revision(&job.ws, &run.job.id).await.map_err(ApiError::from)
}

/// After the job ended (whichever way): its plans and its copy of an inline bundle go. `epoch`
/// is the last the job reached (every one up to it is tried: a restart is rare).
pub async fn cleanup(app: &App, job: &crate::store::jobs::JobRecord, epoch: u32) {
    let Some(found) = Job::of_record(job) else { return };
    for e in 0..=epoch {
        let _ = app.bundles.delete(&found.plan_key(&job.id, e)).await;
    }
    if found.bundle.owned {
        let _ = app.bundles.delete(&found.bundle.key).await;
    }
}

/// Changes the job's saved state in place (nothing when it has none, or one of a restart).
fn edit_state(job: &mut crate::store::jobs::JobRecord, change: impl FnOnce(&mut State)) {
    let Some(Value::Object(checkpoint)) = job.checkpoint.as_mut() else { return };
    let Some(mut state) = checkpoint.get("run").and_then(|v| serde_json::from_value::<State>(v.clone()).ok()) else {
        return;
    };
    change(&mut state);
    if let Ok(value) = serde_json::to_value(&state) {
        checkpoint.insert("run".into(), value);
    }
}

/// The job's commit has begun (see [`State::committing`]).
pub fn committing(job: &crate::store::jobs::JobRecord) -> bool {
    let run = job.checkpoint.as_ref().and_then(|c| c.get("run"));
    run.and_then(|r| r.get("committing")).and_then(Value::as_bool).unwrap_or(false)
}

/// The epoch a checkpoint's state is at (for [`cleanup`]).
pub fn epoch_of(state: Option<&Value>) -> u32 {
    let at = state.and_then(|r| r.get("epoch").or_else(|| r.get("restart"))).and_then(Value::as_u64);
    at.and_then(|e| u32::try_from(e).ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_chunk_once_in_order() {
        for (chunks, per) in [(0, 20), (1, 20), (20, 20), (21, 20), (199, 20), (10_000, 20), (7, 1), (12, 5)] {
            let parts = split(chunks, per);
            assert!(!parts.is_empty() && parts.len() <= MAX_PARTS, "{chunks}/{per}: {} parts", parts.len());
            let mut next = 0;
            for p in &parts {
                assert_eq!(p.next, next, "{chunks}/{per}: {parts:?}");
                assert!(p.end >= p.next);
                next = p.end;
            }
            assert_eq!(next as usize, chunks, "{chunks}/{per}");
            if chunks > 0 && chunks.div_ceil(per) <= MAX_PARTS {
                assert_eq!(parts.len(), chunks.div_ceil(per), "{chunks}/{per}");
            }
        }
    }
}
