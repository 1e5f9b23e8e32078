//! Garbage: row items of superseded versions (after a commit or a workspace delete) and of
//! versions that never committed (after a crash or an injected fault). Always best effort and
//! always guarded by the manifest: a version the manifest names is never deleted.

use super::batch::{delete_request, Writer};
use super::layout::{
    key_item, n, now_secs, rows_pk, text, Manifest, Record, VersionRef, ABORTING, ATTR_BLOB, COMMITTED, PENDING,
    RECORD_PREFIX,
};
use super::{s, store_error, DynamoStore, Item};
use crate::store::{StoreError, StoreResult};

/// A pending commit older than this has been abandoned (a Lambda runs 15 minutes at most).
pub(super) const ABANDONED_AFTER_SECS: u64 = 20 * 60;
/// A committed record younger than this is probably still being collected by its own commit.
pub(super) const COMMITTED_GRACE_SECS: u64 = 2 * 60;
/// Records one sweep looks at.
const SWEEP_RECORDS: i32 = 25;
/// Row deletes one sweep may issue; the rest waits for the next commit.
const SWEEP_BUDGET: usize = 20_000;
/// Keys per Query page when deleting.
const DELETE_PAGE: usize = 1000;

impl DynamoStore {
    /// Up to `SWEEP_RECORDS` commit records of the workspace. Best effort: a failure is logged
    /// and skips this sweep, it never fails the caller.
    pub(super) async fn records(&self, ws_key: &str) -> StoreResult<Vec<Item>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", "PK")
            .expression_attribute_names("#sk", "SK")
            .expression_attribute_values(":pk", s(ws_key))
            .expression_attribute_values(":prefix", s(RECORD_PREFIX))
            .consistent_read(true)
            .limit(SWEEP_RECORDS)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.items.unwrap_or_default()),
            Err(e) => {
                tracing::warn!(error = %store_error("Query", e), ws = %ws_key, "listing commit records failed; no sweep");
                Ok(Vec::new())
            }
        }
    }

    /// Finishes what crashed commits left: abandoned pending ones are aborted (their rows
    /// deleted), committed ones get their superseded versions collected. Bounded; logged.
    pub(super) async fn sweep(&self, ws_key: &str, manifest: &Manifest, records: Vec<Item>) {
        let now = now_secs();
        let mut budget = SWEEP_BUDGET;
        for item in records {
            if budget == 0 {
                break;
            }
            let record = match Record::from_item(&item) {
                Ok(record) => record,
                Err(e) => {
                    tracing::warn!(error = %e, ws = %ws_key, "skipping an unreadable commit record");
                    continue;
                }
            };
            let abandoned = record.created.saturating_add(ABANDONED_AFTER_SECS) <= now;
            let settled = record.committed_at.unwrap_or(record.created).saturating_add(COMMITTED_GRACE_SECS) <= now;
            let done = match record.state.as_str() {
                PENDING | ABORTING if abandoned => self.abort(ws_key, manifest, &record, &mut budget).await,
                COMMITTED if settled => {
                    self.finish_record(ws_key, manifest, &record.sk, &record.superseded, COMMITTED, Some(&mut budget))
                        .await
                }
                _ => Ok(()),
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, ws = %ws_key, record = %record.sk, "sweeping a commit record failed");
            }
        }
    }

    /// Marks the record `aborting` first, conditional on it being the same pending record: a
    /// retry of that commit refreshes `created` (and then wins), or finds it aborting and backs
    /// off with `Conflict`; the two never write and delete the same version at once.
    async fn abort(&self, ws_key: &str, manifest: &Manifest, record: &Record, budget: &mut usize) -> StoreResult<()> {
        if record.state == PENDING {
            let marked = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("PK", s(ws_key))
                .key("SK", s(&record.sk))
                .update_expression("SET #state = :aborting")
                .condition_expression("#state = :pending AND #created = :created")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#created", "created")
                .expression_attribute_values(":aborting", s(ABORTING))
                .expression_attribute_values(":pending", s(PENDING))
                .expression_attribute_values(":created", n(record.created))
                .send()
                .await
                .map_err(|e| store_error("UpdateItem", e));
            match marked {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.finish_record(ws_key, manifest, &record.sk, &record.versions, ABORTING, Some(budget)).await
    }

    /// Deletes the rows of `versions` (never one `manifest` names), then the record `sk` if it
    /// is still in `state` and everything went.
    pub(super) async fn finish_record(
        &self,
        ws_key: &str,
        manifest: &Manifest,
        sk: &str,
        versions: &[VersionRef],
        state: &str,
        mut budget: Option<&mut usize>,
    ) -> StoreResult<()> {
        let mut complete = true;
        for version in versions.iter().filter(|v| !manifest.names(&v.table, &v.v)) {
            complete &= self.delete_version(ws_key, version, budget.as_deref_mut()).await?;
        }
        if !complete {
            return Ok(());
        }
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(ws_key, sk)))
            .condition_expression("#state = :state")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state))
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", e));
        match deleted {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes every row item of a version (and its blobs, first, so none is orphaned).
    /// Returns false when the budget ran out before the end.
    async fn delete_version(
        &self,
        ws_key: &str,
        version: &VersionRef,
        mut budget: Option<&mut usize>,
    ) -> StoreResult<bool> {
        let mut writer = Writer::new(self);
        for shard in 0..version.shards.max(1) {
            let pk = rows_pk(ws_key, &version.table, &version.v, shard);
            let mut start = None;
            loop {
                if budget.as_deref().is_some_and(|left| *left == 0) {
                    writer.finish().await?;
                    return Ok(false);
                }
                let (items, next) = self.query_page(&pk, None, DELETE_PAGE, start, true).await?;
                for item in items {
                    if let Some(blob) = text(&item, ATTR_BLOB) {
                        self.blobs(&version.table, text(&item, "SK").unwrap_or("?"))?.delete_blob(blob).await?;
                    }
                    let (Some(pk), Some(sk)) = (text(&item, "PK"), text(&item, "SK")) else {
                        return Err(StoreError::Internal(format!("a row item under {pk} has no string keys")));
                    };
                    writer.push(delete_request(key_item(pk, sk))?).await?;
                    if let Some(left) = budget.as_deref_mut() {
                        *left = left.saturating_sub(1);
                    }
                }
                match next {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
        }
        writer.finish().await?;
        Ok(true)
    }
}
