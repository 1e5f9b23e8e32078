//! What jobs need of the DynamoDB store (`JobTables`): a revision held by a lease and opened
//! again, and staged commits written over many invocations and made visible by one flip.
//!
//! A staging is a large commit (commit.rs) that takes its time. Its items:
//!
//! - pointer `PK = W`, `SK = staging#<id>`: the generation it writes into (found without the
//!   head, so a staging begun before a delete keeps pointing at the deleted generation), its
//!   `state` and, once finished, its `rev` (so a second finish answers it even after compaction
//!   removed the record); TTL a week;
//! - record `PK = W#g#G`, `SK = txn#job.<id>`: a pending commit record as compaction reads them
//!   (`parts`: one `Part { id: job.<id> }` per table, sized at begin; `blobs`, a string set the
//!   oversized rows' keys are added to before each blob is written), plus `touched`, its last
//!   write, which keeps compaction from aborting it for [`STAGING_IDLE_SECS`];
//! - its rows in the parts, invisible: no entry names them until the finish.
//!
//! The finish reads the head (a generation other than the pointer's is a delete: `Conflict`),
//! stacks one layer per table on the current entry, stages the entries under the record's txn
//! and flips head, log, record and pointer in one transaction; when the head moved meanwhile it
//! does it again on top of the new head (a merge: edits made meanwhile never fail it).
//!
//! A record holds about 2,500 oversized rows' keys before it reaches the 400 KB item limit.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::batch::{put_request, Writer};
use crate::catalog::Catalog;
use crate::commit::{ABORTING, COMMITTED, PENDING};
use crate::layout::{
    blob_key, cat_pk, gen_for, key_item, n, now_secs, number, record_sk, row_item, rows_pk, shard_count, shard_of,
    short, text, Head, Part, RowData, INLINE_ROW_MAX, MAX_KEY_BYTES,
};
use crate::read::DynamoSnapshot;
use crate::{s, store_error, DynamoStore, TTL_ATTRIBUTE};
use shared::store::job_tables::{JobTables, StagedFinish};
use shared::store::{Snapshot, StoreError, StoreResult};
use shared::tables::{Row, WsKey};

const POINTER_PREFIX: &str = "staging#";
/// A staging's txn (record, parts, entries) is this plus its id.
const TXN_PREFIX: &str = "job.";
/// `touched` is refreshed at most this often (the first write after it has passed does it).
const TOUCH_EVERY_SECS: u64 = 60;
const POINTER_TTL_SECS: u64 = 7 * 24 * 3600;
/// Past the idle limit compaction aborts a staging long before this backstop expires it.
const RECORD_TTL_SECS: u64 = 2 * shared::store::job_tables::STAGING_IDLE_SECS + 24 * 3600;

mod finish;

struct Pointer {
    gen: String,
    state: String,
    rev: Option<u64>,
}

struct JobRecord {
    state: String,
    parts: Vec<(String, Part)>,
    touched: u64,
    rev: Option<u64>,
    blobs: Vec<String>,
}

/// The txn of staging `id`; ids are job ids, so letters, digits, `_` and `-` only (no `#`,
/// which the item keys use as a separator, and no `.`, which commit txns use).
fn txn_of(id: &str) -> StoreResult<String> {
    let ok = !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(StoreError::Internal(format!("staging id {} is not a job id", short(id))));
    }
    Ok(format!("{TXN_PREFIX}{id}"))
}

fn check_table(name: &str) -> StoreResult<()> {
    if name.is_empty() || name.contains('#') || name.len() > 255 {
        return Err(StoreError::Internal(format!(
            "table name {} is empty, has a '#' or is over 255 bytes",
            short(name)
        )));
    }
    Ok(())
}

fn unknown(id: &str) -> StoreError {
    StoreError::Conflict(format!("staging '{id}' is unknown (never begun, or long gone)"))
}

fn closed(id: &str) -> StoreError {
    StoreError::Conflict(format!("staging '{id}' has finished or been aborted"))
}

fn overtaken() -> StoreError {
    StoreError::Conflict("the workspace was deleted while the import ran; nothing of it was written".into())
}

fn malformed(what: &str) -> StoreError {
    StoreError::Internal(format!("malformed staging item: {what}"))
}

impl DynamoStore {
    async fn pointer(&self, ws_key: &str, id: &str) -> StoreResult<Option<Pointer>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(ws_key, format!("{POINTER_PREFIX}{id}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(item) = out.item else { return Ok(None) };
        Ok(Some(Pointer {
            gen: text(&item, "gen").ok_or_else(|| malformed("pointer without 'gen'"))?.to_owned(),
            state: text(&item, "state").ok_or_else(|| malformed("pointer without 'state'"))?.to_owned(),
            rev: number(&item, "rev"),
        }))
    }

    async fn job_record(&self, cat: &str, txn: &str) -> StoreResult<Option<JobRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(cat, record_sk(txn))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let parts = text(&item, "parts").ok_or_else(|| malformed("record without 'parts'"))?;
        let blobs = match item.get("blobs") {
            None => Vec::new(),
            Some(AttributeValue::Ss(set)) => set.clone(),
            Some(_) => return Err(malformed("record's 'blobs' is not a string set")),
        };
        Ok(Some(JobRecord {
            state: text(&item, "state").ok_or_else(|| malformed("record without 'state'"))?.to_owned(),
            parts: serde_json::from_str(parts).map_err(|e| malformed(&format!("record's 'parts' ({e})")))?,
            touched: number(&item, "touched").unwrap_or(0),
            rev: number(&item, "rev"),
            blobs,
        }))
    }

    /// The record of an open staging, by its pointer; `Conflict` once it is not open.
    async fn open_staging(&self, ws_key: &str, id: &str, txn: &str) -> StoreResult<(String, JobRecord)> {
        let pointer = self.pointer(ws_key, id).await?.ok_or_else(|| unknown(id))?;
        if pointer.state != PENDING {
            return Err(closed(id));
        }
        let cat = cat_pk(ws_key, &pointer.gen);
        // Gone: compaction aborted it (idle too long) and removed it.
        let record = self.job_record(&cat, txn).await?.ok_or_else(|| closed(id))?;
        if record.state != PENDING {
            return Err(closed(id));
        }
        Ok((cat, record))
    }

    /// Keeps the staging alive (see compact.rs); `Conflict` when it is no longer pending.
    async fn touch(&self, cat: &str, txn: &str, now: u64) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(cat, record_sk(txn))))
            .update_expression("SET #touched = :now, #ttl = :ttl")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#touched", "touched")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":ttl", n(now + RECORD_TTL_SECS))
            .expression_attribute_values(":pending", s(PENDING))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }

    /// Names oversized rows' blobs in the record before they are written.
    async fn add_blobs(&self, cat: &str, txn: &str, keys: Vec<String>) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(cat, record_sk(txn))))
            .update_expression("ADD #blobs :keys")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#blobs", "blobs")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":keys", AttributeValue::Ss(keys))
            .expression_attribute_values(":pending", s(PENDING))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }

    async fn abort(&self, ws: &WsKey, id: &str) -> StoreResult<()> {
        let txn = txn_of(id)?;
        let ws_key = ws.key();
        let Some(pointer) = self.pointer(&ws_key, id).await? else { return Ok(()) };
        if pointer.state == COMMITTED {
            return Ok(());
        }
        let cat = cat_pk(&ws_key, &pointer.gen);
        // First, so that no finish can flip it from here on; `touched` so that compaction sweeps
        // once more a grace period later, after any write still in flight.
        let now = now_secs();
        let marked = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&cat, record_sk(&txn))))
            .update_expression("SET #state = :aborting, #touched = :now")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#touched", "touched")
            .expression_attribute_values(":aborting", s(ABORTING))
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":now", n(now))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e));
        match marked {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(other) => return Err(other),
        }
        let record = self.job_record(&cat, &txn).await?;
        if record.as_ref().is_some_and(|r| r.state == COMMITTED) {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&ws_key, format!("{POINTER_PREFIX}{id}"))))
            .update_expression("SET #state = :aborting")
            .condition_expression("#state <> :committed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":aborting", s(ABORTING))
            .expression_attribute_values(":committed", s(COMMITTED))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        // Removed at once: a staging of a generation no head names any more (begun, then the
        // workspace deleted) is one compaction never visits.
        let Some(record) = record else { return Ok(()) };
        for blob in &record.blobs {
            self.blobs("(aborted staging)", blob)?.delete_blob(blob).await?;
        }
        for (table, part) in &record.parts {
            self.delete_part(&cat, table, part).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl JobTables for DynamoStore {
    /// A lease (see compact.rs): compaction's floor stays at or below `rev` until `until`.
    async fn hold_revision(&self, ws: &WsKey, lease: &str, rev: u64, until: u64) -> StoreResult<()> {
        self.check_layout().await?;
        self.take_lease(&ws.key(), lease, rev, until).await
    }

    async fn release_revision(&self, ws: &WsKey, lease: &str) -> StoreResult<()> {
        self.check_layout().await?;
        self.release_lease(&ws.key(), lease).await
    }

    /// The head, then the catalog as of `rev`: per table the valid entry with the highest
    /// revision up to it. `None` for a revision of another generation (the workspace was
    /// deleted since) or one not made yet.
    async fn snapshot_at(&self, ws: &WsKey, rev: u64) -> StoreResult<Option<Box<dyn Snapshot>>> {
        self.check_layout().await?;
        let ws_key = ws.key();
        let head = self.head(&ws_key).await?;
        if rev > head.rev {
            return Ok(None);
        }
        let catalog = match &head.gen {
            None if rev == head.rev => Catalog::new(),
            None => return Ok(None),
            Some(gen) => {
                // A generation is named after the revision that started it (`gen_for`).
                let start: u64 =
                    gen.parse().map_err(|_| StoreError::Internal(format!("malformed head of {ws_key}: gen {gen}")))?;
                if rev < start {
                    return Ok(None);
                }
                self.catalog(&ws_key, &Head { rev, ..head.clone() }, None).await?
            }
        };
        Ok(Some(Box::new(DynamoSnapshot::new(self.clone(), &ws_key, head.gen.as_deref(), rev, catalog))))
    }

    /// The record first, then the pointer: once the pointer exists (and rows may be written),
    /// compaction can find everything through the record.
    async fn begin_staging(&self, ws: &WsKey, id: &str, tables: &[(String, u64)]) -> StoreResult<()> {
        self.check_layout().await?;
        let txn = txn_of(id)?;
        let ws_key = ws.key();
        if self.pointer(&ws_key, id).await?.is_some() {
            return Ok(());
        }
        let mut sized: BTreeMap<&str, u64> = BTreeMap::new();
        for (table, rows) in tables {
            check_table(table)?;
            *sized.entry(table).or_default() += rows;
        }
        let parts: Vec<(String, Part)> = sized
            .into_iter()
            .map(|(table, rows)| (table.to_owned(), Part { id: txn.clone(), shards: shard_count(rows) }))
            .collect();
        let parts = serde_json::to_string(&parts).map_err(|e| StoreError::Internal(format!("staging record: {e}")))?;
        let gen = gen_for(&self.head(&ws_key).await?);
        let now = now_secs();
        // Conditional, so a begin racing a write of the staging never resets its blob keys.
        let record = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(cat_pk(&ws_key, &gen)))
            .item("SK", s(record_sk(&txn)))
            .item("state", s(PENDING))
            .item("parts", s(parts))
            .item("created", n(now))
            .item("touched", n(now))
            .item(TTL_ATTRIBUTE, n(now + RECORD_TTL_SECS))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "PK")
            .send()
            .await
            .map_err(|e| store_error("PutItem", e));
        match record {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(other) => return Err(other),
        }
        let pointer = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(&ws_key))
            .item("SK", s(format!("{POINTER_PREFIX}{id}")))
            .item("gen", s(&gen))
            .item("state", s(PENDING))
            .item(TTL_ATTRIBUTE, n(now + POINTER_TTL_SECS))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "PK")
            .send()
            .await
            .map_err(|e| store_error("PutItem", e));
        match pointer {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn stage_rows(&self, ws: &WsKey, id: &str, table: &str, rows: Vec<(String, Row)>) -> StoreResult<()> {
        self.check_layout().await?;
        let txn = txn_of(id)?;
        let ws_key = ws.key();
        let (cat, record) = self.open_staging(&ws_key, id, &txn).await?;
        let part = record
            .parts
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| StoreError::Internal(format!("staging '{id}' was not begun with table {table}")))?;
        let now = now_secs();
        if now >= record.touched.saturating_add(TOUCH_EVERY_SECS) {
            self.touch(&cat, &txn, now).await?;
        }
        // The last row of a key wins; a batch may not name a key twice.
        let rows: BTreeMap<String, Row> = rows.into_iter().collect();
        let mut items = Vec::with_capacity(rows.len());
        let mut blobs = Vec::new();
        for (key, row) in rows {
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                return Err(StoreError::Internal(format!(
                    "row key {} of table {table} is empty or over {MAX_KEY_BYTES} bytes",
                    short(&key)
                )));
            }
            let json = serde_json::to_string(&row).map_err(|e| {
                StoreError::Internal(format!("row {} of table {table} does not serialize: {e}", short(&key)))
            })?;
            let data = if json.len() <= INLINE_ROW_MAX {
                RowData::Inline(json)
            } else {
                self.blobs(table, &key)?;
                let blob = blob_key(&ws_key, table, &txn, &key);
                blobs.push((blob.clone(), json));
                RowData::Blob(blob)
            };
            items.push((key, data));
        }
        if !blobs.is_empty() {
            self.add_blobs(&cat, &txn, blobs.iter().map(|(k, _)| k.clone()).collect()).await?;
            for (blob, json) in blobs {
                self.blobs(table, &blob)?.put_blob(&blob, json.into_bytes()).await?;
            }
        }
        let mut writer = Writer::new(self);
        let result = async {
            for (key, data) in items {
                let pk = rows_pk(&cat, table, &part.id, shard_of(&key, part.shards));
                writer.push(put_request(row_item(pk, &key, data))?).await?;
            }
            Ok(())
        }
        .await;
        // The calls in flight are awaited whatever happened.
        let finished = writer.finish().await;
        result?;
        finished
    }

    async fn finish_staging(&self, ws: &WsKey, id: &str, finish: StagedFinish) -> StoreResult<u64> {
        self.check_layout().await?;
        self.finish(ws, id, finish).await
    }

    async fn abort_staging(&self, ws: &WsKey, id: &str) -> StoreResult<()> {
        self.check_layout().await?;
        self.abort(ws, id).await
    }
}
