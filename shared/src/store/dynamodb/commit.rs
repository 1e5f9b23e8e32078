//! Commits: new table versions are written where no reader looks, then
//! one conditional transaction on the manifest makes them the tables (see the module doc).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};

use std::sync::atomic::{AtomicUsize, Ordering};

use super::batch::{put_request, Writer, WRITE_CONCURRENCY};
use super::layout::{
    blob_key, key_item, manifest_item, n, now_secs, record_sk, refs_json, row_item, row_of_item, rows_pk, shard_of,
    short, Manifest, RowData, TableEntry, VersionRef, COMMITTED, INLINE_ROW_MAX, PENDING,
};
use super::plan::{next_tables, plan, validate, TablePlan};
use super::{build_error, new_workspace_item, s, store_error, workspace_sk, DynamoStore, Item, TTL_ATTRIBUTE};
use crate::model::{Owner, WorkspaceDraft};
use crate::store::{StoreError, StoreResult};
use crate::tables::{Commit, WsKey};

/// The message of every lost race (it reaches the client as a 409).
const CHANGED: &str = "the workspace changed during this change; retry";
/// A pending record's TTL, a backstop only: the sweep handles abandoned commits long before.
const RECORD_TTL_SECS: u64 = 24 * 3600;
/// Rows per Query page when copying a version.
const COPY_PAGE: usize = 1000;

impl DynamoStore {
    pub(super) async fn commit_impl(&self, ws: &WsKey, commit: Commit) -> StoreResult<()> {
        validate(&commit)?;
        let fault = self.fault()?;
        let ws_key = ws.key();
        let workspace_key = commit.create_workspace.as_ref().map(|d| key_item(ws.owner.key(), workspace_sk(&d.id)));
        let (manifest, workspace_exists, records) = futures::try_join!(
            self.manifest(&ws_key),
            async {
                match &workspace_key {
                    Some(key) => self.item_exists(key.clone()).await.map(Some),
                    None => Ok(None),
                }
            },
            self.records(&ws_key),
        )?;
        self.sweep(&ws_key, &manifest, records).await;
        // Against the revision the transaction below is conditional on: atomic with it.
        self.check_expected_rows(&ws_key, &manifest, &commit.expect_rows).await?;

        let rev0 = manifest.rev;
        let version = format!("{}.{rev0}", commit.id);
        let plans = plan(&commit, &manifest);
        if plans.iter().any(|p| p.old.as_ref().is_some_and(|old| old.v == version)) {
            return Err(StoreError::Internal(format!("commit {version} of {ws_key} would rewrite its own base")));
        }
        // The manifest must still fit its item once the commit is in: find out before writing
        // anything (row counts only grow its text by digits; their upper bounds are used).
        let bounds = plans.iter().map(|p| p.old.as_ref().map_or(0, |o| o.rows) + p.upserts.len() as u64).collect();
        manifest_item(&ws_key, rev0 + 1, &next_tables(&manifest, &commit, &plans, bounds, &version).0)?;
        let written: Vec<VersionRef> = plans
            .iter()
            .map(|p| VersionRef { table: p.name.to_owned(), v: version.clone(), shards: p.shards })
            .collect();
        self.put_pending_record(&ws_key, &version, &written).await?;

        let counts = self.write_versions(&ws_key, &plans, &version, fault).await?;
        let (tables, superseded) = next_tables(&manifest, &commit, &plans, counts, &version);

        let mut items = vec![self.manifest_put(&ws_key, rev0, manifest.exists, &tables)?];
        if let (Some(draft), Some(exists), Some(key)) = (&commit.create_workspace, workspace_exists, workspace_key) {
            items.push(self.workspace_op(&ws.owner, draft, exists, key)?);
        }
        items.push(self.record_committed(&ws_key, &version, &superseded)?);
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| transaction_error(e, CHANGED))?;

        let now_live = Manifest { rev: rev0 + 1, exists: true, tables };
        if let Err(e) = self.finish_record(&ws_key, &now_live, &record_sk(&version), &superseded, COMMITTED, None).await
        {
            tracing::warn!(error = %e, ws = %ws_key, %version, "collecting superseded versions failed; the sweep will retry");
        }
        Ok(())
    }

    /// Every table's new version; the row counts, in `plans` order. The tables are written
    /// concurrently, sharing the in-flight budget: one table only spreads over its own shards
    /// (a partition key takes about 1,000 writes/s), so writing tables one after another would
    /// cap a commit at one table's shards at a time.
    async fn write_versions(
        &self,
        ws_key: &str,
        plans: &[TablePlan<'_>],
        version: &str,
        fault: Option<usize>,
    ) -> StoreResult<Vec<u64>> {
        let per_table = (WRITE_CONCURRENCY / plans.len().max(1)).max(2);
        let pushed = AtomicUsize::new(0);
        let writes = plans.iter().map(|plan| {
            let pushed = &pushed;
            async move {
                let mut writer = Writer::with_concurrency(self, per_table);
                let rows = self.write_version(&mut writer, ws_key, plan, version, fault, pushed).await;
                // Whatever happened, the calls already in flight are awaited before returning.
                let finished = writer.finish().await;
                let rows = rows?;
                finished.map(|()| rows)
            }
        });
        let counts = futures::future::try_join_all(writes).await?;
        match fault {
            Some(limit) => Err(injected(pushed.load(Ordering::SeqCst), limit)),
            None => Ok(counts),
        }
    }

    /// Creates the workspace (conditional on its absence), or checks it still exists: either way
    /// an existing workspace is left untouched, and a race with its creation or deletion fails.
    fn workspace_op(
        &self,
        owner: &Owner,
        draft: &WorkspaceDraft,
        exists: bool,
        key: Item,
    ) -> StoreResult<TransactWriteItem> {
        Ok(if exists {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", "PK");
            TransactWriteItem::builder().condition_check(check.build().map_err(build_error)?).build()
        } else {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(new_workspace_item(owner, draft)?))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "PK");
            TransactWriteItem::builder().put(put.build().map_err(build_error)?).build()
        })
    }

    /// `pending` → `committed` with the garbage to collect; fails if a sweep aborted it.
    fn record_committed(
        &self,
        ws_key: &str,
        version: &str,
        superseded: &[VersionRef],
    ) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("PK", s(ws_key))
            .key("SK", s(record_sk(version)))
            .update_expression("SET #state = :committed, #superseded = :superseded, #committed_at = :now REMOVE #ttl")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#superseded", "superseded")
            .expression_attribute_names("#committed_at", "committed_at")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":committed", s(COMMITTED))
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":superseded", s(refs_json(superseded)?))
            .expression_attribute_values(":now", n(now_secs()));
        Ok(TransactWriteItem::builder().update(update.build().map_err(build_error)?).build())
    }

    /// The manifest's new revision, conditional on the one this commit started from.
    fn manifest_put(
        &self,
        ws_key: &str,
        rev0: u64,
        existed: bool,
        tables: &BTreeMap<String, TableEntry>,
    ) -> StoreResult<TransactWriteItem> {
        let put = Put::builder().table_name(&self.table).set_item(Some(manifest_item(ws_key, rev0 + 1, tables)?));
        let put = if existed {
            put.condition_expression("#rev = :rev0")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":rev0", n(rev0))
        } else {
            put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", "PK")
        };
        Ok(TransactWriteItem::builder().put(put.build().map_err(build_error)?).build())
    }

    /// Written before any row: whatever happens next, the sweep can find the rows. Refreshes a
    /// pending record of the same version (a retry); refuses one a sweep is aborting or one
    /// that already committed.
    async fn put_pending_record(&self, ws_key: &str, version: &str, written: &[VersionRef]) -> StoreResult<()> {
        let now = now_secs();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(ws_key))
            .item("SK", s(record_sk(version)))
            .item("state", s(PENDING))
            .item("versions", s(refs_json(written)?))
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

    /// Writes one table's new version; returns its row count.
    async fn write_version(
        &self,
        writer: &mut Writer<'_>,
        ws_key: &str,
        plan: &TablePlan<'_>,
        version: &str,
        fault: Option<usize>,
        pushed: &AtomicUsize,
    ) -> StoreResult<u64> {
        let new_pk = |key: &str| rows_pk(ws_key, plan.name, version, shard_of(key, plan.shards));
        let mut rows = 0u64;
        if let Some(old) = &plan.old {
            for shard in 0..old.shards.max(1) {
                let pk = rows_pk(ws_key, plan.name, &old.v, shard);
                let mut page = self.query_page(&pk, None, COPY_PAGE, None, false).await?;
                loop {
                    let (items, next) = page;
                    // The next page is read while this one is written.
                    let prefetch = async {
                        match &next {
                            Some(start) => {
                                Some(self.query_page(&pk, None, COPY_PAGE, Some(start.clone()), false).await)
                            }
                            None => None,
                        }
                    };
                    let copy = async {
                        let mut copied = 0u64;
                        for mut item in items {
                            let (key, data) = row_of_item(&mut item, plan.name)?;
                            if plan.upserts.contains_key(key.as_str()) || plan.deletes.contains(key.as_str()) {
                                continue;
                            }
                            let data = match data {
                                RowData::Inline(text) => RowData::Inline(text),
                                RowData::Blob(blob) => self.copy_blob(ws_key, plan.name, version, &key, &blob).await?,
                            };
                            self.push_row(writer, row_item(new_pk(&key), &key, data), fault, pushed).await?;
                            copied += 1;
                        }
                        Ok::<u64, StoreError>(copied)
                    };
                    let (copied, prefetched) = futures::join!(copy, prefetch);
                    rows += copied?;
                    match prefetched {
                        Some(next_page) => page = next_page?,
                        None => break,
                    }
                }
            }
        }
        for (key, row) in &plan.upserts {
            if plan.deletes.contains(key) {
                continue;
            }
            let text = serde_json::to_string(row).map_err(|e| {
                StoreError::Internal(format!("row {} of table {} does not serialize: {e}", short(key), plan.name))
            })?;
            let data = self.row_data(ws_key, plan.name, version, key, text).await?;
            self.push_row(writer, row_item(new_pk(key), key, data), fault, pushed).await?;
            rows += 1;
        }
        Ok(rows)
    }

    /// `pushed` counts the rows of the whole commit, across its tables' writers, for the fault.
    async fn push_row(
        &self,
        writer: &mut Writer<'_>,
        item: Item,
        fault: Option<usize>,
        pushed: &AtomicUsize,
    ) -> StoreResult<()> {
        let so_far = pushed.fetch_add(1, Ordering::SeqCst);
        if let Some(limit) = fault.filter(|limit| so_far >= *limit) {
            // What was written stays written, as after a crash; none of it is visible.
            return Err(injected(so_far, limit));
        }
        writer.push(put_request(item)?).await
    }

    /// Inline JSON, or a blob when the text is too large for an item.
    async fn row_data(
        &self,
        ws_key: &str,
        table: &str,
        version: &str,
        key: &str,
        text: String,
    ) -> StoreResult<RowData> {
        if text.len() <= INLINE_ROW_MAX {
            return Ok(RowData::Inline(text));
        }
        let blob = blob_key(ws_key, table, version, key);
        self.blobs(table, key)?.put_blob(&blob, text.into_bytes()).await?;
        Ok(RowData::Blob(blob))
    }

    /// Each version owns its blobs, so collecting the old version cannot break the new one.
    async fn copy_blob(&self, ws_key: &str, table: &str, version: &str, key: &str, old: &str) -> StoreResult<RowData> {
        let text = self.row_text(table, key, RowData::Blob(old.to_owned())).await?;
        let blob = blob_key(ws_key, table, version, key);
        self.blobs(table, key)?.put_blob(&blob, text.into_bytes()).await?;
        Ok(RowData::Blob(blob))
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
