//! Jobs: exports and imports of any size, done by the worker function (`functions/jobs-worker`)
//! in chunks, with a checkpoint in the job record after each, so a job longer than one Lambda
//! invocation goes on in a fresh one and a worker that dies resumes from its last checkpoint.
//!
//! - The routes (`api::jobs`) store a [`JobRecord`] and send a [`JobMessage`]; the worker
//!   ([`worker`]) takes messages from the queue (SQS in AWS, a SQLite queue locally) and runs
//!   the task: [`export::run`] or [`import::run`].
//! - One worker at a time runs a job's main task: it *claims* the job (compare-and-set on the
//!   record) for the rest of its invocation; a duplicate message meanwhile is handed back to the
//!   queue, a message after a worker died finds the claim expired and takes over.
//! - All or nothing: an export's bundle appears only when its upload completes; an import's rows
//!   are staged (`JobTables::stage_rows`) and made visible by one finish at the end. A failed or
//!   cancelled job leaves nothing visible.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::ApiError;
use crate::model::Principal;
use crate::queue::{JobMessage, JobTask};
use crate::store::jobs::{JobRecord, JobState};

pub mod export;
pub mod hash;
pub mod import;
pub mod lambda;
pub mod worker;

/// The principal a job acts as: the starter, as its token said when the job started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPrincipal {
    pub sub: String,
    pub username: String,
    pub organization: String,
    pub role: Option<String>,
}

impl From<&Principal> for JobPrincipal {
    fn from(p: &Principal) -> Self {
        Self {
            sub: p.sub.clone(),
            username: p.username.clone(),
            organization: p.organization.clone(),
            role: p.role.clone(),
        }
    }
}

impl From<&JobPrincipal> for Principal {
    fn from(p: &JobPrincipal) -> Self {
        Principal {
            sub: p.sub.clone(),
            username: p.username.clone(),
            organization: p.organization.clone(),
            role: p.role.clone(),
            jti: None,
        }
    }
}

/// How long one invocation works on a job before it checkpoints and hands the rest to a fresh
/// one: well inside Lambda's 15 minutes, with room for the last chunk and the checkpoint.
pub const DEFAULT_BUDGET_SECS: u64 = 600;

/// Sends `task` of `job` to the worker.
pub async fn enqueue(app: &App, job: &JobRecord, task: JobTask) -> Result<(), ApiError> {
    let message = JobMessage {
        org: job.owner.org.clone(),
        user: job.owner.user.clone().unwrap_or_default(),
        job_id: job.id.clone(),
        task,
    };
    app.queue.send(&message).await.map_err(ApiError::from)
}

/// Marks `job` finished in `state` (not yet stored): it expires after the configured time.
pub fn end(app: &App, job: &mut JobRecord, state: JobState) {
    job.state = state;
    job.updated_at = crate::model::now_timestamp();
    let ttl = i64::try_from(app.config.job_ttl_secs).unwrap_or(i64::MAX);
    job.expires_at = Some(crate::bundles::now_unix().saturating_add(ttl));
}
