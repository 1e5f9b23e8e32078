//! `POST /workspaces/import-tables`: merges a platform bundle into a workspace, all or nothing.
//!
//! 1. Read the request (400 when it is not what the route takes) and the bundle, inline or
//!    staged, whole (422 naming the first invalid thing). Nothing is written before this.
//! 2. Plan: rename tables to the target workspace (and fresh project ids when asked), read the
//!    keys already stored, and count sequentially in bundle order as the platform does: a row
//!    whose key exists (before the import or written earlier in it) is updated, else inserted.
//! 3. Refuse (413) what the synchronous path cannot finish well inside the HTTP API's 30 s.
//! 4. One `Store::commit`: every row and table appears together, or none does. Its id is
//!    derived from the request, so sending the same import again converges on the same state.

mod parse;

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{body, Reply};
use crate::api::Call;
use crate::app::App;
use crate::error::ApiError;
use crate::model::{new_id, now_timestamp, validate_id, Principal, Scope, WorkspaceDraft};
use crate::naming::TableOwner;
use crate::secrets;
use crate::tables::{Column, Commit, Row, TableMeta, TableWrite, WsKey};
pub use parse::{parse as parse_bundle, Bundle, Group, Occurrence};

pub use super::bundles::MAX_BUNDLE_BYTES;

struct Request {
    export_data: Value,
    workspace_id: String,
    scope: Scope,
    force_new_id: bool,
}

fn read_request(call: &Call) -> Result<Request, ApiError> {
    let mut input = body::object(&call.body)?;
    let workspace_id = body::required_string(&input, "workspace_id", 128)?;
    validate_id("workspace_id", &workspace_id)?;
    let scope = match body::opt_string(&input, "scope")? {
        Some(s) => Scope::parse(&s)?,
        None => Scope::User,
    };
    let force_new_id = match input.get("force_new_id") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_request("force_new_id: must be true or false")),
    };
    let export_data = match input.remove("export_data") {
        Some(v @ Value::Object(_)) => v,
        None | Some(Value::Null) => return Err(ApiError::bad_request("export_data: required, the exported bundle")),
        Some(_) => return Err(ApiError::bad_request("export_data: must be a JSON object")),
    };
    Ok(Request { export_data, workspace_id, scope, force_new_id })
}

pub async fn import_tables(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let mut req = read_request(call)?;
    let data = super::bundles::resolve_export_data(app, principal, req.export_data.take()).await?;
    let mut bundle = parse::parse(data)?;
    let target = WsKey::new(principal.owner(req.scope), &req.workspace_id);
    let existing_ws = app.store.get_workspace(&target.owner, &req.workspace_id).await?;
    let stored: HashMap<String, TableMeta> =
        app.store.list_tables(&target).await?.into_iter().map(|t| (t.name.clone(), t)).collect();

    let project_map: HashMap<String, String> = bundle
        .project_ids
        .iter()
        .map(|pid| (pid.clone(), if req.force_new_id { new_id("", 11) } else { pid.clone() }))
        .collect();
    let mut plan = Plan::new(&req, &project_map);
    for occ in &bundle.occurrences {
        plan.target_names.push(plan.target_name(occ));
    }
    plan.read_existing(app, &target, &bundle, &stored).await?;
    let counts = plan.count_and_merge(std::mem::take(&mut bundle.occurrences), &stored);

    let cost: u64 =
        plan.writes.values().map(|w| w.rows.len() as u64 + stored.get(&w.name).map_or(0, |t| t.row_count)).sum();
    // The DynamoDB store rewrites every table it merges into, so stored rows count too.
    let max = app.config.sync_import_max_rows;
    if cost > max {
        return Err(ApiError::too_large(format!(
            "This import writes {cost} rows, more than the synchronous path finishes within the HTTP API's 30 s \
             (at most {max}). Send it as a job: POST /jarvispy/{{org}}/{{user}}/api/v1/workspaces/import-jobs, \
             then poll GET /jarvispy/{{org}}/{{user}}/api/v1/workspaces/import-jobs/{{job_id}}. Nothing was written."
        )));
    }

    let now = now_timestamp();
    let create_workspace = existing_ws.is_none().then(|| workspace_draft(&bundle, &req, principal, &now));
    let commit = Commit {
        id: commit_id(&target, &call.body),
        create_workspace,
        upserts: plan.order.iter().filter_map(|name| plan.writes.remove(name)).collect(),
        ..Commit::default()
    };
    app.store.commit(&target, commit).await?;
    Ok(counts.into_reply(req.scope, &project_map, &bundle.project_ids, &now, &req.workspace_id))
}

fn commit_id(target: &WsKey, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(target.key().as_bytes());
    h.update([0]);
    h.update(body);
    hex::encode(&h.finalize()[..12])
}

fn workspace_draft(bundle: &Bundle, req: &Request, principal: &Principal, now: &str) -> WorkspaceDraft {
    let record = bundle.workspace.as_ref();
    let text = |k: &str| record.and_then(|r| r.get(k)).and_then(Value::as_str).map(str::to_owned);
    WorkspaceDraft {
        id: req.workspace_id.clone(),
        name: text("name").filter(|n| !n.trim().is_empty()).unwrap_or_else(|| req.workspace_id.clone()),
        description: text("description"),
        metadata: record.and_then(|r| r.get("metadata")).and_then(Value::as_object).cloned().unwrap_or_default(),
        scope: req.scope,
        writer: principal.username.clone(),
        now: now.to_owned(),
    }
}

struct Plan<'a> {
    req: &'a Request,
    project_map: &'a HashMap<String, String>,
    target_names: Vec<String>,
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
            target_names: Vec::new(),
            existing: HashMap::new(),
            writes: HashMap::new(),
            order: Vec::new(),
        }
    }

    fn target_name(&self, occ: &Occurrence) -> String {
        match &occ.owner {
            TableOwner::Project { kind, project_id } => {
                format!("{kind}_{}", self.project_map.get(project_id).unwrap_or(project_id))
            }
            TableOwner::Workspace { kind } => format!("{kind}_{}", self.req.workspace_id),
        }
    }

    async fn read_existing(
        &mut self,
        app: &App,
        target: &WsKey,
        bundle: &Bundle,
        stored: &HashMap<String, TableMeta>,
    ) -> Result<(), ApiError> {
        let mut keys: HashMap<&str, HashSet<String>> = HashMap::new();
        for (occ, name) in bundle.occurrences.iter().zip(&self.target_names) {
            if stored.contains_key(name) {
                let set = keys.entry(name.as_str()).or_default();
                set.extend(occ.rows.iter().map(|(k, _)| self.mapped_key(occ, k)));
            }
        }
        for (name, set) in keys {
            let list: Vec<String> = set.into_iter().collect();
            let rows = app.store.get_rows(target, name, &list).await?;
            self.existing.insert(name.to_owned(), rows.into_iter().collect());
        }
        Ok(())
    }

    fn mapped_key(&self, occ: &Occurrence, key: &str) -> String {
        self.mapped_key_raw(is_projects_table(occ), key)
    }

    fn count_and_merge(&mut self, occurrences: Vec<Occurrence>, stored: &HashMap<String, TableMeta>) -> Counts {
        let mut counts = Counts::default();
        let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
        let names = std::mem::take(&mut self.target_names);
        for (occ, name) in occurrences.into_iter().zip(names) {
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
                    columns: base,
                    key_column: occ.key_column.clone(),
                    rows: Vec::new(),
                };
                self.writes.insert(name.clone(), write);
            }
            let projects_table = is_projects_table(&occ);
            let mut fresh: Vec<(String, Row)> = Vec::with_capacity(occ.rows.len());
            for (key, mut row) in occ.rows {
                let key = self.mapped_key_raw(projects_table, &key);
                if projects_table {
                    row.insert("project_id".into(), Value::String(key.clone()));
                    row.insert("scope".into(), Value::String(self.req.scope.as_str().into()));
                    // Our two extra project columns, null when the platform's bundle lacks them.
                    for extra in ["description", "metadata"] {
                        row.entry(extra).or_insert(Value::Null);
                    }
                }
                let mut value = Value::Object(row);
                if secrets::contains_marker(&value) {
                    let earlier = self.writes.get(&name).and_then(|w| w.rows.iter().rev().find(|(k, _)| *k == key));
                    let before = earlier.map(|(_, r)| r).or_else(|| stored_rows.and_then(|rows| rows.get(&key)));
                    let before = before.map(|r| Value::Object(r.clone()));
                    secrets::restore(&mut value, before.as_ref());
                }
                let row = match value {
                    Value::Object(r) => r,
                    _ => Map::new(),
                };
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
        counts
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

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    created: bool,
    rows_inserted: u64,
    rows_updated: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    tables_created: u64,
    tables_merged: u64,
    rows_inserted: u64,
    rows_updated: u64,
}

impl Summary {
    fn add(&mut self, t: Tally) {
        if t.created {
            self.tables_created += 1;
        } else {
            self.tables_merged += 1;
        }
        self.rows_inserted += t.rows_inserted;
        self.rows_updated += t.rows_updated;
    }
    fn json(&self) -> Value {
        json!({
            "tables_created": self.tables_created,
            "tables_merged": self.tables_merged,
            "tables_failed": 0,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
        })
    }
}

#[derive(Default)]
struct Counts {
    /// Top-level tables in bundle order: (bundle name, target name, tally).
    top: Vec<(String, String, Tally)>,
    projects: HashMap<String, Summary>,
    total: Summary,
}

impl Counts {
    fn add(&mut self, group: &Group, source: &str, target: &str, tally: Tally) {
        self.total.add(tally);
        match group {
            Group::TopLevel => self.top.push((source.to_owned(), target.to_owned(), tally)),
            Group::Project(pid) => self.projects.entry(pid.clone()).or_default().add(tally),
        }
    }

    fn into_reply(
        self,
        scope: Scope,
        project_map: &HashMap<String, String>,
        project_ids: &[String],
        now: &str,
        workspace_id: &str,
    ) -> Reply {
        let mut tables = Map::new();
        for (source, target, t) in &self.top {
            tables.insert(
                source.clone(),
                json!({
                    "status": if t.created { "created" } else { "merged" },
                    "target_table_name": target,
                    "rows_inserted": t.rows_inserted,
                    "rows_updated": t.rows_updated,
                }),
            );
        }
        let mut projects = Map::new();
        for pid in project_ids {
            let summary = self.projects.get(pid).copied().unwrap_or_default();
            projects.insert(
                pid.clone(),
                json!({
                    "status": "success",
                    "new_project_id": project_map.get(pid).unwrap_or(pid),
                    "summary": summary.json(),
                }),
            );
        }
        let mut summary = self.total.json();
        if let Value::Object(m) = &mut summary {
            m.insert("projects_imported".into(), json!(project_ids.len()));
            m.insert("projects_failed".into(), json!(0));
        }
        let message = format!(
            "Workspace tables imported successfully. Imported {} projects (0 failed), created {} tables, inserted {} rows.",
            project_ids.len(),
            self.total.tables_created,
            self.total.rows_inserted
        );
        Reply::ok(
            json!({
                "target_scope": scope,
                "injection_timestamp": now,
                "tables_processed": tables,
                "projects_imported": projects,
                "summary": summary,
                "workspace_id": workspace_id,
            }),
            message,
        )
    }
}
