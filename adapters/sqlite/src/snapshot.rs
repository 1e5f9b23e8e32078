//! Reads at one revision: a read transaction on a connection of the snapshot's own. In WAL mode
//! the transaction's first read fixes what it sees, so every later read answers from that
//! moment, however many commits other connections make meanwhile.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::{blocking, from_sqlite, internal, layout, read_now, INLINE_READ_ROWS};
use shared::store::{Snapshot, StoreResult};
use shared::tables::{Column, Row, TableMeta, TableOwner};

pub(super) struct SqliteSnapshot {
    /// Inside an open read transaction, ended on drop (`None` only then).
    conn: Option<Arc<Mutex<Connection>>>,
    /// Where the connection goes back to on drop, for the next snapshot.
    readers: Readers,
    ws: String,
    rev: u64,
    tables: Vec<TableMeta>,
}

/// Connections of finished snapshots, kept open: opening one (file, pragmas, schema read) costs
/// about as much as a small snapshot's whole read.
pub(super) type Readers = Arc<Mutex<Vec<Connection>>>;

/// Idle connections kept: more than the snapshots a process usually has open at once.
const IDLE_READERS_MAX: usize = 4;

impl SqliteSnapshot {
    /// Blocking: takes an idle connection or opens one, begins the transaction and reads the
    /// head and the tables.
    pub(super) fn open(path: &Path, readers: Readers, ws: String) -> StoreResult<Self> {
        let idle = readers.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => layout::connect(path)?,
        };
        conn.execute_batch("BEGIN").map_err(from_sqlite)?;
        // The transaction's first read: from here on it sees this revision only.
        let rev = head(&conn, &ws)?;
        let tables = read_tables(&conn, &ws)?;
        Ok(Self { conn: Some(Arc::new(Mutex::new(conn))), readers, ws, rev, tables })
    }

    fn conn(&self) -> StoreResult<&Arc<Mutex<Connection>>> {
        self.conn.as_ref().ok_or_else(|| internal("snapshot already closed"))
    }
}

impl Drop for SqliteSnapshot {
    /// Ends the read transaction (nothing to write: no fsync) and hands the connection back. One
    /// a read still holds (a cancelled call's blocking task) is simply closed instead.
    fn drop(&mut self) {
        let conn = self.conn.take().and_then(|c| Arc::try_unwrap(c).ok()).and_then(|m| m.into_inner().ok());
        let Some(conn) = conn else { return };
        if conn.execute_batch("COMMIT").is_ok() && conn.is_autocommit() {
            if let Ok(mut idle) = self.readers.lock() {
                if idle.len() < IDLE_READERS_MAX {
                    idle.push(conn);
                }
            }
        }
    }
}

/// The workspace's revision: 0 when no commit or delete has touched it.
pub(super) fn head(conn: &Connection, ws: &str) -> StoreResult<u64> {
    let rev: Option<i64> = conn
        .query_row("SELECT rev FROM ws_heads WHERE ws = ?1", params![ws], |r| r.get(0))
        .optional()
        .map_err(from_sqlite)?;
    Ok(rev.map_or(0, |r| u64::try_from(r).unwrap_or(0)))
}

fn read_tables(conn: &Connection, ws: &str) -> StoreResult<Vec<TableMeta>> {
    let mut stmt = conn
        .prepare_cached("SELECT name, columns, key_column, row_count, owner FROM ws_tables WHERE ws = ?1 ORDER BY name")
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
            Some(json) => serde_json::from_str(&json).map_err(|e| internal(format!("stored owner of {name}: {e}")))?,
            None => TableOwner::unrecorded(&name),
        };
        Ok(TableMeta { name, owner, columns, key_column, row_count: u64::try_from(row_count).unwrap_or(0) })
    })
    .collect()
}

fn row_from_text(key: String, data: &str) -> StoreResult<(String, Row)> {
    let row = serde_json::from_str(data).map_err(|e| internal(format!("stored row is not a JSON object: {e}")))?;
    Ok((key, row))
}

#[async_trait]
impl Snapshot for SqliteSnapshot {
    fn revision(&self) -> u64 {
        self.rev
    }

    fn tables(&self) -> &[TableMeta] {
        &self.tables
    }

    async fn read_rows(&self, table: &str, after: Option<&str>, limit: usize) -> StoreResult<Vec<(String, Row)>> {
        let (ws, table, after) = (self.ws.clone(), table.to_owned(), after.map(str::to_owned));
        let inline = limit <= INLINE_READ_ROWS;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = move |conn: &mut Connection| {
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
        };
        match inline {
            true => read_now(self.conn()?, read).await,
            false => blocking(self.conn()?, read).await,
        }
    }

    async fn get_rows(&self, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>> {
        let inline = keys.len() <= INLINE_READ_ROWS;
        let (ws, table, keys) = (self.ws.clone(), table.to_owned(), keys.to_vec());
        let read = move |conn: &mut Connection| {
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
        };
        match inline {
            true => read_now(self.conn()?, read).await,
            false => blocking(self.conn()?, read).await,
        }
    }
}
