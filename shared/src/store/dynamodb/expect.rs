//! A commit's row expectations (`Commit::expect_rows`), read at the manifest revision the
//! commit's transaction is conditional on: if that revision is still current when the
//! transaction applies, the rows are still as read, so the check and the commit are atomic.

use super::layout::{key_item, row_of_item, rows_pk, shard_of, Manifest};
use super::{store_error, DynamoStore};
use crate::store::{StoreError, StoreResult};
use crate::tables::{Row, RowExpectation};

impl DynamoStore {
    pub(super) async fn check_expected_rows(
        &self,
        ws_key: &str,
        manifest: &Manifest,
        expected: &[RowExpectation],
    ) -> StoreResult<()> {
        for e in expected {
            if self.row_at(ws_key, manifest, &e.table, &e.key).await? != e.row {
                return Err(StoreError::Conflict(e.changed()));
            }
        }
        Ok(())
    }

    /// Row `key` of `table` in the version `manifest` names; `None` when absent. A version
    /// collected since (a newer commit came) reads as absent, and then the transaction fails.
    async fn row_at(&self, ws_key: &str, manifest: &Manifest, table: &str, key: &str) -> StoreResult<Option<Row>> {
        let Some(entry) = manifest.tables.get(table) else { return Ok(None) };
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(rows_pk(ws_key, table, &entry.v, shard_of(key, entry.shards)), key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(mut item) = out.item else { return Ok(None) };
        let (key, data) = row_of_item(&mut item, table)?;
        let text = self.row_text(table, &key, data).await?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Internal(format!("stored row of table {table} is not a JSON object: {e}")))
    }
}
