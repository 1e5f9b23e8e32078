//! `JobTables` on DynamoDB: not written yet (this commit brings the SQLite adapter first).

use async_trait::async_trait;

use super::DynamoStore;
use crate::store::job_tables::{JobTables, StagedFinish};
use crate::store::{Snapshot, StoreError, StoreResult};
use crate::tables::{Row, WsKey};

fn not_yet() -> StoreError {
    StoreError::Internal("JobTables is not implemented on DynamoDB yet".into())
}

#[async_trait]
impl JobTables for DynamoStore {
    async fn hold_revision(&self, _ws: &WsKey, _lease: &str, _rev: u64, _until: u64) -> StoreResult<()> {
        Err(not_yet())
    }
    async fn release_revision(&self, _ws: &WsKey, _lease: &str) -> StoreResult<()> {
        Err(not_yet())
    }
    async fn snapshot_at(&self, _ws: &WsKey, _rev: u64) -> StoreResult<Option<Box<dyn Snapshot>>> {
        Err(not_yet())
    }
    async fn begin_staging(&self, _ws: &WsKey, _id: &str, _tables: &[(String, u64)]) -> StoreResult<()> {
        Err(not_yet())
    }
    async fn stage_rows(&self, _ws: &WsKey, _id: &str, _table: &str, _rows: Vec<(String, Row)>) -> StoreResult<()> {
        Err(not_yet())
    }
    async fn finish_staging(&self, _ws: &WsKey, _id: &str, _finish: StagedFinish) -> StoreResult<u64> {
        Err(not_yet())
    }
    async fn abort_staging(&self, _ws: &WsKey, _id: &str) -> StoreResult<()> {
        Err(not_yet())
    }
}
