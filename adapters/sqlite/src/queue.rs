//! The jobs queue in a SQLite file of its own (`WORKSPACES_JOBS_QUEUE=sqlite://<path>`), with
//! SQS's delivery rules: a received message is hidden for the visibility timeout under a fresh
//! receipt, only that receipt deletes it, and a message about to be received a
//! [`MAX_RECEIVES`]+1-th time goes to the dead-letter table instead (the template's DLQ
//! `maxReceiveCount`). Several processes share the file (WAL, busy timeout), and each receive is
//! one IMMEDIATE transaction, so two receivers never take the same message.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{named_params, Connection, TransactionBehavior};

use shared::queue::{JobMessage, JobQueue, QueueReceiver, Received};
use shared::store::{StoreError, StoreResult};

/// Receives before a message is dead-lettered; the same as the template's DLQ `maxReceiveCount`.
pub const MAX_RECEIVES: u32 = 5;
/// At most this many messages per receive, as SQS.
const MAX_BATCH: usize = 10;
const POLL_INTERVAL: Duration = Duration::from_millis(50);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS job_queue (
    -- AUTOINCREMENT: a message id is never reused, even after the newest message is deleted.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    body          TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE INDEX IF NOT EXISTS job_queue_by_visible ON job_queue (visible_at_ms);
CREATE INDEX IF NOT EXISTS job_queue_by_receipt ON job_queue (receipt);
CREATE TABLE IF NOT EXISTS job_queue_dead (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    INTEGER NOT NULL,
    body          TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at_ms    INTEGER NOT NULL
);
";

pub struct LocalQueue {
    conn: Arc<Mutex<Connection>>,
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("local jobs queue: {e}"))
}

fn from_sqlite(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("local jobs queue: {e}"))
        }
        _ => internal(e),
    }
}

fn now_ms() -> i64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl LocalQueue {
    /// Opens (creating when missing) the queue file at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| internal(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(from_sqlite)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(from_sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(from_sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(from_sqlite)?;
        conn.execute_batch(SCHEMA).map_err(from_sqlite)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs blocking SQLite work off the async executor.
    async fn with_conn<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| internal("connection lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(internal)?
    }

    /// The bodies of the dead-lettered messages, oldest first.
    pub async fn dead_letters(&self) -> StoreResult<Vec<String>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare("SELECT body FROM job_queue_dead ORDER BY id").map_err(from_sqlite)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(from_sqlite)?;
            rows.map(|r| r.map_err(from_sqlite)).collect()
        })
        .await
    }

    /// One receive without waiting: dead-letters the visible messages received too often, then
    /// takes up to `max` visible ones (oldest first).
    async fn receive_now(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>> {
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let now = now_ms();
            let until = now.saturating_add(millis(visibility));
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(from_sqlite)?;
            let dead = named_params! {":now": now, ":max": MAX_RECEIVES};
            tx.execute(
                "INSERT INTO job_queue_dead (message_id, body, receive_count, dead_at_ms)
                 SELECT id, body, receive_count, :now FROM job_queue
                 WHERE visible_at_ms <= :now AND receive_count >= :max ORDER BY id",
                dead,
            )
            .map_err(from_sqlite)?;
            tx.execute("DELETE FROM job_queue WHERE visible_at_ms <= :now AND receive_count >= :max", dead)
                .map_err(from_sqlite)?;
            let taken: Vec<(i64, String, i64)> = {
                let mut stmt = tx
                    .prepare("SELECT id, body, receive_count FROM job_queue WHERE visible_at_ms <= ?1 ORDER BY id LIMIT ?2")
                    .map_err(from_sqlite)?;
                let rows = stmt.query_map([now, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(from_sqlite)?;
                rows.collect::<Result<_, _>>().map_err(from_sqlite)?
            };
            let mut out = Vec::with_capacity(taken.len());
            for (id, body, count) in taken {
                let receipt = shared::model::new_id(&format!("{id}."), 32);
                tx.execute(
                    "UPDATE job_queue SET receipt = ?1, visible_at_ms = ?2, receive_count = receive_count + 1 WHERE id = ?3",
                    rusqlite::params![receipt, until, id],
                )
                .map_err(from_sqlite)?;
                let receive_count = u32::try_from(count + 1).map_err(|_| internal(format!("message {id} count {count}")))?;
                out.push(Received { message_id: id.to_string(), receipt, body, receive_count });
            }
            tx.commit().map_err(from_sqlite)?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl JobQueue for LocalQueue {
    async fn send(&self, message: &JobMessage) -> StoreResult<()> {
        let body = serde_json::to_string(message).map_err(internal)?;
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO job_queue (body, visible_at_ms) VALUES (?1, ?2)",
                rusqlite::params![body, now_ms()],
            )
            .map_err(from_sqlite)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl QueueReceiver for LocalQueue {
    /// At most 10 messages, as SQS; polls every 50 ms until `wait` has passed.
    async fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> StoreResult<Vec<Received>> {
        let max = max.min(MAX_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        loop {
            let got = self.receive_now(max, visibility).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !got.is_empty() || left.is_zero() {
                return Ok(got);
            }
            tokio::time::sleep(POLL_INTERVAL.min(left)).await;
        }
    }

    /// Deletes the message only while `receipt` is its current one: after a redelivery the old
    /// receipt deletes nothing (and, as on SQS, that is no error).
    async fn delete(&self, receipt: &str) -> StoreResult<()> {
        let receipt = receipt.to_owned();
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM job_queue WHERE receipt = ?1", [receipt]).map_err(from_sqlite)?;
            Ok(())
        })
        .await
    }
}
