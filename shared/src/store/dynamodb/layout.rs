//! Where the tables half keeps things: key formats, the manifest and commit-record shapes,
//! sharding, and row items (inline or through a blob). Pure functions, no I/O.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{s, Item};
use crate::store::{StoreError, StoreResult};
use crate::tables::{Column, TableMeta, TableOwner};

pub(super) const MANIFEST_SK: &str = "manifest";
pub(super) const RECORD_PREFIX: &str = "commit#";
/// A partition takes ~1,000 writes/s, so a version gets one shard per 1,000 rows, at most 64.
pub(super) const ROWS_PER_SHARD: u64 = 1000;
pub(super) const MAX_SHARDS: u32 = 64;
/// Row JSON above this goes to a blob: an item is at most 400 KB with its keys and names.
pub(super) const INLINE_ROW_MAX: usize = 350_000;
/// DynamoDB's limit on a sort key value.
pub(super) const MAX_KEY_BYTES: usize = 1024;
/// The manifest is one item; leave room for its keys under the 400 KB item limit.
pub(super) const MAX_MANIFEST_BYTES: usize = 350_000;

pub(super) const ATTR_ROW: &str = "row";
pub(super) const ATTR_BLOB: &str = "blob";

/// One table as the manifest names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TableEntry {
    /// The version whose row items are the table's content.
    pub v: String,
    pub columns: Vec<Column>,
    pub key: String,
    pub rows: u64,
    pub shards: u32,
    /// Recorded when the table was created; absent only in manifests written before owners were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<TableOwner>,
}

/// The workspace's one commit point. `rev` 0 and no tables when the item is absent.
#[derive(Debug, Clone, Default)]
pub(super) struct Manifest {
    pub rev: u64,
    pub exists: bool,
    /// By name; a `BTreeMap` so a snapshot's tables come out in byte order of the names.
    pub tables: BTreeMap<String, TableEntry>,
}

impl Manifest {
    pub fn from_item(ws_key: &str, item: Option<&Item>) -> StoreResult<Manifest> {
        let Some(item) = item else { return Ok(Manifest::default()) };
        let bad = |what: &str| StoreError::Internal(format!("malformed manifest of {ws_key}: {what}"));
        let rev = number(item, "rev").ok_or_else(|| bad("'rev' is not a number"))?;
        let text = text(item, "tables").ok_or_else(|| bad("'tables' is not a string"))?;
        let tables =
            serde_json::from_str(text).map_err(|e| bad(&format!("'tables' is not the expected JSON ({e})")))?;
        Ok(Manifest { rev, exists: true, tables })
    }

    /// Whether `version` of `table` is live: such rows are never garbage, whatever a record says.
    pub fn names(&self, table: &str, version: &str) -> bool {
        self.tables.get(table).is_some_and(|t| t.v == version)
    }

    pub fn metas(&self) -> Vec<TableMeta> {
        self.tables
            .iter()
            .map(|(name, t)| TableMeta {
                name: name.clone(),
                owner: t.owner.clone().unwrap_or_else(|| TableOwner::unrecorded(name)),
                columns: t.columns.clone(),
                key_column: t.key.clone(),
                row_count: t.rows,
            })
            .collect()
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }

    pub fn versions(&self) -> Vec<VersionRef> {
        self.tables
            .iter()
            .map(|(name, t)| VersionRef { table: name.clone(), v: t.v.clone(), shards: t.shards })
            .collect()
    }
}

pub(super) fn manifest_item(ws_key: &str, rev: u64, tables: &BTreeMap<String, TableEntry>) -> StoreResult<Item> {
    let json = serde_json::to_string(tables).map_err(|e| StoreError::Internal(format!("manifest of {ws_key}: {e}")))?;
    if json.len() > MAX_MANIFEST_BYTES {
        return Err(StoreError::TooLarge(format!(
            "the workspace's table catalog would be {} bytes (over {MAX_MANIFEST_BYTES}): too many tables or columns",
            json.len()
        )));
    }
    Ok(HashMap::from([
        ("PK".to_owned(), s(ws_key)),
        ("SK".to_owned(), s(MANIFEST_SK)),
        ("rev".to_owned(), n(rev)),
        ("tables".to_owned(), s(json)),
    ]))
}

/// A table version's row items, as a commit record lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct VersionRef {
    pub table: String,
    pub v: String,
    pub shards: u32,
}

/// A commit record (`SK = commit#<version>`), read back by the sweep.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub sk: String,
    pub state: String,
    pub created: u64,
    pub committed_at: Option<u64>,
    /// What a pending commit writes (garbage if it never commits).
    pub versions: Vec<VersionRef>,
    /// What a committed one replaced (garbage once it has committed).
    pub superseded: Vec<VersionRef>,
}

pub(super) const PENDING: &str = "pending";
pub(super) const ABORTING: &str = "aborting";
pub(super) const COMMITTED: &str = "committed";

impl Record {
    pub fn from_item(item: &Item) -> StoreResult<Record> {
        let sk = text(item, "SK").unwrap_or("?").to_owned();
        let bad = |what: &str| StoreError::Internal(format!("malformed commit record {sk}: {what}"));
        let refs = |attr: &str| -> StoreResult<Vec<VersionRef>> {
            match text(item, attr) {
                None => Ok(Vec::new()),
                Some(t) => serde_json::from_str(t).map_err(|e| bad(&format!("'{attr}' ({e})"))),
            }
        };
        Ok(Record {
            state: text(item, "state").ok_or_else(|| bad("no 'state'"))?.to_owned(),
            created: number(item, "created").ok_or_else(|| bad("no 'created'"))?,
            committed_at: number(item, "committed_at"),
            versions: refs("versions")?,
            superseded: refs("superseded")?,
            sk,
        })
    }
}

pub(super) fn refs_json(refs: &[VersionRef]) -> StoreResult<String> {
    serde_json::to_string(refs).map_err(|e| StoreError::Internal(format!("commit record: {e}")))
}

pub(super) fn record_sk(version: &str) -> String {
    format!("{RECORD_PREFIX}{version}")
}

/// `<ws key>#t#<table>#v#<version>#s#<shard>`: one partition per shard of a table version.
pub(super) fn rows_pk(ws_key: &str, table: &str, version: &str, shard: u32) -> String {
    format!("{ws_key}#t#{table}#v#{version}#s#{shard}")
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
/// whatever the table, commit id or row key; one prefix per workspace and per table version.
pub(super) fn blob_key(ws_key: &str, table: &str, version: &str, key: &str) -> String {
    let h = |parts: &[&str]| {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        hex::encode(hasher.finalize())
    };
    format!("rows/{}/{}/{}", &h(&[ws_key])[..32], &h(&[table, version])[..32], h(&[key]))
}

/// Where a stored row's JSON is.
pub(super) enum RowData {
    Inline(String),
    Blob(String),
}

/// The `SK` and row data of a row item.
pub(super) fn row_of_item(item: &mut Item, table: &str) -> StoreResult<(String, RowData)> {
    let bad = |what: String| StoreError::Internal(format!("malformed row item of table {table}: {what}"));
    let key = match item.remove("SK") {
        Some(AttributeValue::S(k)) => k,
        _ => return Err(bad("no string 'SK'".into())),
    };
    match (item.remove(ATTR_ROW), item.remove(ATTR_BLOB)) {
        (Some(AttributeValue::S(row)), None) => Ok((key, RowData::Inline(row))),
        (None, Some(AttributeValue::S(blob))) => Ok((key, RowData::Blob(blob))),
        _ => Err(bad(format!("key {}: neither a string 'row' nor a string 'blob'", short(&key)))),
    }
}

pub(super) fn row_item(pk: String, key: &str, data: RowData) -> Item {
    let (attr, value) = match data {
        RowData::Inline(row) => (ATTR_ROW, row),
        RowData::Blob(blob) => (ATTR_BLOB, blob),
    };
    HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(key)), (attr.to_owned(), s(value))])
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

/// Unix seconds now (0 before 1970, which only makes records look old).
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
        crate::bundles::check_key(&key).map_err(|e| e.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(key, blob_key("org#a#user#b#ws#w", ".hidden", "c#1.0", "other"));
    }
}
