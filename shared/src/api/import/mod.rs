//! `POST /workspaces/import-tables`: merges a platform bundle into a workspace, all or nothing.
//!
//! 1. Read the request (400 when it is not what the route takes) and the bundle, inline or
//!    staged, whole (422 naming the first invalid thing). Nothing is written before this.
//! 2. Plan: each table's owner (classified once, at parse, and recorded with the table) gives its
//!    target name (fresh project ids when asked). Refuse, before reading any rows: what the
//!    synchronous path cannot finish well inside the HTTP API's 30 s (413); a table whose
//!    recorded owner differs (409); a project the caller may not save — another member's private
//!    project (409, naming it); a table catalog that would not fit (413).
//! 3. Read the keys already stored, and count sequentially in bundle order as the platform does:
//!    a row whose key exists (before the import or written earlier in it) is updated, else
//!    inserted. A redacted secret keeps its stored value only in an otherwise unchanged row (422).
//! 4. One `Tables::commit` on top of the revision read in 2 and 3: every row and table appears
//!    together, or none does. Its id is derived from the request, so sending the same import
//!    again converges on the same state. When another write got in first, 1 (the bundle) to 4 run
//!    again on a fresh snapshot ([`retry_on_conflict`]): two imports apply one after the other,
//!    never mixed.

mod counts;
mod parse;

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::projects::{check_not_workspace_id, visible, PROJECT_KEY};
use super::workspaces::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use super::{body, retry_on_conflict, Reply};
use crate::api::Call;
use crate::app::App;
use crate::error::ApiError;
use crate::model::{check_metadata, now_timestamp, validate_workspace_id, Principal, Scope, WorkspaceDraft};
use crate::naming::projects_table;
use crate::secrets;
use crate::store::Snapshot;
use crate::tables::{
    catalog_bytes, Column, Commit, Row, TableMeta, TableOwner, TableWrite, WsKey, MAX_TABLES_PER_WORKSPACE,
    MAX_TABLE_ENTRY_BYTES,
};
use counts::{Counts, Tally};
pub use parse::{parse as parse_bundle, Bundle, Group, Occurrence};

pub use super::bundles::MAX_BUNDLE_BYTES;

struct Request {
    export_data: Value,
    workspace_id: String,
    scope: Scope,
    force_new_id: bool,
}

/// The body as sent; [`read_request`] checks it into a [`Request`].
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ImportBody {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    export_data: Option<Map<String, Value>>,
    workspace_id: Option<String>,
    scope: Option<String>,
    force_new_id: Option<bool>,
}

fn read_request(call: &Call) -> Result<Request, ApiError> {
    let input: ImportBody = body::parse(&call.body)?;
    let workspace_id = body::required_text("workspace_id", input.workspace_id, 128)?;
    validate_workspace_id("workspace_id", &workspace_id)?;
    let scope = input.scope.map(|s| Scope::parse(&s)).transpose()?.unwrap_or(Scope::User);
    let export_data = input
        .export_data
        .map(Value::Object)
        .ok_or_else(|| ApiError::bad_request("export_data: required, the exported bundle"))?;
    Ok(Request { export_data, workspace_id, scope, force_new_id: input.force_new_id.unwrap_or(false) })
}

pub async fn import_tables(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let mut req = read_request(call)?;
    let target = WsKey::new(principal.owner(req.scope), &req.workspace_id);
    let commit_id = commit_id(&target, &call.body);
    // The bundle as sent, for the first attempt; a retry reads it from the request again (each
    // attempt consumes it, and holding a copy would double the memory of every import).
    let mut sent = Some(req.export_data.take());
    let (req, target, commit_id) = (&req, &target, &commit_id);
    retry_on_conflict(app.store.as_ref(), target, move |snapshot| {
        let sent = sent.take();
        async move {
            let sent = match sent {
                Some(sent) => sent,
                None => read_request(call)?.export_data,
            };
            let data = super::bundles::resolve_export_data(app, principal, sent).await?;
            let (commit, reply) = decide(app, principal, req, target, commit_id, data, &*snapshot).await?;
            Ok((Some(commit), reply))
        }
    })
    .await
}

/// One attempt: the commit the import makes on top of `snapshot`, and the answer it gives then.
async fn decide(
    app: &App,
    principal: &Principal,
    req: &Request,
    target: &WsKey,
    commit_id: &str,
    data: Value,
    snapshot: &dyn Snapshot,
) -> Result<(Commit, Reply), ApiError> {
    // Read after the snapshot was taken: a delete in between moves the revision on, so the
    // commit, made without creating the workspace, would not land.
    let existing_ws = app.store.get_workspace(&target.owner, &req.workspace_id).await?;
    let stored: HashMap<String, TableMeta> = snapshot.tables().iter().map(|t| (t.name.clone(), t.clone())).collect();
    let stored_projects = stored_projects(snapshot, target, &stored, &data).await?;
    let target_ids: Vec<String> = stored_projects.keys().cloned().collect();
    let mut bundle = parse::parse(data, &target_ids)?;
    let now = now_timestamp();
    let create_workspace = match existing_ws {
        Some(_) => None,
        None => Some(workspace_draft(&bundle, req, principal, &now)?),
    };

    let project_map = project_map(&bundle, req, commit_id)?;
    let mut plan = Plan::new(req, &project_map);
    for occ in &bundle.occurrences {
        plan.owners.push(plan.target_owner(occ));
    }
    let names = plan.check_names(&bundle, &stored)?;
    check_sync_limit(app, &plan, &bundle, &names)?;
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
fn check_sync_limit(app: &App, plan: &Plan<'_>, bundle: &Bundle, names: &[String]) -> Result<(), ApiError> {
    let keys = plan.keys_by_table(bundle, names);
    let cost: u64 = keys.values().map(|set| set.len() as u64).sum();
    let max = app.config.sync_import_max_rows;
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

fn commit_id(target: &WsKey, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(target.key().as_bytes());
    h.update([0]);
    h.update(body);
    hex::encode(&h.finalize()[..12])
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
