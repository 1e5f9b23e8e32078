//! `POST /workspaces/{workspace_id}/export-tables`, in the platform's bundle shape.
//!
//! The bundle is written as a stream, table page by table page, into a [`Sink`] that keeps it
//! in memory only while the encoded answer stays under the inline limit; past that it spills
//! into a streamed (multipart) upload to the object store and the answer carries a link
//! instead of the rows. Memory stays bounded by one page of rows plus one upload part.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::bundles::{bundle_key, expires_at, new_bundle_id, tenant, timestamp_of};
use super::projects::visible;
use super::{body, Reply};
use crate::api::Call;
use crate::app::App;
use crate::bundles::Upload;
use crate::error::ApiError;
use crate::model::{now_timestamp, validate_id, Principal, Scope};
use crate::naming::projects_table;
use crate::secrets;
use crate::store::Snapshot;
use crate::tables::{TableMeta, WsKey};

/// Rows read from the store per page while streaming a table: about 2 MB of typical rows in
/// memory at a time, and on DynamoDB one parallel Query per shard for each page.
const PAGE_ROWS: usize = 2000;
/// Bytes gathered before handing them to the upload (which cuts its own parts).
const FLUSH_BYTES: usize = 1024 * 1024;
/// Room left in the inline limit for the envelope around `data`.
const ENVELOPE_BYTES: usize = 1024;

/// The body of an export; it may be empty.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ExportRequest {
    scope: Option<String>,
    include_secrets: Option<bool>,
}

pub async fn export_tables(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let input: ExportRequest = body::parse_or_default(&call.body)?;
    let scope = super::workspaces::body_or_query_scope(input.scope, call)?;
    let include_secrets = input.include_secrets.unwrap_or(false);
    let workspace_id = call.param("workspace_id")?;
    validate_id("workspace_id", workspace_id)?;
    let ws = WsKey::new(principal.owner(scope), workspace_id);
    let record = app
        .store
        .get_workspace(&ws.owner, workspace_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Workspace '{workspace_id}' not found")))?;
    if include_secrets && scope == Scope::Organization && record.author != principal.username && !principal.is_admin() {
        return Err(ApiError::forbidden("include_secrets: only the workspace's author or an admin may export secrets"));
    }

    super::bundles::sweep_expired(app, principal).await;
    // One revision for the whole bundle: the table list, the projects and every page of rows.
    let snapshot = app.store.snapshot(&ws).await?;
    let layout = Layout::read(&*snapshot, principal, &ws).await?;
    let key = bundle_key(&tenant(principal), &new_bundle_id());
    let limit = app.config.inline_limit_bytes.saturating_sub(ENVELOPE_BYTES);
    let mut out = Exporter {
        app,
        snapshot: &*snapshot,
        ws: &ws,
        include_secrets,
        sink: Sink::new(app, key, limit),
        summary: Totals::default(),
    };
    let result = out.write_bundle(&layout, scope, workspace_id, &super::workspaces::workspace_json(&record)).await;
    let Exporter { sink, summary, .. } = out;
    drop(snapshot);
    if let Err(e) = result {
        sink.abort().await;
        return Err(e);
    }
    let message = format!(
        "Workspace tables exported successfully. Found {} tables with {} total rows across {} projects",
        summary.total_tables,
        summary.total_rows,
        layout.projects.len()
    );
    match sink.finish().await? {
        Finished::Inline(bytes) => {
            let data: Value = serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
            Ok(Reply::ok(data, format!("{message}.")))
        }
        Finished::Staged { key, size, sha256 } => {
            let expires = expires_at(app);
            let url = app.bundles.download_url(&key, expires, &call.public_base).await?;
            let id = key.rsplit('/').next().unwrap_or_default().trim_end_matches(".json").to_owned();
            let projects: Map<String, Value> = summary
                .projects
                .iter()
                .map(|(pid, s)| (pid.clone(), json!({"project_id": pid, "summary": s})))
                .collect();
            let data = json!({
                "scope": scope,
                "extraction_timestamp": summary.extraction_timestamp,
                "workspace_level_tables": layout.top.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "projects": projects,
                "summary": summary.json(&layout),
                "workspace_id": workspace_id,
                "bundle": {"id": id, "size": size, "sha256": sha256, "expires_at": timestamp_of(expires), "url": url},
            });
            let message = format!("{message}. The bundle ({size} bytes) is staged: GET bundle.url before it expires.");
            Ok(Reply::ok(data, message))
        }
    }
}

/// Which table goes where in the bundle, following the platform's sample: `projects_<ws>` at
/// the top level; each project holds its own tables and every other workspace table. Each
/// table's place comes from its recorded owner. Only what the caller may load is in it: another
/// member's private project (its row and its tables) is left out as if it did not exist.
struct Layout {
    top: Vec<TableMeta>,
    /// Project id → (its scope, its own tables).
    projects: Vec<(String, Value, Vec<TableMeta>)>,
    /// Workspace tables repeated in every project.
    shared: Vec<TableMeta>,
    /// Rows of the projects table the caller may not see.
    hidden: HashSet<String>,
}

impl Layout {
    async fn read(snapshot: &dyn Snapshot, principal: &Principal, ws: &WsKey) -> Result<Self, ApiError> {
        let tables = snapshot.tables().to_vec();
        let projects_name = projects_table(&ws.workspace_id);
        let mut projects: Vec<(String, Value, Vec<TableMeta>)> = Vec::new();
        let mut hidden = HashSet::new();
        if tables.iter().any(|t| t.name == projects_name) {
            let mut after: Option<String> = None;
            loop {
                let page = snapshot.read_rows(&projects_name, after.as_deref(), PAGE_ROWS).await?;
                for (pid, row) in &page {
                    if visible(row, principal, ws) {
                        projects.push((pid.clone(), row.get("scope").cloned().unwrap_or(Value::Null), Vec::new()));
                    } else {
                        hidden.insert(pid.clone());
                    }
                }
                match page.last() {
                    Some((k, _)) if page.len() == PAGE_ROWS => after = Some(k.clone()),
                    _ => break,
                }
            }
        }
        let (mut top, mut shared) = (Vec::new(), Vec::new());
        for table in tables {
            match table.owner.project_id().map(str::to_owned) {
                Some(pid) if hidden.contains(&pid) => {}
                Some(pid) => match projects.iter_mut().find(|(p, _, _)| *p == pid) {
                    Some(p) => p.2.push(table),
                    // A project table whose project has no row (a bundle may bring one): still
                    // exported, under its project, so nothing stored is lost on the way out.
                    None => projects.push((pid, Value::Null, vec![table])),
                },
                None if table.name == projects_name => top.push(table),
                None => shared.push(table),
            }
        }
        // A workspace without projects keeps its workspace tables at the top level.
        if projects.is_empty() {
            top.append(&mut shared);
        }
        Ok(Self { top, projects, shared, hidden })
    }
}

#[derive(Default)]
struct Totals {
    extraction_timestamp: String,
    total_tables: u64,
    total_rows: u64,
    workspace_level_tables: u64,
    project_specific_tables: u64,
    projects: BTreeMap<String, Value>,
}

impl Totals {
    fn json(&self, layout: &Layout) -> Value {
        json!({
            "total_tables": self.total_tables,
            "successful_tables": self.total_tables,
            "failed_tables": 0,
            "total_rows": self.total_rows,
            "workspace_level_tables": self.workspace_level_tables,
            "project_specific_tables": self.project_specific_tables,
            "projects_found": layout.projects.len(),
            "projects_exported_successfully": layout.projects.len(),
            "projects_failed": 0,
        })
    }
}

/// `'s`: the snapshot, released before the bundle is finished.
struct Exporter<'a, 's> {
    app: &'a App,
    snapshot: &'s dyn Snapshot,
    ws: &'a WsKey,
    include_secrets: bool,
    sink: Sink<'a>,
    summary: Totals,
}

impl Exporter<'_, '_> {
    async fn write_bundle(
        &mut self,
        layout: &Layout,
        scope: Scope,
        ws_id: &str,
        record: &Value,
    ) -> Result<(), ApiError> {
        let now = now_timestamp();
        self.summary.extraction_timestamp = now.clone();
        let info = database_info(self.app);
        self.raw("{").await?;
        self.field(true, "scope", &scope).await?;
        self.field(false, "extraction_timestamp", &now).await?;
        self.field(false, "database_info", &info).await?;
        let names: Vec<&String> = layout.top.iter().map(|t| &t.name).collect();
        self.field(false, "workspace_level_tables", &names).await?;
        self.raw(",\"projects\":{").await?;
        for (i, (pid, project_scope, own)) in layout.projects.iter().enumerate() {
            if i > 0 {
                self.raw(",").await?;
            }
            self.key(pid).await?;
            self.raw("{").await?;
            self.field(true, "project_id", pid).await?;
            self.field(false, "scope", project_scope).await?;
            self.field(false, "extraction_timestamp", &now_timestamp()).await?;
            self.field(false, "database_info", &info).await?;
            self.raw(",\"tables\":{").await?;
            let (mut tables, mut rows) = (0u64, 0u64);
            for (j, table) in layout.shared.iter().chain(own).enumerate() {
                if j > 0 {
                    self.raw(",").await?;
                }
                rows += self.table(table, false, &layout.hidden).await?;
                tables += 1;
            }
            self.raw("}").await?;
            let summary =
                json!({"total_tables": tables, "successful_tables": tables, "failed_tables": 0, "total_rows": rows});
            self.field(false, "summary", &summary).await?;
            self.raw("}").await?;
            self.summary.project_specific_tables += tables;
            self.summary.projects.insert(pid.clone(), summary);
        }
        self.raw("},\"tables\":{").await?;
        for (i, table) in layout.top.iter().enumerate() {
            if i > 0 {
                self.raw(",").await?;
            }
            self.table(table, true, &layout.hidden).await?;
            self.summary.workspace_level_tables += 1;
        }
        self.raw("}").await?;
        let summary = self.summary.json(layout);
        self.field(false, "summary", &summary).await?;
        self.field(false, "workspace_id", &ws_id).await?;
        self.field(false, "workspace", record).await?;
        self.raw("}").await
    }

    /// Streams one table, without the projects table's rows in `hidden`; returns its row count.
    async fn table(
        &mut self,
        table: &TableMeta,
        workspace_level: bool,
        hidden: &HashSet<String>,
    ) -> Result<u64, ApiError> {
        let projects = table.name == projects_table(&self.ws.workspace_id);
        self.key(&table.name).await?;
        self.raw("{").await?;
        self.field(true, "schema", &table.columns).await?;
        self.raw(",\"data\":[").await?;
        let mut count = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = self.snapshot.read_rows(&table.name, after.as_deref(), PAGE_ROWS).await?;
            let full = page.len() == PAGE_ROWS;
            after = page.last().map(|(k, _)| k.clone());
            for (key, row) in page {
                if projects && hidden.contains(&key) {
                    continue;
                }
                let mut row = Value::Object(row);
                if !self.include_secrets {
                    secrets::redact(&mut row);
                }
                if count > 0 {
                    self.raw(",").await?;
                }
                self.value(&row).await?;
                count += 1;
            }
            if !full {
                break;
            }
        }
        self.raw("]").await?;
        self.field(false, "row_count", &count).await?;
        if workspace_level {
            self.field(false, "table_type", &"workspace_level").await?;
        }
        self.raw("}").await?;
        self.summary.total_tables += 1;
        self.summary.total_rows += count;
        Ok(count)
    }

    async fn raw(&mut self, s: &str) -> Result<(), ApiError> {
        self.sink.write(s.as_bytes()).await
    }
    async fn value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(v).map_err(ApiError::internal)?;
        self.sink.write(&bytes).await
    }
    async fn key(&mut self, k: &str) -> Result<(), ApiError> {
        self.value(k).await?;
        self.raw(":").await
    }
    async fn field<T: Serialize + ?Sized>(&mut self, first: bool, k: &str, v: &T) -> Result<(), ApiError> {
        if !first {
            self.raw(",").await?;
        }
        self.key(k).await?;
        self.value(v).await
    }
}

fn database_info(app: &App) -> Value {
    match &app.config.store {
        crate::config::StoreUrl::Sqlite(_) => json!({"type": "sqlite"}),
        crate::config::StoreUrl::DynamoDb { .. } => json!({"type": "dynamodb"}),
    }
}

enum Finished {
    Inline(Vec<u8>),
    Staged { key: String, size: u64, sha256: String },
}

/// Bytes in memory until they pass `limit`, then a streamed upload.
struct Sink<'a> {
    app: &'a App,
    key: String,
    limit: usize,
    buf: Vec<u8>,
    upload: Option<Box<dyn Upload>>,
    size: u64,
    hasher: Sha256,
}

impl<'a> Sink<'a> {
    fn new(app: &'a App, key: String, limit: usize) -> Self {
        Self { app, key, limit, buf: Vec::new(), upload: None, size: 0, hasher: Sha256::new() }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.buf.extend_from_slice(bytes);
        if self.upload.is_none() && self.buf.len() > self.limit {
            self.upload = Some(self.app.bundles.create_upload(&self.key).await?);
        }
        if self.buf.len() >= FLUSH_BYTES {
            if let Some(upload) = self.upload.as_mut() {
                upload.write(&self.buf).await?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Finished, ApiError> {
        let Some(mut upload) = self.upload.take() else { return Ok(Finished::Inline(self.buf)) };
        if let Err(e) = upload.write(&self.buf).await {
            let _ = upload.abort().await;
            return Err(e.into());
        }
        let size = upload.finish().await?;
        Ok(Finished::Staged { key: self.key, size, sha256: hex::encode(self.hasher.finalize()) })
    }

    async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
    }
}
