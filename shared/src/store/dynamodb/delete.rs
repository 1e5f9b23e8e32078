//! Deleting a workspace: one transaction removes the workspace item and the manifest (so its
//! tables vanish at once) and records every version as garbage; then that garbage is collected.

use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem};

use super::commit::transaction_error;
use super::layout::{key_item, n, now_secs, refs_json, Manifest, COMMITTED, MANIFEST_SK, RECORD_PREFIX};
use super::{build_error, s, workspace_sk, DynamoStore};
use crate::model::Owner;
use crate::store::StoreResult;
use crate::tables::WsKey;

impl DynamoStore {
    pub(super) async fn delete_workspace_impl(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>> {
        let ws_key = WsKey::new(owner.clone(), id).key();
        let workspace_key = key_item(owner.key(), workspace_sk(id));
        let (exists, manifest, records) = futures::try_join!(
            self.item_exists(workspace_key.clone()),
            self.manifest(&ws_key),
            self.records(&ws_key),
        )?;
        if !exists {
            return Ok(None);
        }
        let garbage = manifest.versions();
        // `#` cannot occur in a commit id, so this never names a commit's record; the time keeps
        // it from replacing the unfinished record of an earlier delete of a workspace of that id.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let sk = format!("{RECORD_PREFIX}delete#{}#{nanos}", manifest.rev);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(workspace_key))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "PK");
        let mut items = vec![TransactWriteItem::builder().delete(delete.build().map_err(build_error)?).build()];
        // Tables a commit adds meanwhile make this fail rather than outlive their workspace.
        let manifest_key = key_item(&ws_key, MANIFEST_SK);
        items.push(if manifest.exists {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(manifest_key))
                .condition_expression("#rev = :rev0")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":rev0", n(manifest.rev));
            TransactWriteItem::builder().delete(delete.build().map_err(build_error)?).build()
        } else {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(manifest_key))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "PK");
            TransactWriteItem::builder().condition_check(check.build().map_err(build_error)?).build()
        });
        if !garbage.is_empty() {
            let now = now_secs();
            let record = Put::builder()
                .table_name(&self.table)
                .item("PK", s(&ws_key))
                .item("SK", s(&sk))
                .item("state", s(COMMITTED))
                .item("superseded", s(refs_json(&garbage)?))
                .item("created", n(now))
                .item("committed_at", n(now));
            items.push(TransactWriteItem::builder().put(record.build().map_err(build_error)?).build());
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| transaction_error(e, "the workspace changed during the delete; retry"))?;

        let gone = Manifest::default();
        if let Err(e) = self.finish_record(&ws_key, &gone, &sk, &garbage, COMMITTED, None).await {
            tracing::warn!(error = %e, ws = %ws_key, "collecting a deleted workspace's tables failed; the sweep will retry");
        }
        self.sweep(&ws_key, &gone, records).await;
        Ok(Some(manifest.total_rows()))
    }
}
