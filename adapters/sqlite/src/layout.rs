//! The file's layout: its tables, the version it records in `PRAGMA user_version`, and the
//! migration from the one layout before versions were recorded.

use rusqlite::Connection;
use std::path::Path;

use crate::{from_sqlite, internal};
use shared::store::StoreResult;

/// The storage layout this build reads and writes, recorded in the file's `PRAGMA user_version`.
///
/// - 1 (recorded as 0, from before versions were recorded): `workspaces`, `ws_tables` (its
///   `owner` column added later) and `ws_rows`;
/// - 2: adds `ws_heads`, each workspace's revision, which commits are conditioned on, and
///   `workspaces.version`, each workspace's own version, which saves may be conditioned on.
pub const LAYOUT_VERSION: u32 = 2;

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
-- Each workspace's revision: bumped by every commit and by a delete (the row stays, so a
-- commit based on a revision from before the delete never matches again). Absent = 0.
CREATE TABLE IF NOT EXISTS ws_heads (
    ws   TEXT PRIMARY KEY,
    rev  INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The page size of a new file: rows up to about 4 KB stay in their b-tree page (see `open`).
pub const PAGE_SIZE: u32 = 16 * 1024;

/// A connection to `path` as every connection of this adapter is set up: a busy timeout (other
/// processes share the file) and the same pragmas.
pub(super) fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(from_sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(from_sqlite)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(from_sqlite)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(from_sqlite)?;
    Ok(conn)
}

/// Brings the file to [`LAYOUT_VERSION`]: a new file gets it whole, a layout-1 file is migrated
/// in place; a file of any other layout is refused, naming both. One write transaction, so
/// processes opening the file at once migrate it once.
pub(super) fn ensure_layout(conn: &mut Connection, path: &Path) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(from_sqlite)?;
    let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(from_sqlite)?;
    match version {
        LAYOUT_VERSION => {}
        // New (nothing in it yet) or layout 1: `CREATE ... IF NOT EXISTS` makes what is
        // missing (all of it, or `ws_heads`), and files older still lack `ws_tables.owner`.
        0 => {
            tx.execute_batch(SCHEMA).map_err(from_sqlite)?;
            add_owner_column(&tx)?;
            add_version_column(&tx)?;
            tx.pragma_update(None, "user_version", LAYOUT_VERSION).map_err(from_sqlite)?;
        }
        other => {
            return Err(internal(format!(
                "{} has storage layout {other}; this build reads layout {LAYOUT_VERSION}",
                path.display()
            )))
        }
    }
    // Tables added beside the layout (job records, the local queue, staged rows): older builds
    // never read them, so they need no new layout, only creating where missing.
    for schema in ADDED_SCHEMAS {
        tx.execute_batch(schema).map_err(from_sqlite)?;
    }
    tx.commit().map_err(from_sqlite)
}

/// `CREATE ... IF NOT EXISTS` batches of the tables that came after layout 2, run on every open.
const ADDED_SCHEMAS: &[&str] = &[
    // Job records (`jobs.rs`).
    crate::jobs::JOBS_SCHEMA,
    // Staged rows of import jobs (`staging.rs`).
    crate::staging::STAGING_SCHEMA,
];

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
