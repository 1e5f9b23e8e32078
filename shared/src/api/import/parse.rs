//! What makes a bundle's table valid, checked the same way by both passes: its schema, its rows
//! (each an object with its key, every value fitting its column's type) and the limits. Every
//! problem is a 422 naming where it is (`export_data.projects.<id>.tables.<name>.data[3]...`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::tables::{key_column_for, key_text, Column};

/// Where an occurrence sits in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Group {
    /// The bundle's top-level `tables`.
    TopLevel,
    Project(String),
}

impl Group {
    /// The path of a table of this group, as messages name it.
    pub fn path_of(&self, table: &str) -> String {
        match self {
            Group::TopLevel => format!("export_data.tables.{table}"),
            Group::Project(pid) => format!("export_data.projects.{pid}.tables.{table}"),
        }
    }
}

/// DynamoDB's limit for a sort key, and so ours on both stores.
pub const MAX_KEY_BYTES: usize = 1024;
/// Tables one bundle may carry (occurrences: the platform repeats workspace tables per project).
pub const MAX_TABLES_PER_BUNDLE: usize = 2_000;
/// Columns of one table.
pub const MAX_COLUMNS_PER_TABLE: usize = 500;
/// Characters of a column's name, of its type, and of its default's SQL text.
pub const MAX_COLUMN_NAME_CHARS: usize = 255;
pub const MAX_COLUMN_TYPE_CHARS: usize = 128;
pub const MAX_COLUMN_DEFAULT_CHARS: usize = 1_000;

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::unprocessable(msg)
}

/// A table's `schema` (absent is `None`): its columns, in order.
pub(super) fn read_columns(at: &str, schema: Option<&Value>) -> Result<Vec<Column>, ApiError> {
    let schema =
        schema.and_then(Value::as_array).ok_or_else(|| bad(format!("{at}.schema: must be a list of columns")))?;
    if schema.len() > MAX_COLUMNS_PER_TABLE {
        return Err(bad(format!("{at}.schema: {} columns, more than {MAX_COLUMNS_PER_TABLE}", schema.len())));
    }
    let mut columns = Vec::with_capacity(schema.len());
    for (i, col) in schema.iter().enumerate() {
        let column: Column = serde_json::from_value(col.clone()).map_err(|e| {
            bad(format!("{at}.schema[{i}]: a column is {{name, type, nullable: \"YES\"|\"NO\", default}} ({e})"))
        })?;
        if !matches!(column.nullable.as_str(), "YES" | "NO") {
            return Err(bad(format!("{at}.schema[{i}].nullable: must be \"YES\" or \"NO\"")));
        }
        let too_long = |what: &str, text: &str, max: usize| {
            (text.chars().count() > max).then(|| bad(format!("{at}.schema[{i}].{what}: longer than {max} characters")))
        };
        if column.name.is_empty() {
            return Err(bad(format!("{at}.schema[{i}].name: must not be empty")));
        }
        if let Some(e) = too_long("name", &column.name, MAX_COLUMN_NAME_CHARS)
            .or_else(|| too_long("type", &column.data_type, MAX_COLUMN_TYPE_CHARS))
            .or_else(|| too_long("default", column.default.as_deref().unwrap_or(""), MAX_COLUMN_DEFAULT_CHARS))
        {
            return Err(e);
        }
        if columns.iter().any(|c: &Column| c.name == column.name) {
            return Err(bad(format!("{at}.schema: column '{}' appears twice", column.name)));
        }
        columns.push(column);
    }
    Ok(columns)
}

/// The column a table of `kind` merges its rows by.
pub(super) fn key_column(at: &str, kind: &str, columns: &[Column]) -> Result<String, ApiError> {
    key_column_for(kind, columns)
        .ok_or_else(|| bad(format!("{at}.schema: no key column (a column with nullable \"NO\")")))
}

/// Row `i` of a table: an object with its key, every value fitting its column. Returns the key.
pub(super) fn check_row(
    at: &str,
    i: u64,
    row: &Value,
    key_column: &str,
    columns: &[Column],
) -> Result<String, ApiError> {
    let Value::Object(row) = row else { return Err(bad(format!("{at}.data[{i}]: a row must be an object"))) };
    let key =
        key_text(row.get(key_column)).ok_or_else(|| bad(format!("{at}.data[{i}]: missing its key '{key_column}'")))?;
    if key.len() > MAX_KEY_BYTES {
        return Err(bad(format!("{at}.data[{i}].{key_column}: a key is at most {MAX_KEY_BYTES} bytes")));
    }
    for column in columns {
        if let Some(problem) = misfit(column, row.get(&column.name)) {
            return Err(bad(format!("{at}.data[{i}].{}: {problem}", column.name)));
        }
    }
    Ok(key)
}

/// Why a value does not fit its column's type, if it does not. Unknown types take anything.
pub(super) fn misfit(column: &Column, value: Option<&Value>) -> Option<String> {
    let value = match value {
        None | Some(Value::Null) => {
            return (!column.is_nullable()).then(|| "must not be null (nullable \"NO\")".to_owned());
        }
        Some(v) => v,
    };
    let t = column.data_type.to_ascii_lowercase();
    let t = t.split('(').next().unwrap_or_default().trim();
    let fits = match t {
        "text" | "character varying" | "varchar" | "character" | "char" | "uuid" | "citext" | "name" => {
            value.is_string()
        }
        "integer" | "int" | "int2" | "int4" | "int8" | "bigint" | "smallint" | "serial" | "bigserial" => {
            value.is_i64() || value.is_u64()
        }
        "numeric" | "decimal" | "real" | "double precision" | "float4" | "float8" => value.is_number(),
        "boolean" | "bool" => value.is_boolean(),
        _ if t.starts_with("timestamp") || t == "date" || t.starts_with("time") || t == "interval" => value.is_string(),
        _ => true,
    };
    (!fits).then(|| format!("{value} does not fit type '{}'", column.data_type))
}
