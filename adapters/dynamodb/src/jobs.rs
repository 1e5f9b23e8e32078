//! Job records in the table. Every key starts with the owner's tenancy key:
//!
//! - job `PK = <owner key>#jobs`, `SK = job#<id>`: `record` (the `JobRecord` as JSON text),
//!   `version` (N, the compare-and-set counter), `idem` (its idempotency key, fixed at create)
//!   and, once the job has ended, `expires_at` (N, the table's TTL attribute);
//! - idempotency `PK = <owner key>#jobs`, `SK = idem#<key>`: `job` (the id of the job that holds
//!   the key) and the job's `expires_at` once it has one, so TTL takes both.
//!
//! DynamoDB's TTL deletes lazily (hours late), so every read filters expired items itself.
//! Round trips: create 1 TransactWriteItems (+ 2 GetItem and one more transaction when the key
//! is held); get 1 GetItem; list 1 Query per `limit` live jobs; update 1 PutItem (+ 1 UpdateItem
//! of the idempotency item when the job's expiry changes, i.e. once, when it ends).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};

use crate::commit::transaction_error;
use crate::layout::{key_item, n, text};
use crate::{build_error, s, store_error, DynamoStore, Item, TTL_ATTRIBUTE};
use shared::model::Owner;
use shared::store::jobs::{is_expired, now_unix, record_json, JobRecord, Jobs};
use shared::store::{StoreError, StoreResult};

const JOB_PREFIX: &str = "job#";
const IDEM_PREFIX: &str = "idem#";
/// Rounds of "the key is held: by whom?" before a create gives up (each round means another
/// create or a TTL deletion got in between).
const CREATE_ATTEMPTS: usize = 5;

fn jobs_pk(owner: &Owner) -> String {
    format!("{}#jobs", owner.key())
}

fn job_sk(id: &str) -> String {
    format!("{JOB_PREFIX}{id}")
}

fn idem_sk(key: &str) -> String {
    format!("{IDEM_PREFIX}{key}")
}

fn epoch(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn conflict(id: &str) -> StoreError {
    StoreError::Conflict(format!("job {id} was changed concurrently (or is gone); read it again"))
}

fn job_item(job: &JobRecord, json: String) -> Item {
    let mut item = HashMap::from([
        ("PK".to_owned(), s(jobs_pk(&job.owner))),
        ("SK".to_owned(), s(job_sk(&job.id))),
        ("record".to_owned(), s(json)),
        ("version".to_owned(), n(job.version)),
        ("idem".to_owned(), s(&job.idempotency_key)),
    ]);
    if let Some(at) = job.expires_at {
        item.insert(TTL_ATTRIBUTE.to_owned(), epoch(at));
    }
    item
}

/// A stored job item back as the record it holds. The `version` attribute is the truth; a record
/// naming another owner or id than its key is corruption, never shown.
fn job_from_item(item: &Item, owner: &Owner) -> StoreResult<JobRecord> {
    let sk = text(item, "SK").unwrap_or("?");
    let malformed = |problem: &str| StoreError::Internal(format!("malformed job item {}/{sk}: {problem}", owner.key()));
    let record = text(item, "record").ok_or_else(|| malformed("no 'record' text"))?;
    let mut job: JobRecord =
        serde_json::from_str(record).map_err(|e| malformed(&format!("'record' is not a job record ({e})")))?;
    job.version = match item.get("version") {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| malformed("'version' is not a whole number"))?,
        _ => return Err(malformed("no 'version' number")),
    };
    if job.owner != *owner || job_sk(&job.id) != sk {
        return Err(malformed(&format!("the record names {} of {}", job.id, job.owner.key())));
    }
    Ok(job)
}

/// `expires_at` of an item: absent is `None`, anything but a whole number is malformed.
fn expiry_of(item: &Item) -> StoreResult<Option<i64>> {
    match item.get(TTL_ATTRIBUTE) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Internal(format!("job item {TTL_ATTRIBUTE} '{v}' is not a whole number"))),
        Some(_) => Err(StoreError::Internal(format!("job item {TTL_ATTRIBUTE} is not a number"))),
    }
}

/// `Ok(true)`: the transaction lost a condition (or a race with another transaction on the same
/// items); other failures are errors.
fn lost_race<R: std::fmt::Debug>(err: SdkError<TransactWriteItemsError, R>, id: &str) -> StoreResult<bool> {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() {
        let lost = cancelled
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code())
            .any(|c| matches!(c, "ConditionalCheckFailed" | "TransactionConflict"));
        if lost {
            return Ok(true);
        }
    }
    Err(transaction_error(err, &format!("job {id} could not be created; retry")))
}

impl DynamoStore {
    /// The job item as stored, expired or not.
    async fn read_job(&self, owner: &Owner, id: &str) -> StoreResult<Option<JobRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(jobs_pk(owner), job_sk(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        out.item().map(|item| job_from_item(item, owner)).transpose()
    }

    /// The id of the job holding idempotency key `key`, if any item says so.
    async fn idem_holder(&self, owner: &Owner, key: &str) -> StoreResult<Option<String>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(jobs_pk(owner), idem_sk(key))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        out.item()
            .map(|item| {
                text(item, "job").map(str::to_owned).ok_or_else(|| {
                    StoreError::Internal(format!("malformed idempotency item {}/{}: no 'job'", owner.key(), key))
                })
            })
            .transpose()
    }

    /// One transaction: the job (new id) and the key's item, which must be free (absent, or
    /// expired by its own `expires_at`), or, when `replacing`, still name that (expired) job.
    /// `false` when a condition failed.
    async fn put_new_job(&self, job: &JobRecord, json: &str, replacing: Option<&str>) -> StoreResult<bool> {
        let pk = jobs_pk(&job.owner);
        let job_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(job_item(job, json.to_owned())))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "PK")
            .build()
            .map_err(build_error)?;
        let mut idem = HashMap::from([
            ("PK".to_owned(), s(&pk)),
            ("SK".to_owned(), s(idem_sk(&job.idempotency_key))),
            ("job".to_owned(), s(&job.id)),
        ]);
        if let Some(at) = job.expires_at {
            idem.insert(TTL_ATTRIBUTE.to_owned(), epoch(at));
        }
        let idem_put = Put::builder().table_name(&self.table).set_item(Some(idem));
        let idem_put = match replacing {
            None => idem_put
                .condition_expression("attribute_not_exists(#pk) OR #exp < :now")
                .expression_attribute_names("#pk", "PK")
                .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                .expression_attribute_values(":now", epoch(now_unix())),
            Some(holder) => idem_put
                .condition_expression("#job = :holder")
                .expression_attribute_names("#job", "job")
                .expression_attribute_values(":holder", s(holder)),
        };
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(job_put).build())
            .transact_items(TransactWriteItem::builder().put(idem_put.build().map_err(build_error)?).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => lost_race(e, &job.id).map(|lost| !lost),
        }
    }

    /// Gives the key's item the job's new expiry, so TTL takes it with the job. Housekeeping
    /// only (a create that finds the key held reads the job itself), so a failure is logged.
    async fn sync_idem_expiry(&self, job: &JobRecord) {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(jobs_pk(&job.owner), idem_sk(&job.idempotency_key))))
            .condition_expression("#job = :id")
            .expression_attribute_names("#job", "job")
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":id", s(&job.id));
        request = match job.expires_at {
            Some(at) => request.update_expression("SET #exp = :exp").expression_attribute_values(":exp", epoch(at)),
            None => request.update_expression("REMOVE #exp"),
        };
        match request.send().await {
            Ok(_) => {}
            // Another job holds the key now: its item is not ours to change.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
            Err(e) => {
                tracing::warn!(job = %job.id, error = %store_error("UpdateItem", e), "idempotency item expiry not updated")
            }
        }
    }
}

#[async_trait]
impl Jobs for DynamoStore {
    async fn create_job(&self, job: JobRecord) -> StoreResult<(JobRecord, bool)> {
        self.check_layout().await?;
        let job = JobRecord { version: 1, ..job };
        let json = record_json(&job)?;
        let mut replacing: Option<String> = None;
        for _ in 0..CREATE_ATTEMPTS {
            if self.put_new_job(&job, &json, replacing.as_deref()).await? {
                return Ok((job, true));
            }
            // The key is held: answer its job while that lives, else take the key over from
            // exactly the job found (a create racing us for it wins or loses as a whole).
            replacing = match self.idem_holder(&job.owner, &job.idempotency_key).await? {
                None => None,
                Some(holder) => match self.read_job(&job.owner, &holder).await? {
                    Some(held) if !is_expired(held.expires_at, now_unix()) => return Ok((held, false)),
                    _ => Some(holder),
                },
            };
        }
        Err(StoreError::Conflict(format!(
            "job {} could not be created: its idempotency key or id is contended; retry",
            job.id
        )))
    }

    async fn get_job(&self, owner: &Owner, id: &str) -> StoreResult<Option<JobRecord>> {
        self.check_layout().await?;
        let job = self.read_job(owner, id).await?;
        Ok(job.filter(|j| !is_expired(j.expires_at, now_unix())))
    }

    /// A Query of the owner's job items newest first: `begins_with job#`, or after a cursor
    /// `BETWEEN job# AND job#<after>` (one sort-key condition only, and idempotency items sort
    /// before `job#`), the cursor's own item dropped. Expired items are filtered by the Query and
    /// again here; `Limit` counts before the filter, so it pages until `limit` or the end.
    async fn list_jobs(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<Vec<JobRecord>> {
        self.check_layout().await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = now_unix();
        let (condition, upper) = match after {
            Some(after) => ("#pk = :pk AND #sk BETWEEN :lo AND :hi", Some(job_sk(after))),
            None => ("#pk = :pk AND begins_with(#sk, :lo)", None),
        };
        let mut out = Vec::with_capacity(limit.min(1000));
        let mut start_key: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .filter_expression("attribute_not_exists(#exp) OR #exp >= :now")
                .expression_attribute_names("#pk", "PK")
                .expression_attribute_names("#sk", "SK")
                .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                .expression_attribute_values(":pk", s(jobs_pk(owner)))
                .expression_attribute_values(":lo", s(JOB_PREFIX))
                .expression_attribute_values(":now", epoch(now))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(i32::try_from(limit - out.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start_key.take());
            if let Some(hi) = &upper {
                request = request.expression_attribute_values(":hi", s(hi));
            }
            let page = request.send().await.map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                if upper.is_some() && text(item, "SK") == upper.as_deref() {
                    continue;
                }
                let job = job_from_item(item, owner)?;
                if !is_expired(job.expires_at, now) {
                    out.push(job);
                }
            }
            match page.last_evaluated_key() {
                Some(key) if out.len() < limit => start_key = Some(key.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One PutItem on condition the stored job is still at `job.version`, live, and of the same
    /// idempotency key; the old item comes back to tell whether the expiry changed.
    async fn update_job(&self, job: &JobRecord) -> StoreResult<JobRecord> {
        self.check_layout().await?;
        let next = JobRecord { version: job.version + 1, ..job.clone() };
        let json = record_json(&next)?;
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(job_item(&next, json)))
            .condition_expression(
                "#version = :version AND #idem = :idem AND (attribute_not_exists(#exp) OR #exp >= :now)",
            )
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#idem", "idem")
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":version", n(job.version))
            .expression_attribute_values(":idem", s(&job.idempotency_key))
            .expression_attribute_values(":now", epoch(now_unix()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match out {
            Ok(out) => out.attributes,
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => return Err(conflict(&job.id)),
            Err(e) => return Err(store_error("PutItem", e)),
        };
        let old_expiry = old.as_ref().map(expiry_of).transpose()?.flatten();
        if old_expiry != next.expires_at {
            self.sync_idem_expiry(&next).await;
        }
        Ok(next)
    }
}
