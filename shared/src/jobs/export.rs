//! Export jobs: the bundle of one revision, streamed into the bundle store as a resumable
//! upload. After each upload part (at least 5 MiB, S3's minimum) the job saves where the writing
//! stands (the cursor, the upload's parts, the hash so far); an invocation out of time stops
//! there and a fresh one goes on, and a worker that died resumes from the last save: no row is
//! lost or written twice, since a resumed upload starts exactly at the checkpointed bytes.
//!
//! The revision is held with a lease against compaction for as long as the job runs. SQLite
//! keeps no old revisions: a resumed job whose revision is gone starts again on the current one
//! (its half-written upload is dropped), so the bundle is still one revision, whole.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::hash::ResumableSha256;
use super::worker::{Outcome, Run, Stop};
use crate::api::bundles::{bundle_key, new_bundle_id, tenant};
use crate::api::export::{check_access, staged_answer, with_link, Bundle, ByteSink, Cursor, ExportSpec, Layout};
use crate::api::workspaces::workspace_json;
use crate::api::Call;
use crate::app::App;
use crate::bundles::{now_unix, Upload};
use crate::error::ApiError;
use crate::model::{now_timestamp, Principal};
use crate::store::jobs::{Counter, JobRecord, Progress};

/// Bytes between checkpoints: S3's smallest part.
const CHECKPOINT_BYTES: u64 = 5 * 1024 * 1024;
/// How long a lease holds the revision past now; each invocation takes it again.
const LEASE_SECS: u64 = 2 * 3600;

/// What an export job saves between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rev: u64,
    key: String,
    /// The upload's own resume state, from its last checkpoint.
    upload: Option<Value>,
    hash: ResumableSha256,
    size: u64,
    cursor: Cursor,
}

fn spec(run: &Run<'_>) -> Result<ExportSpec, Stop> {
    serde_json::from_value(run.job.request.get("spec").cloned().unwrap_or_default())
        .map_err(|e| Stop::Failed(ApiError::internal(format!("job {}: no export spec ({e})", run.job.id))))
}

fn saved(run: &Run<'_>) -> Option<State> {
    run.state().and_then(|s| serde_json::from_value(s.clone()).ok())
}

pub async fn run(run: &mut Run<'_>) -> Result<Outcome, Stop> {
    let app = run.app;
    let principal = run.principal()?;
    let spec = spec(run)?;
    // Asked again: the workspace may have gone, or the caller lost the right to its secrets.
    let record = check_access(app, &principal, &spec).await?;
    let ws = spec.ws(&principal);
    let lease = run.job.id.clone();

    let reopened = match saved(run) {
        Some(state) => match app.job_tables.snapshot_at(&ws, state.rev).await? {
            Some(snapshot) => Some((snapshot, state)),
            None => {
                // Its revision is gone (SQLite moved on): start again, on the current one.
                drop_upload(app, &state).await;
                None
            }
        },
        None => None,
    };
    let (snapshot, mut state) = match reopened {
        Some(found) => found,
        None => {
            let snapshot = app.store.snapshot(&ws).await?;
            let key = bundle_key(&tenant(&principal), &new_bundle_id());
            let state = State {
                rev: snapshot.revision(),
                key,
                upload: None,
                hash: ResumableSha256::default(),
                size: 0,
                cursor: Cursor::new(now_timestamp()),
            };
            (snapshot, state)
        }
    };
    app.job_tables.hold_revision(&ws, &lease, state.rev, now_unix().max(0) as u64 + LEASE_SECS).await?;
    let layout = Layout::read(&*snapshot, &principal, &ws).await?;
    let upload = match &state.upload {
        Some(saved) => app.bundles.resume_upload(&state.key, saved).await?,
        None => app.bundles.create_upload(&state.key).await?,
    };
    let totals = (layout.total_tables(), layout.total_rows());
    run.save(progress(&state, totals), to_value(&state)?).await?;

    let bundle = Bundle { app, snapshot: &*snapshot, ws: &ws, include_secrets: spec.include_secrets, layout: &layout };
    let mut cursor = state.cursor.clone();
    let mut sink = JobSink { run, upload: Some(upload), state: &mut state, since: 0, totals, stop: None };
    let written = bundle.write(&mut sink, &mut cursor, &workspace_json(&record)).await;
    let JobSink { upload, stop, .. } = sink;
    drop(snapshot);
    let Some(upload) = upload else { return Err(Stop::Retry("the upload was lost".into())) };
    match written {
        Ok(true) => {}
        Ok(false) => {
            // Stopped at a checkpoint: out of time (go on in a fresh invocation) or cancelled.
            return match stop {
                Some(Halt::Pause) => {
                    upload.suspend();
                    Ok(Outcome::Paused)
                }
                Some(Halt::Stop(Stop::Retry(why))) => {
                    upload.suspend();
                    Err(Stop::Retry(why))
                }
                Some(Halt::Stop(stop)) => {
                    let _ = upload.abort().await;
                    Err(stop)
                }
                None => {
                    upload.suspend();
                    Err(Stop::Retry("the export stopped without saying why".into()))
                }
            };
        }
        Err(e) => {
            // Whatever it was, the upload is spoilt past its last checkpoint; resuming truncates it.
            upload.suspend();
            return Err(e.into());
        }
    }
    let size = upload.finish().await?;
    let sha256 = state.hash.clone().finish_hex();
    let (mut result, _) = staged_answer(&cursor.totals, &layout, &spec, &state.key, size, &sha256);
    result["message"] = json!(cursor.totals.message(&layout));
    if let Err(e) = app.job_tables.release_revision(&ws, &lease).await {
        // It expires by itself; compaction waits for it until then.
        tracing::warn!(job = %run.job.id, error = %e, "releasing an export job's lease");
    }
    state.size = size;
    state.cursor = cursor;
    run.save(progress(&state, totals), Value::Null).await?;
    Ok(Outcome::Done(result))
}

/// A failed or cancelled export: its upload is dropped (nothing was ever visible) and its lease
/// released.
pub async fn abandon(run: &Run<'_>) -> Result<(), ApiError> {
    if let Some(state) = saved(run) {
        drop_upload(run.app, &state).await;
    }
    let (principal, spec) = match (run.principal(), spec(run)) {
        (Ok(p), Ok(s)) => (p, s),
        _ => return Ok(()),
    };
    run.app.job_tables.release_revision(&spec.ws(&principal), &run.job.id).await.map_err(ApiError::from)
}

async fn drop_upload(app: &App, state: &State) {
    if let Some(saved) = &state.upload {
        if let Ok(upload) = app.bundles.resume_upload(&state.key, saved).await {
            let _ = upload.abort().await;
        }
    }
}

/// A finished export's result as a caller sees it: with a link to its bundle signed now, valid
/// for the configured link lifetime (the bundle is kept as long as the job).
pub async fn with_fresh_link(
    app: &App,
    principal: &Principal,
    call: &Call,
    result: &Value,
    job: &JobRecord,
) -> Result<Value, ApiError> {
    let Some(id) = result.get("bundle").and_then(|b| b.get("id")).and_then(Value::as_str) else {
        return Ok(result.clone());
    };
    let key = bundle_key(&tenant(principal), id);
    let now = now_unix();
    let mut expires = now.saturating_add(i64::try_from(app.config.bundle_ttl_secs).unwrap_or(i64::MAX));
    if let Some(job_expires) = job.expires_at.filter(|e| *e > now) {
        expires = expires.min(job_expires);
    }
    let mut data = result.clone();
    if let Some(obj) = data.as_object_mut() {
        obj.remove("message");
    }
    with_link(app, data, &key, expires, &call.public_base).await
}

fn progress(state: &State, (tables, rows): (u64, u64)) -> Progress {
    Progress {
        tables: Counter { done: state.cursor.tables_done(), total: Some(tables) },
        rows: Counter { done: state.cursor.rows_done(), total: Some(rows) },
        bytes: Counter { done: state.size, total: None },
    }
}

fn to_value(state: &State) -> Result<Value, Stop> {
    serde_json::to_value(state).map_err(|e| Stop::Retry(format!("an export checkpoint does not serialize: {e}")))
}

/// The upload, hashed as it goes, checkpointed every [`CHECKPOINT_BYTES`].
struct JobSink<'r, 'a> {
    run: &'r mut Run<'a>,
    upload: Option<Box<dyn Upload>>,
    state: &'r mut State,
    /// Bytes since the last checkpoint.
    since: u64,
    totals: (u64, u64),
    /// Why the writing stopped, when the sink stopped it.
    stop: Option<Halt>,
}

enum Halt {
    /// Out of time, at a checkpoint: a fresh invocation goes on.
    Pause,
    Stop(Stop),
}

#[async_trait::async_trait]
impl ByteSink for JobSink<'_, '_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        let upload = self.upload.as_mut().ok_or_else(|| ApiError::internal("export job upload already closed"))?;
        upload.write(bytes).await?;
        self.state.hash.update(bytes);
        self.state.size += bytes.len() as u64;
        self.since += bytes.len() as u64;
        Ok(())
    }

    async fn page_done(&mut self, cursor: &Cursor) -> Result<bool, ApiError> {
        if self.since < CHECKPOINT_BYTES {
            return Ok(true);
        }
        let upload = self.upload.as_mut().ok_or_else(|| ApiError::internal("export job upload already closed"))?;
        let Some(at) = upload.checkpoint().await? else { return Ok(true) };
        self.state.upload = Some(at);
        self.state.cursor = cursor.clone();
        self.since = 0;
        let value = serde_json::to_value(&*self.state).map_err(ApiError::internal)?;
        if let Err(stop) = self.run.save(progress(self.state, self.totals), value).await {
            self.stop = Some(Halt::Stop(stop));
            return Ok(false);
        }
        if self.run.out_of_time() {
            self.stop = Some(Halt::Pause);
            return Ok(false);
        }
        Ok(true)
    }
}
