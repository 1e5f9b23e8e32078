//! The import as it was before the streaming engine: the whole bundle parsed into one tree and
//! decided in memory. Test-only: the reference the engine's equivalence tests compare with.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::counts::{Counts, Tally};
use super::parse::*;
use crate::api::projects::{check_not_workspace_id, visible, PROJECT_KEY};
use crate::api::workspaces::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::api::Reply;
use crate::error::ApiError;
use crate::model::{check_metadata, validate_id, Principal, Scope, WorkspaceDraft};
use crate::naming::{classify, projects_table, validate_table_name, TableOwner};
use crate::secrets;
use crate::store::Snapshot;
use crate::tables::{
    catalog_bytes, key_column_for, key_text, Column, Commit, Row, TableMeta, TableWrite, WsKey,
    MAX_TABLES_PER_WORKSPACE, MAX_TABLE_ENTRY_BYTES,
};

pub struct Request {
    pub workspace_id: String,
    pub scope: Scope,
    pub force_new_id: bool,
}

/// One table as it occurs in the bundle.
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
    pub workspace: Option<Map<String, Value>>,
    pub project_ids: Vec<String>,
    pub all_project_ids: Vec<String>,
    pub occurrences: Vec<Occurrence>,
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

/// One attempt, as `decide` was: `workspace_exists` and `sync_max` stand for what it read
/// from the store and the config, `now` for the clock.
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    principal: &Principal,
    req: &Request,
    target: &WsKey,
    commit_id: &str,
    data: Value,
    snapshot: &dyn Snapshot,
    workspace_exists: bool,
    sync_max: Option<u64>,
    now: &str,
) -> Result<(Commit, Reply), ApiError> {
    let stored: HashMap<String, TableMeta> = snapshot.tables().iter().map(|t| (t.name.clone(), t.clone())).collect();
    let stored_projects = stored_projects(snapshot, target, &stored, &data).await?;
    let target_ids: Vec<String> = stored_projects.keys().cloned().collect();
    let mut bundle = parse(data, &target_ids)?;
    let now = now.to_owned();
    let create_workspace = match workspace_exists {
        true => None,
        false => Some(workspace_draft(&bundle, req, principal, &now)?),
    };

    let project_map = project_map(&bundle, req, commit_id)?;
    let mut plan = Plan::new(req, &project_map);
    for occ in &bundle.occurrences {
        plan.owners.push(plan.target_owner(occ));
    }
    let names = plan.check_names(&bundle, &stored)?;
    if let Some(max) = sync_max {
        check_sync_limit(max, &plan, &bundle, &names)?;
    }
    plan.check_projects(&bundle, &stored_projects, principal, target)?;
    check_catalog(&plan, &bundle, &names, &stored)?;

    plan.read_existing(snapshot, &bundle, &names, &stored).await?;
    let counts = plan.count_and_merge(std::mem::take(&mut bundle.occurrences), names, &stored, principal, &now)?;
    let commit = Commit {
        id: commit_id.to_owned(),
        create_workspace,
        upserts: plan.order.iter().filter_map(|name| plan.writes.remove(name)).collect(),
        ..Commit::default()
    };
    let reply = counts.into_reply(req.scope, &project_map, &bundle.project_ids, &now, &req.workspace_id);
    Ok((commit, reply))
}

/// The target's project rows by id (the projects table is one row per project).
async fn stored_projects(
    snapshot: &dyn Snapshot,
    target: &WsKey,
    stored: &HashMap<String, TableMeta>,
    data: &Value,
) -> Result<HashMap<String, Row>, ApiError> {
    let table = projects_table(&target.workspace_id);
    if !stored.contains_key(&table) {
        return Ok(HashMap::new());
    }
    // Only the projects the bundle can name: what it reads grows with the bundle, not with the
    // workspace's projects.
    let candidates: Vec<String> = candidate_project_ids(data).into_iter().collect();
    Ok(snapshot.get_rows(&table, &candidates).await?.into_iter().collect())
}

/// Every id the bundle may refer to a stored project by: its projects, its projects tables'
/// keys, and each tail after a `_` of each table name (a `<kind>_<project id>` name may belong
/// to a stored project the bundle does not list). Any id not among these cannot change how the
/// bundle's names classify or which stored rows it touches.
fn candidate_project_ids(data: &Value) -> HashSet<String> {
    let mut ids = HashSet::new();
    if let Some(projects) = data.get("projects").and_then(Value::as_object) {
        ids.extend(projects.keys().cloned());
    }
    let Some(tables) = data.get("tables").and_then(Value::as_object) else { return ids };
    for (name, table) in tables {
        ids.extend(name.match_indices('_').map(|(i, _)| name[i + 1..].to_owned()).filter(|t| !t.is_empty()));
        if name.starts_with("projects") {
            let rows = table.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            ids.extend(rows.iter().filter_map(|r| crate::tables::key_text(r.get(PROJECT_KEY))));
        }
    }
    ids
}

/// Before any row is read: the rows this import writes (a commit writes only its own rows, so
/// what the tables already hold does not count).
fn check_sync_limit(max: u64, plan: &Plan<'_>, bundle: &Bundle, names: &[String]) -> Result<(), ApiError> {
    let keys = plan.keys_by_table(bundle, names);
    let cost: u64 = keys.values().map(|set| set.len() as u64).sum();
    if cost > max {
        return Err(ApiError::too_large(format!(
            "This import writes {cost} rows, more than the synchronous path finishes within the HTTP API's 30 s \
             (at most {max}). Send it as a job: POST /jarvispy/{{org}}/{{user}}/api/v1/workspaces/import-jobs, \
             then poll GET /jarvispy/{{org}}/{{user}}/api/v1/workspaces/import-jobs/{{job_id}}. Nothing was written."
        )));
    }
    Ok(())
}

/// Each table's catalog entry must fit what one stored item holds (see [`catalog_bytes`]), and
/// the workspace may not pass [`MAX_TABLES_PER_WORKSPACE`].
fn check_catalog(
    plan: &Plan<'_>,
    bundle: &Bundle,
    names: &[String],
    stored: &HashMap<String, TableMeta>,
) -> Result<(), ApiError> {
    let mut columns: HashMap<&str, Vec<Column>> = HashMap::new();
    for ((occ, name), owner) in bundle.occurrences.iter().zip(names).zip(&plan.owners) {
        let cols =
            columns.entry(name).or_insert_with(|| stored.get(name).map(|t| t.columns.clone()).unwrap_or_default());
        merge_columns(cols, &occ.columns);
        let bytes = catalog_bytes(name, &occ.key_column, cols, owner);
        if bytes > MAX_TABLE_ENTRY_BYTES {
            return Err(ApiError::too_large(format!(
                "Table '{name}': its schema would take {bytes} bytes, over the {MAX_TABLE_ENTRY_BYTES} one table \
                 holds. Nothing was written."
            )));
        }
    }
    let tables = stored.len() + columns.keys().filter(|name| !stored.contains_key(**name)).count();
    if tables > MAX_TABLES_PER_WORKSPACE {
        return Err(ApiError::too_large(format!(
            "This import would give the workspace {tables} tables, over the {MAX_TABLES_PER_WORKSPACE} one \
             workspace holds. Nothing was written."
        )));
    }
    Ok(())
}

/// Bundle project id → target id. `force_new_id` ids derive from the request, like the commit
/// id: sending the same import again (a retry) lands on the same projects, never on a second set.
fn project_map(bundle: &Bundle, req: &Request, commit_id: &str) -> Result<HashMap<String, String>, ApiError> {
    let mut map = HashMap::new();
    for pid in &bundle.all_project_ids {
        let target = if req.force_new_id {
            let digest = Sha256::digest(format!("{commit_id}\0{pid}").as_bytes());
            hex::encode(&digest[..6])[..11].to_owned()
        } else {
            pid.clone()
        };
        check_not_workspace_id("export_data.projects", &target, &req.workspace_id)
            .map_err(|e| ApiError::unprocessable(e.message))?;
        map.insert(pid.clone(), target);
    }
    Ok(map)
}

/// The workspace an import creates, from the bundle's record, under the limits a save has.
fn workspace_draft(
    bundle: &Bundle,
    req: &Request,
    principal: &Principal,
    now: &str,
) -> Result<WorkspaceDraft, ApiError> {
    let record = bundle.workspace.as_ref();
    let text = |k: &str| record.and_then(|r| r.get(k)).and_then(Value::as_str).map(str::to_owned);
    let name = text("name").map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    let description = text("description");
    let too_long = |field: &str, value: Option<&String>, max: usize| {
        value
            .filter(|v| v.chars().count() > max)
            .map(|_| ApiError::unprocessable(format!("export_data.workspace.{field}: longer than {max} characters")))
    };
    if let Some(e) = too_long("name", name.as_ref(), MAX_NAME_CHARS)
        .or_else(|| too_long("description", description.as_ref(), MAX_DESCRIPTION_CHARS))
    {
        return Err(e);
    }
    let metadata = record.and_then(|r| r.get("metadata")).and_then(Value::as_object).cloned().unwrap_or_default();
    check_metadata("export_data.workspace.metadata", &metadata).map_err(|e| ApiError::unprocessable(e.message))?;
    Ok(WorkspaceDraft {
        id: req.workspace_id.clone(),
        name: name.unwrap_or_else(|| req.workspace_id.clone()),
        description,
        metadata,
        scope: req.scope,
        writer: principal.username.clone(),
        now: now.to_owned(),
        expected_version: None,
    })
}

struct Plan<'a> {
    req: &'a Request,
    project_map: &'a HashMap<String, String>,
    /// Each occurrence's owner in the target workspace (project ids mapped), in bundle order.
    owners: Vec<TableOwner>,
    /// Keys (and rows, for restoring secrets) stored before the import, per target table.
    existing: HashMap<String, HashMap<String, Row>>,
    writes: HashMap<String, TableWrite>,
    /// Target tables in the order the bundle first touches them.
    order: Vec<String>,
}

impl<'a> Plan<'a> {
    fn new(req: &'a Request, project_map: &'a HashMap<String, String>) -> Self {
        Self {
            req,
            project_map,
            owners: Vec::new(),
            existing: HashMap::new(),
            writes: HashMap::new(),
            order: Vec::new(),
        }
    }

    fn target_owner(&self, occ: &Occurrence) -> TableOwner {
        match &occ.owner {
            TableOwner::Project { kind, project_id } => TableOwner::Project {
                kind: kind.clone(),
                project_id: self.project_map.get(project_id).unwrap_or(project_id).clone(),
            },
            TableOwner::Workspace { kind } => TableOwner::Workspace { kind: kind.clone() },
        }
    }

    /// Each occurrence's target table name. Refused: two bundle tables that land on one target
    /// table with different owners (422), and a target table whose recorded owner differs (409):
    /// what a table belongs to never changes once recorded.
    fn check_names(&self, bundle: &Bundle, stored: &HashMap<String, TableMeta>) -> Result<Vec<String>, ApiError> {
        let mut seen: HashMap<String, &TableOwner> = HashMap::new();
        let mut names = Vec::with_capacity(self.owners.len());
        for (occ, owner) in bundle.occurrences.iter().zip(&self.owners) {
            let name = owner.table_name(&self.req.workspace_id);
            if name.len() > 255 {
                return Err(ApiError::unprocessable(format!(
                    "{}: the target table name {name} is over 255 bytes",
                    occ.name
                )));
            }
            if let Some(first) = seen.get(&name).filter(|first| **first != owner) {
                return Err(ApiError::unprocessable(format!(
                    "{}: lands on table {name} as {}, but another table of the bundle lands there as {}",
                    occ.name,
                    describe(owner),
                    describe(first)
                )));
            }
            if let Some(table) = stored.get(&name) {
                let recorded = table.owner != TableOwner::unrecorded(&name);
                if recorded && table.owner != *owner {
                    return Err(ApiError::conflict(format!(
                        "{}: table {name} already exists in the workspace as {}, not {}. Nothing was written.",
                        occ.name,
                        describe(&table.owner),
                        describe(owner)
                    )));
                }
            }
            seen.insert(name.clone(), owner);
            names.push(name);
        }
        Ok(names)
    }

    /// An import never creates, changes or deletes a row or table of a project the caller may
    /// not save (another member's private project in an organization workspace): 409 naming
    /// them, as save-project answers. `force_new_id` brings them in as new projects instead.
    fn check_projects(
        &self,
        bundle: &Bundle,
        stored_projects: &HashMap<String, Row>,
        principal: &Principal,
        target: &WsKey,
    ) -> Result<(), ApiError> {
        let mut touched: Vec<&str> = self.owners.iter().filter_map(TableOwner::project_id).collect();
        for occ in bundle.occurrences.iter().filter(|o| is_projects_table(o)) {
            touched.extend(occ.rows.iter().map(|(k, _)| self.project_map.get(k).map_or(k.as_str(), String::as_str)));
        }
        let mut refused: Vec<&str> = touched
            .into_iter()
            .filter(|pid| stored_projects.get(*pid).is_some_and(|row| !visible(row, principal, target)))
            .collect();
        refused.sort_unstable();
        refused.dedup();
        if refused.is_empty() {
            return Ok(());
        }
        Err(ApiError::conflict(format!(
            "Project ids already in use in this workspace by another member: {}. Import with \"force_new_id\": true \
             to bring them in as new projects. Nothing was written.",
            refused.join(", ")
        )))
    }

    /// The keys the bundle writes, per target table (project ids renamed).
    fn keys_by_table<'n>(&self, bundle: &Bundle, names: &'n [String]) -> HashMap<&'n str, HashSet<String>> {
        let mut keys: HashMap<&str, HashSet<String>> = HashMap::new();
        for (occ, name) in bundle.occurrences.iter().zip(names) {
            let projects = is_projects_table(occ);
            keys.entry(name).or_default().extend(occ.rows.iter().map(|(k, _)| self.mapped_key_raw(projects, k)));
        }
        keys
    }

    async fn read_existing(
        &mut self,
        snapshot: &dyn Snapshot,
        bundle: &Bundle,
        names: &[String],
        stored: &HashMap<String, TableMeta>,
    ) -> Result<(), ApiError> {
        let mut keys = self.keys_by_table(bundle, names);
        keys.retain(|name, _| stored.contains_key(*name));
        for (name, set) in keys {
            let list: Vec<String> = set.into_iter().collect();
            let rows = snapshot.get_rows(name, &list).await?;
            self.existing.insert(name.to_owned(), rows.into_iter().collect());
        }
        Ok(())
    }

    fn count_and_merge(
        &mut self,
        occurrences: Vec<Occurrence>,
        names: Vec<String>,
        stored: &HashMap<String, TableMeta>,
        principal: &Principal,
        now: &str,
    ) -> Result<Counts, ApiError> {
        let mut counts = Counts::default();
        let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
        let owners = std::mem::take(&mut self.owners);
        for ((occ, name), owner) in occurrences.into_iter().zip(names).zip(owners) {
            let existed_before = stored.contains_key(&name) || self.writes.contains_key(&name);
            let stored_rows = self.existing.get(&name);
            let keys = seen
                .entry(name.clone())
                .or_insert_with(|| stored_rows.map(|rows| rows.keys().cloned().collect()).unwrap_or_default());
            let mut tally = Tally { created: !existed_before, ..Tally::default() };
            if !self.writes.contains_key(&name) {
                self.order.push(name.clone());
                let base = stored.get(&name).map(|t| t.columns.clone()).unwrap_or_default();
                let write = TableWrite {
                    name: name.clone(),
                    owner,
                    columns: base,
                    key_column: occ.key_column.clone(),
                    rows: Vec::new(),
                };
                self.writes.insert(name.clone(), write);
            }
            let projects_table = is_projects_table(&occ);
            let mut fresh: Vec<(String, Row)> = Vec::with_capacity(occ.rows.len());
            for (key, row) in occ.rows {
                let key = self.mapped_key_raw(projects_table, &key);
                let earlier = self.writes.get(&name).and_then(|w| w.rows.iter().rev().find(|(k, _)| *k == key));
                let before = earlier.map(|(_, r)| r).or_else(|| stored_rows.and_then(|rows| rows.get(&key)));
                let mut row = row;
                if projects_table {
                    self.project_row(&mut row, &key, before, principal, now);
                }
                let mut value = Value::Object(row);
                if secrets::contains_marker(&value) {
                    let before = before.map(|r| Value::Object(r.clone()));
                    secrets::restore(&mut value, before.as_ref()).map_err(|e| {
                        ApiError::unprocessable(format!("table {}, row '{key}': {}", occ.name, e.message()))
                    })?;
                }
                let mut row = match value {
                    Value::Object(r) => r,
                    _ => Map::new(),
                };
                if projects_table {
                    // Never the bundle's word, like the author: decided on the row as stored.
                    let stored = stored_rows.and_then(|rows| rows.get(&key));
                    let version = crate::api::versions::imported_project_version(stored, &row);
                    row.insert(crate::api::versions::VERSION_COLUMN.into(), Value::from(version));
                }
                if keys.insert(key.clone()) {
                    tally.rows_inserted += 1;
                } else {
                    tally.rows_updated += 1;
                }
                fresh.push((key, row));
            }
            if let Some(write) = self.writes.get_mut(&name) {
                merge_columns(&mut write.columns, &occ.columns);
                if projects_table {
                    let extras = crate::api::projects::projects_columns();
                    let missing: Vec<Column> =
                        extras.into_iter().filter(|c| !write.columns.iter().any(|w| w.name == c.name)).collect();
                    write.columns.extend(missing);
                }
                write.key_column = occ.key_column.clone();
                // Last occurrence of a key wins, in place of the earlier one.
                let positions: HashMap<String, usize> =
                    write.rows.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
                for (key, row) in fresh {
                    match positions.get(&key) {
                        Some(&i) => write.rows[i].1 = row,
                        None => write.rows.push((key, row)),
                    }
                }
            }
            counts.add(&occ.group, &occ.name, &name, tally);
        }
        Ok(counts)
    }

    /// A project's row as the import writes it: its id (renamed by `force_new_id`) and the
    /// target's scope; the author is never the bundle's word: a project already here keeps its
    /// author and creation time, a new one is the importer's (its version is set once the row is
    /// final, in `count_and_merge`).
    fn project_row(&self, row: &mut Row, key: &str, before: Option<&Row>, principal: &Principal, now: &str) {
        row.insert(PROJECT_KEY.into(), Value::String(key.to_owned()));
        row.insert("scope".into(), Value::String(self.req.scope.as_str().into()));
        let kept = |k: &str| before.and_then(|b| b.get(k)).cloned();
        row.insert("author".into(), kept("author").unwrap_or_else(|| Value::String(principal.username.clone())));
        if let Some(created) = kept("created_at") {
            row.insert("created_at".into(), created);
        } else if row.get("created_at").is_none_or(Value::is_null) {
            row.insert("created_at".into(), Value::String(now.to_owned()));
        }
        // Our two extra project columns, null when the platform's bundle lacks them.
        for extra in ["description", "metadata"] {
            row.entry(extra).or_insert(Value::Null);
        }
    }

    /// The projects table's key is the project id, which `force_new_id` renames.
    fn mapped_key_raw(&self, projects_table: bool, key: &str) -> String {
        if projects_table {
            self.project_map.get(key).cloned().unwrap_or_else(|| key.to_owned())
        } else {
            key.to_owned()
        }
    }
}

fn describe(owner: &TableOwner) -> String {
    match owner {
        TableOwner::Project { kind, project_id } => format!("project {project_id}'s {kind} table"),
        TableOwner::Workspace { kind } => format!("the workspace's {kind} table"),
    }
}

fn is_projects_table(occ: &Occurrence) -> bool {
    matches!(&occ.owner, TableOwner::Workspace { kind } if kind == "projects")
}

/// Same-named columns take the bundle's definition; new ones are appended.
fn merge_columns(into: &mut Vec<Column>, from: &[Column]) {
    for col in from {
        match into.iter_mut().find(|c| c.name == col.name) {
            Some(existing) => *existing = col.clone(),
            None => into.push(col.clone()),
        }
    }
}
