//! The storage port: one trait, two adapters (SQLite locally, DynamoDB in AWS), one
//! conformance suite (`tests/tests/store_conformance.rs`) that both must pass.

use async_trait::async_trait;
use std::sync::Arc;

use crate::model::{Owner, Workspace, WorkspaceDraft};
use crate::tables::{Commit, Row, TableMeta, WsKey};

pub mod job_tables;
pub mod jobs;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost a race (mapped to 409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend is throttling or unreachable (mapped to 503; safe to retry).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// An object is larger than the caller can take (mapped to 413).
    #[error("too large: {0}")]
    TooLarge(String),
    /// What the caller names is not there: a parted upload never started, already completed,
    /// or expired (mapped to 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller's request names something the store cannot take: a part upload's unknown
    /// part or ETag (mapped to 400).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Anything else (mapped to 500, logged, never shown).
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A workspace's tables as of one revision. Every read through it sees that revision and
/// nothing later, however many pages it takes, for as long as it is held (up to
/// [`SNAPSHOT_GRACE_SECS`] on DynamoDB, where compaction waits that long before it reclaims what
/// an older revision still needs).
#[async_trait]
pub trait Snapshot: Send + Sync {
    /// The revision this snapshot reads: 0 for a workspace no commit has touched yet. It is what
    /// [`Tables::commit`] takes as its base.
    fn revision(&self) -> u64;

    /// Every table at this revision, by name (byte order).
    fn tables(&self) -> &[TableMeta];

    fn table(&self, name: &str) -> Option<&TableMeta> {
        self.tables().iter().find(|t| t.name == name)
    }

    /// Up to `limit` rows of `table` in key order (byte order of the key text), strictly after
    /// the key `after`; fewer than `limit` only at the end of the table, so callers page until
    /// a short page. Memory stays bounded however large the table is. Empty for a table this
    /// revision does not have.
    async fn read_rows(&self, table: &str, after: Option<&str>, limit: usize) -> StoreResult<Vec<(String, Row)>>;

    /// The rows among `keys` (any number; absent keys are simply not in the answer).
    async fn get_rows(&self, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>>;
}

/// The workspace records: one small item each, saved and listed on their own.
#[async_trait]
pub trait Workspaces: Send + Sync {
    /// Creates the workspace `draft.id` under `owner`, or updates it in place when it exists
    /// there (keeping `created_at` and `author`). Returns the stored workspace.
    async fn save_workspace(&self, owner: &Owner, draft: WorkspaceDraft) -> StoreResult<Workspace>;

    /// The workspace `id` of `owner`; `None` when absent (whoever else may have one of that id).
    async fn get_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<Workspace>>;

    /// Up to `limit` workspaces of `owner` in list order (newest `updated_at` first, then by
    /// [`Workspace::list_key`] descending), starting strictly after the list key `after`, and
    /// whether any follow them. A page may hold fewer than `limit` with `more` set (a store's
    /// own page size, DynamoDB's 1 MB): the caller goes on after its last item.
    async fn list_workspaces(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<WorkspacePage>;

    /// Deletes the workspace with all its tables; `None` when it does not exist. Returns the
    /// number of rows that went. A commit racing it either lands before (and is deleted with the
    /// workspace) or fails with `Conflict`; it never brings tables back.
    async fn delete_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>>;
}

/// One page of a workspace list. `more` is known, not guessed from a full page: an adapter
/// reads one item past `limit`, so a list of exactly `limit` costs no second, empty request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkspacePage {
    pub items: Vec<Workspace>,
    pub more: bool,
}

/// A workspace's tables: read at a pinned revision, changed by all-or-nothing commits.
#[async_trait]
pub trait Tables: Send + Sync {
    /// Pins the workspace's current revision.
    async fn snapshot(&self, ws: &WsKey) -> StoreResult<Box<dyn Snapshot>>;

    /// Applies `commit` all or nothing on top of revision `base` (the revision of the snapshot
    /// the caller read before deciding what to write) and returns the new revision. When the
    /// workspace has moved past `base` (another commit, or a delete), nothing is written and the
    /// answer is `Conflict`: the caller reads again and decides again, so no update is lost.
    async fn commit(&self, ws: &WsKey, base: u64, commit: Commit) -> StoreResult<u64>;
}

/// Test support, only with the `faults` feature (never in a deployed binary): a stand-in for a
/// crash.
#[cfg(feature = "faults")]
pub trait Faults {
    /// While set, every commit fails (with `Unavailable`) after writing up to this many rows and
    /// before anything becomes visible.
    fn inject_commit_fault(&self, after_rows: Option<usize>);
}

/// Both aggregates, as one adapter provides them; handlers take the half they use.
#[cfg(not(feature = "faults"))]
pub trait Store: Workspaces + Tables {}
#[cfg(not(feature = "faults"))]
impl<T: Workspaces + Tables> Store for T {}

#[cfg(feature = "faults")]
pub trait Store: Workspaces + Tables + Faults {}
#[cfg(feature = "faults")]
impl<T: Workspaces + Tables + Faults> Store for T {}

/// How long a snapshot stays exact on DynamoDB: compaction never reclaims anything a revision
/// younger than this may still read. Lambda stops an invocation at 15 minutes; 5 more for clocks
/// and retries. A reader that may outlive it (a job) holds a lease instead.
pub const SNAPSHOT_GRACE_SECS: u64 = 20 * 60;

pub type DynStore = Arc<dyn Store>;

/// Where rows too large for a DynamoDB item (400 KB) go; the bundle stores implement it.
#[async_trait]
pub trait Blobs: Send + Sync {
    async fn put_blob(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()>;
    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn delete_blob(&self, key: &str) -> StoreResult<()>;
}
