//! The worker: one queue message at a time, each a task of one job. Delivery is at least once,
//! so every task is idempotent; a task that cannot go on now (a backend failing, the job claimed
//! by another invocation) is handed back to the queue and comes again.

use std::time::Instant;

use serde_json::{json, Value};

use super::{end, enqueue, export, import, JobPrincipal};
use crate::app::App;
use crate::error::ApiError;
use crate::model::{now_timestamp, Owner, Principal};
use crate::queue::{JobMessage, JobTask};
use crate::store::jobs::{JobFailure, JobKind, JobRecord, JobState};
use crate::store::StoreError;

/// A delivery past this many is the last: the job is failed rather than retried into the
/// dead-letter queue (whose redrive policy takes a message on its 5th receive).
pub const MAX_DELIVERIES: u32 = 4;
/// A claim outlives its invocation by this much (clocks of different hosts).
const CLAIM_SLACK_SECS: i64 = 5;

/// One message as the queue delivered it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

/// When an invocation should stop taking on work (`soft`), and when it ends (`hard`: Lambda's
/// deadline, which nothing of it outlives).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub soft: Instant,
    pub hard: Instant,
}

/// Runs a batch; answers the ids of the messages to hand back to the queue (Lambda's
/// `batchItemFailures`): each comes again after its visibility timeout.
pub async fn handle_batch(app: &App, deliveries: Vec<Delivery>, deadline: Deadlines) -> Vec<String> {
    let mut failed = Vec::new();
    for delivery in deliveries {
        if let Err(reason) = handle(app, &delivery, deadline).await {
            tracing::warn!(message_id = %delivery.message_id, %reason, "job task handed back to the queue");
            failed.push(delivery.message_id);
        }
    }
    failed
}

/// One message. `Err` hands it back to the queue (with why, for the log).
pub async fn handle(app: &App, delivery: &Delivery, deadline: Deadlines) -> Result<(), String> {
    let message: JobMessage = match serde_json::from_str(&delivery.body) {
        Ok(m) => m,
        Err(e) => {
            // Ours never look like this; retrying would not change it.
            tracing::error!(error = %e, "dropping a queue message that is not a job message");
            return Ok(());
        }
    };
    let owner = Owner::user(&message.org, &message.user);
    let job = match app.jobs.get_job(&owner, &message.job_id).await {
        Ok(Some(job)) => job,
        // Expired, or never stored: nothing to do.
        Ok(None) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if job.state.is_final() {
        if job.kind == JobKind::Import {
            // Cancelled while queued: its copy of the bundle goes (idempotent).
            import::cleanup(app, &job, 0).await;
        }
        return Ok(());
    }
    let mut run = Run { app, job, deadline, claim: None };
    // Once an import's commit has begun it decides how the job ends: whatever this task was
    // (its worker may have died mid-finish), it finishes that commit (idempotent), never fails
    // or cancels the job under it.
    if run.job.kind == JobKind::Import && import::committing(&run.job) {
        let outcome = import::resume_commit(&mut run).await;
        return run.finish(outcome, message.task).await;
    }
    // A message that keeps coming back fails its job.
    if delivery.receive_count > MAX_DELIVERIES {
        let why = format!("the worker failed on this job {} times; see the worker's log", delivery.receive_count - 1);
        return run.finish(Err(Stop::Failed(ApiError::new(500, why))), message.task).await;
    }
    let outcome = match message.task {
        JobTask::Run => match run.claim().await {
            Ok(()) => match run.job.kind {
                JobKind::Export => export::run(&mut run).await,
                JobKind::Import => import::run(&mut run).await,
            },
            Err(stop) => Err(stop),
        },
        JobTask::Part { part } => import::part(&mut run, part).await,
    };
    run.finish(outcome, message.task).await
}

/// Where a task ended.
#[derive(Debug)]
pub enum Outcome {
    /// The job is done: this is its result.
    Done(Value),
    /// The task goes on in a fresh invocation from the checkpoint just saved.
    Paused,
    /// The job starts over in a fresh `Run` task (an import whose revision is gone).
    Restart,
    /// This task's share is done; another task goes on (fanned-out parts).
    Handed,
}

/// Why a task stopped short.
#[derive(Debug)]
pub enum Stop {
    /// The caller asked to cancel: nothing of the job may become visible.
    Cancelled,
    /// The job cannot succeed: this is what the synchronous route would have answered.
    Failed(ApiError),
    /// Not now (a backend failing, the job claimed elsewhere): the message comes again.
    Retry(String),
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        // 503 is "try again"; 500 is a fault a retry may or may not fix, so it gets the
        // deliveries the queue allows before the job is failed.
        if e.status >= 500 {
            Stop::Retry(e.message)
        } else {
            Stop::Failed(e)
        }
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) | StoreError::Internal(m) => Stop::Retry(m),
            other => Stop::Failed(ApiError::from(other)),
        }
    }
}

/// One task of one job in one invocation.
pub struct Run<'a> {
    pub app: &'a App,
    pub job: JobRecord,
    deadline: Deadlines,
    /// This invocation's claim token, once it holds the job.
    claim: Option<String>,
}

impl<'a> Run<'a> {
    /// Whether to stop and checkpoint now rather than take on another chunk.
    pub fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline.soft
    }

    /// The job's starter, as recorded when it started.
    pub fn principal(&self) -> Result<Principal, Stop> {
        let p: JobPrincipal = serde_json::from_value(self.job.request.get("principal").cloned().unwrap_or_default())
            .map_err(|e| Stop::Failed(ApiError::internal(format!("job {} has no principal: {e}", self.job.id))))?;
        Ok(Principal::from(&p))
    }

    /// The runner's own state from the last checkpoint.
    pub fn state(&self) -> Option<&Value> {
        self.job.checkpoint.as_ref().and_then(|c| c.get("run")).filter(|v| !v.is_null())
    }

    /// Takes the job for this invocation: refused (retry later) while another invocation holds
    /// an unexpired claim; a claim whose holder died expires at its deadline.
    async fn claim(&mut self) -> Result<(), Stop> {
        let token = crate::model::new_id("c", 16);
        let left = self.deadline.hard.saturating_duration_since(Instant::now()).as_secs();
        let until = crate::bundles::now_unix() + i64::try_from(left).unwrap_or(i64::MAX / 2) + CLAIM_SLACK_SECS;
        for _ in 0..5 {
            let held = self.job.checkpoint.as_ref().and_then(|c| c.get("claim"));
            let live = held
                .and_then(|c| c.get("until"))
                .and_then(Value::as_i64)
                .is_some_and(|u| u > crate::bundles::now_unix());
            if live {
                return Err(Stop::Retry(format!("job {} is being run by another invocation", self.job.id)));
            }
            if self.job.cancel_requested {
                return Err(Stop::Cancelled);
            }
            let mut next = self.job.clone();
            next.state = JobState::Running;
            next.updated_at = now_timestamp();
            let run = self.state().cloned().unwrap_or(Value::Null);
            next.checkpoint = Some(json!({"claim": {"token": token, "until": until}, "run": run}));
            match self.app.jobs.update_job(&next).await {
                Ok(stored) => {
                    self.job = stored;
                    self.claim = Some(token);
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => self.reload().await?,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Stop::Retry(format!("job {} kept changing while being claimed", self.job.id)))
    }

    /// Stores progress and the runner's state. A cancel asked for meanwhile stops the job here.
    pub async fn save(&mut self, progress: crate::store::jobs::Progress, state: Value) -> Result<(), Stop> {
        for _ in 0..5 {
            if self.job.cancel_requested {
                return Err(Stop::Cancelled);
            }
            let mut next = self.job.clone();
            // Progress only moves forward, whoever saved last.
            next.progress = forward(self.job.progress, progress);
            next.updated_at = now_timestamp();
            let claim = self.job.checkpoint.as_ref().and_then(|c| c.get("claim")).cloned().unwrap_or(Value::Null);
            next.checkpoint = Some(json!({"claim": claim, "run": state}));
            match self.app.jobs.update_job(&next).await {
                Ok(stored) => {
                    self.job = stored;
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => self.reload().await?,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Stop::Retry(format!("job {} kept changing while saving", self.job.id)))
    }

    /// Reads the job again (another writer got in first): a cancel, or parts reporting.
    pub async fn reload(&mut self) -> Result<(), Stop> {
        match self.app.jobs.get_job(&self.job.owner, &self.job.id).await? {
            Some(job) => {
                self.job = job;
                Ok(())
            }
            None => Err(Stop::Failed(ApiError::not_found(format!("job {} is gone", self.job.id)))),
        }
    }

    /// Applies `change` to the job by compare-and-set, reading again on every lost race; for
    /// tasks that share the job (fanned-out parts). Answers the stored job.
    pub async fn update(&mut self, change: impl Fn(&mut JobRecord)) -> Result<(), Stop> {
        for _ in 0..20 {
            let mut next = self.job.clone();
            change(&mut next);
            next.updated_at = now_timestamp();
            match self.app.jobs.update_job(&next).await {
                Ok(stored) => {
                    self.job = stored;
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => self.reload().await?,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Stop::Retry(format!("job {} kept changing", self.job.id)))
    }

    /// Records how the task ended: done, paused (and `task` sent again for a fresh invocation),
    /// cancelled or failed (what it staged is dropped). `Err` hands the message back to the queue.
    async fn finish(mut self, outcome: Result<Outcome, Stop>, task: JobTask) -> Result<(), String> {
        let again = match &outcome {
            Ok(Outcome::Paused) => Some(task),
            Ok(Outcome::Restart) => Some(JobTask::Run),
            _ => None,
        };
        let (state, result, error) = match outcome {
            Ok(Outcome::Handed | Outcome::Paused | Outcome::Restart) => {
                if self.claim.is_some() {
                    self.release_claim().await.map_err(|e| format!("{e:?}"))?;
                }
                return match again {
                    Some(task) => enqueue(self.app, &self.job, task).await.map_err(|e| e.message),
                    None => Ok(()),
                };
            }
            Err(Stop::Retry(why)) => return Err(why),
            Ok(Outcome::Done(result)) => (JobState::Succeeded, Some(result), None),
            Err(Stop::Cancelled) => (JobState::Cancelled, None, None),
            Err(Stop::Failed(e)) => (JobState::Failed, None, Some(JobFailure { status: e.status, message: e.message })),
        };
        let app = self.app;
        let epoch = import::epoch_of(self.state());
        // What the job had under way, for the cleanup below (the end clears the checkpoint).
        let before = self.job.clone();
        // The end is recorded before anything is dropped: an import whose commit has begun
        // ends by that commit, so a failure or cancel meanwhile defers to it (import::commit).
        let defers = |job: &JobRecord| state != JobState::Succeeded && import::committing(job);
        self.update(|job| {
            if !job.state.is_final() && !defers(job) {
                end(app, job, state);
                if state == JobState::Succeeded {
                    // All of it is done, whatever the counters measured on the way (an import's
                    // bytes count rows, its total the whole bundle).
                    for c in [&mut job.progress.tables, &mut job.progress.rows, &mut job.progress.bytes] {
                        c.done = c.done.max(c.total.unwrap_or(0));
                    }
                }
                job.result = result.clone();
                job.error = error.clone();
                job.checkpoint = None;
            }
        })
        .await
        .map_err(|e| format!("{e:?}"))?;
        if !self.job.state.is_final() {
            return Err(format!("job {}: its commit is under way; this task ({state:?}) defers to it", self.job.id));
        }
        if self.job.state != JobState::Succeeded {
            let ended = std::mem::replace(&mut self.job, before);
            let abandoned = match ended.kind {
                JobKind::Export => export::abandon(&self).await,
                JobKind::Import => import::abandon(&self).await,
            };
            self.job = ended;
            if let Err(e) = abandoned {
                // Nothing of it is visible either way; what is left is swept by expiry.
                tracing::warn!(job = %self.job.id, error = ?e, "cleaning up after a job failed");
            }
        }
        if self.job.kind == JobKind::Import {
            import::cleanup(app, &self.job, epoch).await;
        }
        Ok(())
    }

    async fn release_claim(&mut self) -> Result<(), Stop> {
        let token = self.claim.clone();
        self.update(|job| {
            let ours = job
                .checkpoint
                .as_ref()
                .and_then(|c| c.get("claim"))
                .and_then(|c| c.get("token"))
                .and_then(Value::as_str)
                == token.as_deref();
            if let (true, Some(Value::Object(c))) = (ours, job.checkpoint.as_mut()) {
                c.insert("claim".into(), Value::Null);
            }
        })
        .await
    }
}

pub(super) fn forward(
    old: crate::store::jobs::Progress,
    new: crate::store::jobs::Progress,
) -> crate::store::jobs::Progress {
    use crate::store::jobs::{Counter, Progress};
    let max = |a: Counter, b: Counter| Counter { done: a.done.max(b.done), total: b.total.or(a.total) };
    Progress { tables: max(old.tables, new.tables), rows: max(old.rows, new.rows), bytes: max(old.bytes, new.bytes) }
}
