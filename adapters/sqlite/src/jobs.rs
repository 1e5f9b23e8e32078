//! Job records in the SQLite file: one row per job, the record as JSON beside the columns that
//! are queried (owner, id, idempotency key, version, expiry). A create is one IMMEDIATE
//! transaction (sweep the owner's expired jobs, look for a live one with the key, insert), so two
//! processes creating with the same key at once make one job; an update is compare-and-set on
//! `version`.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::{from_sqlite, internal, SqliteStore};
use shared::model::Owner;
use shared::store::jobs::{now_unix, record_json, JobRecord, Jobs};
use shared::store::{StoreError, StoreResult};

/// Registered in `layout::ADDED_SCHEMAS`. `idem` is unique per owner among stored rows; expired
/// rows are swept by the next create of that owner, and never read (every query filters them).
pub(super) const JOBS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    owner      TEXT NOT NULL,
    id         TEXT NOT NULL,
    idem       TEXT NOT NULL,
    record     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    -- unix seconds; NULL while the job is live
    expires_at INTEGER,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_idem ON jobs (owner, idem);
";

const LIVE: &str = "(expires_at IS NULL OR expires_at >= :now)";

fn version_of(value: i64, id: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| internal(format!("stored job {id} has version {value}")))
}

/// A stored row back as a record: the `version` column is the truth (the JSON holds it too),
/// and a record of another owner than its key is corruption, not something to show.
fn from_row(owner: &Owner, id: &str, record: &str, version: i64) -> StoreResult<JobRecord> {
    let mut job: JobRecord =
        serde_json::from_str(record).map_err(|e| internal(format!("stored job {id} is not a job record: {e}")))?;
    if job.owner != *owner || job.id != id {
        return Err(internal(format!("stored job {id} of {} names {} of {}", owner.key(), job.id, job.owner.key())));
    }
    job.version = version_of(version, id)?;
    Ok(job)
}

fn get(conn: &Connection, owner: &Owner, id: &str, now: i64) -> StoreResult<Option<JobRecord>> {
    let sql = format!("SELECT record, version FROM jobs WHERE owner = :owner AND id = :id AND {LIVE}");
    let found: Option<(String, i64)> = conn
        .query_row(&sql, rusqlite::named_params! {":owner": owner.key(), ":id": id, ":now": now}, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(from_sqlite)?;
    found.map(|(record, version)| from_row(owner, id, &record, version)).transpose()
}

fn create(conn: &mut Connection, mut job: JobRecord) -> StoreResult<(JobRecord, bool)> {
    job.version = 1;
    let json = record_json(&job)?;
    let owner = job.owner.key();
    let now = now_unix();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(from_sqlite)?;
    // The owner's expired jobs go first, so an expired job's key is free again.
    tx.execute("DELETE FROM jobs WHERE owner = ?1 AND expires_at < ?2", params![owner, now]).map_err(from_sqlite)?;
    let existing: Option<(String, String, i64)> = tx
        .query_row(
            "SELECT id, record, version FROM jobs WHERE owner = ?1 AND idem = ?2",
            params![owner, job.idempotency_key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(from_sqlite)?;
    if let Some((id, record, version)) = existing {
        return Ok((from_row(&job.owner, &id, &record, version)?, false));
    }
    let inserted = tx.execute(
        "INSERT INTO jobs (owner, id, idem, record, version, expires_at) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
        params![owner, job.id, job.idempotency_key, json, job.expires_at],
    );
    match inserted {
        Ok(_) => {}
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            return Err(StoreError::Conflict(format!("job {} already exists", job.id)));
        }
        Err(e) => return Err(from_sqlite(e)),
    }
    tx.commit().map_err(from_sqlite)?;
    Ok((job, true))
}

fn update(conn: &Connection, job: &JobRecord) -> StoreResult<JobRecord> {
    let next = JobRecord { version: job.version + 1, ..job.clone() };
    let json = record_json(&next)?;
    let expected = i64::try_from(job.version).map_err(|_| internal(format!("job {} version overflow", job.id)))?;
    // The idempotency key is fixed at create: a record naming another one is not this job.
    let sql = format!(
        "UPDATE jobs SET record = :record, version = version + 1, expires_at = :expires
         WHERE owner = :owner AND id = :id AND version = :version AND idem = :idem AND {LIVE}"
    );
    let changed = conn
        .execute(
            &sql,
            rusqlite::named_params! {
                ":record": json,
                ":expires": next.expires_at,
                ":owner": job.owner.key(),
                ":id": job.id,
                ":version": expected,
                ":idem": job.idempotency_key,
                ":now": now_unix(),
            },
        )
        .map_err(from_sqlite)?;
    if changed == 0 {
        return Err(StoreError::Conflict(format!(
            "job {} was changed concurrently (or is gone); read it again",
            job.id
        )));
    }
    Ok(next)
}

#[async_trait]
impl Jobs for SqliteStore {
    async fn create_job(&self, job: JobRecord) -> StoreResult<(JobRecord, bool)> {
        self.with_conn(move |conn| create(conn, job)).await
    }

    async fn get_job(&self, owner: &Owner, id: &str) -> StoreResult<Option<JobRecord>> {
        let (owner, id) = (owner.clone(), id.to_owned());
        self.with_conn(move |conn| get(conn, &owner, &id, now_unix())).await
    }

    async fn list_jobs(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<Vec<JobRecord>> {
        let (owner, after) = (owner.clone(), after.map(str::to_owned));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let sql = format!(
                "SELECT id, record, version FROM jobs
                 WHERE owner = :owner AND (:after IS NULL OR id < :after) AND {LIVE}
                 ORDER BY id DESC LIMIT :limit"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(from_sqlite)?;
            let params = rusqlite::named_params! {
                ":owner": owner.key(), ":after": after, ":now": now_unix(), ":limit": limit,
            };
            let rows = stmt
                .query_map(params, |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
                .map_err(from_sqlite)?;
            rows.map(|row| {
                let (id, record, version) = row.map_err(from_sqlite)?;
                from_row(&owner, &id, &record, version)
            })
            .collect()
        })
        .await
    }

    async fn update_job(&self, job: &JobRecord) -> StoreResult<JobRecord> {
        let job = job.clone();
        self.with_conn(move |conn| update(conn, &job)).await
    }
}
