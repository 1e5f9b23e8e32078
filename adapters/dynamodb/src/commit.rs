//! Commits. Each touched table gets one new layer (the commit's rows and tombstones) and one new
//! catalog entry; the head moves from the base revision to the next on condition it is still at
//! the base. A small commit is all of that in one TransactWriteItems; a large one stages its
//! layer and entries first (behind a pending record) and then flips the head, the log and the
//! record in one transaction. See the module doc of `dynamodb.rs` for the invariants.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

use crate::batch::{put_request, Writer};
use crate::layout::{
    blob_key, cat_pk, compact_bucket, gen_for, key_item, log_sk, n, now_secs, record_sk, row_item, rows_pk,
    shard_count, shard_of, short, Entry, Head, Layer, Part, RowData, TableState, ATOMIC, HEAD_SK, INLINE_ROW_MAX,
};
use crate::plan::{plan, validate, TablePlan};
use crate::read::TableView;
use crate::{build_error, new_workspace_item, s, store_error, workspace_sk, DynamoStore, Item, TTL_ATTRIBUTE};
use shared::model::WorkspaceDraft;
use shared::store::{StoreError, StoreResult};
use shared::tables::{Commit, WsKey};

/// The message of every lost race (it reaches the client as a 409).
pub(super) const CHANGED: &str = "the workspace was changed concurrently; reload it and retry";
/// DynamoDB's limit on items per transaction.
const TRANSACTION_ITEMS_MAX: usize = 100;
/// Under DynamoDB's 4 MB per transaction, with room for keys and attribute names.
const TRANSACTION_BYTES_MAX: usize = 3_000_000;
/// A pending record's TTL, a backstop only: compaction aborts abandoned commits long before.
const RECORD_TTL_SECS: u64 = 24 * 3600;

pub(super) const PENDING: &str = "pending";
pub(super) const COMMITTED: &str = "committed";
pub(super) const ABORTING: &str = "aborting";

/// One table's layer, ready to write.
pub(super) struct LayerWrite {
    table: String,
    part: Part,
    items: Vec<(String, RowData)>,
    /// Oversized rows' JSON, by blob key: written only after the commit's record names the keys,
    /// so a crash at any point leaves nothing compaction cannot find.
    blobs: Vec<(String, String)>,
}

impl DynamoStore {
    pub(super) async fn commit_impl(&self, ws: &WsKey, base: u64, commit: Commit) -> StoreResult<u64> {
        validate(&commit)?;
        self.check_layout().await?;
        let fault = self.fault()?;
        let ws_key = ws.key();
        // What the caller's snapshot of `base` read, when it was this process's latest.
        let facts = self.recent.take(&ws_key, base);
        let head = match &facts {
            Some(facts) => facts.head.clone(),
            None => self.head(&ws_key).await?,
        };
        if head.rev != base {
            return Err(StoreError::Conflict(CHANGED.into()));
        }
        let gen = gen_for(&head);
        let cat = cat_pk(&ws_key, &gen);
        let names: Vec<&str> = commit
            .upserts
            .iter()
            .map(|w| w.name.as_str())
            .chain(commit.delete_rows.iter().map(|(t, _)| t.as_str()))
            .chain(commit.drop_tables.iter().map(String::as_str))
            .collect();
        let workspace_key = key_item(ws.owner.key(), workspace_sk(&ws.workspace_id));
        let catalog = async {
            match &facts {
                Some(facts) => Ok(facts
                    .catalog
                    .iter()
                    .filter(|(t, _)| names.contains(&t.as_str()))
                    .map(|(t, e)| (t.clone(), e.clone()))
                    .collect()),
                None => self.catalog(&ws_key, &head, Some(&names)).await,
            }
        };
        let (catalog, workspace_exists) = futures::try_join!(catalog, async {
            // Only a commit that may create the workspace needs to know.
            match commit.create_workspace {
                Some(_) => self.item_exists(workspace_key.clone()).await,
                None => Ok(true),
            }
        })?;
        let plans = plan(&commit, &catalog);
        let txn = format!("{}.{base}", commit.id);
        let rev = base + 1;
        let now = now_secs();

        let mut layers = Vec::new();
        let mut states = Vec::new();
        for plan in &plans {
            let known = facts.as_ref().and_then(|f| f.existing.get(plan.name));
            let (layer, state) = self.layer_and_state(&ws_key, &cat, plan, &txn, known).await?;
            layers.extend(layer);
            states.push((plan.name.to_owned(), state));
        }
        for name in &commit.drop_tables {
            if let Some(old) = catalog.get(name).filter(|e| !e.state.dropped) {
                let state = TableState { dropped: true, rows: 0, base: None, layers: Vec::new(), ..old.state.clone() };
                states.push((name.clone(), state));
            }
        }

        let row_items: usize = layers.iter().map(|l| l.items.len()).sum();
        let row_bytes: usize = layers.iter().flat_map(|l| &l.items).map(|(k, d)| k.len() + data_len(d)).sum();
        let has_blob = layers.iter().flat_map(|l| &l.items).any(|(_, d)| matches!(d, RowData::Blob(_)));
        let small = !has_blob
            && row_items + states.len() + 2 <= TRANSACTION_ITEMS_MAX
            && row_bytes + states.iter().map(|(_, s)| s.columns.len() * 64).sum::<usize>() <= TRANSACTION_BYTES_MAX;
        let txn_of_entries = if small { ATOMIC } else { txn.as_str() };
        let entries: Vec<Entry> = states
            .into_iter()
            .map(|(table, state)| Entry { table, rev, txn: txn_of_entries.to_owned(), at: now, state })
            .collect();
        let ctx = CommitContext { ws, ws_key: &ws_key, cat: &cat, head: &head, gen: &gen, rev, now, workspace_exists };
        if small {
            if let Some(limit) = fault {
                return Err(injected(0, limit));
            }
            let mut items = Vec::with_capacity(row_items + entries.len() + 2);
            for layer in layers {
                for (key, data) in layer.items {
                    let pk = rows_pk(&cat, &layer.table, &layer.part.id, shard_of(&key, layer.part.shards));
                    items.push(self.put(row_item(pk, &key, data), None)?);
                }
            }
            for entry in &entries {
                items.push(self.put(entry.item(&cat)?, None)?);
            }
            items.push(self.head_update(&ctx)?);
            items.extend(self.workspace_op(&ctx, commit.create_workspace.as_ref())?);
            self.client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
                .map_err(|e| transaction_error(e, CHANGED))?;
            return Ok(rev);
        }
        self.commit_staged(&ctx, &commit, &txn, layers, entries, fault).await
    }

    /// The layer a plan writes (none when it writes no rows) and the table's state after it.
    async fn layer_and_state(
        &self,
        ws_key: &str,
        cat: &str,
        plan: &TablePlan<'_>,
        txn: &str,
        known: Option<&HashMap<String, bool>>,
    ) -> StoreResult<(Option<LayerWrite>, TableState)> {
        // Which of the changed keys exist now decides the row count: reads grow with the change,
        // and none at all when the caller's snapshot looked every one of them up.
        let changed: Vec<&str> = plan.upserts.keys().chain(plan.deletes.iter()).copied().collect();
        let known = known.filter(|known| changed.iter().all(|k| known.contains_key(*k)));
        let existing: HashSet<String> = match (&plan.old, known) {
            (Some(_), Some(known)) => {
                changed.iter().filter(|k| known.get(**k) == Some(&true)).map(|k| (*k).to_owned()).collect()
            }
            (Some(old), None) if !changed.is_empty() => {
                let view = TableView { store: self, cat_pk: cat, table: plan.name, parts: old.parts() };
                view.get(&changed)
                    .await?
                    .into_iter()
                    .filter(|(_, data)| *data != RowData::Tombstone)
                    .map(|(k, _)| k)
                    .collect()
            }
            _ => HashSet::new(),
        };
        let added = plan.upserts.keys().filter(|k| !existing.contains(**k)).count() as u64;
        let removed = plan.deletes.iter().filter(|k| existing.contains(**k)).count() as u64;
        let old_rows = plan.old.as_ref().map_or(0, |o| o.rows);
        let (base, mut layers) = plan.old.as_ref().map_or((None, Vec::new()), |o| (o.base.clone(), o.layers.clone()));
        let count = plan.layer_items();
        let layer = if count == 0 {
            None
        } else {
            let part = Part { id: txn.to_owned(), shards: shard_count(count as u64) };
            let mut items = Vec::with_capacity(count);
            let mut blobs = Vec::new();
            for (key, row) in &plan.upserts {
                let text = serde_json::to_string(row).map_err(|e| {
                    StoreError::Internal(format!("row {} of table {} does not serialize: {e}", short(key), plan.name))
                })?;
                let data = if text.len() <= INLINE_ROW_MAX {
                    RowData::Inline(text)
                } else {
                    // Checked now, so a store without blobs refuses before anything is written.
                    self.blobs(plan.name, key)?;
                    let blob = blob_key(ws_key, plan.name, txn, key);
                    blobs.push((blob.clone(), text));
                    RowData::Blob(blob)
                };
                items.push(((*key).to_owned(), data));
            }
            // Tombstones only where a row may be below: in a new table there is nothing to hide.
            let dels: Vec<&str> = plan.deletes.iter().copied().filter(|k| existing.contains(*k)).collect();
            items.extend(dels.iter().map(|k| ((*k).to_owned(), RowData::Tombstone)));
            if items.is_empty() {
                None
            } else {
                layers.push(Layer { part: part.clone(), items: items.len() as u64, dels: dels.len() as u64 });
                Some(LayerWrite { table: plan.name.to_owned(), part, items, blobs })
            }
        };
        let state = TableState {
            dropped: false,
            owner: plan.owner.clone(),
            key: plan.key.clone(),
            columns: plan.columns.clone(),
            rows: (old_rows + added).saturating_sub(removed),
            base,
            layers,
        };
        Ok((layer, state))
    }

    /// A large commit: a pending record (so compaction can find whatever is written), the layers
    /// and entries (invisible until the log names this commit), then one transaction that moves
    /// the head, writes the log and marks the record committed.
    #[allow(clippy::too_many_arguments)]
    async fn commit_staged(
        &self,
        ctx: &CommitContext<'_>,
        commit: &Commit,
        txn: &str,
        mut layers: Vec<LayerWrite>,
        entries: Vec<Entry>,
        fault: Option<usize>,
    ) -> StoreResult<u64> {
        let parts: Vec<(String, Part)> = layers.iter().map(|l| (l.table.clone(), l.part.clone())).collect();
        let blob_keys: Vec<&str> = layers.iter().flat_map(|l| l.blobs.iter().map(|(k, _)| k.as_str())).collect();
        self.put_pending_record(ctx.cat, txn, &parts, &blob_keys, ctx.now).await?;
        for layer in &mut layers {
            for (blob, text) in std::mem::take(&mut layer.blobs) {
                self.blobs(&layer.table, &blob)?.put_blob(&blob, text.into_bytes()).await?;
            }
        }
        self.stage(ctx.cat, &layers, &entries, fault).await?;
        // Lost the race (`Conflict`): nothing of it is visible. What it staged stays behind its
        // pending record until compaction aborts it past the grace period (a retry has another
        // base, so it stages afresh rather than reusing it).
        self.flip(ctx, txn, commit.create_workspace.as_ref(), Vec::new()).await
    }

    /// Makes a staged commit visible: moves the head, writes the log naming `txn` as the maker of
    /// `ctx.rev` and marks its record committed at that revision (on condition it is still
    /// pending), creates the workspace when asked and absent, and writes `extra`, all in one
    /// transaction conditional on the head being where `ctx` found it.
    pub(super) async fn flip(
        &self,
        ctx: &CommitContext<'_>,
        txn: &str,
        create: Option<&WorkspaceDraft>,
        extra: Vec<TransactWriteItem>,
    ) -> StoreResult<u64> {
        let mut items = vec![self.head_update(ctx)?];
        let log = Put::builder()
            .table_name(&self.table)
            .item("PK", s(ctx.cat))
            .item("SK", s(log_sk(ctx.rev)))
            .item("txn", s(txn))
            .item("at", n(ctx.now));
        items.push(TransactWriteItem::builder().put(log.build().map_err(build_error)?).build());
        let record = Update::builder()
            .table_name(&self.table)
            .key("PK", s(ctx.cat))
            .key("SK", s(record_sk(txn)))
            .update_expression("SET #state = :committed, #at = :now, #rev = :rev")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#at", "at")
            .expression_attribute_names("#rev", "rev")
            .expression_attribute_values(":committed", s(COMMITTED))
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":now", n(ctx.now))
            .expression_attribute_values(":rev", n(ctx.rev));
        items.push(TransactWriteItem::builder().update(record.build().map_err(build_error)?).build());
        items.extend(self.workspace_op(ctx, create)?);
        items.extend(extra);
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| transaction_error(e, CHANGED))?;
        Ok(ctx.rev)
    }

    /// Writes the layers' rows and the entries; with a fault set, stops after that many rows.
    pub(super) async fn stage(
        &self,
        cat: &str,
        layers: &[LayerWrite],
        entries: &[Entry],
        fault: Option<usize>,
    ) -> StoreResult<()> {
        let pushed = AtomicUsize::new(0);
        let mut writer = Writer::new(self);
        let result = async {
            for layer in layers {
                for (key, data) in &layer.items {
                    let so_far = pushed.fetch_add(1, Ordering::SeqCst);
                    if let Some(limit) = fault.filter(|limit| so_far >= *limit) {
                        // What was written stays written, as after a crash; none of it is visible.
                        return Err(injected(so_far, limit));
                    }
                    let pk = rows_pk(cat, &layer.table, &layer.part.id, shard_of(key, layer.part.shards));
                    writer.push(put_request(row_item(pk, key, data.clone()))?).await?;
                }
            }
            if let Some(limit) = fault {
                return Err(injected(pushed.load(Ordering::SeqCst), limit));
            }
            for entry in entries {
                writer.push(put_request(entry.item(cat)?)?).await?;
            }
            Ok(())
        }
        .await;
        // Whatever happened, the calls already in flight are awaited before returning.
        let finished = writer.finish().await;
        result?;
        finished
    }

    /// `pending` → `aborting`; false when the record is not pending (committed, or gone).
    pub(super) async fn mark_aborting(&self, cat: &str, txn: &str) -> StoreResult<bool> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(cat))
            .key("SK", s(record_sk(txn)))
            .update_expression("SET #state = :aborting")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":aborting", s(ABORTING))
            .expression_attribute_values(":pending", s(PENDING))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) => match store_error("UpdateItem", e) {
                StoreError::Conflict(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Written before any row: whatever happens next, compaction can find the rows. Refreshes a
    /// pending record of the same commit (a retry); refuses one being aborted or one that
    /// committed (a retry after success has another base, so another id).
    async fn put_pending_record(
        &self,
        cat: &str,
        txn: &str,
        parts: &[(String, Part)],
        blobs: &[&str],
        now: u64,
    ) -> StoreResult<()> {
        let parts = serde_json::to_string(parts).map_err(|e| StoreError::Internal(format!("commit record: {e}")))?;
        let blobs = serde_json::to_string(blobs).map_err(|e| StoreError::Internal(format!("commit record: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(cat))
            .item("SK", s(record_sk(txn)))
            .item("state", s(PENDING))
            .item("parts", s(parts))
            .item("blobs", s(blobs))
            .item("created", n(now))
            .item(TTL_ATTRIBUTE, n(now + RECORD_TTL_SECS))
            .condition_expression("attribute_not_exists(#pk) OR #state = :pending")
            .expression_attribute_names("#pk", "PK")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", s(PENDING))
            .send()
            .await
            .map_err(|e| match store_error("PutItem", e) {
                StoreError::Conflict(_) => StoreError::Conflict(CHANGED.into()),
                other => other,
            })?;
        Ok(())
    }

    /// The head's move to `rev`, on condition it is still where the commit started; marks the
    /// workspace for compaction.
    pub(super) fn head_update(&self, ctx: &CommitContext<'_>) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("PK", s(ctx.ws_key))
            .key("SK", s(HEAD_SK))
            .update_expression("SET #rev = :rev, #gen = :gen, #at = :now, #gpk = :bucket, #gsk = :ws")
            .expression_attribute_names("#rev", "rev")
            .expression_attribute_names("#gen", "gen")
            .expression_attribute_names("#at", "at")
            .expression_attribute_names("#gpk", "GSI1PK")
            .expression_attribute_names("#gsk", "GSI1SK")
            .expression_attribute_values(":rev", n(ctx.rev))
            .expression_attribute_values(":gen", s(ctx.gen))
            .expression_attribute_values(":now", n(ctx.now))
            .expression_attribute_values(":bucket", s(compact_bucket(ctx.ws_key)))
            .expression_attribute_values(":ws", s(ctx.ws_key));
        let update = if ctx.head.exists {
            update.condition_expression("#rev = :base").expression_attribute_values(":base", n(ctx.head.rev))
        } else {
            update.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", "PK")
        };
        Ok(TransactWriteItem::builder().update(update.build().map_err(build_error)?).build())
    }

    /// Creates the workspace when the commit may and it does not exist (conditional on its
    /// absence, so a race with its creation fails). Nothing else is needed: a delete racing the
    /// commit moves the head, which fails the commit's condition.
    fn workspace_op(
        &self,
        ctx: &CommitContext<'_>,
        create: Option<&WorkspaceDraft>,
    ) -> StoreResult<Option<TransactWriteItem>> {
        let (Some(draft), false) = (create, ctx.workspace_exists) else { return Ok(None) };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(new_workspace_item(&ctx.ws.owner, draft)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "PK");
        Ok(Some(TransactWriteItem::builder().put(put.build().map_err(build_error)?).build()))
    }

    fn put(&self, item: Item, condition: Option<&str>) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned));
        Ok(TransactWriteItem::builder().put(put.build().map_err(build_error)?).build())
    }
}

/// What every step of one commit needs to know.
pub(super) struct CommitContext<'a> {
    pub ws: &'a WsKey,
    pub ws_key: &'a str,
    pub cat: &'a str,
    /// The head as read: the flip is conditional on it.
    pub head: &'a Head,
    pub gen: &'a str,
    pub rev: u64,
    pub now: u64,
    pub workspace_exists: bool,
}

fn data_len(data: &RowData) -> usize {
    match data {
        RowData::Inline(t) | RowData::Blob(t) => t.len(),
        RowData::Tombstone => 8,
    }
}

fn injected(written: usize, limit: usize) -> StoreError {
    StoreError::Unavailable(format!("injected fault after {written} rows (limit {limit})"))
}

/// A cancelled transaction whose reasons include a failed condition (or a concurrent
/// transaction on the same items) lost a race: `Conflict`. Throttling is `Unavailable`.
pub(super) fn transaction_error<R: std::fmt::Debug>(
    err: SdkError<TransactWriteItemsError, R>,
    conflict: &str,
) -> StoreError {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() {
        let codes: Vec<&str> = cancelled.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
        if codes.iter().any(|c| matches!(*c, "ConditionalCheckFailed" | "TransactionConflict")) {
            return StoreError::Conflict(conflict.into());
        }
        if codes
            .iter()
            .any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"))
        {
            return StoreError::Unavailable(format!("DynamoDB TransactWriteItems throttled: {codes:?}"));
        }
    }
    if let Some(TransactWriteItemsError::TransactionInProgressException(_)) = err.as_service_error() {
        return StoreError::Unavailable("DynamoDB TransactWriteItems: the same transaction is in progress".into());
    }
    if let Some(TransactWriteItemsError::IdempotentParameterMismatchException(_)) = err.as_service_error() {
        return StoreError::Conflict(conflict.into());
    }
    store_error("TransactWriteItems", err)
}
