//! `POST /workspaces/{workspace_id}/export-tables`, in the platform's bundle shape.
//!
//! The bundle is written as a stream, table page by table page, into a [`Sink`] that keeps it
//! in memory only while the encoded answer stays under the inline limit; past that it spills
//! into a streamed (multipart) upload to the object store and the answer carries a link
//! instead of the rows. Memory stays bounded by one page of rows plus one upload part.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::bundles::{bundle_key, expires_at, new_bundle_id, tenant, timestamp_of};
use super::projects::visible;
use super::workspaces::workspace_json;
use super::{body, Reply};
use crate::api::Call;
use crate::app::App;
use crate::bundles::Upload;
use crate::error::ApiError;
use crate::model::{now_timestamp, validate_id, Principal, Scope, Workspace};
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

/// The body of an export; it may be empty. `async: true` makes it a job (202).
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ExportRequest {
    scope: Option<String>,
    include_secrets: Option<bool>,
    #[serde(rename = "async")]
    run_async: Option<bool>,
}

/// What an export does, checked: the synchronous route and the job share it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSpec {
    pub workspace_id: String,
    pub scope: Scope,
    pub include_secrets: bool,
}

impl ExportSpec {
    pub fn ws(&self, principal: &Principal) -> WsKey {
        WsKey::new(principal.owner(self.scope), &self.workspace_id)
    }
}

pub async fn export_tables(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let input: ExportRequest = body::parse_or_default(&call.body)?;
    let scope = super::workspaces::body_or_query_scope(input.scope, call)?;
    let workspace_id = call.param("workspace_id")?;
    validate_id("workspace_id", workspace_id)?;
    let spec = ExportSpec {
        workspace_id: workspace_id.to_owned(),
        scope,
        include_secrets: input.include_secrets.unwrap_or(false),
    };
    let record = check_access(app, principal, &spec).await?;
    if input.run_async == Some(true) {
        let request = json!({"spec": spec, "principal": crate::jobs::JobPrincipal::from(principal)});
        return super::jobs::start(app, principal, call, crate::store::jobs::JobKind::Export, request).await;
    }

    super::bundles::sweep_expired(app, principal).await;
    let ws = spec.ws(principal);
    // One revision for the whole bundle: the table list, the projects and every page of rows.
    let snapshot = app.store.snapshot(&ws).await?;
    check_sync_limit(app, &*snapshot)?;
    let layout = Layout::read(&*snapshot, principal, &ws).await?;
    let key = bundle_key(&tenant(principal), &new_bundle_id());
    let limit = app.config.inline_limit_bytes.saturating_sub(ENVELOPE_BYTES);
    let mut sink = Sink::new(app, key, limit);
    let mut cursor = Cursor::new(now_timestamp());
    let bundle = Bundle { app, snapshot: &*snapshot, ws: &ws, include_secrets: spec.include_secrets, layout: &layout };
    let result = bundle.write(&mut sink, &mut cursor, &workspace_json(&record)).await;
    drop(snapshot);
    if let Err(e) = result {
        sink.abort().await;
        return Err(e);
    }
    let totals = cursor.totals;
    match sink.finish().await? {
        Finished::Inline(bytes) => {
            let data: Value = serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
            Ok(Reply::ok(data, format!("{}.", totals.message(&layout))))
        }
        Finished::Staged { key, size, sha256 } => {
            let (data, message) = staged_answer(&totals, &layout, &spec, &key, size, &sha256);
            let data = with_link(app, data, &key, expires_at(app), &call.public_base).await?;
            Ok(Reply::ok(data, message))
        }
    }
}

/// The workspace, if the caller may export it as asked: 404 for a missing one (or another
/// tenant's), 403 for secrets the caller may not see.
pub(crate) async fn check_access(app: &App, principal: &Principal, spec: &ExportSpec) -> Result<Workspace, ApiError> {
    let ws = spec.ws(principal);
    let record = app
        .store
        .get_workspace(&ws.owner, &spec.workspace_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Workspace '{}' not found", spec.workspace_id)))?;
    if spec.include_secrets
        && spec.scope == Scope::Organization
        && record.author != principal.username
        && !principal.is_admin()
    {
        return Err(ApiError::forbidden("include_secrets: only the workspace's author or an admin may export secrets"));
    }
    Ok(record)
}

/// The HTTP API cuts a request at 30 s: an export larger than the synchronous path streams in
/// that time is refused before any row is read, naming the job that does it.
fn check_sync_limit(app: &App, snapshot: &dyn Snapshot) -> Result<(), ApiError> {
    let rows: u64 = snapshot.tables().iter().map(|t| t.row_count).sum();
    let max = app.config.sync_export_max_rows;
    if rows > max {
        return Err(ApiError::too_large(format!(
            "This workspace holds {rows} rows, more than the synchronous export streams within the HTTP API's 30 s \
             (at most {max}). Send the same request with \"async\": true to export it as a job, then poll \
             GET /jarvispy/{{org}}/{{user}}/api/v1/workspaces/jobs/{{job_id}} (the answer's status_url)."
        )));
    }
    Ok(())
}

/// A staged export's `data` (without its link, which is signed for whoever asks, when they
/// ask) and message: the platform's keys without rows, plus `bundle`.
pub(crate) fn staged_answer(
    totals: &Totals,
    layout: &Layout,
    spec: &ExportSpec,
    key: &str,
    size: u64,
    sha256: &str,
) -> (Value, String) {
    let id = key.rsplit('/').next().unwrap_or_default().trim_end_matches(".json").to_owned();
    let projects: Map<String, Value> =
        totals.projects.iter().map(|(pid, s)| (pid.clone(), json!({"project_id": pid, "summary": s}))).collect();
    let data = json!({
        "scope": spec.scope,
        "extraction_timestamp": totals.extraction_timestamp,
        "workspace_level_tables": layout.top.iter().map(|t| &t.name).collect::<Vec<_>>(),
        "projects": projects,
        "summary": totals.json(layout.projects.len()),
        "workspace_id": spec.workspace_id,
        "bundle": {"id": id, "size": size, "sha256": sha256},
    });
    let message =
        format!("{}. The bundle ({size} bytes) is staged: GET bundle.url before it expires.", totals.message(layout));
    (data, message)
}

/// `data.bundle` gets a link valid until `expires` (unix seconds).
pub(crate) async fn with_link(
    app: &App,
    mut data: Value,
    key: &str,
    expires: i64,
    public_base: &str,
) -> Result<Value, ApiError> {
    let url = app.bundles.download_url(key, expires, public_base).await?;
    if let Some(bundle) = data.get_mut("bundle").and_then(Value::as_object_mut) {
        bundle.insert("expires_at".into(), json!(timestamp_of(expires)));
        bundle.insert("url".into(), json!(url));
    }
    Ok(data)
}

/// Which table goes where in the bundle, following the platform's sample: `projects_<ws>` at
/// the top level; each project holds its own tables and every other workspace table. Each
/// table's place comes from its recorded owner. Only what the caller may load is in it: another
/// member's private project (its row and its tables) is left out as if it did not exist.
pub(crate) struct Layout {
    top: Vec<TableMeta>,
    /// Project id → (its scope, its own tables).
    projects: Vec<(String, Value, Vec<TableMeta>)>,
    /// Workspace tables repeated in every project.
    shared: Vec<TableMeta>,
    /// Rows of the projects table the caller may not see.
    hidden: HashSet<String>,
}

impl Layout {
    pub(crate) async fn read(snapshot: &dyn Snapshot, principal: &Principal, ws: &WsKey) -> Result<Self, ApiError> {
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

/// What has been written so far: the bundle's summaries are built from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub extraction_timestamp: String,
    pub total_tables: u64,
    pub total_rows: u64,
    pub workspace_level_tables: u64,
    pub project_specific_tables: u64,
    pub projects: BTreeMap<String, Value>,
}

impl Totals {
    fn json(&self, projects: usize) -> Value {
        json!({
            "total_tables": self.total_tables,
            "successful_tables": self.total_tables,
            "failed_tables": 0,
            "total_rows": self.total_rows,
            "workspace_level_tables": self.workspace_level_tables,
            "project_specific_tables": self.project_specific_tables,
            "projects_found": projects,
            "projects_exported_successfully": projects,
            "projects_failed": 0,
        })
    }

    pub(crate) fn message(&self, layout: &Layout) -> String {
        format!(
            "Workspace tables exported successfully. Found {} tables with {} total rows across {} projects",
            self.total_tables,
            self.total_rows,
            layout.projects.len()
        )
    }
}

/// Where the writing of a bundle stands: a job checkpoints it after each upload part and goes on
/// from it in a fresh invocation. Given the same revision (and so the same [`Layout`]), writing
/// from a cursor continues the same bytes exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// The step of [`Layout::steps`] under way.
    step: usize,
    /// Within a table step: its opening is written, and these rows (through key `after`).
    opened: bool,
    after: Option<String>,
    rows: u64,
    /// Within a project: its tables and rows so far.
    project_tables: u64,
    project_rows: u64,
    pub totals: Totals,
}

impl Cursor {
    /// Every timestamp of the bundle is this one, so a resumed write repeats it exactly.
    pub(crate) fn new(extraction_timestamp: String) -> Self {
        Self { totals: Totals { extraction_timestamp, ..Totals::default() }, ..Self::default() }
    }
    /// Rows written so far, for progress.
    pub(crate) fn rows_done(&self) -> u64 {
        self.totals.total_rows + self.rows
    }
    /// Tables finished so far.
    pub(crate) fn tables_done(&self) -> u64 {
        self.totals.total_tables
    }
}

/// One piece of the bundle, in order.
enum Step<'l> {
    Header,
    ProjectOpen(usize),
    Table { table: &'l TableMeta, first: bool, top: bool },
    ProjectClose(usize),
    TopOpen,
    Footer,
}

impl Layout {
    fn steps(&self) -> Vec<Step<'_>> {
        let mut steps = vec![Step::Header];
        for (i, (_, _, own)) in self.projects.iter().enumerate() {
            steps.push(Step::ProjectOpen(i));
            for (j, table) in self.shared.iter().chain(own).enumerate() {
                steps.push(Step::Table { table, first: j == 0, top: false });
            }
            steps.push(Step::ProjectClose(i));
        }
        steps.push(Step::TopOpen);
        for (i, table) in self.top.iter().enumerate() {
            steps.push(Step::Table { table, first: i == 0, top: true });
        }
        steps.push(Step::Footer);
        steps
    }

    /// Rows the bundle will hold (the projects table's hidden rows left out), for progress.
    pub(crate) fn total_rows(&self) -> u64 {
        let per_project: u64 = self.shared.iter().map(|t| t.row_count).sum();
        let own: u64 = self.projects.iter().flat_map(|(_, _, own)| own).map(|t| t.row_count).sum();
        let top: u64 = self.top.iter().map(|t| t.row_count).sum();
        (per_project * self.projects.len() as u64 + own + top).saturating_sub(self.hidden.len() as u64)
    }

    /// Table occurrences the bundle will hold, for progress.
    pub(crate) fn total_tables(&self) -> u64 {
        let own: usize = self.projects.iter().map(|(_, _, own)| own.len()).sum();
        (self.shared.len() * self.projects.len() + own + self.top.len()) as u64
    }
}

/// Where the bytes go, and whether to go on after a page of rows.
#[async_trait]
pub(crate) trait ByteSink: Send {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError>;
    /// Called after each page of rows, with where the writing stands then: `false` stops the
    /// writing there (a job pausing; it saved the cursor).
    async fn page_done(&mut self, cursor: &Cursor) -> Result<bool, ApiError>;
}

/// One bundle of one revision, as the caller may see it.
pub(crate) struct Bundle<'a> {
    pub app: &'a App,
    pub snapshot: &'a dyn Snapshot,
    pub ws: &'a WsKey,
    pub include_secrets: bool,
    pub layout: &'a Layout,
}

impl Bundle<'_> {
    /// Writes the bundle from `cursor` on; `Ok(true)` once it is whole, `Ok(false)` when the
    /// sink stopped it (the cursor is where to go on from).
    pub(crate) async fn write(
        &self,
        sink: &mut dyn ByteSink,
        cursor: &mut Cursor,
        record: &Value,
    ) -> Result<bool, ApiError> {
        let steps = self.layout.steps();
        let info = database_info(self.app);
        let now = cursor.totals.extraction_timestamp.clone();
        let mut out = Out { sink, replays: Replays::default() };
        while let Some(step) = steps.get(cursor.step) {
            match step {
                Step::Header => {
                    out.raw("{").await?;
                    out.field(true, "scope", &self.ws.owner.scope()).await?;
                    out.field(false, "extraction_timestamp", &now).await?;
                    out.field(false, "database_info", &info).await?;
                    let names: Vec<&String> = self.layout.top.iter().map(|t| &t.name).collect();
                    out.field(false, "workspace_level_tables", &names).await?;
                    out.raw(",\"projects\":{").await?;
                }
                Step::ProjectOpen(i) => {
                    let (pid, project_scope, _) = &self.layout.projects[*i];
                    if *i > 0 {
                        out.raw(",").await?;
                    }
                    out.key(pid).await?;
                    out.raw("{").await?;
                    out.field(true, "project_id", pid).await?;
                    out.field(false, "scope", project_scope).await?;
                    out.field(false, "extraction_timestamp", &now).await?;
                    out.field(false, "database_info", &info).await?;
                    out.raw(",\"tables\":{").await?;
                    (cursor.project_tables, cursor.project_rows) = (0, 0);
                }
                Step::Table { table, first, top } => {
                    if !self.table(&mut out, cursor, table, *first, *top).await? {
                        return Ok(false);
                    }
                }
                Step::ProjectClose(i) => {
                    let (pid, _, _) = &self.layout.projects[*i];
                    out.raw("}").await?;
                    let (tables, rows) = (cursor.project_tables, cursor.project_rows);
                    let summary = json!({"total_tables": tables, "successful_tables": tables, "failed_tables": 0, "total_rows": rows});
                    out.field(false, "summary", &summary).await?;
                    out.raw("}").await?;
                    cursor.totals.project_specific_tables += tables;
                    cursor.totals.projects.insert(pid.clone(), summary);
                }
                Step::TopOpen => out.raw("},\"tables\":{").await?,
                Step::Footer => {
                    out.raw("}").await?;
                    let summary = cursor.totals.json(self.layout.projects.len());
                    out.field(false, "summary", &summary).await?;
                    out.field(false, "workspace_id", &self.ws.workspace_id).await?;
                    out.field(false, "workspace", record).await?;
                    out.raw("}").await?;
                }
            }
            cursor.step += 1;
        }
        Ok(true)
    }

    /// Streams one table (without the projects table's hidden rows) from where `cursor` stands;
    /// `false` when the sink stopped it after a page.
    async fn table(
        &self,
        out: &mut Out<'_>,
        cursor: &mut Cursor,
        table: &TableMeta,
        first: bool,
        top: bool,
    ) -> Result<bool, ApiError> {
        let projects = table.name == projects_table(&self.ws.workspace_id);
        // A workspace table is repeated inside every project of the bundle: when it is one
        // page, its rows are kept as written and replayed, not read again per project.
        let repeated = !top && table.owner.project_id().is_none() && !projects;
        let mut replayed = false;
        if !cursor.opened {
            if !first {
                out.raw(",").await?;
            }
            out.key(&table.name).await?;
            out.raw("{").await?;
            out.field(true, "schema", &table.columns).await?;
            out.raw(",\"data\":[").await?;
            (cursor.opened, cursor.after, cursor.rows) = (true, None, 0);
            if let Some((bytes, rows)) = out.replays.kept.get(&table.name) {
                out.sink.write(bytes).await?;
                cursor.rows = *rows;
                replayed = true;
            }
        }
        if !replayed {
            loop {
                let fresh = cursor.after.is_none();
                let page = self.snapshot.read_rows(&table.name, cursor.after.as_deref(), PAGE_ROWS).await?;
                let full = page.len() == PAGE_ROWS;
                if let Some((k, _)) = page.last() {
                    cursor.after = Some(k.clone());
                }
                let mut kept = (repeated && fresh && !full).then(Vec::new);
                for (key, row) in page {
                    if projects && self.layout.hidden.contains(&key) {
                        continue;
                    }
                    let mut row = Value::Object(row);
                    if !self.include_secrets {
                        secrets::redact(&mut row);
                    }
                    let bytes = serde_json::to_vec(&row).map_err(ApiError::internal)?;
                    if cursor.rows > 0 {
                        out.raw(",").await?;
                    }
                    out.sink.write(&bytes).await?;
                    if let Some(kept) = kept.as_mut() {
                        if !kept.is_empty() {
                            kept.push(b',');
                        }
                        kept.extend_from_slice(&bytes);
                    }
                    cursor.rows += 1;
                }
                if let Some(kept) = kept {
                    out.replays.keep(&table.name, kept, cursor.rows);
                }
                if !full {
                    break;
                }
                if !out.sink.page_done(cursor).await? {
                    return Ok(false);
                }
            }
        }
        out.raw("]").await?;
        out.field(false, "row_count", &cursor.rows).await?;
        if top {
            out.field(false, "table_type", &"workspace_level").await?;
        }
        out.raw("}").await?;
        cursor.totals.total_tables += 1;
        cursor.totals.total_rows += cursor.rows;
        if top {
            cursor.totals.workspace_level_tables += 1;
        } else {
            cursor.project_tables += 1;
            cursor.project_rows += cursor.rows;
        }
        (cursor.opened, cursor.after, cursor.rows) = (false, None, 0);
        Ok(true)
    }
}

/// JSON pieces into a sink.
struct Out<'s> {
    sink: &'s mut dyn ByteSink,
    replays: Replays,
}

/// Memory a bundle spends on replaying repeated workspace tables: beyond it they are read again
/// per project, so an export's memory stays flat whatever those tables hold.
const REPLAY_MAX_BYTES: usize = 4 << 20;

/// The written rows of repeated one-page workspace tables, by name, with their row counts.
#[derive(Default)]
struct Replays {
    kept: HashMap<String, (Vec<u8>, u64)>,
    bytes: usize,
}

impl Replays {
    fn keep(&mut self, table: &str, rows: Vec<u8>, count: u64) {
        if self.bytes + rows.len() <= REPLAY_MAX_BYTES {
            self.bytes += rows.len();
            self.kept.insert(table.to_owned(), (rows, count));
        }
    }
}

impl Out<'_> {
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

#[async_trait]
impl ByteSink for Sink<'_> {
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

    async fn page_done(&mut self, _: &Cursor) -> Result<bool, ApiError> {
        Ok(true)
    }
}

impl<'a> Sink<'a> {
    fn new(app: &'a App, key: String, limit: usize) -> Self {
        Self { app, key, limit, buf: Vec::new(), upload: None, size: 0, hasher: Sha256::new() }
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
