//! Reading the head and the catalog: which entry of each table is current at a revision.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::batch::{BATCH_GET_MAX, GET_CONCURRENCY};
use crate::layout::{
    cat_pk, entry_prefix, key_item, log_sk, text, Entry, Head, ATOMIC, ENTRY_PREFIX, HEAD_SK, LOG_PREFIX,
};
use crate::{s, store_error, DynamoStore, Item};
use shared::store::StoreResult;

/// The catalog as of one revision: each table's current entry, dropped ones included (a commit
/// must know a table was dropped; readers skip them).
pub(super) type Catalog = BTreeMap<String, Entry>;

/// Above this many tables a commit reads the whole catalog in one paged Query rather than one
/// Query per table.
const PER_TABLE_QUERIES_MAX: usize = 32;

impl DynamoStore {
    /// The head, consistently read (absent: revision 0, no generation).
    pub(super) async fn head(&self, ws_key: &str) -> StoreResult<Head> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(ws_key))
            .key("SK", s(HEAD_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Head::from_item(ws_key, out.item.as_ref())
    }

    /// Every item of partition `pk` whose sort key starts with `prefix` (all when empty),
    /// consistently, all pages.
    pub(super) async fn query_prefix(&self, pk: &str, prefix: &str) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_names("#pk", "PK")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            // DynamoDB refuses an empty key value: no prefix is the whole partition.
            let request = if prefix.is_empty() {
                request.key_condition_expression("#pk = :pk")
            } else {
                request
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", "SK")
                    .expression_attribute_values(":prefix", s(prefix))
            };
            let page = request.send().await.map_err(|e| store_error("Query", e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }

    /// The catalog at `head.rev` (of `tables` only, when given): every entry item read, then
    /// the newest valid one per table. Empty without a generation.
    pub(super) async fn catalog(&self, ws_key: &str, head: &Head, tables: Option<&[&str]>) -> StoreResult<Catalog> {
        let Some(gen) = &head.gen else { return Ok(Catalog::new()) };
        let pk = cat_pk(ws_key, gen);
        let items = match tables {
            Some(names) if names.len() <= PER_TABLE_QUERIES_MAX => {
                let unique: HashSet<&str> = names.iter().copied().collect();
                let prefixes: Vec<String> = unique.into_iter().map(entry_prefix).collect();
                let pk = pk.as_str();
                let pages: Vec<Vec<Item>> = stream::iter(prefixes)
                    .map(|prefix| async move { self.query_prefix(pk, &prefix).await })
                    .buffer_unordered(GET_CONCURRENCY)
                    .try_collect()
                    .await?;
                pages.into_iter().flatten().collect()
            }
            _ => self.query_prefix(&pk, ENTRY_PREFIX).await?,
        };
        let entries = items.iter().map(Entry::from_item).collect::<StoreResult<Vec<_>>>()?;
        let logs = self.logs(&pk, &entries, head.rev).await?;
        let mut catalog = current(entries, head.rev, &logs);
        if let Some(names) = tables {
            let wanted: HashSet<&str> = names.iter().copied().collect();
            catalog.retain(|name, _| wanted.contains(name.as_str()));
        }
        Ok(catalog)
    }

    /// Which staged commit made each revision that staged entries up to `rev` name.
    async fn logs(&self, pk: &str, entries: &[Entry], rev: u64) -> StoreResult<HashMap<u64, String>> {
        let revs: HashSet<u64> = entries.iter().filter(|e| e.txn != ATOMIC && e.rev <= rev).map(|e| e.rev).collect();
        if revs.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<Item> = revs.iter().map(|r| key_item(pk, log_sk(*r))).collect();
        let batches: Vec<Vec<Item>> = keys.chunks(BATCH_GET_MAX).map(<[Item]>::to_vec).collect();
        let found: Vec<Vec<Item>> =
            stream::iter(batches).map(|b| self.batch_get(b)).buffer_unordered(GET_CONCURRENCY).try_collect().await?;
        Ok(found
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let rev = text(&item, "SK")?.strip_prefix(LOG_PREFIX)?.parse().ok()?;
                Some((rev, text(&item, "txn")?.to_owned()))
            })
            .collect())
    }
}

/// Whether an entry is part of revision `rev`'s history: written with its head update, or by
/// the staged commit the log says made its revision.
pub(super) fn valid(entry: &Entry, rev: u64, logs: &HashMap<u64, String>) -> bool {
    entry.rev <= rev && (entry.txn == ATOMIC || logs.get(&entry.rev) == Some(&entry.txn))
}

/// The newest valid entry per table as of `rev`.
pub(super) fn current(entries: Vec<Entry>, rev: u64, logs: &HashMap<u64, String>) -> Catalog {
    let mut catalog = Catalog::new();
    for entry in entries.into_iter().filter(|e| valid(e, rev, logs)) {
        match catalog.get(&entry.table) {
            Some(have) if have.rev >= entry.rev => {}
            _ => {
                catalog.insert(entry.table.clone(), entry);
            }
        }
    }
    catalog
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::TableState;
    use shared::tables::TableOwner;

    fn entry(table: &str, rev: u64, txn: &str, rows: u64) -> Entry {
        let state = TableState {
            dropped: false,
            owner: TableOwner::Workspace { kind: table.into() },
            key: "id".into(),
            columns: vec![],
            rows,
            base: None,
            layers: vec![],
        };
        Entry { table: table.into(), rev, txn: txn.into(), at: 0, state }
    }

    #[test]
    fn the_newest_valid_entry_at_the_revision_wins() {
        let entries = vec![
            entry("t", 1, ATOMIC, 1),
            entry("t", 3, ATOMIC, 3),
            entry("t", 5, ATOMIC, 5),
            // Staged by a commit that lost revision 4 to another: never valid.
            entry("t", 4, "lost.3", 40),
            // Staged by the commit that made revision 2.
            entry("u", 2, "won.1", 2),
            entry("u", 2, "lost.1", 20),
        ];
        let logs = HashMap::from([(2, "won.1".to_owned()), (4, "other.3".to_owned())]);
        let at4 = current(entries.clone(), 4, &logs);
        assert_eq!(at4["t"].state.rows, 3, "revision 5 is not visible at 4; the staged loser never is");
        assert_eq!(at4["u"].state.rows, 2);
        assert_eq!(current(entries.clone(), 5, &logs)["t"].state.rows, 5);
        assert!(!current(entries, 1, &logs).contains_key("u"), "u did not exist at revision 1");
    }
}
