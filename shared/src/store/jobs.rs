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

use super::{StoreError, StoreResult};
use crate::model::Owner;

/// `job_` + 12 hex digits of the creation time in milliseconds + 12 random hex digits: ids sort
/// by creation time, so a job list is newest first by id alone.
pub const JOB_ID_PREFIX: &str = "job_";

/// A stored record's JSON is at most this big: a DynamoDB item is at most 400 KB with its keys,
/// so both stores refuse more (`TooLarge`) rather than one of them failing on write.
pub const MAX_JOB_RECORD_BYTES: usize = 350_000;

/// A new job id (see [`JOB_ID_PREFIX`]): creation time first, so ids sort by it; 48 random bits
/// keep ids made in the same millisecond apart.
pub fn new_job_id() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    // 12 hex digits of milliseconds last until the year 10889.
    let millis = u64::try_from(millis).unwrap_or(u64::MAX) & 0xffff_ffff_ffff;
    crate::model::new_id(&format!("{JOB_ID_PREFIX}{millis:012x}"), 12)
}

/// Whether `raw` has the shape [`new_job_id`] makes (`job_` + 24 lowercase hex digits): what a
/// path parameter must be before it goes near a key.
pub fn valid_job_id(raw: &str) -> bool {
    raw.strip_prefix(JOB_ID_PREFIX)
        .is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Unix seconds now; the clock both stores judge expiry by.
pub fn now_unix() -> i64 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// A job is gone once `now` is past its `expires_at` (both stores filter by exactly this, since
/// DynamoDB's TTL deletes lazily).
pub fn is_expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| at < now)
}

/// The record's JSON as both stores keep it, refusing what a DynamoDB item could not hold.
pub fn record_json(job: &JobRecord) -> StoreResult<String> {
    let json = serde_json::to_string(job)
        .map_err(|e| StoreError::Internal(format!("job {} does not serialize: {e}", job.id)))?;
    if json.len() > MAX_JOB_RECORD_BYTES {
        return Err(StoreError::TooLarge(format!(
            "job {} is {} bytes of JSON, more than {MAX_JOB_RECORD_BYTES}",
            job.id,
            json.len()
        )));
    }
    Ok(json)
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

impl JobRecord {
    /// A new job as `start` stores it: queued, version 1, nothing done yet.
    pub fn queued(id: String, owner: Owner, kind: JobKind, idempotency_key: String, request: Value) -> Self {
        let now = crate::model::now_timestamp();
        Self {
            id,
            owner,
            kind,
            state: JobState::Queued,
            idempotency_key,
            request,
            progress: Progress::default(),
            result: None,
            error: None,
            checkpoint: None,
            cancel_requested: false,
            created_at: now.clone(),
            updated_at: now,
            expires_at: None,
            version: 1,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_valid_distinct_and_sort_by_creation() {
        let a = new_job_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_job_id();
        assert!(valid_job_id(&a) && valid_job_id(&b), "{a} {b}");
        assert_eq!(a.len(), JOB_ID_PREFIX.len() + 24);
        assert!(a < b, "{a} then {b}");
        let same_ms: std::collections::BTreeSet<String> = (0..1000).map(|_| new_job_id()).collect();
        assert_eq!(same_ms.len(), 1000);
    }

    #[test]
    fn job_ids_of_another_shape_are_refused() {
        for bad in [
            "",
            "job_",
            "job_0123456789abcdef0123456",
            "job_0123456789abcdef012345678",
            "job_0123456789ABCDEF01234567",
            "job_0123456789abcdef0123456g",
            "jab_0123456789abcdef01234567",
            "job_0123456789abcdef0123456#",
            " job_0123456789abcdef01234567",
        ] {
            assert!(!valid_job_id(bad), "{bad:?}");
        }
        assert!(valid_job_id("job_0123456789abcdef01234567"));
    }

    #[test]
    fn expiry_is_strictly_after_expires_at() {
        assert!(!is_expired(None, 100));
        assert!(!is_expired(Some(100), 100));
        assert!(is_expired(Some(99), 100));
    }
}
