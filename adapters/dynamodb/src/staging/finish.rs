//! A staging's finish: one layer per table stacked on the current entries, counted exactly,
//! and one flip; again on top of the head when it moved meanwhile.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::super::catalog::Catalog;
use super::super::commit::{CommitContext, CHANGED, COMMITTED, PENDING};
use super::super::layout::{
    cat_pk, gen_for, key_item, n, now_secs, rows_pk, text, Entry, Head, Layer, Part, RowData, TableState,
};
use super::super::read::TableView;
use super::super::{build_error, s, workspace_sk, DynamoStore};
use super::{check_table, closed, malformed, overtaken, txn_of, unknown, POINTER_PREFIX};
use shared::store::job_tables::{StagedFinish, StagedTable};
use shared::store::{StoreError, StoreResult};
use shared::tables::WsKey;

/// Finishes on top of a head that keeps moving before the answer is a conflict.
const FINISH_ATTEMPTS: usize = 5;
/// Staged keys per Query while counting them.
const COUNT_PAGE: usize = 1000;

impl DynamoStore {
    /// The table's state after the staging lands on `catalog`'s entry, as the finish writes it.
    #[allow(clippy::too_many_arguments)]
    async fn staged_state(
        &self,
        cat: &str,
        head: &Head,
        catalog: &Catalog,
        table: &StagedTable,
        part: Option<&Part>,
        base: u64,
        counted: &mut HashMap<(String, String), (u64, u64)>,
    ) -> StoreResult<TableState> {
        let entry = catalog.get(&table.name);
        let live = entry.filter(|e| !e.state.dropped);
        if live.is_some_and(|e| e.state.owner != table.owner) {
            return Err(StoreError::Conflict(format!(
                "table '{}' is stored as another owner's; nothing of the import was written",
                table.name
            )));
        }
        let old_rows = live.map_or(0, |e| e.state.rows);
        // The entry valid at the job's base is still current: the job's own count holds. (No
        // entry at all says nothing once the head moved: compaction removes a dropped table's.)
        let unchanged = match entry {
            Some(e) => e.rev <= base,
            None => head.rev == base,
        };
        let (rows, items) = if unchanged {
            // The layer's exact size is not read on this path; nothing relies on it.
            (old_rows + table.new_keys, table.new_keys)
        } else {
            let key = (table.name.clone(), entry.map(Entry::sk).unwrap_or_default());
            let (absent, staged) = match counted.get(&key) {
                Some(known) => *known,
                None => {
                    let found = self.count_new(cat, &table.name, part, live).await?;
                    counted.insert(key, found);
                    found
                }
            };
            (old_rows + absent, staged)
        };
        let (base_part, mut layers) =
            live.map_or((None, Vec::new()), |e| (e.state.base.clone(), e.state.layers.clone()));
        if let Some(part) = part {
            layers.push(Layer { part: part.clone(), items, dels: 0 });
        }
        Ok(TableState {
            dropped: false,
            owner: table.owner.clone(),
            key: table.key_column.clone(),
            columns: table.columns.clone(),
            rows,
            base: base_part,
            layers,
        })
    }

    /// (staged keys absent from `live`'s parts, staged keys): reads the staged part's keys shard
    /// by shard and looks each page up in the current parts, so it costs what was staged.
    async fn count_new(
        &self,
        cat: &str,
        table: &str,
        part: Option<&Part>,
        live: Option<&Entry>,
    ) -> StoreResult<(u64, u64)> {
        let Some(part) = part else { return Ok((0, 0)) };
        let view =
            TableView { store: self, cat_pk: cat, table, parts: live.map(|e| e.state.parts()).unwrap_or_default() };
        let (mut absent, mut staged) = (0u64, 0u64);
        for shard in 0..part.shards.max(1) {
            let pk = rows_pk(cat, table, &part.id, shard);
            let mut start = None;
            loop {
                let (items, next) = self.query_page(&pk, None, COUNT_PAGE, start, true).await?;
                let keys: Vec<&str> = items
                    .iter()
                    .map(|i| {
                        text(i, "SK").ok_or_else(|| malformed(&format!("a row item under {pk} has no string key")))
                    })
                    .collect::<StoreResult<_>>()?;
                let found = view.get(&keys).await?;
                staged += keys.len() as u64;
                absent +=
                    keys.iter().filter(|k| found.get(**k).is_none_or(|d| *d == RowData::Tombstone)).count() as u64;
                match next {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
        }
        Ok((absent, staged))
    }

    /// The pointer's move to committed at `rev`, in the flip's transaction.
    fn pointer_committed(&self, ws_key: &str, id: &str, rev: u64) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(ws_key, format!("{POINTER_PREFIX}{id}"))))
            .update_expression("SET #state = :committed, #rev = :rev")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#rev", "rev")
            .expression_attribute_values(":committed", s(COMMITTED))
            .expression_attribute_values(":rev", n(rev));
        Ok(TransactWriteItem::builder().update(update.build().map_err(build_error)?).build())
    }

    /// A finish that lost its flip: answered when this staging made the revision (another
    /// finish of it won), refused when it was aborted, `None` to try again on the new head.
    async fn after_lost_flip(&self, cat: &str, txn: &str, id: &str) -> StoreResult<Option<u64>> {
        match self.job_record(cat, txn).await? {
            Some(r) if r.state == COMMITTED => {
                r.rev.map(Some).ok_or_else(|| malformed("committed record without 'rev'"))
            }
            Some(r) if r.state == PENDING => Ok(None),
            _ => Err(closed(id)),
        }
    }

    /// [`Self::finish_once`]; a refusal is checked against the pointer first: another finish
    /// of the same staging (a fanned-out job's parts ending together, a task retried after its
    /// worker died) may have flipped it meanwhile, and then this one answers that revision
    /// rather than a conflict (its record already left PENDING, or the head it read is the new
    /// workspace's).
    pub(super) async fn finish(&self, ws: &WsKey, id: &str, finish: StagedFinish) -> StoreResult<u64> {
        match self.finish_once(ws, id, finish).await {
            Err(StoreError::Conflict(why)) => match self.pointer(&ws.key(), id).await? {
                Some(p) if p.state == COMMITTED => p.rev.ok_or_else(|| malformed("committed pointer without 'rev'")),
                _ => Err(StoreError::Conflict(why)),
            },
            other => other,
        }
    }

    async fn finish_once(&self, ws: &WsKey, id: &str, finish: StagedFinish) -> StoreResult<u64> {
        let txn = txn_of(id)?;
        // The last table of a name wins, as in a commit.
        let tables: BTreeMap<&str, &StagedTable> = finish.tables.iter().map(|t| (t.name.as_str(), t)).collect();
        for name in tables.keys() {
            check_table(name)?;
        }
        let ws_key = ws.key();
        let pointer = self.pointer(&ws_key, id).await?.ok_or_else(|| unknown(id))?;
        match pointer.state.as_str() {
            COMMITTED => return pointer.rev.ok_or_else(|| malformed("committed pointer without 'rev'")),
            PENDING => {}
            _ => return Err(closed(id)),
        }
        let cat = cat_pk(&ws_key, &pointer.gen);
        let record = self.job_record(&cat, &txn).await?.ok_or_else(|| closed(id))?;
        match record.state.as_str() {
            COMMITTED => return record.rev.ok_or_else(|| malformed("committed record without 'rev'")),
            PENDING => {}
            _ => return Err(closed(id)),
        }
        if let Some((table, _)) = record.parts.iter().find(|(t, _)| !tables.contains_key(t.as_str())) {
            return Err(StoreError::Internal(format!(
                "staging '{id}' writes table {table}, which its finish does not name"
            )));
        }
        // Counting may take a while: the staging must not look idle meanwhile.
        self.touch(&cat, &txn, now_secs()).await?;
        let names: Vec<&str> = tables.keys().copied().collect();
        let create = finish.create_workspace.as_ref();
        let workspace_key = key_item(ws.owner.key(), workspace_sk(&ws.workspace_id));
        let mut counted = HashMap::new();
        for _ in 0..FINISH_ATTEMPTS {
            let head = self.head(&ws_key).await?;
            if gen_for(&head) != pointer.gen {
                return Err(overtaken());
            }
            let (catalog, workspace_exists) = futures::try_join!(self.catalog(&ws_key, &head, Some(&names)), async {
                match create {
                    Some(_) => self.item_exists(workspace_key.clone()).await,
                    None => Ok(true),
                }
            })?;
            let (rev, now) = (head.rev + 1, now_secs());
            let mut entries = Vec::with_capacity(tables.len());
            for table in tables.values() {
                let part = record.parts.iter().find(|(t, _)| *t == table.name).map(|(_, p)| p);
                let state =
                    self.staged_state(&cat, &head, &catalog, table, part, finish.base_revision, &mut counted).await?;
                entries.push(Entry { table: table.name.clone(), rev, txn: txn.clone(), at: now, state });
            }
            // Invisible until the log names this txn for `rev`.
            self.stage(&cat, &[], &entries, None).await?;
            let ctx = CommitContext {
                ws,
                ws_key: &ws_key,
                cat: &cat,
                head: &head,
                gen: &pointer.gen,
                rev,
                now,
                workspace_exists,
            };
            match self.flip(&ctx, &txn, create, vec![self.pointer_committed(&ws_key, id, rev)?]).await {
                Ok(rev) => return Ok(rev),
                Err(StoreError::Conflict(_)) => {
                    if let Some(rev) = self.after_lost_flip(&cat, &txn, id).await? {
                        return Ok(rev);
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict(CHANGED.into()))
    }
}
