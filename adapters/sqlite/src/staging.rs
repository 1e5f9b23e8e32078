//! What jobs need of the embedded store (`JobTables`). Staged rows wait in a table of their own,
//! which no snapshot reads (they read `ws_rows`), until one IMMEDIATE transaction moves them in
//! on top of the current head. Nothing reclaims revisions here, so holding one is a no-op, and
//! only the current revision can be opened again.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use crate::snapshot::{head, SqliteSnapshot};
use crate::write::set_head;
use crate::{draft_values, from_sqlite, internal, SqliteStore, INSERT_WORKSPACE};
use shared::store::job_tables::{JobTables, StagedFinish};
use shared::store::{Snapshot, StoreError, StoreResult};
use shared::tables::{Row, TableOwner, WsKey};

/// Registered in `layout::ADDED_SCHEMAS`: created where missing on every open.
pub(super) const STAGING_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ws_stagings (
    ws          TEXT NOT NULL,
    id          TEXT NOT NULL,
    -- 1 when the workspace existed at begin: its absence at finish is then a delete.
    existed     INTEGER NOT NULL,
    -- Set by a delete of the workspace (`write::delete_workspace`): a finish after it is a
    -- conflict, even once the workspace exists again (a head revision cannot tell a delete
    -- from a commit).
    overtaken   INTEGER NOT NULL DEFAULT 0,
    aborted     INTEGER NOT NULL DEFAULT 0,
    -- The revision its finish made: a second finish answers it.
    finished    INTEGER,
    PRIMARY KEY (ws, id)
) WITHOUT ROWID;
-- Keyed by key within (staging, table): writing a key again replaces it.
CREATE TABLE IF NOT EXISTS ws_staged_rows (
    ws       TEXT NOT NULL,
    staging  TEXT NOT NULL,
    tbl      TEXT NOT NULL,
    key      TEXT NOT NULL,
    data     TEXT NOT NULL,
    PRIMARY KEY (ws, staging, tbl, key)
) WITHOUT ROWID;
";

/// A staging's row in `ws_stagings`.
struct Staging {
    existed: bool,
    overtaken: bool,
    aborted: bool,
    finished: Option<u64>,
}

fn staging(tx: &Transaction<'_>, ws: &str, id: &str) -> StoreResult<Option<Staging>> {
    tx.query_row(
        "SELECT existed, overtaken, aborted, finished FROM ws_stagings WHERE ws = ?1 AND id = ?2",
        params![ws, id],
        |r| {
            Ok(Staging {
                existed: r.get::<_, i64>(0)? != 0,
                overtaken: r.get::<_, i64>(1)? != 0,
                aborted: r.get::<_, i64>(2)? != 0,
                finished: r.get::<_, Option<i64>>(3)?.map(|v| u64::try_from(v).unwrap_or(0)),
            })
        },
    )
    .optional()
    .map_err(from_sqlite)
}

fn unknown(id: &str) -> StoreError {
    StoreError::Conflict(format!("staging '{id}' is unknown (never begun, or long gone)"))
}

fn overtaken() -> StoreError {
    StoreError::Conflict("the workspace was deleted while the import ran; nothing of it was written".into())
}

fn workspace_exists(tx: &Transaction<'_>, owner_key: &str, id: &str) -> StoreResult<bool> {
    tx.query_row("SELECT 1 FROM workspaces WHERE owner = ?1 AND id = ?2", params![owner_key, id], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(from_sqlite)
}

/// What an open staging may still take: refuses one that finished, was aborted or overtaken.
fn open_staging(tx: &Transaction<'_>, ws: &str, id: &str) -> StoreResult<Staging> {
    let found = staging(tx, ws, id)?.ok_or_else(|| unknown(id))?;
    if found.finished.is_some() || found.aborted {
        return Err(StoreError::Conflict(format!("staging '{id}' has already finished or been aborted")));
    }
    if found.overtaken {
        return Err(overtaken());
    }
    Ok(found)
}

fn finish(tx: &Transaction<'_>, ws_key: &WsKey, ws: &str, id: &str, finish: &StagedFinish) -> StoreResult<u64> {
    let found = staging(tx, ws, id)?.ok_or_else(|| unknown(id))?;
    if let Some(rev) = found.finished {
        return Ok(rev);
    }
    if found.aborted {
        return Err(StoreError::Conflict(format!("staging '{id}' was aborted")));
    }
    let owner_key = ws_key.owner.key();
    let exists = workspace_exists(tx, &owner_key, &ws_key.workspace_id)?;
    if found.overtaken || (found.existed && !exists) {
        return Err(overtaken());
    }
    if let (Some(draft), false) = (&finish.create_workspace, exists) {
        tx.execute(INSERT_WORKSPACE, draft_values(&owner_key, draft)?).map_err(from_sqlite)?;
    }
    for table in &finish.tables {
        let stored: Option<Option<String>> = tx
            .query_row("SELECT owner FROM ws_tables WHERE ws = ?1 AND name = ?2", params![ws, table.name], |r| r.get(0))
            .optional()
            .map_err(from_sqlite)?;
        // A recorded owner never changes; an unrecorded one (older files) is recorded now.
        if let Some(Some(json)) = stored {
            let recorded: TableOwner =
                serde_json::from_str(&json).map_err(|e| internal(format!("stored owner of {}: {e}", table.name)))?;
            if recorded != table.owner {
                return Err(StoreError::Conflict(format!(
                    "table '{}' is stored as another owner's; nothing of the import was written",
                    table.name
                )));
            }
        }
        let columns = serde_json::to_string(&table.columns).map_err(internal)?;
        let owner = serde_json::to_string(&table.owner).map_err(internal)?;
        tx.execute(
            "INSERT INTO ws_tables (ws, name, columns, key_column, owner) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (ws, name) DO UPDATE SET columns = excluded.columns, key_column = excluded.key_column,
                                                 owner = excluded.owner",
            params![ws, table.name, columns, table.key_column, owner],
        )
        .map_err(from_sqlite)?;
        tx.execute(
            "INSERT OR REPLACE INTO ws_rows (ws, tbl, key, data)
             SELECT ws, tbl, key, data FROM ws_staged_rows WHERE ws = ?1 AND staging = ?2 AND tbl = ?3",
            params![ws, id, table.name],
        )
        .map_err(from_sqlite)?;
        tx.execute(
            "DELETE FROM ws_staged_rows WHERE ws = ?1 AND staging = ?2 AND tbl = ?3",
            params![ws, id, table.name],
        )
        .map_err(from_sqlite)?;
        tx.execute(
            "UPDATE ws_tables SET row_count = (SELECT count(*) FROM ws_rows WHERE ws = ?1 AND tbl = ?2)
             WHERE ws = ?1 AND name = ?2",
            params![ws, table.name],
        )
        .map_err(from_sqlite)?;
    }
    // Rows staged for a table the finish does not name would have no schema: a bug upstream.
    let left: Option<String> = tx
        .query_row("SELECT tbl FROM ws_staged_rows WHERE ws = ?1 AND staging = ?2 LIMIT 1", params![ws, id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(from_sqlite)?;
    if let Some(table) = left {
        return Err(internal(format!("staging '{id}' has rows of table {table}, which its finish does not name")));
    }
    let next = head(tx, ws)? + 1;
    set_head(tx, ws, next)?;
    let rev = i64::try_from(next).map_err(|_| internal(format!("revision {next} of {ws} is out of range")))?;
    tx.execute("UPDATE ws_stagings SET finished = ?3 WHERE ws = ?1 AND id = ?2", params![ws, id, rev])
        .map_err(from_sqlite)?;
    Ok(next)
}

#[async_trait]
impl JobTables for SqliteStore {
    async fn hold_revision(&self, _ws: &WsKey, _lease: &str, _rev: u64, _until: u64) -> StoreResult<()> {
        Ok(())
    }

    async fn release_revision(&self, _ws: &WsKey, _lease: &str) -> StoreResult<()> {
        Ok(())
    }

    /// Rows are changed in place, so only the current revision can be read.
    async fn snapshot_at(&self, ws: &WsKey, rev: u64) -> StoreResult<Option<Box<dyn Snapshot>>> {
        let (path, readers, ws) = (self.path.clone(), std::sync::Arc::clone(&self.readers), ws.key());
        let snapshot =
            tokio::task::spawn_blocking(move || SqliteSnapshot::open(&path, readers, ws)).await.map_err(internal)??;
        Ok((snapshot.revision() == rev).then(|| Box::new(snapshot) as Box<dyn Snapshot>))
    }

    async fn begin_staging(&self, ws: &WsKey, id: &str, _tables: &[(String, u64)]) -> StoreResult<()> {
        let (owner_key, ws_id, ws, id) = (ws.owner.key(), ws.workspace_id.clone(), ws.key(), id.to_owned());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(from_sqlite)?;
            let existed = workspace_exists(&tx, &owner_key, &ws_id)?;
            tx.execute(
                "INSERT INTO ws_stagings (ws, id, existed) VALUES (?1, ?2, ?3) ON CONFLICT (ws, id) DO NOTHING",
                params![ws, id, i64::from(existed)],
            )
            .map_err(from_sqlite)?;
            tx.commit().map_err(from_sqlite)
        })
        .await
    }

    async fn stage_rows(&self, ws: &WsKey, id: &str, table: &str, rows: Vec<(String, Row)>) -> StoreResult<()> {
        let (ws, id, table) = (ws.key(), id.to_owned(), table.to_owned());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(from_sqlite)?;
            open_staging(&tx, &ws, &id)?;
            {
                let mut put = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO ws_staged_rows (ws, staging, tbl, key, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(from_sqlite)?;
                for (key, row) in &rows {
                    let data = serde_json::to_string(row).map_err(internal)?;
                    put.execute(params![ws, id, table, key, data]).map_err(from_sqlite)?;
                }
            }
            tx.commit().map_err(from_sqlite)
        })
        .await
    }

    async fn finish_staging(&self, ws: &WsKey, id: &str, staged: StagedFinish) -> StoreResult<u64> {
        let (ws_key, ws, id) = (ws.clone(), ws.key(), id.to_owned());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(from_sqlite)?;
            let rev = finish(&tx, &ws_key, &ws, &id, &staged)?;
            tx.commit().map_err(from_sqlite)?;
            Ok(rev)
        })
        .await
    }

    async fn abort_staging(&self, ws: &WsKey, id: &str) -> StoreResult<()> {
        let (ws, id) = (ws.key(), id.to_owned());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(from_sqlite)?;
            tx.execute(
                "UPDATE ws_stagings SET aborted = 1 WHERE ws = ?1 AND id = ?2 AND finished IS NULL",
                params![ws, id],
            )
            .map_err(from_sqlite)?;
            tx.execute("DELETE FROM ws_staged_rows WHERE ws = ?1 AND staging = ?2", params![ws, id])
                .map_err(from_sqlite)?;
            tx.commit().map_err(from_sqlite)
        })
        .await
    }
}
