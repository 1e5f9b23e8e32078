//! A workspace's tables, as on the platform: each has a schema (columns with name, type,
//! nullable "YES"/"NO", default as SQL text) and rows that merge by a key column.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{Owner, WorkspaceDraft};

/// One row: column name → value, in the column order it came with.
pub type Row = Map<String, Value>;

/// Where a workspace's tables live: its owner key and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsKey {
    pub owner: Owner,
    pub workspace_id: String,
}

impl WsKey {
    pub fn new(owner: Owner, workspace_id: impl Into<String>) -> Self {
        Self { owner, workspace_id: workspace_id.into() }
    }
    /// `<owner>#ws#<id>`: the prefix of every key of this workspace's tables.
    pub fn key(&self) -> String {
        format!("{}#ws#{}", self.owner.key(), self.workspace_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    /// "YES" or "NO", as the platform writes it.
    pub nullable: String,
    /// SQL text such as `CURRENT_TIMESTAMP` or `'0'`, or null.
    pub default: Option<String>,
}

impl Column {
    pub fn new(name: &str, data_type: &str, nullable: bool) -> Self {
        Self {
            name: name.into(),
            data_type: data_type.into(),
            nullable: if nullable { "YES" } else { "NO" }.into(),
            default: None,
        }
    }
    pub fn is_nullable(&self) -> bool {
        !self.nullable.eq_ignore_ascii_case("NO")
    }
}

/// What a table belongs to and what kind of table it is, recorded when the table is created
/// (by import or project save) and read from then on: cleanup, export, counts and renames never
/// work it out from the name again, since ids may share tails (`abc` and `ws_abc`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "owner", rename_all = "lowercase")]
pub enum TableOwner {
    /// A project's own table (`<kind>_<project id>` on the platform).
    Project { kind: String, project_id: String },
    /// A workspace table (`<kind>_<workspace id>`), `projects` included.
    Workspace { kind: String },
}

impl TableOwner {
    pub fn kind(&self) -> &str {
        match self {
            TableOwner::Project { kind, .. } | TableOwner::Workspace { kind } => kind,
        }
    }
    pub fn project_id(&self) -> Option<&str> {
        match self {
            TableOwner::Project { project_id, .. } => Some(project_id),
            TableOwner::Workspace { .. } => None,
        }
    }
    /// Tables stored before owners were recorded: a workspace table, never a project's, so that
    /// no project cleanup can ever drop one (an import classifies it properly when it is rewritten).
    pub fn unrecorded(name: &str) -> Self {
        TableOwner::Workspace { kind: name.to_owned() }
    }
    /// The table's name in a workspace, as the platform names it.
    pub fn table_name(&self, workspace_id: &str) -> String {
        match self {
            TableOwner::Project { kind, project_id } => format!("{kind}_{project_id}"),
            TableOwner::Workspace { kind } => format!("{kind}_{workspace_id}"),
        }
    }
}

/// A stored table's description.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMeta {
    pub name: String,
    /// Recorded when the table was created.
    pub owner: TableOwner,
    pub columns: Vec<Column>,
    /// The column rows merge by.
    pub key_column: String,
    pub row_count: u64,
}

/// Rows to merge into one table (creating it when absent). Rows whose key is already stored
/// replace the stored row; stored rows whose key is not here stay as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct TableWrite {
    pub name: String,
    /// Recorded with the table (the API checks it matches what is stored).
    pub owner: TableOwner,
    /// The table's schema after the write.
    pub columns: Vec<Column>,
    pub key_column: String,
    /// `(key, row)`; keys are unique within one write.
    pub rows: Vec<(String, Row)>,
}

/// One all-or-nothing change to a workspace's tables: after `Tables::commit` returns Ok every
/// part is visible; after an error (or a crash at any point) none of it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    /// Names this change. Deterministic per request, so a retried commit rewrites the same
    /// items instead of adding new ones.
    pub id: String,
    /// Create the workspace in the same commit when it does not exist yet.
    pub create_workspace: Option<WorkspaceDraft>,
    pub upserts: Vec<TableWrite>,
    /// `(table, keys)` rows to delete.
    pub delete_rows: Vec<(String, Vec<String>)>,
    /// Tables to drop wholly, with their rows.
    pub drop_tables: Vec<String>,
}

impl Commit {
    pub fn rows_written(&self) -> usize {
        self.upserts.iter().map(|t| t.rows.len()).sum()
    }
}

/// What one table's catalog entry (name, owner, key column and schema) may take: the DynamoDB
/// store keeps each table's entry in an item of its own (400 KB at most, with its parts list), so
/// the API refuses (413) before writing anything a table whose schema would pass this, on both
/// stores alike.
pub const MAX_TABLE_ENTRY_BYTES: usize = 300_000;

/// Tables one workspace holds. Each is one catalog entry, and every snapshot reads them all
/// (about 1 MB per 3,000 tables on DynamoDB), so a bound keeps a snapshot's cost bounded too.
pub const MAX_TABLES_PER_WORKSPACE: usize = 10_000;

/// A table's catalog entry size, as [`MAX_TABLE_ENTRY_BYTES`] counts it: its encoded schema,
/// plus room for what a store adds beside it (row count, parts).
pub fn catalog_bytes(name: &str, key_column: &str, columns: &[Column], owner: &TableOwner) -> usize {
    name.len() + key_column.len() + encoded_len(columns) + encoded_len(owner) + 128
}

fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

/// The column rows merge by: the platform's known keys, else the first non-nullable column.
pub fn key_column_for(table_kind: &str, columns: &[Column]) -> Option<String> {
    let known = match table_kind {
        "projects" => Some("project_id"),
        "datasources" => Some("datasource_id"),
        "concepts" => Some("predicate_name"),
        "cells" => Some("id"),
        _ => None,
    };
    if let Some(k) = known {
        if columns.is_empty() || columns.iter().any(|c| c.name == k) {
            return Some(k.to_owned());
        }
    }
    columns.iter().find(|c| !c.is_nullable()).map(|c| c.name.clone())
}

/// A row's key as text: strings as they are, numbers and booleans by their JSON text.
/// Null, missing, arrays and objects are not keys.
pub fn key_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
