//! Writes to tables: a commit on top of the revision it was decided at, and a workspace's delete.
//! Each is one `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so the head read
//! inside it cannot change before the transaction ends, and a concurrent writer waits instead of
//! failing half-way with SQLITE_BUSY on upgrade.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::snapshot::head;
use crate::{draft_values, from_sqlite, internal, INSERT_WORKSPACE};
use shared::store::{StoreError, StoreResult};
use shared::tables::Commit;

/// What a client is told when its commit's base is no longer the head (it reaches it as a 409).
pub(super) const MOVED: &str = "the workspace was changed concurrently; reload it and retry";

/// Applies `commit` on top of revision `base` of `ws`; the new revision. `Conflict`, with nothing
/// written, when the head is no longer `base`.
pub(super) fn commit(
    conn: &mut Connection,
    ws: &str,
    owner_key: &str,
    base: u64,
    commit: &Commit,
    fault: Option<usize>,
) -> StoreResult<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(from_sqlite)?;
    if head(&tx, ws)? != base {
        return Err(StoreError::Conflict(MOVED.into()));
    }
    apply_commit(&tx, ws, owner_key, commit, fault)?;
    let next = base + 1;
    set_head(&tx, ws, next)?;
    tx.commit().map_err(from_sqlite)?;
    Ok(next)
}

/// Deletes the workspace, its tables and rows, and moves its head on (the head row stays): a
/// commit based on any revision from before can never land. `None` when there is no workspace.
pub(super) fn delete_workspace(conn: &mut Connection, owner_key: &str, id: &str, ws: &str) -> StoreResult<Option<u64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(from_sqlite)?;
    let gone = tx
        .execute("DELETE FROM workspaces WHERE owner = ?1 AND id = ?2", params![owner_key, id])
        .map_err(from_sqlite)?;
    if gone == 0 {
        return Ok(None);
    }
    let rows = tx.execute("DELETE FROM ws_rows WHERE ws = ?1", params![ws]).map_err(from_sqlite)?;
    tx.execute("DELETE FROM ws_tables WHERE ws = ?1", params![ws]).map_err(from_sqlite)?;
    // Open stagings can never land now, even once the workspace exists again.
    tx.execute("UPDATE ws_stagings SET overtaken = 1 WHERE ws = ?1 AND finished IS NULL", params![ws])
        .map_err(from_sqlite)?;
    tx.execute("DELETE FROM ws_staged_rows WHERE ws = ?1", params![ws]).map_err(from_sqlite)?;
    let next = head(&tx, ws)? + 1;
    set_head(&tx, ws, next)?;
    tx.commit().map_err(from_sqlite)?;
    Ok(Some(rows as u64))
}

pub(super) fn set_head(tx: &rusqlite::Transaction<'_>, ws: &str, rev: u64) -> StoreResult<()> {
    let rev = i64::try_from(rev).map_err(|_| internal(format!("revision {rev} of {ws} is out of range")))?;
    tx.execute(
        "INSERT INTO ws_heads (ws, rev) VALUES (?1, ?2) ON CONFLICT (ws) DO UPDATE SET rev = excluded.rev",
        params![ws, rev],
    )
    .map_err(from_sqlite)?;
    Ok(())
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
        // A new key is inserted, an existing one updated: which one happened is the row count's
        // change, so the count follows what the commit writes, never what the table holds.
        let mut insert = tx
            .prepare_cached("INSERT OR IGNORE INTO ws_rows (ws, tbl, key, data) VALUES (?1, ?2, ?3, ?4)")
            .map_err(from_sqlite)?;
        let mut update = tx
            .prepare_cached("UPDATE ws_rows SET data = ?4 WHERE ws = ?1 AND tbl = ?2 AND key = ?3")
            .map_err(from_sqlite)?;
        let mut added = 0i64;
        for (key, row) in &table.rows {
            if let Some(limit) = fault.filter(|limit| written >= *limit) {
                return Err(injected_fault(written, limit));
            }
            let data = serde_json::to_string(row).map_err(internal)?;
            if insert.execute(params![ws, table.name, key, data]).map_err(from_sqlite)? == 1 {
                added += 1;
            } else {
                update.execute(params![ws, table.name, key, data]).map_err(from_sqlite)?;
            }
            written += 1;
        }
        count_rows(tx, ws, &table.name, added)?;
    }
    for (table, keys) in &commit.delete_rows {
        let mut del =
            tx.prepare_cached("DELETE FROM ws_rows WHERE ws = ?1 AND tbl = ?2 AND key = ?3").map_err(from_sqlite)?;
        let mut removed = 0i64;
        for key in keys {
            removed += i64::try_from(del.execute(params![ws, table, key]).map_err(from_sqlite)?).unwrap_or(0);
        }
        count_rows(tx, ws, table, -removed)?;
    }
    for table in &commit.drop_tables {
        tx.execute("DELETE FROM ws_rows WHERE ws = ?1 AND tbl = ?2", params![ws, table]).map_err(from_sqlite)?;
        tx.execute("DELETE FROM ws_tables WHERE ws = ?1 AND name = ?2", params![ws, table]).map_err(from_sqlite)?;
    }
    // A commit with fewer rows than the limit fails too, at the last moment: "every commit".
    if let Some(limit) = fault {
        return Err(injected_fault(written, limit));
    }
    Ok(())
}

/// Moves `table`'s recorded row count by `delta`.
fn count_rows(tx: &rusqlite::Transaction<'_>, ws: &str, table: &str, delta: i64) -> StoreResult<()> {
    if delta != 0 {
        tx.prepare_cached("UPDATE ws_tables SET row_count = row_count + ?3 WHERE ws = ?1 AND name = ?2")
            .and_then(|mut stmt| stmt.execute(params![ws, table, delta]))
            .map_err(from_sqlite)?;
    }
    Ok(())
}

fn injected_fault(written: usize, limit: usize) -> StoreError {
    StoreError::Unavailable(format!("injected fault after {written} rows (limit {limit})"))
}
