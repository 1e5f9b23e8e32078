//! Where the tables half keeps things (storage layout 2): key formats, the head, catalog
//! entries, commit records and row items. Pure functions, no I/O. The invariants that make
//! these items a consistent store are in the module doc of `dynamodb.rs`.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{s, Item};
use shared::store::{StoreError, StoreResult};
use shared::tables::{Column, TableMeta, TableOwner};

/// The layout this build reads and writes, recorded in the table's `layout` item.
pub const LAYOUT_VERSION: u64 = 2;
pub(super) const LAYOUT_KEY: &str = "layout";

pub(super) const HEAD_SK: &str = "head";
pub(super) const ENTRY_PREFIX: &str = "tbl#";
pub(super) const LOG_PREFIX: &str = "log#";
pub(super) const RECORD_PREFIX: &str = "txn#";
pub(super) const LEASE_PREFIX: &str = "lease#";
/// `txn` of an entry written in the same transaction as its head update: valid by construction.
pub(super) const ATOMIC: &str = "-";

/// A partition takes ~1,000 writes/s, so a part gets one shard per 1,000 rows, at most 64.
pub(super) const ROWS_PER_SHARD: u64 = 1000;
pub(super) const MAX_SHARDS: u32 = 64;
/// A base holds up to this many rows per shard before compaction rewrites it with more shards.
pub(super) const BASE_ROWS_PER_SHARD: u64 = 4 * ROWS_PER_SHARD;
/// Row JSON above this goes to a blob: an item is at most 400 KB with its keys and names.
pub(super) const INLINE_ROW_MAX: usize = 350_000;
/// DynamoDB's limit on a sort key value.
pub(super) const MAX_KEY_BYTES: usize = 1024;
/// Heads marked for compaction spread over this many GSI partitions.
pub(super) const COMPACT_BUCKETS: u32 = 16;

pub(super) const ATTR_ROW: &str = "row";
pub(super) const ATTR_BLOB: &str = "blob";
/// A tombstone: the key is deleted as of this layer.
pub(super) const ATTR_DEL: &str = "del";

/// One immutable set of row items: a table's base or one commit's layer, spread over `shards`
/// partitions by key hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct Part {
    pub id: String,
    pub shards: u32,
}

/// One commit's rows of one table: its writes and tombstones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Layer {
    #[serde(flatten)]
    pub part: Part,
    /// Items in the layer (rows and tombstones), and how many of them are tombstones.
    pub items: u64,
    pub dels: u64,
}

/// A table's state as of one revision: what `TableMeta` says, and which parts hold its rows
/// (the base, then layers oldest first; newer wins key by key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TableState {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
    pub owner: TableOwner,
    pub key: String,
    pub columns: Vec<Column>,
    pub rows: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Part>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
}

impl TableState {
    /// Every part, base first, oldest to newest.
    pub fn parts(&self) -> Vec<Part> {
        self.base.iter().cloned().chain(self.layers.iter().map(|l| l.part.clone())).collect()
    }

    pub fn meta(&self, name: &str) -> TableMeta {
        TableMeta {
            name: name.to_owned(),
            owner: self.owner.clone(),
            columns: self.columns.clone(),
            key_column: self.key.clone(),
            row_count: self.rows,
        }
    }
}

/// A catalog entry item: `SK = tbl#<table>#<rev>#<txn>` in the generation's partition.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub table: String,
    pub rev: u64,
    /// [`ATOMIC`], or the id of the staged commit that wrote it (valid only if the log says
    /// that commit made `rev`).
    pub txn: String,
    /// When it was written (epoch s); for a staged entry the log's time counts instead.
    pub at: u64,
    pub state: TableState,
}

impl Entry {
    pub fn sk(&self) -> String {
        entry_sk(&self.table, self.rev, &self.txn)
    }

    pub fn item(&self, cat_pk: &str) -> StoreResult<Item> {
        let state = serde_json::to_string(&self.state)
            .map_err(|e| StoreError::Internal(format!("catalog entry of {}: {e}", self.table)))?;
        Ok(HashMap::from([
            ("PK".to_owned(), s(cat_pk)),
            ("SK".to_owned(), s(self.sk())),
            ("table".to_owned(), s(&self.table)),
            ("rev".to_owned(), n(self.rev)),
            ("txn".to_owned(), s(&self.txn)),
            ("at".to_owned(), n(self.at)),
            ("state".to_owned(), s(state)),
        ]))
    }

    pub fn from_item(item: &Item) -> StoreResult<Entry> {
        let sk = text(item, "SK").unwrap_or("?");
        let bad = |what: &str| StoreError::Internal(format!("malformed catalog entry {sk}: {what}"));
        let state = text(item, "state").ok_or_else(|| bad("no 'state'"))?;
        Ok(Entry {
            table: text(item, "table").ok_or_else(|| bad("no 'table'"))?.to_owned(),
            rev: number(item, "rev").ok_or_else(|| bad("no 'rev'"))?,
            txn: text(item, "txn").ok_or_else(|| bad("no 'txn'"))?.to_owned(),
            at: number(item, "at").unwrap_or(0),
            state: serde_json::from_str(state).map_err(|e| bad(&format!("'state' ({e})")))?,
        })
    }
}

pub(super) fn entry_sk(table: &str, rev: u64, txn: &str) -> String {
    format!("{ENTRY_PREFIX}{table}#{rev:020}#{txn}")
}

/// The prefix of every entry of `table` (names hold no `#`, so no other table's entries).
pub(super) fn entry_prefix(table: &str) -> String {
    format!("{ENTRY_PREFIX}{table}#")
}

pub(super) fn log_sk(rev: u64) -> String {
    format!("{LOG_PREFIX}{rev:020}")
}

pub(super) fn record_sk(txn: &str) -> String {
    format!("{RECORD_PREFIX}{txn}")
}

/// The workspace's commit point (`PK = W`, `SK = head`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Head {
    pub exists: bool,
    /// Bumped by every commit and every delete; 0 when absent.
    pub rev: u64,
    /// The generation whose catalog is current; `None` after a delete or before any commit.
    pub gen: Option<String>,
    /// When `rev` became visible (epoch s).
    pub at: u64,
    /// Generations of deleted incarnations, still to be swept.
    pub gone: BTreeSet<String>,
}

impl Head {
    pub fn from_item(ws_key: &str, item: Option<&Item>) -> StoreResult<Head> {
        let Some(item) = item else { return Ok(Head::default()) };
        let bad = |what: &str| StoreError::Internal(format!("malformed head of {ws_key}: {what}"));
        let gone = match item.get("gone") {
            None => BTreeSet::new(),
            Some(AttributeValue::Ss(set)) => set.iter().cloned().collect(),
            Some(_) => return Err(bad("'gone' is not a string set")),
        };
        Ok(Head {
            exists: true,
            rev: number(item, "rev").ok_or_else(|| bad("'rev' is not a number"))?,
            gen: text(item, "gen").map(str::to_owned),
            at: number(item, "at").unwrap_or(0),
            gone,
        })
    }
}

/// The generation a commit on top of `head` writes into: the current one, or a new one named
/// after the revision that starts it (unique: revisions only grow, deletes included).
pub(super) fn gen_for(head: &Head) -> String {
    head.gen.clone().unwrap_or_else(|| format!("{}", head.rev + 1))
}

/// `<W>#g#<gen>`: the partition of one generation's catalog entries, log and commit records.
pub(super) fn cat_pk(ws_key: &str, gen: &str) -> String {
    format!("{ws_key}#g#{gen}")
}

/// `<W>#g#<gen>#t#<table>#p#<part>#s#<shard>`: one partition per shard of a part.
pub(super) fn rows_pk(cat_pk: &str, table: &str, part: &str, shard: u32) -> String {
    format!("{cat_pk}#t#{table}#p#{part}#s#{shard}")
}

/// Which GSI partition marks this workspace as having compaction work.
pub(super) fn compact_bucket(ws_key: &str) -> String {
    format!("compact#{}", shard_of(ws_key, COMPACT_BUCKETS))
}

/// clamp(ceil(rows / 1000), 1, 64).
pub(super) fn shard_count(rows: u64) -> u32 {
    let wanted = rows.div_ceil(ROWS_PER_SHARD).clamp(1, u64::from(MAX_SHARDS));
    u32::try_from(wanted).unwrap_or(MAX_SHARDS)
}

/// First 8 bytes of sha256(key), big-endian, modulo the shard count.
pub(super) fn shard_of(key: &str, shards: u32) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let shard = u64::from_be_bytes(first) % u64::from(shards.max(1));
    // < shards <= u32::MAX, so this always fits.
    u32::try_from(shard).unwrap_or(0)
}

/// Object key of a row stored as a blob: hashes only, so it fits the blob stores' key alphabet
/// whatever the table, part or row key; one prefix per workspace and per part.
pub(super) fn blob_key(ws_key: &str, table: &str, part: &str, key: &str) -> String {
    let h = |parts: &[&str]| {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        hex::encode(hasher.finalize())
    };
    format!("rows/{}/{}/{}", &h(&[ws_key])[..32], &h(&[table, part])[..32], h(&[key]))
}

/// What a row item holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RowData {
    Inline(String),
    Blob(String),
    Tombstone,
}

/// The `SK` and row data of a row item.
pub(super) fn row_of_item(item: &mut Item, table: &str) -> StoreResult<(String, RowData)> {
    let bad = |what: String| StoreError::Internal(format!("malformed row item of table {table}: {what}"));
    let key = match item.remove("SK") {
        Some(AttributeValue::S(k)) => k,
        _ => return Err(bad("no string 'SK'".into())),
    };
    match (item.remove(ATTR_ROW), item.remove(ATTR_BLOB), item.remove(ATTR_DEL)) {
        (Some(AttributeValue::S(row)), None, None) => Ok((key, RowData::Inline(row))),
        (None, Some(AttributeValue::S(blob)), None) => Ok((key, RowData::Blob(blob))),
        (None, None, Some(_)) => Ok((key, RowData::Tombstone)),
        _ => Err(bad(format!("key {}: not exactly one of 'row', 'blob', 'del'", short(&key)))),
    }
}

pub(super) fn row_item(pk: String, key: &str, data: RowData) -> Item {
    let (attr, value) = match data {
        RowData::Inline(row) => (ATTR_ROW, s(row)),
        RowData::Blob(blob) => (ATTR_BLOB, s(blob)),
        RowData::Tombstone => (ATTR_DEL, AttributeValue::Bool(true)),
    };
    HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(key)), (attr.to_owned(), value)])
}

pub(super) fn key_item(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(sk))])
}

pub(super) fn text<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

pub(super) fn number(item: &Item, attr: &str) -> Option<u64> {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A key for an error message: data, so cut short.
pub(super) fn short(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((i, _)) => format!("{:?}…", &key[..i]),
        None => format!("{key:?}"),
    }
}

/// Unix seconds now (0 before 1970, which only makes things look old).
pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_counts_follow_the_row_count() {
        assert_eq!(shard_count(0), 1);
        assert_eq!(shard_count(1000), 1);
        assert_eq!(shard_count(1001), 2);
        assert_eq!(shard_count(2500), 3);
        assert_eq!(shard_count(64_000), 64);
        assert_eq!(shard_count(u64::MAX), 64);
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        for shards in [1, 2, 3, 64] {
            for key in ["", "a", "10", "9", "日本", "a#b"] {
                let shard = shard_of(key, shards);
                assert!(shard < shards);
                assert_eq!(shard, shard_of(key, shards));
            }
        }
        assert_eq!(shard_of("x", 0), 0, "a zero count is treated as one shard, not a division by zero");
        let spread: std::collections::HashSet<u32> = (0..200).map(|i| shard_of(&i.to_string(), 3)).collect();
        assert_eq!(spread.len(), 3);
    }

    #[test]
    fn blob_keys_fit_the_blob_key_alphabet() {
        let key = blob_key("org#a#user#b#ws#w", ".hidden", "c#1.0", "key with spaces/and#hash");
        shared::bundles::check_key(&key).map_err(|e| e.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(key, blob_key("org#a#user#b#ws#w", ".hidden", "c#1.0", "other"));
    }

    #[test]
    fn entry_keys_sort_by_table_then_revision() {
        let a = entry_sk("t", 9, ATOMIC);
        let b = entry_sk("t", 10, ATOMIC);
        assert!(a < b, "revisions are zero-padded so text order is number order");
        assert!(a.starts_with(&entry_prefix("t")));
        assert!(!entry_sk("t2", 1, ATOMIC).starts_with(&entry_prefix("t")));
    }

    #[test]
    fn entries_and_rows_round_trip() {
        let state = TableState {
            dropped: false,
            owner: TableOwner::Workspace { kind: "t".into() },
            key: "id".into(),
            columns: vec![Column::new("id", "text", false)],
            rows: 3,
            base: Some(Part { id: "b".into(), shards: 2 }),
            layers: vec![Layer { part: Part { id: "c.1".into(), shards: 1 }, items: 2, dels: 1 }],
        };
        let entry = Entry { table: "t".into(), rev: 4, txn: ATOMIC.into(), at: 7, state };
        let item = entry.item("W#g#1").map_err(|e| e.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Entry::from_item(&item).ok(), Some(entry));
        for data in [RowData::Inline("{}".into()), RowData::Blob("rows/x".into()), RowData::Tombstone] {
            let mut item = row_item("P".into(), "k", data.clone());
            let back = row_of_item(&mut item, "t").map_err(|e| e.to_string());
            assert_eq!(back, Ok(("k".to_owned(), data)));
        }
    }
}
