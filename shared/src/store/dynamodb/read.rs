//! Reading tables: the manifest once, when the snapshot is taken, then only the versions it names.

use std::collections::{HashMap, HashSet, VecDeque};

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::batch::{BATCH_GET_MAX, GET_CONCURRENCY};
use super::layout::{
    key_item, row_of_item, rows_pk, shard_of, short, Manifest, RowData, TableEntry, ATTR_BLOB, MANIFEST_SK,
    MAX_KEY_BYTES,
};
use super::{s, store_error, DynamoStore, Item};
use crate::store::{Snapshot, StoreError, StoreResult};
use crate::tables::{Row, TableMeta};

/// Blob fetches in flight while resolving a page of rows.
const BLOB_CONCURRENCY: usize = 8;

/// One shard's side of the k-way merge in `read_rows`.
struct ShardCursor {
    pk: String,
    buf: VecDeque<(String, RowData)>,
    start: Option<Item>,
    done: bool,
}

impl DynamoStore {
    /// The manifest, consistently read (absent = no tables).
    pub(super) async fn manifest(&self, ws_key: &str) -> StoreResult<Manifest> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(ws_key))
            .key("SK", s(MANIFEST_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Manifest::from_item(ws_key, out.item.as_ref())
    }

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

    /// Merges the version's shards by key: every shard not yet exhausted keeps a few rows
    /// buffered, and the smallest buffered key is the next row overall. Keys are hashed over the
    /// shards, so each is asked for about its share of `limit` (plus a margin) and refilled only
    /// when it runs dry; memory stays at about `limit` rows plus one page per shard.
    async fn merge_shards(
        &self,
        ws_key: &str,
        table: &str,
        entry: &TableEntry,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, RowData)>> {
        let after = after.filter(|a| !a.is_empty());
        // No stored key is longer than DynamoDB's limit, but a cursor may be: query from its
        // longest storable prefix and drop what is not strictly after the whole cursor.
        let query_after = after.map(|a| truncate_bytes(a, MAX_KEY_BYTES));
        let shards = entry.shards.max(1);
        let mut cursors: Vec<ShardCursor> = (0..shards)
            .map(|shard| ShardCursor {
                pk: rows_pk(ws_key, table, &entry.v, shard),
                buf: VecDeque::new(),
                start: None,
                done: false,
            })
            .collect();
        let mut out = Vec::with_capacity(limit.min(1000));
        while out.len() < limit {
            let dry: Vec<usize> =
                (0..cursors.len()).filter(|&i| cursors[i].buf.is_empty() && !cursors[i].done).collect();
            if !dry.is_empty() {
                let want = per_shard_limit(limit - out.len(), shards);
                let pages = futures::future::join_all(
                    dry.iter()
                        .map(|&i| self.query_page(&cursors[i].pk, query_after, want, cursors[i].start.clone(), false)),
                )
                .await;
                for (&i, page) in dry.iter().zip(pages) {
                    let (items, next) = page?;
                    let cursor = &mut cursors[i];
                    for mut item in items {
                        let (key, data) = row_of_item(&mut item, table)?;
                        if after.is_none_or(|a| key.as_str() > a) {
                            cursor.buf.push_back((key, data));
                        }
                    }
                    cursor.done = next.is_none();
                    cursor.start = next;
                }
                continue;
            }
            let smallest = (0..cursors.len())
                .filter_map(|i| cursors[i].buf.front().map(|(key, _)| (key, i)))
                .min_by(|a, b| a.0.cmp(b.0))
                .map(|(_, i)| i);
            let Some(i) = smallest else { break };
            if let Some(row) = cursors[i].buf.pop_front() {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Parses rows, fetching the ones stored as blobs.
    async fn resolve_rows(&self, table: &str, rows: Vec<(String, RowData)>) -> StoreResult<Vec<(String, Row)>> {
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
        };
        let bytes = self.blobs(table, key)?.get_blob(&blob).await?.ok_or_else(|| {
            StoreError::Internal(format!("row {} of table {table}: its blob {blob} is missing", short(key)))
        })?;
        String::from_utf8(bytes)
            .map_err(|_| StoreError::Internal(format!("row {} of table {table}: blob {blob} is not UTF-8", short(key))))
    }
}

/// A workspace's tables as one manifest named them.
pub(super) struct DynamoSnapshot {
    store: DynamoStore,
    ws_key: String,
    manifest: Manifest,
    metas: Vec<TableMeta>,
}

impl DynamoSnapshot {
    pub(super) fn new(store: DynamoStore, ws_key: String, manifest: Manifest) -> Self {
        let metas = manifest.metas();
        Self { store, ws_key, manifest, metas }
    }
}

#[async_trait]
impl Snapshot for DynamoSnapshot {
    fn revision(&self) -> u64 {
        self.manifest.rev
    }

    fn tables(&self) -> &[TableMeta] {
        &self.metas
    }

    async fn read_rows(&self, table: &str, after: Option<&str>, limit: usize) -> StoreResult<Vec<(String, Row)>> {
        let Some(entry) = self.manifest.tables.get(table).filter(|_| limit > 0) else { return Ok(Vec::new()) };
        let rows = self.store.merge_shards(&self.ws_key, table, entry, after, limit).await?;
        self.store.resolve_rows(table, rows).await
    }

    async fn get_rows(&self, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>> {
        let Some(entry) = self.manifest.tables.get(table) else { return Ok(Vec::new()) };
        // Keys DynamoDB cannot store are simply absent; BatchGetItem refuses duplicates.
        let mut seen = HashSet::new();
        let wanted: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_BYTES && seen.insert(*k))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let (store, ws_key) = (&self.store, self.ws_key.as_str());
        let batches: Vec<Vec<Item>> = wanted
            .chunks(BATCH_GET_MAX)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|k| key_item(rows_pk(ws_key, table, &entry.v, shard_of(k, entry.shards)), *k))
                    .collect()
            })
            .collect();
        let pages: Vec<Vec<Item>> = stream::iter(batches)
            .map(|batch| store.batch_get(batch))
            .buffer_unordered(GET_CONCURRENCY)
            .try_collect()
            .await?;
        let rows = pages
            .into_iter()
            .flatten()
            .map(|mut item| row_of_item(&mut item, table))
            .collect::<StoreResult<Vec<_>>>()?;
        let found: HashMap<String, Row> = store.resolve_rows(table, rows).await?.into_iter().collect();
        // In the order asked for, as the SQLite adapter answers.
        Ok(keys.iter().filter_map(|k| found.get(k).map(|row| (k.clone(), row.clone()))).collect())
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
