//! The storage port: one trait, two adapters (SQLite locally, DynamoDB in AWS), one
//! conformance suite (`tests/tests/store_conformance.rs`) that both must pass.

use async_trait::async_trait;
use std::sync::Arc;

use crate::config::StoreUrl;
use crate::model::{Owner, Workspace, WorkspaceDraft};

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
    /// Anything else (mapped to 500, logged, never shown).
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => crate::error::ApiError::conflict(m),
            StoreError::Unavailable(m) => crate::error::ApiError::unavailable(m),
            StoreError::Internal(m) => crate::error::ApiError::internal(m),
        }
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
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a `WORKSPACES_STORE` URL names.
pub async fn open(url: &StoreUrl) -> StoreResult<DynStore> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open(path)?)),
        StoreUrl::DynamoDb { table } => Ok(Arc::new(dynamodb::DynamoStore::from_env(table).await)),
    }
}
