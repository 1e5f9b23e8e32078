//! The job routes. `"async": true` on export-tables or import-tables starts a job ([`start`],
//! 202 with `{job_id, state, status_url}`); `GET /workspaces/jobs/{job_id}` shows one,
//! `GET /workspaces/jobs` lists the caller's, `POST /workspaces/jobs/{job_id}/cancel` stops one.
//!
//! A job is its starter's alone: it is stored under the caller's user-scope owner key and only
//! ever looked up there, so anyone else's job (another member of the organization included) is a
//! 404, exactly like a missing one. Its result may link to secrets.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{paging, Call, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::jobs::{self, JobPrincipal};
use crate::model::{now_timestamp, Principal, Scope};
use crate::queue::JobTask;
use crate::routes::{route, Endpoint};
use crate::store::jobs::{new_job_id, valid_job_id, JobKind, JobRecord, JobState};

/// Longest `Idempotency-Key` taken (Stripe's limit too).
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// A body-derived key that keeps finding finished jobs gives up after this many (each finished
/// job with the same body is one hop): far more than a caller repeats a request within a job's life.
const MAX_KEY_HOPS: usize = 50;

/// Starts (or, for the same request, finds) the job that does `kind` with `request`, and answers
/// 202. The same request sent again finds the same job: with an `Idempotency-Key`, for as long as
/// the job is kept; without one (the key is then the request itself), while the job is queued or
/// running, so the same export asked for again after the first finished is a new export.
pub async fn start(
    app: &App,
    principal: &Principal,
    call: &Call,
    kind: JobKind,
    request: Value,
) -> Result<Reply, ApiError> {
    Ok(start_job(app, principal, call, kind, request).await?.0)
}

/// [`start`], also saying whether this request created the job (false: it found it).
pub async fn start_job(
    app: &App,
    principal: &Principal,
    call: &Call,
    kind: JobKind,
    request: Value,
) -> Result<(Reply, bool), ApiError> {
    let owner = principal.owner(Scope::User);
    let (mut key, from_header) = idempotency_key(call, kind)?;
    let mut hops = 0;
    let (job, created) = loop {
        let record = JobRecord::queued(new_job_id(), owner.clone(), kind, key.clone(), request.clone());
        let (job, created) = app.jobs.create_job(record).await?;
        if created || from_header || !job.state.is_final() {
            break (job, created);
        }
        hops += 1;
        if hops >= MAX_KEY_HOPS {
            return Err(ApiError::conflict(format!(
                "This request was sent {hops} times already; send an Idempotency-Key header to start it again"
            )));
        }
        // The same body after that job finished: a new job, keyed after the finished one.
        key = hex::encode(Sha256::digest(format!("{key}\0{}", job.id).as_bytes()));
    };
    // Also for a job found again while still queued: a message lost between the record and the
    // queue is made good by the retry; the worker's claim makes a duplicate message harmless.
    if job.state == JobState::Queued {
        jobs::enqueue(app, &job, JobTask::Run).await?;
    }
    let data = json!({"job_id": job.id, "state": job.state, "status_url": status_url(call, principal, &job.id)});
    let message = if created {
        format!("Job {} started: poll status_url for its progress and result", job.id)
    } else {
        format!("Job {} was already started by the same request: poll status_url", job.id)
    };
    Ok((Reply { status: 202, ..Reply::ok(data, message) }, created))
}

/// The principal a job acts as, recorded when it starts (its role then, too).
pub fn job_principal(principal: &Principal) -> JobPrincipal {
    JobPrincipal::from(principal)
}

/// `GET /workspaces/jobs/{job_id}`.
pub async fn get(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let job = find(app, principal, call).await?;
    let data = view(app, principal, call, &job).await?;
    let message = format!("Job {} is {}", job.id, state_word(&job));
    Ok(Reply::ok(data, message))
}

/// `GET /workspaces/jobs?limit=&next_token=`: the caller's jobs, newest first, paged.
pub async fn list(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let limit = paging::limit(call)?.unwrap_or(DEFAULT_PAGE);
    let after = call.query("next_token").map(|t| paging::decode_token(t, valid_job_id)).transpose()?;
    let owner = principal.owner(Scope::User);
    // One more than asked: whether a next page exists, without an empty last page.
    let mut found = app.jobs.list_jobs(&owner, after.as_deref(), limit + 1).await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let mut items = Vec::with_capacity(found.len());
    for job in &found {
        items.push(view(app, principal, call, job).await?);
    }
    let mut reply = Reply::ok(Value::Array(items), format!("Found {} jobs", found.len()));
    if let (true, Some(last)) = (more, found.last()) {
        reply.message = format!("Found {} jobs; more follow: pass next_token to continue", found.len());
        reply.extra.insert("next_token".into(), Value::String(paging::encode_token(&last.id)));
    }
    Ok(reply)
}

/// A page of jobs when the caller names no `limit`.
const DEFAULT_PAGE: usize = 100;

/// `POST /workspaces/jobs/{job_id}/cancel`: a queued job is cancelled at once; a running one
/// stops at its next chunk, and nothing of it becomes visible. A finished job is a 409.
pub async fn cancel(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let mut job = find(app, principal, call).await?;
    for _ in 0..super::COMMIT_ATTEMPTS {
        if job.state.is_final() {
            return Err(ApiError::conflict(format!(
                "Job {} has already {}; nothing to cancel",
                job.id,
                state_word(&job)
            )));
        }
        let mut next = job.clone();
        next.cancel_requested = true;
        next.updated_at = now_timestamp();
        if next.state == JobState::Queued {
            jobs::end(app, &mut next, JobState::Cancelled);
        }
        match app.jobs.update_job(&next).await {
            Ok(stored) => {
                let data = view(app, principal, call, &stored).await?;
                let message = match stored.state {
                    JobState::Cancelled => format!("Job {} is cancelled; nothing of it became visible", stored.id),
                    _ => format!("Job {} will stop at its next step; nothing of it becomes visible", stored.id),
                };
                return Ok(Reply::ok(data, message));
            }
            Err(crate::store::StoreError::Conflict(_)) => job = find(app, principal, call).await?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(format!("Job {} kept changing; retry the cancel", job.id)))
}

async fn find(app: &App, principal: &Principal, call: &Call) -> Result<JobRecord, ApiError> {
    let id = call.param("job_id")?;
    let missing = || ApiError::not_found(format!("Job '{}' not found", id.chars().take(64).collect::<String>()));
    if !valid_job_id(id) {
        return Err(missing());
    }
    app.jobs.get_job(&principal.owner(Scope::User), id).await?.ok_or_else(missing)
}

/// What a caller sees of a job: never its request or checkpoint. A finished export's bundle link
/// is signed now (the bundle outlives any one link).
async fn view(app: &App, principal: &Principal, call: &Call, job: &JobRecord) -> Result<Value, ApiError> {
    let result = match (&job.result, job.kind) {
        (Some(result), JobKind::Export) => {
            Some(jobs::export::with_fresh_link(app, principal, call, result, job).await?)
        }
        (result, _) => result.clone(),
    };
    Ok(json!({
        "job_id": job.id,
        "kind": job.kind,
        "state": job.state,
        // As recorded: an import's request names it, an export's names it in its spec.
        "workspace_id": job.request.get("workspace_id").or_else(|| job.request.get("spec")?.get("workspace_id")),
        "progress": job.progress,
        "result": result,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "expires_at": job.expires_at.map(super::bundles::timestamp_of),
        "status_url": status_url(call, principal, &job.id),
    }))
}

fn state_word(job: &JobRecord) -> &'static str {
    match job.state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// The absolute URL of `GET …/workspaces/jobs/{job_id}` where the caller reached us.
pub fn status_url(call: &Call, principal: &Principal, job_id: &str) -> String {
    let path = route(Endpoint::GetJob)
        .full_path()
        .replace("{org}", &principal.organization)
        .replace("{user}", &principal.username)
        .replace("{job_id}", job_id);
    format!("{}{path}", call.public_base)
}

/// The caller's `Idempotency-Key` (true), else one derived from the request itself (false):
/// the kind, the workspace in the path and the body's bytes.
fn idempotency_key(call: &Call, kind: JobKind) -> Result<(String, bool), ApiError> {
    let mut h = Sha256::new();
    h.update(format!("{kind:?}").as_bytes());
    h.update([0]);
    if let Some(key) = &call.idempotency_key {
        let key = key.trim();
        if key.is_empty()
            || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
            || !key.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(ApiError::bad_request(format!(
                "Idempotency-Key: 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
            )));
        }
        h.update(b"key\0");
        h.update(key.as_bytes());
        return Ok((hex::encode(h.finalize()), true));
    }
    h.update(b"body\0");
    h.update(call.params.get("workspace_id").map(String::as_bytes).unwrap_or_default());
    h.update([0]);
    h.update(&call.body);
    Ok((hex::encode(h.finalize()), false))
}
