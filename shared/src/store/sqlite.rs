//! The embedded adapter: one SQLite file that several function processes share (that is how
//! `cargo lambda watch` runs them), so WAL mode and a busy timeout, and every write in a
//! transaction of its own.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Store, StoreError, StoreResult};
use crate::model::{workspace_version_conflict, Owner, Scope, Workspace, WorkspaceDraft};
use crate::tables::{Column, Commit, Row as TableRow, TableMeta, TableOwner, WsKey};

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// See `Store::inject_commit_fault`.
    fault_after_rows: Arc<Mutex<Option<usize>>>,
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
    -- 1 when created, one more on every save (files from before versions: 1, see below).
    version     INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS workspaces_by_updated ON workspaces (owner, list_key);
-- `ws` is `WsKey::key()`: owner and workspace id in one tenancy-scoped key.
CREATE TABLE IF NOT EXISTS ws_tables (
    ws          TEXT NOT NULL,
    name        TEXT NOT NULL,
    columns     TEXT NOT NULL,
    key_column  TEXT NOT NULL,
    row_count   INTEGER NOT NULL DEFAULT 0,
    -- JSON of `TableOwner`, recorded when the table is created; NULL only in files written
    -- before owners were recorded (read as `TableOwner::unrecorded`).
    owner       TEXT,
    PRIMARY KEY (ws, name)
) WITHOUT ROWID;
-- Keys compare as bytes (SQLite's BINARY collation), the order DynamoDB sorts keys in too.
CREATE TABLE IF NOT EXISTS ws_rows (
    ws    TEXT NOT NULL,
    tbl   TEXT NOT NULL,
    key   TEXT NOT NULL,
    data  TEXT NOT NULL,
    PRIMARY KEY (ws, tbl, key)
) WITHOUT ROWID;
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
        add_owner_column(&conn)?;
        add_version_column(&conn)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), fault_after_rows: Arc::new(Mutex::new(None)) })
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

/// Files made before table owners were recorded lack the column: add it (NULL for old tables).
fn add_owner_column(conn: &Connection) -> StoreResult<()> {
    let has = conn
        .prepare("SELECT 1 FROM pragma_table_info('ws_tables') WHERE name = 'owner'")
        .and_then(|mut s| s.exists([]))
        .map_err(from_sqlite)?;
    if !has {
        conn.execute_batch("ALTER TABLE ws_tables ADD COLUMN owner TEXT").map_err(from_sqlite)?;
    }
    Ok(())
}

/// Files made before workspaces had versions lack the column: add it, every existing workspace
/// at version 1 (the version a record without one counts as, on both stores).
fn add_version_column(conn: &Connection) -> StoreResult<()> {
    let has = conn
        .prepare("SELECT 1 FROM pragma_table_info('workspaces') WHERE name = 'version'")
        .and_then(|mut s| s.exists([]))
        .map_err(from_sqlite)?;
    if !has {
        conn.execute_batch("ALTER TABLE workspaces ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
            .map_err(from_sqlite)?;
    }
    Ok(())
}

/// A new workspace row from a draft, for `save_workspace` and a commit's `create_workspace` alike;
/// each adds what an existing row gets. Bound by [`draft_values`]. `version` takes its default, 1.
const INSERT_WORKSPACE: &str = "INSERT INTO workspaces (owner, id, name, description, metadata, scope, author,
                                                updated_by, created_at, updated_at, list_key)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?8, ?9)";

fn draft_values(owner_key: &str, draft: &WorkspaceDraft) -> StoreResult<rusqlite::ParamsFromIter<[Value; 9]>> {
    let metadata = serde_json::to_string(&draft.metadata).map_err(internal)?;
    Ok(rusqlite::params_from_iter([
        Value::Text(owner_key.to_owned()),
        Value::Text(draft.id.clone()),
        Value::Text(draft.name.clone()),
        draft.description.clone().map_or(Value::Null, Value::Text),
        Value::Text(metadata),
        Value::Text(draft.scope.as_str().to_owned()),
        Value::Text(draft.writer.clone()),
        Value::Text(draft.now.clone()),
        Value::Text(crate::model::list_key(&draft.now, draft.scope, &draft.id)),
    ]))
}

const WS_COLUMNS: &str = "id, name, description, metadata, scope, author, updated_by, created_at, updated_at, version";

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
            version: u64::try_from(row.get::<_, i64>(9)?).unwrap_or(0),
        }),
        Err(e) => Err(e),
    })
}

#[async_trait]
impl Store for SqliteStore {
    /// The version check and the upsert in one IMMEDIATE transaction: no other writer can come
    /// between them, so of concurrent saves naming the same version exactly one applies.
    async fn save_workspace(&self, owner: &Owner, draft: WorkspaceDraft) -> StoreResult<Workspace> {
        let owner = owner.key();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(from_sqlite)?;
            if let Some(expected) = draft.expected_version {
                let stored: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM workspaces WHERE owner = ?1 AND id = ?2",
                        params![owner, draft.id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(from_sqlite)?;
                let stored = stored.map(|v| u64::try_from(v).unwrap_or(0));
                if stored != Some(expected) {
                    return Err(StoreError::Conflict(workspace_version_conflict(&draft.id, stored, expected)));
                }
            }
            let sql = format!(
                "{INSERT_WORKSPACE}
                 ON CONFLICT (owner, id) DO UPDATE SET
                    name = excluded.name, description = excluded.description, metadata = excluded.metadata,
                    scope = excluded.scope, updated_by = excluded.updated_by, updated_at = excluded.updated_at,
                    list_key = excluded.list_key, version = workspaces.version + 1
                 RETURNING {WS_COLUMNS}"
            );
            let saved =
                tx.query_row(&sql, draft_values(&owner, &draft)?, workspace_from_row).map_err(from_sqlite)??;
            tx.commit().map_err(from_sqlite)?;
            Ok(saved)
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

    async fn list_tables(&self, ws: &WsKey) -> StoreResult<Vec<TableMeta>> {
        let ws = ws.key();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name, columns, key_column, row_count, owner FROM ws_tables WHERE ws = ?1 ORDER BY name",
                )
                .map_err(from_sqlite)?;
            let rows = stmt
                .query_map(params![ws], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })
                .map_err(from_sqlite)?;
            rows.map(|r| {
                let (name, columns, key_column, row_count, owner) = r.map_err(from_sqlite)?;
                let columns: Vec<Column> =
                    serde_json::from_str(&columns).map_err(|e| internal(format!("stored schema of {name}: {e}")))?;
                let owner = match owner {
                    Some(json) => {
                        serde_json::from_str(&json).map_err(|e| internal(format!("stored owner of {name}: {e}")))?
                    }
                    None => TableOwner::unrecorded(&name),
                };
                Ok(TableMeta { name, owner, columns, key_column, row_count: u64::try_from(row_count).unwrap_or(0) })
            })
            .collect()
        })
        .await
    }

    async fn read_rows(
        &self,
        ws: &WsKey,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, TableRow)>> {
        let (ws, table, after) = (ws.key(), table.to_owned(), after.map(str::to_owned));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, data FROM ws_rows WHERE ws = ?1 AND tbl = ?2 AND (?3 IS NULL OR key > ?3)
                     ORDER BY key LIMIT ?4",
                )
                .map_err(from_sqlite)?;
            let rows = stmt
                .query_map(params![ws, table, after, limit], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(from_sqlite)?;
            rows.map(|r| {
                let (key, data) = r.map_err(from_sqlite)?;
                row_from_text(key, &data)
            })
            .collect()
        })
        .await
    }

    async fn get_rows(&self, ws: &WsKey, table: &str, keys: &[String]) -> StoreResult<Vec<(String, TableRow)>> {
        let (ws, table, keys) = (ws.key(), table.to_owned(), keys.to_vec());
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT data FROM ws_rows WHERE ws = ?1 AND tbl = ?2 AND key = ?3")
                .map_err(from_sqlite)?;
            let mut out = Vec::new();
            for key in keys {
                let data: Option<String> =
                    stmt.query_row(params![ws, table, key], |r| r.get(0)).optional().map_err(from_sqlite)?;
                if let Some(data) = data {
                    out.push(row_from_text(key, &data)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn commit(&self, ws: &WsKey, commit: Commit) -> StoreResult<()> {
        let (ws, owner_key) = (ws.key(), ws.owner.key());
        let fault = *self.fault_after_rows.lock().map_err(|_| internal("fault lock poisoned"))?;
        self.with_conn(move |conn| {
            // IMMEDIATE: take the write lock up front so a concurrent writer waits instead of
            // failing half-way with SQLITE_BUSY on upgrade.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(from_sqlite)?;
            apply_commit(&tx, &ws, &owner_key, &commit, fault)?;
            tx.commit().map_err(from_sqlite)
        })
        .await
    }

    async fn delete_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>> {
        let (owner_key, id, ws) = (owner.key(), id.to_owned(), WsKey::new(owner.clone(), id).key());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(from_sqlite)?;
            let gone = tx
                .execute("DELETE FROM workspaces WHERE owner = ?1 AND id = ?2", params![owner_key, id])
                .map_err(from_sqlite)?;
            if gone == 0 {
                return Ok(None);
            }
            let rows = tx.execute("DELETE FROM ws_rows WHERE ws = ?1", params![ws]).map_err(from_sqlite)?;
            tx.execute("DELETE FROM ws_tables WHERE ws = ?1", params![ws]).map_err(from_sqlite)?;
            tx.commit().map_err(from_sqlite)?;
            Ok(Some(rows as u64))
        })
        .await
    }

    fn inject_commit_fault(&self, after_rows: Option<usize>) {
        if let Ok(mut f) = self.fault_after_rows.lock() {
            *f = after_rows;
        }
    }
}

fn row_from_text(key: String, data: &str) -> StoreResult<(String, TableRow)> {
    let row = serde_json::from_str(data).map_err(|e| internal(format!("stored row is not a JSON object: {e}")))?;
    Ok((key, row))
}

/// `ws` is the workspace's `WsKey::key()`, `owner_key` its owner's key (passed, not parsed back
/// out of `ws`: an owner named `ws` would make that ambiguous).
fn apply_commit(
    tx: &rusqlite::Transaction<'_>,
    ws: &str,
    owner_key: &str,
    commit: &Commit,
    fault: Option<usize>,
) -> StoreResult<()> {
    for expected in &commit.expect_rows {
        let data: Option<String> = tx
            .query_row(
                "SELECT data FROM ws_rows WHERE ws = ?1 AND tbl = ?2 AND key = ?3",
                params![ws, expected.table, expected.key],
                |r| r.get(0),
            )
            .optional()
            .map_err(from_sqlite)?;
        let stored = data.map(|d| row_from_text(expected.key.clone(), &d)).transpose()?.map(|(_, row)| row);
        if stored != expected.row {
            return Err(StoreError::Conflict(expected.changed()));
        }
    }
    if let Some(draft) = &commit.create_workspace {
        tx.execute(&format!("{INSERT_WORKSPACE} ON CONFLICT (owner, id) DO NOTHING"), draft_values(owner_key, draft)?)
            .map_err(from_sqlite)?;
    }
    let mut written = 0usize;
    for table in &commit.upserts {
        let columns = serde_json::to_string(&table.columns).map_err(internal)?;
        let owner = serde_json::to_string(&table.owner).map_err(internal)?;
        tx.execute(
            "INSERT INTO ws_tables (ws, name, columns, key_column, owner) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (ws, name) DO UPDATE SET columns = excluded.columns, key_column = excluded.key_column,
                                                 owner = excluded.owner",
            params![ws, table.name, columns, table.key_column, owner],
        )
        .map_err(from_sqlite)?;
        let mut put = tx
            .prepare_cached("INSERT OR REPLACE INTO ws_rows (ws, tbl, key, data) VALUES (?1, ?2, ?3, ?4)")
            .map_err(from_sqlite)?;
        for (key, row) in &table.rows {
            if let Some(limit) = fault.filter(|limit| written >= *limit) {
                return Err(injected_fault(written, limit));
            }
            let data = serde_json::to_string(row).map_err(internal)?;
            put.execute(params![ws, table.name, key, data]).map_err(from_sqlite)?;
            written += 1;
        }
    }
    for (table, keys) in &commit.delete_rows {
        let mut del =
            tx.prepare_cached("DELETE FROM ws_rows WHERE ws = ?1 AND tbl = ?2 AND key = ?3").map_err(from_sqlite)?;
        for key in keys {
            del.execute(params![ws, table, key]).map_err(from_sqlite)?;
        }
    }
    for table in &commit.drop_tables {
        tx.execute("DELETE FROM ws_rows WHERE ws = ?1 AND tbl = ?2", params![ws, table]).map_err(from_sqlite)?;
        tx.execute("DELETE FROM ws_tables WHERE ws = ?1 AND name = ?2", params![ws, table]).map_err(from_sqlite)?;
    }
    let touched = commit.upserts.iter().map(|t| &t.name).chain(commit.delete_rows.iter().map(|(t, _)| t));
    for table in touched {
        tx.execute(
            "UPDATE ws_tables SET row_count = (SELECT count(*) FROM ws_rows WHERE ws = ?1 AND tbl = ?2)
             WHERE ws = ?1 AND name = ?2",
            params![ws, table],
        )
        .map_err(from_sqlite)?;
    }
    // A commit with fewer rows than the limit fails too, at the last moment: "every commit".
    if let Some(limit) = fault {
        return Err(injected_fault(written, limit));
    }
    Ok(())
}

fn injected_fault(written: usize, limit: usize) -> StoreError {
    StoreError::Unavailable(format!("injected fault after {written} rows (limit {limit})"))
}
