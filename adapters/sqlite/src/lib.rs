//! The embedded adapter: one SQLite file that several function processes share (that is how
//! `cargo lambda watch` runs them), so WAL mode and a busy timeout, and every write in a
//! transaction of its own. A snapshot is a read transaction on a connection of its own, so it
//! needs a file: an in-memory database is refused.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use shared::model::{workspace_version_conflict, Owner, Scope, Workspace, WorkspaceDraft};
use shared::store::{Snapshot, StoreError, StoreResult, Tables, WorkspacePage, Workspaces};
use shared::tables::{Commit, WsKey};

mod jobs;
mod layout;
pub mod queue;
mod snapshot;
mod staging;
mod write;

pub use layout::LAYOUT_VERSION;

pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    /// Idle read connections for snapshots (`snapshot::Readers`).
    readers: snapshot::Readers,
    /// See `Faults::inject_commit_fault` (set only with the `faults` feature).
    fault_after_rows: Arc<Mutex<Option<usize>>>,
}

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
    /// Opens (creating when missing) the file at `path`, bringing a file of the layout before
    /// [`LAYOUT_VERSION`] to it; a file of any other layout is refused, naming both.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let text = path.to_string_lossy();
        if text.is_empty() || text == ":memory:" || text.starts_with("file::memory:") {
            return Err(internal(format!(
                "'{text}' is an in-memory database; the SQLite store needs a file (each snapshot reads \
                 through a connection of its own)"
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| internal(format!("creating {}: {e}", dir.display())))?;
        }
        let mut conn = layout::connect(path)?;
        // Rows live in WITHOUT ROWID tables, whose b-tree keeps at most about a quarter of a
        // page of a row in place and spills the rest to an overflow page of its own: with 4 KiB
        // pages a 1 KB row took 4.7 KB on disk, with 16 KiB pages 1.2 KB. It takes effect only on
        // a new file (before WAL and the first table); files made before keep their pages.
        conn.pragma_update(None, "page_size", layout::PAGE_SIZE).map_err(from_sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(from_sqlite)?;
        layout::ensure_layout(&mut conn, path)?;
        Ok(Self {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
            readers: snapshot::Readers::default(),
            fault_after_rows: Arc::new(Mutex::new(None)),
        })
    }

    /// Runs blocking SQLite work on the store's own connection, off the async executor.
    async fn with_conn<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        blocking(&self.conn, f).await
    }
}

/// Rows a read may return on the caller's thread (see [`read_now`]); a larger read (an export's
/// page, an import chunk's keys) goes to the blocking pool, where its time cannot stall the
/// executor.
pub(crate) const INLINE_READ_ROWS: usize = 1000;

/// Runs a small read on `conn` on the caller's thread when the connection is free, else as
/// [`blocking`] does. In WAL mode a read never waits for a writer, so with the connection free
/// the work is the read alone (microseconds), while the hop to the blocking pool and back cost
/// about as much again, once per store call: a project load made three.
async fn read_now<T, F>(conn: &Arc<Mutex<Connection>>, f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
{
    // The guard is gone before any await (a held std guard would make the future not `Send`).
    let f = match conn.try_lock() {
        Ok(mut guard) => return f(&mut guard),
        Err(std::sync::TryLockError::Poisoned(_)) => return Err(internal("sqlite connection lock poisoned")),
        // A write holds it (another task of this process): wait off the executor.
        Err(std::sync::TryLockError::WouldBlock) => f,
    };
    blocking(conn, f).await
}

/// Runs blocking SQLite work on `conn` off the async executor.
async fn blocking<T, F>(conn: &Arc<Mutex<Connection>>, f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
{
    let conn = Arc::clone(conn);
    tokio::task::spawn_blocking(move || {
        let mut guard = conn.lock().map_err(|_| internal("sqlite connection lock poisoned"))?;
        f(&mut guard)
    })
    .await
    .map_err(internal)?
}

/// A new workspace row from a draft, for `save_workspace` and a commit's `create_workspace` alike;
/// each adds what an existing row gets. Bound by [`draft_values`].
pub(crate) const INSERT_WORKSPACE: &str =
    "INSERT INTO workspaces (owner, id, name, description, metadata, scope, author,
                                                updated_by, created_at, updated_at, list_key)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?8, ?9)";

pub(crate) fn draft_values(
    owner_key: &str,
    draft: &WorkspaceDraft,
) -> StoreResult<rusqlite::ParamsFromIter<[Value; 9]>> {
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
        Value::Text(shared::model::list_key(&draft.now, draft.scope, &draft.id)),
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
impl Workspaces for SqliteStore {
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
        read_now(&self.conn, move |conn| {
            let sql = format!("SELECT {WS_COLUMNS} FROM workspaces WHERE owner = ?1 AND id = ?2");
            conn.query_row(&sql, params![owner, id], workspace_from_row).optional().map_err(from_sqlite)?.transpose()
        })
        .await
    }

    async fn list_workspaces(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<WorkspacePage> {
        let (owner, after) = (owner.key(), after.map(str::to_owned));
        // One row past the page says whether more follow.
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let read = move |conn: &mut Connection| {
            let sql = format!(
                "SELECT {WS_COLUMNS} FROM workspaces
                 WHERE owner = ?1 AND (?2 IS NULL OR list_key < ?2)
                 ORDER BY list_key DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(from_sqlite)?;
            let rows = stmt.query_map(params![owner, after, fetch], workspace_from_row).map_err(from_sqlite)?;
            let mut items = rows.map(|r| r.map_err(from_sqlite)?).collect::<StoreResult<Vec<_>>>()?;
            let more = items.len() > limit;
            items.truncate(limit);
            Ok(WorkspacePage { items, more })
        };
        if limit < INLINE_READ_ROWS {
            read_now(&self.conn, read).await
        } else {
            self.with_conn(read).await
        }
    }

    async fn delete_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>> {
        let (owner_key, id, ws) = (owner.key(), id.to_owned(), WsKey::new(owner.clone(), id).key());
        self.with_conn(move |conn| write::delete_workspace(conn, &owner_key, &id, &ws)).await
    }
}

#[async_trait]
impl Tables for SqliteStore {
    async fn snapshot(&self, ws: &WsKey) -> StoreResult<Box<dyn Snapshot>> {
        let (path, readers, ws) = (self.path.clone(), Arc::clone(&self.readers), ws.key());
        // On this thread: an idle connection (or a new one), BEGIN and two small reads, which
        // cost less than a hop to the blocking pool; a read transaction never waits for a writer.
        Ok(Box::new(snapshot::SqliteSnapshot::open(&path, readers, ws)?))
    }

    async fn commit(&self, ws: &WsKey, base: u64, commit: Commit) -> StoreResult<u64> {
        let (ws, owner_key) = (ws.key(), ws.owner.key());
        let fault = *self.fault_after_rows.lock().map_err(|_| internal("fault lock poisoned"))?;
        self.with_conn(move |conn| write::commit(conn, &ws, &owner_key, base, &commit, fault)).await
    }
}

#[cfg(feature = "faults")]
impl shared::store::Faults for SqliteStore {
    fn inject_commit_fault(&self, after_rows: Option<usize>) {
        if let Ok(mut f) = self.fault_after_rows.lock() {
            *f = after_rows;
        }
    }
}

/// What a function's `main` links to serve `sqlite://` stores and queues (`shared::Links`).
pub static LINK: Link = Link;

pub struct Link;

impl shared::app::EmbeddedLink for Link {
    fn store(&self, path: &Path) -> Result<Arc<dyn shared::app::StoreAdapter>, String> {
        Ok(Arc::new(SqliteStore::open(path).map_err(|e| e.to_string())?))
    }

    fn queue(&self, path: &Path) -> Result<Arc<dyn shared::app::QueueAdapter>, String> {
        Ok(Arc::new(queue::LocalQueue::open(path).map_err(|e| e.to_string())?))
    }
}
