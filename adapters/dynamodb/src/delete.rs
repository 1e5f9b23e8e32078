//! Deleting a workspace: one transaction removes the workspace item and moves the head to a new
//! revision without a generation, so its tables vanish at once and any commit based on an
//! earlier revision fails. The old generation's items are swept by compaction, not here: a
//! large workspace's delete answers at once and cannot time out half-way.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use crate::commit::{transaction_error, CHANGED};
use crate::layout::{compact_bucket, key_item, n, now_secs, HEAD_SK};
use crate::{build_error, s, workspace_sk, DynamoStore};
use shared::model::Owner;
use shared::store::{StoreError, StoreResult};
use shared::tables::WsKey;

/// Attempts when a commit keeps landing between the delete's read and its transaction.
const DELETE_ATTEMPTS: usize = 5;

impl DynamoStore {
    pub(super) async fn delete_workspace_impl(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>> {
        self.check_layout().await?;
        let ws_key = WsKey::new(owner.clone(), id).key();
        let workspace_key = key_item(owner.key(), workspace_sk(id));
        for _ in 0..DELETE_ATTEMPTS {
            let (exists, head) = futures::try_join!(self.item_exists(workspace_key.clone()), self.head(&ws_key))?;
            if !exists {
                return Ok(None);
            }
            let catalog = self.catalog(&ws_key, &head, None).await?;
            let rows: u64 = catalog.values().filter(|e| !e.state.dropped).map(|e| e.state.rows).sum();
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(workspace_key.clone()))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", "PK");
            let mut items = vec![TransactWriteItem::builder().delete(delete.build().map_err(build_error)?).build()];
            let now = now_secs();
            items.push(if head.exists {
                let mut expression = "SET #rev = :next, #at = :now, #gpk = :bucket, #gsk = :ws REMOVE #gen".to_owned();
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .key("PK", s(&ws_key))
                    .key("SK", s(HEAD_SK))
                    .condition_expression("#rev = :rev")
                    .expression_attribute_names("#rev", "rev")
                    .expression_attribute_names("#at", "at")
                    .expression_attribute_names("#gen", "gen")
                    .expression_attribute_names("#gpk", "GSI1PK")
                    .expression_attribute_names("#gsk", "GSI1SK")
                    .expression_attribute_values(":rev", n(head.rev))
                    .expression_attribute_values(":next", n(head.rev + 1))
                    .expression_attribute_values(":now", n(now))
                    .expression_attribute_values(":bucket", s(compact_bucket(&ws_key)))
                    .expression_attribute_values(":ws", s(&ws_key));
                if let Some(gen) = &head.gen {
                    // The old generation is left for compaction to sweep.
                    expression.push_str(" ADD #gone :gone");
                    update = update.expression_attribute_names("#gone", "gone").expression_attribute_values(
                        ":gone",
                        aws_sdk_dynamodb::types::AttributeValue::Ss(vec![gen.clone()]),
                    );
                }
                let update = update.update_expression(expression);
                TransactWriteItem::builder().update(update.build().map_err(build_error)?).build()
            } else {
                // No commit yet: a head at revision 1 still fails any commit based on 0.
                let put = Put::builder()
                    .table_name(&self.table)
                    .item("PK", s(&ws_key))
                    .item("SK", s(HEAD_SK))
                    .item("rev", n(1))
                    .item("at", n(now))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", "PK");
                TransactWriteItem::builder().put(put.build().map_err(build_error)?).build()
            });
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
                .map_err(|e| transaction_error(e, CHANGED))
            {
                Ok(_) => return Ok(Some(rows)),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict(CHANGED.into()))
    }
}
