//! The refusals that need no rows: the workspace the import would create, fresh project ids,
//! target names and recorded owners, the caller's right to every project touched, the catalog's
//! limits. The plan makes them in this order, as the import always has.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::resolve::{Classified, Occ};
use super::ImportRequest;
use crate::api::projects::{check_not_workspace_id, visible};
use crate::api::workspaces::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::error::ApiError;
use crate::model::{check_metadata, Principal, WorkspaceDraft};
use crate::tables::{
    catalog_bytes, Column, Row, TableMeta, TableOwner, WsKey, MAX_TABLES_PER_WORKSPACE, MAX_TABLE_ENTRY_BYTES,
};

/// The workspace an import creates (a [`WorkspaceDraft`] without what the plan holds anyway).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSeed {
    pub name: String,
    pub description: Option<String>,
    pub metadata: Map<String, Value>,
    pub writer: String,
}

impl WorkspaceSeed {
    pub fn draft(&self, req: &ImportRequest, now: &str) -> WorkspaceDraft {
        WorkspaceDraft {
            id: req.workspace_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            metadata: self.metadata.clone(),
            scope: req.scope,
            writer: self.writer.clone(),
            now: now.to_owned(),
            expected_version: None,
        }
    }
}

/// From the bundle's record, under the limits a save has.
pub(super) fn workspace_seed(
    bundle: &Classified,
    req: &ImportRequest,
    principal: &Principal,
) -> Result<WorkspaceSeed, ApiError> {
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
    Ok(WorkspaceSeed {
        name: name.unwrap_or_else(|| req.workspace_id.clone()),
        description,
        metadata,
        writer: principal.username.clone(),
    })
}

/// Bundle project id → target id, in the bundle's order. `force_new_id` ids derive from the
/// request, like the commit id: sending the same import again (a retry) lands on the same
/// projects, never on a second set.
pub(super) fn project_map(all_project_ids: &[String], req: &ImportRequest) -> Result<Vec<(String, String)>, ApiError> {
    let mut map = Vec::with_capacity(all_project_ids.len());
    for pid in all_project_ids {
        let target = if req.force_new_id {
            let digest = Sha256::digest(format!("{}\0{pid}", req.commit_id).as_bytes());
            hex::encode(&digest[..6])[..11].to_owned()
        } else {
            pid.clone()
        };
        check_not_workspace_id("export_data.projects", &target, &req.workspace_id)
            .map_err(|e| ApiError::unprocessable(e.message))?;
        map.push((pid.clone(), target));
    }
    Ok(map)
}

/// An occurrence's owner in the target workspace (project ids mapped).
pub(super) fn target_owner(occ: &Occ, map: &HashMap<&str, &str>) -> TableOwner {
    match &occ.owner {
        TableOwner::Project { kind, project_id } => TableOwner::Project {
            kind: kind.clone(),
            project_id: map.get(project_id.as_str()).map_or(project_id.as_str(), |t| *t).to_owned(),
        },
        TableOwner::Workspace { kind } => TableOwner::Workspace { kind: kind.clone() },
    }
}

/// Each occurrence's target table name. Refused: two bundle tables that land on one target
/// table with different owners (422), and a target table whose recorded owner differs (409):
/// what a table belongs to never changes once recorded.
pub(super) fn check_names(
    occurrences: &[Occ],
    owners: &[TableOwner],
    stored: &HashMap<String, TableMeta>,
    workspace_id: &str,
) -> Result<Vec<String>, ApiError> {
    let mut seen: HashMap<String, &TableOwner> = HashMap::new();
    let mut names = Vec::with_capacity(owners.len());
    for (occ, owner) in occurrences.iter().zip(owners) {
        let name = owner.table_name(workspace_id);
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

fn describe(owner: &TableOwner) -> String {
    match owner {
        TableOwner::Project { kind, project_id } => format!("project {project_id}'s {kind} table"),
        TableOwner::Workspace { kind } => format!("the workspace's {kind} table"),
    }
}

/// Before any row is read: the rows this import writes (a commit writes only its own rows, so
/// what the tables already hold does not count).
pub(super) fn check_sync_limit(cost: u64, max: u64) -> Result<(), ApiError> {
    if cost > max {
        return Err(ApiError::too_large(format!(
            "This import writes {cost} rows, more than the synchronous path finishes within the HTTP API's 30 s \
             (at most {max}). Send the same request with \"async\": true to import it as a job, then poll \
             GET /jarvispy/{{org}}/{{user}}/api/v1/workspaces/jobs/{{job_id}} (its status_url). Nothing was written."
        )));
    }
    Ok(())
}

/// An import never creates, changes or deletes a row or table of a project the caller may not
/// save (another member's private project in an organization workspace): 409 naming them, as
/// save-project answers. `force_new_id` brings them in as new projects instead. `touched` are the
/// target project ids the tables and the projects tables' rows name.
pub(super) fn check_projects<'a>(
    touched: impl Iterator<Item = &'a str>,
    stored_projects: &HashMap<String, Row>,
    principal: &Principal,
    target: &WsKey,
) -> Result<(), ApiError> {
    let mut refused: Vec<&str> =
        touched.filter(|pid| stored_projects.get(*pid).is_some_and(|row| !visible(row, principal, target))).collect();
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

/// Each table's catalog entry must fit what one stored item holds (see [`catalog_bytes`]), and
/// the workspace may not pass [`MAX_TABLES_PER_WORKSPACE`].
pub(super) fn check_catalog(
    occurrences: &[Occ],
    owners: &[TableOwner],
    names: &[String],
    stored: &HashMap<String, TableMeta>,
) -> Result<(), ApiError> {
    let mut columns: HashMap<&str, Vec<Column>> = HashMap::new();
    for ((occ, name), owner) in occurrences.iter().zip(names).zip(owners) {
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

/// Same-named columns take the bundle's definition; new ones are appended.
pub(super) fn merge_columns(into: &mut Vec<Column>, from: &[Column]) {
    for col in from {
        match into.iter_mut().find(|c| c.name == col.name) {
            Some(existing) => *existing = col.clone(),
            None => into.push(col.clone()),
        }
    }
}
