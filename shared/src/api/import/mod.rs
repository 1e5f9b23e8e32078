//! Imports: one streaming engine, two passes, flat memory, behind `POST /workspaces/import-tables`
//! and (chunk by chunk, across invocations) behind import jobs.
//!
//! The engine, for a job worker:
//! - [`commit_id`]`(target, body)`: the import's id, from the request (a retry converges on the
//!   same state); fresh `force_new_id` project ids derive from it.
//! - [`plan`]`(source, snapshot, &PlanContext) -> ImportPlan` (pass 1): reads the bundle once as
//!   a stream (a [`BundleSource`]: [`MemorySource`], [`StoredSource`]) and refuses, before any
//!   stored row is read, everything the import refuses that needs no rows (422 naming the first
//!   invalid thing; 409 names or owners; 409 another member's project; 413 limits). The
//!   [`ImportPlan`] is serde data: chunks (byte ranges of at most [`ChunkLimits`] rows/bytes of one
//!   table) and a key index (first/last row of each key: 2 bits per row; 16 bytes per row while
//!   it is built). Its memory is independent of the bundle's size but for that index.
//! - [`write_chunk`]`(plan, i, source, snapshot) -> ChunkOutput` (pass 2): one chunk's rows as the
//!   import writes them (project rows fixed, secrets restored, keys renamed), only those that are
//!   the last of their key, so chunks can be written in any order and concurrently
//!   (`JobTables::stage_rows`); its [`ChunkTally`] goes into [`Tallies::add`].
//! - [`finish`]`(plan, tallies) -> (StagedFinish, Reply)`: the tables' schemas, the workspace to
//!   create, and the answer, counted as the platform counts.
//!
//! The synchronous route runs the same passes and commits every chunk's rows in one
//! `Tables::commit` on the revision planned on; when another write got in first it plans again
//! ([`retry_on_conflict`]): two imports apply one after the other, never mixed.

mod checks;
mod chunk;
mod counts;
mod finish;
mod index;
mod parse;
mod plan;
mod resolve;
mod rows;
mod scan;
mod source;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_passes;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::bundles::{resolve_export_data, ExportData};
use super::{body, retry_on_conflict, Reply};
use crate::api::Call;
use crate::app::App;
use crate::error::ApiError;
use crate::model::{now_timestamp, validate_workspace_id, Principal, Scope};
use crate::store::Snapshot;
use crate::tables::{Commit, TableWrite, WsKey};

pub use super::bundles::MAX_BUNDLE_BYTES;
pub use checks::WorkspaceSeed;
pub use chunk::{write_chunk, ChunkOutput, ChunkTally};
pub use finish::{finish, Tallies};
pub use index::KeyIndex;
pub use parse::Group;
pub use plan::{plan, Chunk, ImportPlan, OccurrencePlan, PlanContext, RepeatedProject, TablePlan};
pub use source::{BlockingRead, BundleSource, MemorySource, StoredSource};

/// What an import is asked to do, checked (the bundle aside).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRequest {
    pub workspace_id: String,
    pub scope: Scope,
    pub force_new_id: bool,
    /// See [`commit_id`].
    pub commit_id: String,
}

/// How pass 1 cuts a table's rows into chunks: a chunk is at most `max_rows` rows and, unless
/// one row alone is larger, at most `max_bytes` of the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLimits {
    pub max_rows: u32,
    pub max_bytes: u64,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self { max_rows: 5_000, max_bytes: 4 * 1024 * 1024 }
    }
}

/// The body as sent; [`read_request`] checks it.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ImportBody {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    export_data: Option<Map<String, Value>>,
    workspace_id: Option<String>,
    scope: Option<String>,
    force_new_id: Option<bool>,
    /// `true`: import as a job (202 with `{job_id, state, status_url}`).
    #[serde(rename = "async")]
    run_async: Option<bool>,
}

/// A checked request: what to import, where, from which `export_data`, and whether as a job.
pub struct ReadRequest {
    pub request: ImportRequest,
    pub target: WsKey,
    pub export_data: Value,
    pub as_job: bool,
}

/// The request (400 when it is not what the route takes) and its `export_data`, with the
/// target's key.
pub fn read_request(principal: &Principal, body: &[u8]) -> Result<ReadRequest, ApiError> {
    let input: ImportBody = body::parse(body)?;
    let workspace_id = body::required_text("workspace_id", input.workspace_id, 128)?;
    validate_workspace_id("workspace_id", &workspace_id)?;
    let scope = input.scope.map(|s| Scope::parse(&s)).transpose()?.unwrap_or(Scope::User);
    let export_data = input
        .export_data
        .map(Value::Object)
        .ok_or_else(|| ApiError::bad_request("export_data: required, the exported bundle"))?;
    let target = WsKey::new(principal.owner(scope), &workspace_id);
    let commit_id = commit_id(&target, body);
    let request = ImportRequest { workspace_id, scope, force_new_id: input.force_new_id.unwrap_or(false), commit_id };
    Ok(ReadRequest { request, target, export_data, as_job: input.run_async == Some(true) })
}

/// The import's id: the target and the request's bytes.
pub fn commit_id(target: &WsKey, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(target.key().as_bytes());
    h.update([0]);
    h.update(body);
    hex::encode(&h.finalize()[..12])
}

/// The source of a resolved `export_data`: the bundle's bytes, or the staged object (never
/// loaded whole).
pub fn source_of(app: &App, principal: &Principal, export_data: Value) -> Result<Box<dyn BundleSource>, ApiError> {
    Ok(match resolve_export_data(principal, export_data)? {
        ExportData::Inline(bundle) => {
            let bytes = serde_json::to_vec(&bundle).map_err(ApiError::internal)?;
            Box::new(MemorySource(bytes.into()))
        }
        ExportData::Staged { key, bundle_id } => {
            Box::new(StoredSource { bundles: app.bundles.clone(), key, bundle_id, max_bytes: MAX_BUNDLE_BYTES })
        }
    })
}

pub async fn import_tables(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let ReadRequest { request: req, target, export_data, as_job } = read_request(principal, &call.body)?;
    if as_job {
        return crate::jobs::import::start(app, principal, call, req, export_data).await;
    }
    let source = source_of(app, principal, export_data)?;
    let (req, target, source) = (&req, &target, source.as_ref());
    retry_on_conflict(app.store.as_ref(), target, move |snapshot| async move {
        // Read after the snapshot was taken: a delete in between moves the revision on, so the
        // commit, made without creating the workspace, would not land.
        let workspace_exists = app.store.get_workspace(&target.owner, &req.workspace_id).await?.is_some();
        let ctx = PlanContext {
            principal,
            target,
            request: req,
            workspace_exists,
            sync_max_rows: Some(app.config.sync_import_max_rows),
            limits: ChunkLimits::default(),
            now: now_timestamp(),
        };
        let plan = plan(source, snapshot.as_ref(), &ctx).await?;
        let (commit, reply) = commit_of(&plan, source, snapshot.as_ref()).await?;
        Ok((Some(commit), reply))
    })
    .await
}

/// Every chunk of `plan`, in order, as one commit (the synchronous path), with its answer.
pub async fn commit_of(
    plan: &ImportPlan,
    source: &dyn BundleSource,
    snapshot: &dyn Snapshot,
) -> Result<(Commit, Reply), ApiError> {
    let mut rows: Vec<Vec<(String, crate::tables::Row)>> = vec![Vec::new(); plan.tables.len()];
    let mut tallies = Tallies::new(plan);
    for i in 0..plan.chunks.len() {
        let out = write_chunk(plan, i, source, snapshot).await?;
        tallies.add(&out.tally);
        if let Some(table) = rows.get_mut(out.tally.table as usize) {
            table.extend(out.rows);
        }
    }
    let (staged, reply) = finish(plan, &tallies)?;
    let upserts = staged
        .tables
        .into_iter()
        .zip(rows)
        .map(|(t, rows)| TableWrite {
            name: t.name,
            owner: t.owner,
            columns: t.columns,
            key_column: t.key_column,
            rows,
        })
        .collect();
    let commit = Commit {
        id: plan.request.commit_id.clone(),
        create_workspace: staged.create_workspace,
        upserts,
        ..Commit::default()
    };
    Ok((commit, reply))
}
