//! What jobs need of a workspace's tables beyond one request: reading one revision for longer
//! than a snapshot stays exact (export jobs), and commits too large for one call, staged in
//! pieces from any number of invocations and made visible at once (import jobs).
//! Both adapters implement it; the staging cases of `tests/tests/store_conformance.rs` hold both
//! to the same contract.

use async_trait::async_trait;

use super::{Snapshot, StoreResult};
use crate::model::WorkspaceDraft;
use crate::tables::{Column, Row, TableOwner, WsKey};

/// One table a staging writes, as it is after the finish.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedTable {
    pub name: String,
    /// Recorded with the table when the finish creates it (the API has checked a stored table's).
    pub owner: TableOwner,
    /// The table's schema after the finish.
    pub columns: Vec<Column>,
    pub key_column: String,
    /// Keys this staging writes that were not in the table at [`StagedFinish::base_revision`]:
    /// when no other commit touched the table since, its row count is the count then plus this.
    /// (Otherwise the store counts again, reading only the staged keys.)
    pub new_keys: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StagedFinish {
    /// The revision the job decided on (its counts are relative to it).
    pub base_revision: u64,
    /// Create the workspace in the same step when it does not exist.
    pub create_workspace: Option<WorkspaceDraft>,
    /// Every table the staging wrote rows to, and any it creates without rows.
    pub tables: Vec<StagedTable>,
}

#[async_trait]
pub trait JobTables: Send + Sync {
    /// Holds revision `rev` of `ws` readable (against compaction) until `until` (unix seconds),
    /// under `lease`; taking it again moves `until`. A no-op where nothing reclaims revisions.
    async fn hold_revision(&self, ws: &WsKey, lease: &str, rev: u64, until: u64) -> StoreResult<()>;

    async fn release_revision(&self, ws: &WsKey, lease: &str) -> StoreResult<()>;

    /// A snapshot of revision `rev`, opened again (by another invocation of a job); `None` when
    /// that revision can no longer be read exactly (SQLite keeps only the current one; the
    /// workspace was deleted).
    async fn snapshot_at(&self, ws: &WsKey, rev: u64) -> StoreResult<Option<Box<dyn Snapshot>>>;

    /// Prepares staging `id` in `ws` (idempotent: a resumed job calls it again). `tables` are the
    /// tables it will write with the number of rows it will write to each (DynamoDB spreads a
    /// layer over shards by it). Nothing is visible.
    async fn begin_staging(&self, ws: &WsKey, id: &str, tables: &[(String, u64)]) -> StoreResult<()>;

    /// Writes `rows` of `table` into staging `id`, invisible to every reader. Writing a key again
    /// replaces it, so a piece written twice (a resumed or redelivered chunk) is harmless. It also
    /// keeps the staging alive: a staging not written to (nor finished) for
    /// [`STAGING_IDLE_SECS`] may be aborted by the store.
    async fn stage_rows(&self, ws: &WsKey, id: &str, table: &str, rows: Vec<(String, Row)>) -> StoreResult<()>;

    /// Makes everything staged under `id` visible in one step, on top of the workspace's
    /// *current* revision (a merge: staged rows replace stored rows of the same key, every other
    /// stored row stays), with each table's schema as given; returns the new revision. Row counts
    /// are exact. `Conflict` when the workspace was deleted since `begin_staging` (the job fails;
    /// nothing of it is visible). Finishing an already finished staging answers its revision.
    async fn finish_staging(&self, ws: &WsKey, id: &str, finish: StagedFinish) -> StoreResult<u64>;

    /// Drops what was staged under `id`; none of it ever becomes visible. Absent: no error.
    async fn abort_staging(&self, ws: &WsKey, id: &str) -> StoreResult<()>;
}

/// How long an unfinished staging stays safe from compaction without a write.
pub const STAGING_IDLE_SECS: u64 = 2 * 3600;
