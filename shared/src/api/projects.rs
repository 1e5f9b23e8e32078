//! Projects of a workspace. A project *is* its row in the workspace's `projects_<ws>` table
//! (the platform's seven columns plus description and metadata), so projects, export and
//! import all see one record.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::versions::{self, Expect, VERSION_COLUMN};
use super::{body, paging, retry_on_conflict, Reply};
use crate::api::Call;
use crate::app::App;
use crate::error::ApiError;
use crate::model::{check_metadata, new_id, now_timestamp, validate_id, Principal, Scope};
use crate::naming::projects_table;
use crate::store::Snapshot;
use crate::tables::{Column, Commit, Row, TableOwner, TableWrite, WsKey, MAX_TABLES_PER_WORKSPACE};

pub const PROJECT_KEY: &str = "project_id";

/// The platform's projects schema, with our three extra columns (`version`: see `api::versions`;
/// null in rows from before it, which count as version 1).
pub fn projects_columns() -> Vec<Column> {
    let tz = "timestamp with time zone";
    vec![
        Column::new("project_id", "text", false),
        Column::new("name", "text", true),
        Column::new("author", "text", true),
        Column::new("scope", "text", true),
        Column::new("to_persist", "boolean", true),
        Column::new("created_at", tz, true),
        Column::new("updated_at", tz, true),
        Column::new("description", "text", true),
        Column::new("metadata", "json", true),
        Column::new(VERSION_COLUMN, "integer", true),
    ]
}

/// The workspace a project route names, looked up under the caller's own keys only: the user
/// scope first, then the organization's (`workspace_scope` pins one). Absent or foreign: 404.
pub async fn resolve_workspace(app: &App, principal: &Principal, call: &Call) -> Result<WsKey, ApiError> {
    let id = call.param("workspace_id")?;
    validate_id("workspace_id", id)?;
    let scopes = match call.query("workspace_scope") {
        Some(s) => vec![Scope::parse(s)?],
        None => vec![Scope::User, Scope::Organization],
    };
    for scope in scopes {
        let owner = principal.owner(scope);
        if app.store.get_workspace(&owner, id).await?.is_some() {
            return Ok(WsKey::new(owner, id));
        }
    }
    Err(ApiError::not_found(format!("Workspace '{id}' not found")))
}

/// The caller's own projects: every project of their private workspace (whoever authored it
/// where it came from), and in an organization's workspace those they authored.
fn owned(row: &Row, principal: &Principal, ws: &WsKey) -> bool {
    ws.owner.scope() == Scope::User || row.get("author").and_then(Value::as_str) == Some(principal.username.as_str())
}

/// Who may load, export, save, import into and delete a project: organization-scope projects
/// are every member's; user-scope ones their owner's only. The one rule for every path.
pub fn visible(row: &Row, principal: &Principal, ws: &WsKey) -> bool {
    row.get("scope").and_then(Value::as_str) == Some("organization") || owned(row, principal, ws)
}

/// `<kind>_<id>` names would be ambiguous between the workspace and such a project.
pub fn check_not_workspace_id(field: &str, project_id: &str, workspace_id: &str) -> Result<(), ApiError> {
    if project_id == workspace_id {
        return Err(ApiError::bad_request(format!("{field}: a project id may not equal its workspace's id")));
    }
    Ok(())
}

/// The projects table as every write records it.
pub fn projects_owner() -> TableOwner {
    TableOwner::Workspace { kind: "projects".into() }
}

pub fn project_json(row: &Row) -> Value {
    let get = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "id": get(PROJECT_KEY),
        "name": get("name"),
        "description": get("description"),
        "metadata": match get("metadata") { Value::Null => json!({}), m => m },
        "scope": get("scope"),
        "author": get("author"),
        "to_persist": get("to_persist"),
        "created_at": get("created_at"),
        "updated_at": get("updated_at"),
        "version": versions::row_version(row),
    })
}

async fn get_project(snapshot: &dyn Snapshot, ws: &WsKey, id: &str) -> Result<Option<Row>, ApiError> {
    let rows = snapshot.get_rows(&projects_table(&ws.workspace_id), &[id.to_owned()]).await?;
    Ok(rows.into_iter().next().map(|(_, r)| r))
}

/// The body of project save and cleanup: `{"project": {...}}`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ProjectRequest {
    #[cfg_attr(feature = "openapi", schema(inline))]
    project: Option<ProjectInput>,
}

/// Unknown fields (a loaded project's read-only ones) are ignored, so what load answers saves.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ProjectInput {
    id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    metadata: Option<Map<String, Value>>,
    scope: Option<String>,
    /// Save: the version the save was decided on (see `api::versions`). Cleanup ignores it.
    version: Option<u64>,
}

/// `POST /projects/{workspace_id}/save` with `{"project": {id?, name, description?, metadata?, scope?, version?}}`.
pub async fn save(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let ws = resolve_workspace(app, principal, call).await?;
    let request: ProjectRequest = body::parse(&call.body)?;
    let input = request.project.ok_or_else(|| ApiError::bad_request("project: required, an object"))?;
    let name = body::required_text("project.name", input.name, super::workspaces::MAX_NAME_CHARS)?;
    let description =
        body::optional_text("project.description", input.description, super::workspaces::MAX_DESCRIPTION_CHARS)?;
    let metadata = input.metadata.unwrap_or_default();
    check_metadata("project.metadata", &metadata)?;
    let scope = match input.scope {
        Some(s) => Scope::parse(&s)?,
        None => Scope::User,
    };
    let id = match input.id {
        Some(id) => {
            validate_id("project.id", &id)?;
            check_not_workspace_id("project.id", &id, &ws.workspace_id)?;
            id
        }
        None => new_id("", 11),
    };
    let expect = versions::expectation(call, input.version)?;
    let save = ProjectSave { id, name, description, metadata, scope, expect };
    // One id for the change, whichever attempt lands it.
    let commit_id = format!("project-{}", crate::model::new_id("", 16));
    let (save, ws, commit_id) = (&save, &ws, &commit_id);
    let version = retry_on_conflict(app.store.as_ref(), ws, move |snapshot| async move {
        let (commit, version) = save.commit(&*snapshot, principal, ws).await?;
        Ok((Some(Commit { id: commit_id.clone(), ..commit }), version))
    })
    .await?;
    Ok(Reply::ok(versions::saved_json("project_id", &save.id, version), "Project saved successfully")
        .with_version(version))
}

/// A checked project save: what each attempt decides its commit from.
struct ProjectSave {
    id: String,
    name: String,
    description: Option<String>,
    metadata: Map<String, Value>,
    scope: Scope,
    /// The version the caller names (body or `If-Match`), checked against each attempt's read.
    expect: Expect,
}

impl ProjectSave {
    /// What saving the project writes, decided from `snapshot` (the commit's id is the caller's),
    /// and the project's version after it.
    async fn commit(
        &self,
        snapshot: &dyn Snapshot,
        principal: &Principal,
        ws: &WsKey,
    ) -> Result<(Commit, u64), ApiError> {
        let ProjectSave { id, name, description, metadata, scope, expect } = self;
        let existing = get_project(snapshot, ws, id).await?;
        if let Some(row) = &existing {
            if !visible(row, principal, ws) {
                // The id is taken by another member's private project in this shared workspace.
                return Err(ApiError::conflict(format!("Project id '{id}' is already in use in this workspace")));
            }
        }
        let version = versions::next_project_version(id, existing.as_ref(), *expect)?;
        let now = now_timestamp();
        let kept = |k: &str, default: Value| existing.as_ref().and_then(|r| r.get(k).cloned()).unwrap_or(default);
        let mut row = Row::new();
        row.insert(PROJECT_KEY.into(), json!(id));
        row.insert("name".into(), json!(name));
        row.insert("author".into(), kept("author", json!(principal.username)));
        row.insert("scope".into(), json!(scope));
        row.insert("to_persist".into(), kept("to_persist", json!(true)));
        row.insert("created_at".into(), kept("created_at", json!(now)));
        row.insert("updated_at".into(), json!(now));
        row.insert("description".into(), json!(description));
        row.insert("metadata".into(), Value::Object(metadata.clone()));
        row.insert(VERSION_COLUMN.into(), json!(version));
        let table = projects_table(&ws.workspace_id);
        let tables = snapshot.tables();
        let stored = tables.iter().find(|t| t.name == table);
        let mut columns = stored.map(|t| t.columns.clone()).unwrap_or_default();
        for col in projects_columns() {
            if !columns.iter().any(|c| c.name == col.name) {
                columns.push(col);
            }
        }
        if stored.is_none() && tables.len() >= MAX_TABLES_PER_WORKSPACE {
            return Err(ApiError::too_large(format!(
                "The workspace holds {} tables, the most one may (its projects table would be one more)",
                tables.len()
            )));
        }
        let commit = Commit {
            upserts: vec![TableWrite {
                name: table,
                owner: projects_owner(),
                columns,
                key_column: PROJECT_KEY.into(),
                rows: vec![(id.to_owned(), row)],
            }],
            ..Commit::default()
        };
        Ok((commit, version))
    }
}

/// All project rows of the workspace, in key order.
pub async fn all_projects(snapshot: &dyn Snapshot, ws: &WsKey) -> Result<Vec<(String, Row)>, ApiError> {
    let table = projects_table(&ws.workspace_id);
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = snapshot.read_rows(&table, after.as_deref(), PROJECT_PAGE).await?;
        let full = page.len() == PROJECT_PAGE;
        after = page.last().map(|(k, _)| k.clone());
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// Project rows read per page (one row per project).
const PROJECT_PAGE: usize = 1000;

/// `GET /projects/{workspace_id}/list?scopes=user[,organization]`: newest update first; paged
/// as the workspaces list is (`limit`, `next_token`, and past the response size limit).
pub async fn list(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let ws = resolve_workspace(app, principal, call).await?;
    let scopes = super::workspaces::list_scopes(call)?;
    let limit = paging::limit(call)?;
    let after = call.query("next_token").map(|t| paging::decode_token(t, |k| k.contains('#'))).transpose()?;
    let snapshot = app.store.snapshot(&ws).await?;
    let mut rows: Vec<(String, Row)> = all_projects(&*snapshot, &ws)
        .await?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| visible(r, principal, &ws))
        .filter(|r| scopes.iter().any(|s| r.get("scope").and_then(Value::as_str).unwrap_or("user") == s.as_str()))
        .map(|r| (list_key(&r), r))
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k < a))
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    let budget = app.config.max_response_bytes.saturating_sub(1024);
    let (mut used, mut items, mut last_key, mut truncated) = (0usize, Vec::new(), None, false);
    for (key, row) in rows {
        let value = project_json(&row);
        let size = serde_json::to_vec(&value).map(|v| v.len() + 1).unwrap_or(0);
        if limit.is_some_and(|l| items.len() >= l) || (used + size > budget && !items.is_empty()) {
            truncated = true;
            break;
        }
        used += size;
        last_key = Some(key);
        items.push(value);
    }
    let n = items.len();
    let mut reply = Reply::ok(Value::Array(items), format!("Found {n} projects"));
    if let (true, Some(key)) = (truncated, last_key) {
        reply.message = format!("Found {n} projects; more follow: pass next_token to continue");
        reply.extra.insert("next_token".into(), Value::String(paging::encode_token(&key)));
    }
    Ok(reply)
}

/// List order: newest `updated_at` first, the id breaking ties, so a cursor is exact.
fn list_key(row: &Row) -> String {
    let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    format!("{}#{}", text("updated_at"), text(PROJECT_KEY))
}

/// `GET /projects/{workspace_id}/load?project_id=...&scope=...`
pub async fn load(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let ws = resolve_workspace(app, principal, call).await?;
    let id = call.query("project_id").ok_or_else(|| ApiError::bad_request("project_id: required in the query"))?;
    validate_id("project_id", id)?;
    let scope = call.query("scope").map(Scope::parse).transpose()?;
    let not_found = || ApiError::not_found(format!("Project '{id}' not found"));
    let snapshot = app.store.snapshot(&ws).await?;
    let row = get_project(&*snapshot, &ws, id).await?.filter(|r| visible(r, principal, &ws)).ok_or_else(not_found)?;
    if scope.is_some_and(|s| row.get("scope").and_then(Value::as_str).unwrap_or("user") != s.as_str()) {
        return Err(not_found());
    }
    Ok(Reply::ok(project_json(&row), "Project loaded successfully").with_version(versions::row_version(&row)))
}

/// `POST /projects/{workspace_id}/cleanup` with `{"project": {id?, scope?}}`: that project, or
/// all of the caller's own projects in the workspace, with their tables.
pub async fn cleanup(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let ws = resolve_workspace(app, principal, call).await?;
    // An empty body means all of the caller's projects; a body must name `project` (an object,
    // possibly `{}`): a `null` there must never widen a cleanup to everything.
    let blank = call.body.iter().all(u8::is_ascii_whitespace);
    let request: ProjectRequest = body::parse_or_default(&call.body)?;
    let input = match request.project {
        Some(p) => p,
        None if blank => ProjectInput::default(),
        None => return Err(ApiError::bad_request("project: required, an object")),
    };
    let scope = input.scope.map(|s| Scope::parse(&s)).transpose()?;
    // Not used by cleanup, but the document bounds it for both.
    versions::check_body_version(input.version)?;
    if let Some(id) = &input.id {
        validate_id("project.id", id)?;
    }
    let commit_id = format!("cleanup-{}", crate::model::new_id("", 16));
    let (ws, id, commit_id) = (&ws, &input.id, &commit_id);
    let (ids, tables_dropped, rows_deleted) = retry_on_conflict(app.store.as_ref(), ws, move |snapshot| async move {
        let targets: Vec<Row> = match id {
            Some(id) => {
                let row = get_project(&*snapshot, ws, id).await?.filter(|r| visible(r, principal, ws));
                vec![row.ok_or_else(|| ApiError::not_found(format!("Project '{id}' not found")))?]
            }
            None => all_projects(&*snapshot, ws)
                .await?
                .into_iter()
                .map(|(_, r)| r)
                .filter(|r| owned(r, principal, ws))
                .filter(|r| {
                    scope.is_none_or(|s| r.get("scope").and_then(Value::as_str).unwrap_or("user") == s.as_str())
                })
                .collect(),
        };
        let ids: Vec<String> =
            targets.iter().filter_map(|r| r.get(PROJECT_KEY).and_then(Value::as_str).map(str::to_owned)).collect();
        // Each table's recorded owner decides, never its name.
        let dropped: Vec<&crate::tables::TableMeta> = snapshot
            .tables()
            .iter()
            .filter(|t| t.owner.project_id().is_some_and(|p| ids.iter().any(|id| id == p)))
            .collect();
        let rows_deleted: u64 = dropped.iter().map(|t| t.row_count).sum::<u64>() + ids.len() as u64;
        let commit = (!ids.is_empty()).then(|| Commit {
            id: commit_id.clone(),
            delete_rows: vec![(projects_table(&ws.workspace_id), ids.clone())],
            drop_tables: dropped.iter().map(|t| t.name.clone()).collect(),
            ..Commit::default()
        });
        let tables_dropped = dropped.len();
        Ok((commit, (ids, tables_dropped, rows_deleted)))
    })
    .await?;
    Ok(Reply::ok(
        json!({"deleted_projects": ids, "tables_dropped": tables_dropped, "rows_deleted": rows_deleted}),
        format!("Deleted {} projects, {} tables, {} rows", ids.len(), tables_dropped, rows_deleted),
    ))
}
