//! The storage port: one trait, two adapters (SQLite locally, DynamoDB in AWS), one
//! conformance suite (`tests/tests/store_conformance.rs`) that both must pass.

use async_trait::async_trait;
use std::sync::Arc;

use crate::model::{Owner, Workspace, WorkspaceDraft};
use crate::tables::{Commit, Row, TableMeta, WsKey};

pub mod dynamodb;
pub mod sqlite;

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
    /// Anything else (mapped to 500, logged, never shown).
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Maps an AWS SDK failure (DynamoDB and S3 alike) onto the port: throttling (the service's
/// `retryable_codes`), timeouts and network failures are `Unavailable` (the SDK has already
/// retried them; the caller may, later), anything else `Internal`. The detail is logged only.
pub(crate) fn sdk_error<E, R>(
    service: &str,
    op: &str,
    err: aws_sdk_dynamodb::error::SdkError<E, R>,
    retryable_codes: &[&str],
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
    let unavailable = match &err {
        SdkError::TimeoutError(_) => true,
        // `is_user` means we built a bad request: not something a retry fixes.
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(_) => err.code().is_some_and(|c| retryable_codes.contains(&c)),
        _ => false,
    };
    let detail = format!("{service} {op}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
    if unavailable {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Internal(detail)
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Creates the workspace `draft.id` under `owner`, or updates it in place when it exists
    /// there (keeping `created_at` and `author`). Returns the stored workspace.
    async fn save_workspace(&self, owner: &Owner, draft: WorkspaceDraft) -> StoreResult<Workspace>;

    /// The workspace `id` of `owner`; `None` when absent (whoever else may have one of that id).
    async fn get_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<Workspace>>;

    /// Up to `limit` workspaces of `owner` in list order (newest `updated_at` first, then by
    /// [`Workspace::list_key`] descending), starting strictly after the list key `after`.
    async fn list_workspaces(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<Vec<Workspace>>;

    /// Every table of the workspace, by name. Empty for a workspace without tables (or absent).
    async fn list_tables(&self, ws: &WsKey) -> StoreResult<Vec<TableMeta>>;

    /// Up to `limit` rows of `table` in key order (byte order of the key text), strictly after
    /// the key `after`; fewer than `limit` only at the end of the table, so callers page until
    /// a short page. Memory stays bounded however large the table is.
    async fn read_rows(
        &self,
        ws: &WsKey,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Row)>>;

    /// The stored rows among `keys` (any number; absent keys are simply not in the answer).
    async fn get_rows(&self, ws: &WsKey, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>>;

    /// Applies the commit all or nothing (see [`Commit`]). A concurrent commit to the same
    /// workspace makes one of them fail with `Conflict` rather than lose the other's writes.
    async fn commit(&self, ws: &WsKey, commit: Commit) -> StoreResult<()>;

    /// Deletes the workspace with all its tables; `None` when it does not exist. Returns the
    /// number of rows that went.
    async fn delete_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>>;

    /// Test support, a stand-in for a crash: while set, every commit fails (with
    /// `Unavailable`) after writing up to this many rows and before anything becomes visible.
    fn inject_commit_fault(&self, after_rows: Option<usize>);
}

pub type DynStore = Arc<dyn Store>;

/// Where rows too large for a DynamoDB item (400 KB) go; the bundle stores implement it.
#[async_trait]
pub trait Blobs: Send + Sync {
    async fn put_blob(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()>;
    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn delete_blob(&self, key: &str) -> StoreResult<()>;
}
