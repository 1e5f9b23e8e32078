//! The embedded adapter: one SQLite file that several function processes share (that is how
//! `cargo lambda watch` runs them), so WAL mode and a busy timeout, and every write in a
//! transaction of its own.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Store, StoreError, StoreResult};
use crate::model::{Owner, Scope, Workspace, WorkspaceDraft};

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workspaces (
    owner       TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    metadata    TEXT NOT NULL,
    scope       TEXT NOT NULL,
    author      TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    list_key    TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS workspaces_by_updated ON workspaces (owner, list_key);
";

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn from_sqlite(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => internal(e),
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| internal(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(from_sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(from_sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(from_sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(from_sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(from_sqlite)?;
        conn.execute_batch(SCHEMA).map_err(from_sqlite)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs blocking SQLite work off the async executor.
    async fn with_conn<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| internal("sqlite connection lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(internal)?
    }
}

const WS_COLUMNS: &str = "id, name, description, metadata, scope, author, updated_by, created_at, updated_at";

fn workspace_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Workspace, StoreError>> {
    let metadata: String = row.get(3)?;
    let scope: String = row.get(4)?;
    let parsed = serde_json::from_str(&metadata)
        .map_err(|e| internal(format!("stored metadata is not JSON: {e}")))
        .and_then(|m| {
            let scope = Scope::parse(&scope).map_err(|e| internal(e.message))?;
            Ok((m, scope))
        });
    Ok(match parsed {
        Ok((metadata, scope)) => Ok(Workspace {
            id: row.get(0)?,
            name: row.get(1)?,
            description: row.get(2)?,
            metadata,
            scope,
            author: row.get(5)?,
            updated_by: row.get(6)?,
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
        }),
        Err(e) => Err(e),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn save_workspace(&self, owner: &Owner, draft: WorkspaceDraft) -> StoreResult<Workspace> {
        let owner = owner.key();
        self.with_conn(move |conn| {
            let metadata = serde_json::to_string(&draft.metadata).map_err(internal)?;
            let list_key = crate::model::list_key(&draft.now, draft.scope, &draft.id);
            let sql = format!(
                "INSERT INTO workspaces (owner, id, name, description, metadata, scope, author, updated_by,
                                         created_at, updated_at, list_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?8, ?9)
                 ON CONFLICT (owner, id) DO UPDATE SET
                    name = excluded.name, description = excluded.description, metadata = excluded.metadata,
                    scope = excluded.scope, updated_by = excluded.updated_by, updated_at = excluded.updated_at,
                    list_key = excluded.list_key
                 RETURNING {WS_COLUMNS}"
            );
            conn.query_row(
                &sql,
                params![
                    owner,
                    draft.id,
                    draft.name,
                    draft.description,
                    metadata,
                    draft.scope.as_str(),
                    draft.writer,
                    draft.now,
                    list_key
                ],
                workspace_from_row,
            )
            .map_err(from_sqlite)?
        })
        .await
    }

    async fn get_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<Workspace>> {
        let (owner, id) = (owner.key(), id.to_owned());
        self.with_conn(move |conn| {
            let sql = format!("SELECT {WS_COLUMNS} FROM workspaces WHERE owner = ?1 AND id = ?2");
            conn.query_row(&sql, params![owner, id], workspace_from_row).optional().map_err(from_sqlite)?.transpose()
        })
        .await
    }

    async fn list_workspaces(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<Vec<Workspace>> {
        let (owner, after) = (owner.key(), after.map(str::to_owned));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let sql = format!(
                "SELECT {WS_COLUMNS} FROM workspaces
                 WHERE owner = ?1 AND (?2 IS NULL OR list_key < ?2)
                 ORDER BY list_key DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(from_sqlite)?;
            let rows = stmt.query_map(params![owner, after, limit], workspace_from_row).map_err(from_sqlite)?;
            rows.map(|r| r.map_err(from_sqlite)?).collect()
        })
        .await
    }
}
