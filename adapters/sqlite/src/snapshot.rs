//! Reads at one revision: a read transaction on a connection of the snapshot's own. In WAL mode
//! the transaction's first read fixes what it sees, so every later read answers from that
//! moment, however many commits other connections make meanwhile.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::{blocking, from_sqlite, internal, layout};
use shared::store::{Snapshot, StoreResult};
use shared::tables::{Column, Row, TableMeta, TableOwner};

pub(super) struct SqliteSnapshot {
    /// Inside an open read transaction, ended when the connection closes (on drop).
    conn: Arc<Mutex<Connection>>,
    ws: String,
    rev: u64,
    tables: Vec<TableMeta>,
}

impl SqliteSnapshot {
    /// Blocking: opens the connection, begins the transaction and reads the head and the tables.
    pub(super) fn open(path: &Path, ws: String) -> StoreResult<Self> {
        let conn = layout::connect(path)?;
        conn.execute_batch("BEGIN").map_err(from_sqlite)?;
        // The transaction's first read: from here on it sees this revision only.
        let rev = head(&conn, &ws)?;
        let tables = read_tables(&conn, &ws)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), ws, rev, tables })
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        blocking(&self.conn, move |conn| {
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

    async fn get_rows(&self, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>> {
        let (ws, table, keys) = (self.ws.clone(), table.to_owned(), keys.to_vec());
        blocking(&self.conn, move |conn| {
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
}
