//! The job records port: work that outlives one request (export and import jobs). One trait,
//! two adapters (SQLite locally, DynamoDB in AWS), one conformance suite
//! (`tests/tests/job_store_conformance.rs`).
//!
//! A job belongs to the user who started it: its [`JobRecord::owner`] is always that user's
//! user-scope owner key (whatever the scope of the workspace it works on), and it is only ever
//! looked up under the caller's own owner, so anyone else's job is exactly as absent as a missing
//! one (404). Its result may link to secrets.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreResult;
use crate::model::Owner;

/// `job_` + 12 hex digits of the creation time in milliseconds + 12 random hex digits: ids sort
/// by creation time, so a job list is newest first by id alone.
pub const JOB_ID_PREFIX: &str = "job_";

/// A new job id (see [`JOB_ID_PREFIX`]).
pub fn new_job_id() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{JOB_ID_PREFIX}{:012x}{}", millis & 0xffff_ffff_ffff, crate::model::new_id("", 12))
}

/// Whether `id` is of the shape [`new_job_id`] makes (checked before any lookup).
pub fn valid_job_id(id: &str) -> bool {
    id.strip_prefix(JOB_ID_PREFIX).is_some_and(|h| h.len() == 24 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Export,
    Import,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Succeeded, failed or cancelled: nothing more happens to the job, and it expires.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// How far one measure of a job has come; `total` is `None` until it is known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub done: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub tables: Counter,
    pub rows: Counter,
    pub bytes: Counter,
}

/// Why a job failed: the status and message the synchronous route would have answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    pub status: u16,
    pub message: String,
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    /// The user who started it (always a user-scope owner).
    pub owner: Owner,
    pub kind: JobKind,
    pub state: JobState,
    /// Hex; unique among the owner's live jobs: the same request sent again finds this job.
    pub idempotency_key: String,
    /// What the worker needs to do the job (the checked request), never shown as such.
    pub request: Value,
    pub progress: Progress,
    /// At the end: exactly what the synchronous route would have put in `data`.
    pub result: Option<Value>,
    pub error: Option<JobFailure>,
    /// The worker's own state between chunks and invocations; never shown to the caller.
    pub checkpoint: Option<Value>,
    /// A cancel was asked for; the worker stops at its next chunk and leaves nothing visible.
    pub cancel_requested: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Unix seconds after which the job is gone (set when it ends); `None` while it is live.
    pub expires_at: Option<i64>,
    /// 1 when created, one more on every update: updates are compare-and-set on it.
    pub version: u64,
}

/// The job records.
#[async_trait]
pub trait Jobs: Send + Sync {
    /// Stores `job` (its `version` is 1) unless `job.owner` has a live job with the same
    /// `idempotency_key`; answers the stored job and whether it is the new one. An expired job
    /// (past `expires_at`) does not count, and is replaced.
    async fn create_job(&self, job: JobRecord) -> StoreResult<(JobRecord, bool)>;

    /// The job `id` of `owner`; `None` when absent, expired, or another owner's.
    async fn get_job(&self, owner: &Owner, id: &str) -> StoreResult<Option<JobRecord>>;

    /// Up to `limit` live jobs of `owner`, newest first (by id, descending), strictly after the
    /// id `after`.
    async fn list_jobs(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<Vec<JobRecord>>;

    /// Replaces the stored job with `job` if the stored `version` is still `job.version`, and
    /// stores it as `job.version + 1`, which it answers. `Conflict` when another update got in
    /// first (or the job is gone): nothing is written, the caller reads again and decides again.
    async fn update_job(&self, job: &JobRecord) -> StoreResult<JobRecord>;
}
