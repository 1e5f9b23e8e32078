//! The jobs queue: what tells the worker function there is work. One port, two adapters: SQS in
//! AWS (the worker's event source mapping delivers its messages), and a queue in a local SQLite
//! file, drained by the local dispatcher (`tools`, run by `make run`) and the test kit, which
//! invoke the worker as Lambda's event source mapping would. Delivery is at least once: the
//! worker makes every task idempotent.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::StoreResult;

/// What one message asks the worker to do for one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    /// The job's owner: the user who started it (`Owner::user(org, user)`).
    pub org: String,
    pub user: String,
    pub job_id: String,
    pub task: JobTask,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum JobTask {
    /// Start or continue the job from its checkpoint.
    Run,
    /// One part of a fanned-out import (the part that records the last chunk commits).
    Part { part: u32 },
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn send(&self, message: &JobMessage) -> StoreResult<()>;
}

/// A message taken from the queue, hidden from other receivers for the visibility timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    /// What `delete` takes.
    pub receipt: String,
    pub body: String,
    /// 1 on first delivery.
    pub receive_count: u32,
}

/// The receiving side, which Lambda's event source mapping is in AWS: the local dispatcher and
/// the test kit poll with it.
#[async_trait]
pub trait QueueReceiver: Send + Sync {
    /// Up to `max` messages, each hidden for `visibility` (redelivered after it unless deleted).
    /// Waits at most `wait` for the first.
    async fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> StoreResult<Vec<Received>>;
    async fn delete(&self, receipt: &str) -> StoreResult<()>;
}
