//! Reading tables: a snapshot holds the catalog of one revision; a table's rows are its parts
//! (base, then layers oldest first) merged key by key, the newest part winning, tombstones
//! hiding what is below them. Parts are immutable while any reader may hold them (compaction
//! waits `SNAPSHOT_GRACE_SECS`), so no read re-checks anything.

use std::collections::{HashMap, HashSet, VecDeque};

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::batch::{BATCH_GET_MAX, GET_CONCURRENCY};
use crate::catalog::Catalog;
use crate::layout::{key_item, row_of_item, rows_pk, shard_of, short, Part, RowData, ATTR_BLOB, MAX_KEY_BYTES};
use crate::{s, store_error, DynamoStore, Item};
use shared::store::{Snapshot, StoreError, StoreResult};
use shared::tables::{Row, TableMeta};

/// Blob fetches in flight while resolving a page of rows.
const BLOB_CONCURRENCY: usize = 8;

/// The tables of one workspace as of one revision.
pub struct DynamoSnapshot {
    pub(super) store: DynamoStore,
    pub(super) ws_key: String,
    /// `None`: no generation (no table was ever committed, or the workspace was deleted).
    pub(super) cat_pk: Option<String>,
    pub(super) rev: u64,
    /// Live tables only.
    pub(super) catalog: Catalog,
    pub(super) metas: Vec<TableMeta>,
    /// Where the last full page of `read_rows` ended (see [`Resume`]).
    pub(super) resume: std::sync::Mutex<Option<Resume>>,
}

impl DynamoSnapshot {
    /// A snapshot of revision `rev` of generation `gen` (`None`: no tables) from its catalog,
    /// dropped tables left out.
    pub(super) fn new(store: DynamoStore, ws_key: &str, gen: Option<&str>, rev: u64, mut catalog: Catalog) -> Self {
        catalog.retain(|_, entry| !entry.state.dropped);
        let metas = catalog.iter().map(|(name, entry)| entry.state.meta(name)).collect();
        DynamoSnapshot {
            store,
            ws_key: ws_key.to_owned(),
            cat_pk: gen.map(|gen| crate::layout::cat_pk(ws_key, gen)),
            rev,
            catalog,
            metas,
            resume: std::sync::Mutex::new(None),
        }
    }

    fn view<'a>(&'a self, table: &'a str) -> Option<TableView<'a>> {
        let entry = self.catalog.get(table)?;
        Some(TableView { store: &self.store, cat_pk: self.cat_pk.as_deref()?, table, parts: entry.state.parts() })
    }
}

#[async_trait]
impl Snapshot for DynamoSnapshot {
    fn revision(&self) -> u64 {
        self.rev
    }

    fn tables(&self) -> &[TableMeta] {
        &self.metas
    }

    async fn read_rows(&self, table: &str, after: Option<&str>, limit: usize) -> StoreResult<Vec<(String, Row)>> {
        let Some(view) = self.view(table) else { return Ok(Vec::new()) };
        let resume = self
            .resume
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .filter(|r| r.table == table && Some(r.last.as_str()) == after.filter(|a| !a.is_empty()));
        let (rows, cursors) = view.merge_from(resume.map(|r| r.cursors), after, limit, false).await?;
        // A full page may have a next one: keep where it ended.
        if rows.len() == limit {
            if let (Some((last, _)), Ok(mut slot)) = (rows.last(), self.resume.lock()) {
                *slot = Some(Resume { table: table.to_owned(), last: last.clone(), cursors });
            }
        }
        self.store.resolve_rows(table, rows).await
    }

    async fn get_rows(&self, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>> {
        let Some(view) = self.view(table) else { return Ok(Vec::new()) };
        let wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = view.get(&wanted).await?;
        let exists = |k: &str| found.get(k).is_some_and(|data| *data != RowData::Tombstone);
        let known = wanted.iter().map(|k| ((*k).to_owned(), exists(k)));
        self.store.recent.note_existing(&self.ws_key, self.rev, table, known);
        let live: Vec<(String, RowData)> = found.into_iter().filter(|(_, data)| *data != RowData::Tombstone).collect();
        let rows: HashMap<String, Row> = self.store.resolve_rows(table, live).await?.into_iter().collect();
        // In the order asked for, as the SQLite adapter answers.
        Ok(keys.iter().filter_map(|k| rows.get(k).map(|row| (k.clone(), row.clone()))).collect())
    }
}

/// One table's parts, read together.
pub(super) struct TableView<'a> {
    pub store: &'a DynamoStore,
    pub cat_pk: &'a str,
    pub table: &'a str,
    /// Oldest first: a later part's item wins over an earlier one's for the same key.
    pub parts: Vec<Part>,
}

/// One shard of one part in the merge.
pub(super) struct Cursor {
    /// Index into `parts`: higher is newer.
    part: usize,
    shards: u32,
    pk: String,
    /// The key its Query started after (kept for every later page of that Query).
    query_after: Option<String>,
    buf: VecDeque<(String, RowData)>,
    start: Option<Item>,
    done: bool,
}

/// Where a table's last page ended, with its shards' cursors: the next page (`after` = the last
/// key) resumes them instead of querying every shard again, so reading a table costs a number
/// of requests that grows with its rows, not with rows × shards.
pub(super) struct Resume {
    table: String,
    last: String,
    cursors: Vec<Cursor>,
}

/// Rows each shard is asked for at least, once a read may go on to a next page: with cursors
/// kept between pages nothing read is wasted, and memory stays at shards × this many rows.
const MIN_SHARD_BATCH: usize = 200;

impl TableView<'_> {
    /// Up to `limit` rows strictly after `after` in key order, merged over the parts; tombstones
    /// are dropped, or kept and counted (`keep_tombstones`, for folding layers). Each shard is
    /// asked for about its share of what is missing and refilled only when it runs dry, so memory
    /// stays at about `limit` rows plus one page per shard.
    pub async fn merge(
        &self,
        after: Option<&str>,
        limit: usize,
        keep_tombstones: bool,
    ) -> StoreResult<Vec<(String, RowData)>> {
        Ok(self.merge_from(None, after, limit, keep_tombstones).await?.0)
    }

    /// [`merge`](Self::merge), resuming `cursors` when they ended exactly at `after`; returns the
    /// cursors as they are after this page.
    pub async fn merge_from(
        &self,
        cursors: Option<Vec<Cursor>>,
        after: Option<&str>,
        limit: usize,
        keep_tombstones: bool,
    ) -> StoreResult<(Vec<(String, RowData)>, Vec<Cursor>)> {
        if limit == 0 {
            return Ok((Vec::new(), cursors.unwrap_or_default()));
        }
        let after = after.filter(|a| !a.is_empty());
        let mut cursors = match cursors {
            Some(cursors) => cursors,
            None => {
                // No stored key is longer than DynamoDB's limit, but a cursor may be: query from
                // its longest storable prefix and drop what is not strictly after the whole cursor.
                let query_after = after.map(|a| truncate_bytes(a, MAX_KEY_BYTES).to_owned());
                let mut fresh: Vec<Cursor> = Vec::new();
                for (index, part) in self.parts.iter().enumerate() {
                    for shard in 0..part.shards.max(1) {
                        fresh.push(Cursor {
                            part: index,
                            shards: part.shards.max(1),
                            pk: rows_pk(self.cat_pk, self.table, &part.id, shard),
                            query_after: query_after.clone(),
                            buf: VecDeque::new(),
                            start: None,
                            done: false,
                        });
                    }
                }
                fresh
            }
        };
        let mut out = Vec::with_capacity(limit.min(1000));
        while out.len() < limit {
            let dry: Vec<usize> =
                (0..cursors.len()).filter(|&i| cursors[i].buf.is_empty() && !cursors[i].done).collect();
            if !dry.is_empty() {
                let remaining = limit - out.len();
                let pages = futures::future::join_all(dry.iter().map(|&i| {
                    let c = &cursors[i];
                    let want = per_shard_limit(remaining, c.shards).max(MIN_SHARD_BATCH.min(remaining));
                    self.store.query_page(&c.pk, c.query_after.as_deref(), want, c.start.clone(), false)
                }))
                .await;
                for (&i, page) in dry.iter().zip(pages) {
                    let (items, next) = page?;
                    let cursor = &mut cursors[i];
                    for mut item in items {
                        let (key, data) = row_of_item(&mut item, self.table)?;
                        if after.is_none_or(|a| key.as_str() > a) {
                            cursor.buf.push_back((key, data));
                        }
                    }
                    cursor.done = next.is_none();
                    cursor.start = next;
                }
                continue;
            }
            let Some(smallest) = cursors.iter().filter_map(|c| c.buf.front().map(|(k, _)| k)).min().cloned() else {
                break;
            };
            let mut newest: Option<(usize, RowData)> = None;
            for cursor in cursors.iter_mut() {
                if cursor.buf.front().is_some_and(|(k, _)| *k == smallest) {
                    if let Some((_, data)) = cursor.buf.pop_front() {
                        if newest.as_ref().is_none_or(|(part, _)| cursor.part > *part) {
                            newest = Some((cursor.part, data));
                        }
                    }
                }
            }
            match newest {
                Some((_, RowData::Tombstone)) if !keep_tombstones => {}
                Some((_, data)) => out.push((smallest, data)),
                None => {}
            }
        }
        Ok((out, cursors))
    }

    /// The newest item of each of `keys` over the parts (tombstones included); keys without one
    /// are absent. Reads `keys × parts` items, in batches of 100.
    pub async fn get(&self, keys: &[&str]) -> StoreResult<HashMap<String, RowData>> {
        // Keys DynamoDB cannot store are simply absent; BatchGetItem refuses duplicates.
        let mut seen = HashSet::new();
        let wanted: Vec<&str> =
            keys.iter().copied().filter(|k| !k.is_empty() && k.len() <= MAX_KEY_BYTES && seen.insert(*k)).collect();
        if wanted.is_empty() || self.parts.is_empty() {
            return Ok(HashMap::new());
        }
        let mut requests: Vec<Item> = Vec::with_capacity(wanted.len() * self.parts.len());
        let mut part_of_pk: HashMap<String, usize> = HashMap::new();
        for (index, part) in self.parts.iter().enumerate() {
            for key in &wanted {
                let pk = rows_pk(self.cat_pk, self.table, &part.id, shard_of(key, part.shards));
                part_of_pk.entry(pk.clone()).or_insert(index);
                requests.push(key_item(pk, *key));
            }
        }
        let batches: Vec<Vec<Item>> = requests.chunks(BATCH_GET_MAX).map(<[Item]>::to_vec).collect();
        let pages: Vec<Vec<Item>> = stream::iter(batches)
            .map(|batch| self.store.batch_get(batch))
            .buffer_unordered(GET_CONCURRENCY)
            .try_collect()
            .await?;
        let mut newest: HashMap<String, (usize, RowData)> = HashMap::new();
        for mut item in pages.into_iter().flatten() {
            let part = match item.get("PK") {
                Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)) => part_of_pk.get(pk).copied(),
                _ => None,
            };
            let Some(part) = part else {
                return Err(StoreError::Internal(format!(
                    "a row of table {} came back from an unasked part",
                    self.table
                )));
            };
            let (key, data) = row_of_item(&mut item, self.table)?;
            if newest.get(&key).is_none_or(|(p, _)| part > *p) {
                newest.insert(key, (part, data));
            }
        }
        Ok(newest.into_iter().map(|(k, (_, data))| (k, data)).collect())
    }
}

impl DynamoStore {
    /// One page of a partition, in key order, strictly after `after`; `keys_only` projects
    /// `PK`, `SK` and `blob` (what deleting needs).
    pub(super) async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
        start: Option<Item>,
        keys_only: bool,
    ) -> StoreResult<(Vec<Item>, Option<Item>)> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", "PK")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        request = match after {
            Some(after) => request
                .key_condition_expression("#pk = :pk AND #sk > :after")
                .expression_attribute_names("#sk", "SK")
                .expression_attribute_values(":after", s(after)),
            None => request.key_condition_expression("#pk = :pk"),
        };
        if keys_only {
            request = request
                .projection_expression("#pk, #sk, #blob")
                .expression_attribute_names("#sk", "SK")
                .expression_attribute_names("#blob", ATTR_BLOB);
        }
        let out = request.send().await.map_err(|e| store_error("Query", e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    pub(super) async fn item_exists(&self, key: Item) -> StoreResult<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", "PK")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(out.item.is_some())
    }

    /// Parses rows, fetching the ones stored as blobs. Tombstones are an error here: callers
    /// filter them first.
    pub(super) async fn resolve_rows(
        &self,
        table: &str,
        rows: Vec<(String, RowData)>,
    ) -> StoreResult<Vec<(String, Row)>> {
        stream::iter(rows)
            .map(|(key, data)| async move {
                let text = self.row_text(table, &key, data).await?;
                let row = serde_json::from_str(&text).map_err(|e| {
                    StoreError::Internal(format!(
                        "stored row {} of table {table} is not a JSON object: {e}",
                        short(&key)
                    ))
                })?;
                Ok((key, row))
            })
            .buffered(BLOB_CONCURRENCY)
            .try_collect()
            .await
    }

    /// The row's JSON text, from the item or from its blob.
    pub(super) async fn row_text(&self, table: &str, key: &str, data: RowData) -> StoreResult<String> {
        let blob = match data {
            RowData::Inline(text) => return Ok(text),
            RowData::Blob(blob) => blob,
            RowData::Tombstone => {
                return Err(StoreError::Internal(format!("row {} of table {table} is a tombstone", short(key))))
            }
        };
        let bytes = self.blobs(table, key)?.get_blob(&blob).await?.ok_or_else(|| {
            StoreError::Internal(format!("row {} of table {table}: its blob {blob} is missing", short(key)))
        })?;
        String::from_utf8(bytes)
            .map_err(|_| StoreError::Internal(format!("row {} of table {table}: blob {blob} is not UTF-8", short(key))))
    }
}

/// Each shard's share of `remaining` rows, with a margin so a refill is rare.
fn per_shard_limit(remaining: usize, shards: u32) -> usize {
    let shards = usize::try_from(shards.max(1)).unwrap_or(1);
    if shards == 1 {
        return remaining;
    }
    let share = remaining.div_ceil(shards);
    remaining.min(share.saturating_add(share / 4 + 8))
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_shard_limits_cover_the_share() {
        assert_eq!(per_shard_limit(1000, 1), 1000);
        assert_eq!(per_shard_limit(1000, 3), 334 + 83 + 8);
        assert_eq!(per_shard_limit(1000, 64), 16 + 4 + 8);
        assert_eq!(per_shard_limit(1, 64), 1);
        assert!(per_shard_limit(usize::MAX, 3) > usize::MAX / 3, "no overflow, never below the share");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_bytes("abc", 5), "abc");
        assert_eq!(truncate_bytes("aé", 2), "a");
        assert_eq!(truncate_bytes("日本", 4), "日");
    }
}
