//! Reads a platform bundle into table occurrences in bundle order, rejecting (422) the first
//! thing that is not valid. Nothing is written before this has read the whole bundle.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::model::validate_id;
use crate::naming::{classify, validate_table_name, TableOwner};
use crate::tables::{key_column_for, key_text, Column, Row};

/// Where an occurrence sits in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// The bundle's top-level `tables`.
    TopLevel,
    Project(String),
}

/// One table as it occurs in the bundle (the sample repeats workspace tables in every project).
#[derive(Debug)]
pub struct Occurrence {
    pub group: Group,
    pub name: String,
    pub owner: TableOwner,
    pub columns: Vec<Column>,
    pub key_column: String,
    pub rows: Vec<(String, Row)>,
}

#[derive(Debug)]
pub struct Bundle {
    pub source_workspace_id: String,
    /// The workspace record an export of ours carries, to recreate the workspace.
    pub workspace: Option<Map<String, Value>>,
    /// Project ids in bundle order (the keys of `projects`).
    pub project_ids: Vec<String>,
    /// Every project the bundle brings: those, then those only in its projects table.
    pub all_project_ids: Vec<String>,
    pub occurrences: Vec<Occurrence>,
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

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::unprocessable(msg)
}

/// `data` must already be the bundle itself (the export's `data`). `target_project_ids` are the
/// projects already in the target workspace: with the bundle's own, every id a table name may
/// end with (longest whole id wins; see [`classify`]).
pub fn parse(data: Value, target_project_ids: &[String]) -> Result<Bundle, ApiError> {
    let Value::Object(mut data) = data else { return Err(bad("export_data: the bundle must be a JSON object")) };
    let projects = match data.get_mut("projects").map(Value::take) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("export_data.projects: must be an object of projects by id")),
    };
    let top_tables = match data.get_mut("tables").map(Value::take) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("export_data.tables: must be an object of tables by name")),
    };
    // An empty workspace exports both keys empty, and that must import too.
    if !data.contains_key("projects") && !data.contains_key("tables") && !data.contains_key("workspace_id") {
        return Err(bad(
            "export_data: no 'projects', no 'tables' and no 'workspace_id': this is not a workspace export",
        ));
    }
    let mut project_ids = Vec::new();
    for (pid, project) in &projects {
        validate_id("project id", pid).map_err(|e| bad(format!("export_data.projects: {}", e.message)))?;
        if !project.is_object() {
            return Err(bad(format!("export_data.projects.{pid}: must be an object")));
        }
        project_ids.push(pid.clone());
    }
    let source_workspace_id = source_workspace_id(&data, &top_tables)?;
    validate_id("workspace_id", &source_workspace_id).map_err(|e| bad(format!("export_data.{}", e.message)))?;
    // Projects listed only in the projects table (without tables of their own) still own names,
    // and so do the target's own projects.
    let mut known_ids = project_ids.clone();
    for (name, table) in &top_tables {
        if name == &format!("projects_{source_workspace_id}") {
            for row in table.get("data").and_then(Value::as_array).into_iter().flatten() {
                if let Some(pid) = key_text(row.get("project_id")) {
                    if validate_id("project_id", &pid).is_err() {
                        return Err(bad(format!("export_data.tables.{name}: project_id {pid:?} is not a valid id")));
                    }
                    if !known_ids.contains(&pid) {
                        known_ids.push(pid);
                    }
                }
            }
        }
    }
    let all_project_ids = known_ids.clone();
    for pid in target_project_ids {
        if !known_ids.contains(pid) {
            known_ids.push(pid.clone());
        }
    }
    if let Some(pid) = all_project_ids.iter().find(|p| **p == source_workspace_id) {
        return Err(bad(format!(
            "export_data: project id '{pid}' equals the workspace id, so table names are ambiguous"
        )));
    }
    let table_count = top_tables.len()
        + projects.values().filter_map(|p| p.get("tables").and_then(Value::as_object)).map(Map::len).sum::<usize>();
    if table_count > MAX_TABLES_PER_BUNDLE {
        return Err(bad(format!("export_data: {table_count} tables, more than {MAX_TABLES_PER_BUNDLE} in one bundle")));
    }
    let workspace = data.get("workspace").and_then(Value::as_object).cloned();

    // Bundle order: whichever of `projects` and `tables` comes first in the object.
    let projects_first = data.keys().position(|k| k == "projects") < data.keys().position(|k| k == "tables")
        || !data.contains_key("tables");
    let mut occurrences = Vec::new();
    let read_projects = |occurrences: &mut Vec<Occurrence>| -> Result<(), ApiError> {
        for (pid, project) in projects.iter() {
            let tables = match project.get("tables") {
                None | Some(Value::Null) => continue,
                Some(Value::Object(t)) => t,
                Some(_) => return Err(bad(format!("export_data.projects.{pid}.tables: must be an object"))),
            };
            for (name, table) in tables {
                let at = format!("export_data.projects.{pid}.tables.{name}");
                let occ = read_table(&at, Group::Project(pid.clone()), name, table, &known_ids, &source_workspace_id)?;
                occurrences.push(occ);
            }
        }
        Ok(())
    };
    let read_top = |occurrences: &mut Vec<Occurrence>| -> Result<(), ApiError> {
        for (name, table) in &top_tables {
            let at = format!("export_data.tables.{name}");
            occurrences.push(read_table(&at, Group::TopLevel, name, table, &known_ids, &source_workspace_id)?);
        }
        Ok(())
    };
    if projects_first {
        read_projects(&mut occurrences)?;
        read_top(&mut occurrences)?;
    } else {
        read_top(&mut occurrences)?;
        read_projects(&mut occurrences)?;
    }
    Ok(Bundle { source_workspace_id, workspace, project_ids, all_project_ids, occurrences })
}

/// Ours carry `workspace_id`; the platform's name it only in `projects_<ws>`.
fn source_workspace_id(data: &Map<String, Value>, top: &Map<String, Value>) -> Result<String, ApiError> {
    if let Some(id) = data.get("workspace_id").and_then(Value::as_str) {
        return Ok(id.to_owned());
    }
    let listed = data.get("workspace_level_tables").and_then(Value::as_array).into_iter().flatten();
    let names = listed.filter_map(Value::as_str).chain(top.keys().map(String::as_str));
    for name in names {
        if let Some(ws) = name.strip_prefix("projects_").filter(|w| !w.is_empty()) {
            return Ok(ws.to_owned());
        }
    }
    Err(bad("export_data: cannot tell the source workspace (no workspace_id and no projects_<workspace> table)"))
}

fn read_table(
    at: &str,
    group: Group,
    name: &str,
    table: &Value,
    project_ids: &[String],
    source_ws: &str,
) -> Result<Occurrence, ApiError> {
    validate_table_name(name)?;
    let owner = classify(name, project_ids, source_ws).ok_or_else(|| {
        bad(format!("{at}: a table name must end with _<project id> or _<workspace id> ({source_ws})"))
    })?;
    let kind = match &owner {
        TableOwner::Project { kind, .. } | TableOwner::Workspace { kind } => kind.clone(),
    };
    let table = table.as_object().ok_or_else(|| bad(format!("{at}: must be an object with schema and data")))?;
    let schema = table
        .get("schema")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("{at}.schema: must be a list of columns")))?;
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
    let key_column = key_column_for(&kind, &columns)
        .ok_or_else(|| bad(format!("{at}.schema: no key column (a column with nullable \"NO\")")))?;
    let data = match table.get("data") {
        Some(Value::Array(rows)) => rows,
        _ => return Err(bad(format!("{at}.data: must be a list of rows"))),
    };
    let mut rows = Vec::with_capacity(data.len());
    for (i, row) in data.iter().enumerate() {
        let Value::Object(row) = row else { return Err(bad(format!("{at}.data[{i}]: a row must be an object"))) };
        let key = key_text(row.get(&key_column))
            .ok_or_else(|| bad(format!("{at}.data[{i}]: missing its key '{key_column}'")))?;
        if key.len() > MAX_KEY_BYTES {
            return Err(bad(format!("{at}.data[{i}].{key_column}: a key is at most {MAX_KEY_BYTES} bytes")));
        }
        for column in &columns {
            if let Some(problem) = misfit(column, row.get(&column.name)) {
                return Err(bad(format!("{at}.data[{i}].{}: {problem}", column.name)));
            }
        }
        rows.push((key, row.clone()));
    }
    Ok(Occurrence { group, name: name.to_owned(), owner, columns, key_column, rows })
}

/// Why a value does not fit its column's type, if it does not. Unknown types take anything.
fn misfit(column: &Column, value: Option<&Value>) -> Option<String> {
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
