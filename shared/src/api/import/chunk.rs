//! Pass 2: [`write_chunk`] turns one chunk of the plan into the rows the import writes for it,
//! reading only that chunk's bytes and, in one `get_rows`, the stored rows of its keys. It
//! returns only rows that are the last of their key in the bundle ([`KeyIndex::is_last`]), so
//! chunks are independent: any order, any number at once, any invocation.
//!
//! [`KeyIndex::is_last`]: super::index::KeyIndex::is_last

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::parse::check_row;
use super::plan::{ImportPlan, OccurrencePlan};
use super::rows::KeysDigest;
use super::source::BundleSource;
use crate::api::projects::PROJECT_KEY;
use crate::api::versions::{imported_project_version, VERSION_COLUMN};
use crate::error::ApiError;
use crate::secrets;
use crate::store::Snapshot;
use crate::tables::Row;

/// What one chunk adds to the answer and to the finish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTally {
    pub occurrence: u32,
    /// Counted as the platform counts: a row whose key was stored before the import, or comes
    /// earlier in it, is updated, else inserted.
    pub rows_inserted: u64,
    pub rows_updated: u64,
    /// The target table ([`ImportPlan::tables`]) and how many keys this chunk writes that the
    /// snapshot did not have (`StagedTable::new_keys`, summed over chunks).
    pub table: u32,
    pub new_keys: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkOutput {
    /// The target table's name.
    pub table: String,
    /// `(key, row)`: only last occurrences, so keys are unique across all chunks of a table.
    pub rows: Vec<(String, Row)>,
    pub tally: ChunkTally,
}

fn changed(label: &str, what: &str) -> ApiError {
    ApiError::conflict(format!("{label} changed while it was being imported ({what}); send the import again"))
}

pub async fn write_chunk(
    plan: &ImportPlan,
    chunk: usize,
    source: &dyn BundleSource,
    snapshot: &dyn Snapshot,
) -> Result<ChunkOutput, ApiError> {
    let label = source.label();
    let c = plan.chunks.get(chunk).ok_or_else(|| ApiError::internal(format!("import: no chunk {chunk}")))?;
    let occ = plan.occurrences.get(c.occurrence as usize).ok_or_else(|| ApiError::internal("import: no occurrence"))?;
    let table = plan.tables.get(occ.table as usize).ok_or_else(|| ApiError::internal("import: no table"))?;
    let bytes = source.read_range(c.start, c.end).await?;
    let reader = b"[".chain(&bytes[..]).chain(&b"]"[..]);
    let values: Vec<Value> =
        serde_json::from_reader(reader).map_err(|_| changed(&label, "a chunk no longer parses"))?;
    drop(bytes);
    if values.len() as u64 != c.rows {
        return Err(changed(&label, "a chunk holds other rows"));
    }
    let at = occ.at();
    let mut digest = KeysDigest::default();
    let mut rows = Vec::with_capacity(values.len());
    // Keys whose stored row this chunk needs: a first occurrence (inserted or updated?), a last
    // one (a new key?), a project row (author, creation time, version) and a row carrying a
    // redacted secret (restored from the stored row). A row repeated in between needs none, so
    // a workspace table the bundle repeats in every project is looked up twice, not per project.
    let mut lookups = Vec::new();
    for (j, value) in values.into_iter().enumerate() {
        let key = check_row(&at, c.first_row + j as u64, &value, &occ.key_column, &occ.columns)?;
        digest.add(&key);
        let key = if occ.projects_table { plan.project_target(&key).to_owned() } else { key };
        let ordinal = occ.first_ordinal + c.first_row + j as u64;
        if occ.projects_table
            || plan.index.is_first(ordinal)
            || plan.index.is_last(ordinal)
            || secrets::contains_marker(&value)
        {
            lookups.push(key.clone());
        }
        let Value::Object(row) = value else { continue };
        rows.push((key, row));
    }
    if digest.finish() != c.keys_digest {
        return Err(changed(&label, "a chunk holds other keys"));
    }
    let stored: HashMap<String, Row> = if table.stored && !lookups.is_empty() {
        lookups.sort_unstable();
        lookups.dedup();
        snapshot.get_rows(&table.name, &lookups).await?.into_iter().collect()
    } else {
        HashMap::new()
    };

    let mut tally = ChunkTally { occurrence: c.occurrence, table: occ.table, ..ChunkTally::default() };
    let mut out = Vec::new();
    for (j, (key, row)) in rows.into_iter().enumerate() {
        let ordinal = occ.first_ordinal + c.first_row + j as u64;
        let before = stored.get(&key);
        let row = finish_row(plan, occ, c.occurrence, &key, row, before)?;
        if plan.index.is_first(ordinal) && before.is_none() {
            tally.rows_inserted += 1;
        } else {
            tally.rows_updated += 1;
        }
        if plan.index.is_last(ordinal) {
            tally.new_keys += u64::from(before.is_none());
            out.push((key, row));
        }
    }
    Ok(ChunkOutput { table: table.name.clone(), rows: out, tally })
}

/// A row as the import writes it. Every row goes through this, not only the last of its key, so
/// a redacted secret that cannot be restored is refused wherever it is.
///
/// Known corner: a repeated key restores its secrets against the row stored before the import;
/// an earlier row of the same key within the bundle is not consulted (the whole-tree import
/// did consult it). Project rows do follow their earlier rows exactly (author, created_at):
/// see [`project_row`].
fn finish_row(
    plan: &ImportPlan,
    occ: &OccurrencePlan,
    occurrence: u32,
    key: &str,
    mut row: Row,
    stored: Option<&Row>,
) -> Result<Row, ApiError> {
    if occ.projects_table {
        project_row(plan, occurrence, &mut row, key, stored);
    }
    let mut value = Value::Object(row);
    if secrets::contains_marker(&value) {
        let before = stored.map(|r| Value::Object(r.clone()));
        secrets::restore(&mut value, before.as_ref())
            .map_err(|e| ApiError::unprocessable(format!("table {}, row '{key}': {}", occ.name, e.message())))?;
    }
    let mut row = match value {
        Value::Object(r) => r,
        _ => Map::new(),
    };
    if occ.projects_table {
        // Never the bundle's word, like the author: decided on the row as stored.
        let version = imported_project_version(stored, &row);
        row.insert(VERSION_COLUMN.into(), Value::from(version));
    }
    Ok(row)
}

/// A project's row as the import writes it: its id (renamed by `force_new_id`) and the target's
/// scope; the author is never the bundle's word: a project already here keeps its author and
/// creation time, a new one is the importer's. A key repeated in the bundle takes the creation
/// time its first occurrence got (as when each occurrence built on the one before).
fn project_row(plan: &ImportPlan, occurrence: u32, row: &mut Row, key: &str, stored: Option<&Row>) {
    row.insert(PROJECT_KEY.into(), Value::String(key.to_owned()));
    row.insert("scope".into(), Value::String(plan.request.scope.as_str().into()));
    let kept = |k: &str| stored.and_then(|b| b.get(k)).cloned();
    row.insert("author".into(), kept("author").unwrap_or_else(|| Value::String(plan.importer.clone())));
    let repeated = plan.repeated_projects.get(key).filter(|r| r.first_occurrence != occurrence);
    if let Some(created) = kept("created_at") {
        row.insert("created_at".into(), created);
    } else if let Some(first) = repeated {
        let created = first.created_at.clone().unwrap_or_else(|| Value::String(plan.now.clone()));
        row.insert("created_at".into(), created);
    } else if row.get("created_at").is_none_or(Value::is_null) {
        row.insert("created_at".into(), Value::String(plan.now.clone()));
    }
    // Our two extra project columns, null when the platform's bundle lacks them.
    for extra in ["description", "metadata"] {
        row.entry(extra).or_insert(Value::Null);
    }
}
