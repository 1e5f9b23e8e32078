//! Pass 1: [`plan`] reads the bundle once as a stream and decides everything that needs no
//! stored row: it refuses what the import refuses before reading rows, gives every table its
//! target, cuts the rows into [`Chunk`]s and builds the [`KeyIndex`]. The [`ImportPlan`] is
//! plain data (serde): a job keeps it between invocations and hands it to every chunk.
//!
//! Memory: one row at a time, the bundle's schemas, ids and chunk list (a few dozen bytes per
//! ~5,000 rows), and the index (16 bytes per row while it is built, 2 bits per row kept).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checks::{self, WorkspaceSeed};
use super::index::{Entry, KeyIndex, DEAD};
use super::parse::Group;
use super::resolve::{candidate_project_ids, choose, classify_bundle, Classified, Verdict};
use super::rows::{key_hash, too_many_rows, Recheck, RowsScan};
use super::scan::{BundleScan, Data, Scanner, Stop};
use super::source::BundleSource;
use super::{ChunkLimits, ImportRequest};
use crate::error::ApiError;
use crate::model::Principal;
use crate::naming::projects_table;
use crate::store::Snapshot;
use crate::tables::{Column, Row, TableMeta, TableOwner, WsKey};

/// What a plan is made for, beside the bundle and the snapshot.
pub struct PlanContext<'a> {
    pub principal: &'a Principal,
    pub target: &'a WsKey,
    pub request: &'a ImportRequest,
    /// Read after the snapshot was taken: when absent, the import creates it.
    pub workspace_exists: bool,
    /// The synchronous path's row limit (413 past it); `None` for jobs.
    pub sync_max_rows: Option<u64>,
    pub limits: ChunkLimits,
    /// The import's time: project rows created and the answer's `injection_timestamp`.
    pub now: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportPlan {
    pub request: ImportRequest,
    /// The caller's user name: the author of the projects the import creates.
    pub importer: String,
    pub now: String,
    /// The snapshot's revision the plan decided on.
    pub base_revision: u64,
    /// The bundle's `projects`, in order (the answer lists them).
    pub project_ids: Vec<String>,
    /// Every bundle project → its id in the target.
    pub project_map: Vec<(String, String)>,
    pub create_workspace: Option<WorkspaceSeed>,
    pub occurrences: Vec<OccurrencePlan>,
    /// Target tables, in the order the bundle first touches them.
    pub tables: Vec<TablePlan>,
    pub chunks: Vec<Chunk>,
    pub index: KeyIndex,
    /// Projects rows whose key occurs more than once, by target key (see `chunk::project_row`).
    pub repeated_projects: BTreeMap<String, RepeatedProject>,
}

/// One table as it occurs in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OccurrencePlan {
    pub group: Group,
    pub name: String,
    /// Its index in [`ImportPlan::tables`].
    pub table: u32,
    pub columns: Vec<Column>,
    pub key_column: String,
    /// The workspace's projects table (rows are project records, keys project ids).
    pub projects_table: bool,
    /// Its first row's ordinal in the bundle.
    pub first_ordinal: u64,
    pub rows: u64,
    /// Neither stored nor touched by an earlier occurrence: the answer says "created".
    pub created: bool,
}

impl OccurrencePlan {
    pub fn at(&self) -> String {
        self.group.path_of(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    pub name: String,
    pub owner: TableOwner,
    /// The schema after the import: stored columns, then every occurrence's merged in.
    pub columns: Vec<Column>,
    pub key_column: String,
    /// In the snapshot the plan read.
    pub stored: bool,
    /// Distinct keys the import writes to it.
    pub keys: u64,
}

/// A run of rows of one occurrence: `[` + bytes `start..end` + `]` parses as exactly them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub occurrence: u32,
    /// Its first row's index in the occurrence.
    pub first_row: u64,
    pub rows: u64,
    pub start: u64,
    pub end: u64,
    /// Of the rows' keys, in order: pass 2 refuses a bundle that changed since.
    pub keys_digest: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatedProject {
    /// The first occurrence holding the key.
    pub first_occurrence: u32,
    /// That occurrence's (last) row's `created_at`, when not null.
    pub created_at: Option<Value>,
}

impl ImportPlan {
    /// Each table the import writes with the rows it writes to it (for `JobTables::begin_staging`).
    pub fn staging_tables(&self) -> Vec<(String, u64)> {
        self.tables.iter().map(|t| (t.name.clone(), t.keys)).collect()
    }

    /// Bundle project id → target id.
    pub fn project_target<'a>(&'a self, pid: &'a str) -> &'a str {
        self.project_map.iter().find(|(p, _)| p == pid).map_or(pid, |(_, t)| t.as_str())
    }
}

fn stop_error(stop: Stop, label: &str) -> ApiError {
    match stop {
        Stop::Api(e) => e,
        // Reading the store failed (not the bundle's fault): safe to retry.
        Stop::Json(struson::reader::ReaderError::IoError { error, .. })
            if error.kind() != std::io::ErrorKind::InvalidData =>
        {
            ApiError::unavailable(format!("{label}: reading it failed: {error}"))
        }
        Stop::Json(e) => ApiError::unprocessable(format!("{label} is not valid JSON ({e})")),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("import pass: {e}")))
}

pub async fn plan(
    source: &dyn BundleSource,
    snapshot: &dyn Snapshot,
    ctx: &PlanContext<'_>,
) -> Result<ImportPlan, ApiError> {
    let label = source.label();
    let reader = source.open().await?;
    let limits = ctx.limits;
    let (mut scanner, scan) = blocking(move || {
        let mut scanner = Scanner::new(limits);
        let scan = scanner.scan(reader);
        (scanner, scan)
    })
    .await?;
    let mut bundle = choose(scan.map_err(|e| stop_error(e, &label))?, &label)?;
    let stored: HashMap<String, TableMeta> = snapshot.tables().iter().map(|t| (t.name.clone(), t.clone())).collect();
    let stored_projects = stored_projects(snapshot, ctx.target, &stored, &bundle).await?;
    let target_ids: Vec<String> = stored_projects.keys().cloned().collect();
    let mut rescanned = false;
    let classified = loop {
        match classify_bundle(&bundle, &target_ids)? {
            Verdict::Valid(c) => break c,
            Verdict::Rescan(_) if rescanned => return Err(ApiError::internal("import: rows checked twice")),
            Verdict::Rescan(jobs) => {
                rescanned = true;
                let (indexes, jobs): (Vec<usize>, Vec<Recheck>) = jobs
                    .into_iter()
                    .filter_map(|(i, key_column, columns)| {
                        let occ = bundle.occurrences.get(i)?;
                        let Data::Array { start, end } = occ.data else { return None };
                        let projects_name = occ.is_projects_name();
                        Some((i, Recheck { start, end, at: occ.at.clone(), key_column, columns, projects_name }))
                    })
                    .unzip();
                let reader = source.open().await?;
                let (back, found) = blocking(move || {
                    let found = scanner.rescan(reader, &jobs);
                    (scanner, found)
                })
                .await?;
                let found = indexes.into_iter().zip(found.map_err(|e| stop_error(e, &label))?);
                scanner = back;
                for (i, rows) in found {
                    install(&mut scanner, &mut bundle, i, rows);
                }
            }
        }
    };
    decide(ctx, snapshot.revision(), &stored, &stored_projects, &bundle, &mut scanner, classified)
}

/// Rows checked again replace what the first read found (its index entries are dropped).
fn install(scanner: &mut Scanner, bundle: &mut BundleScan, i: usize, rows: RowsScan) {
    let Some(occ) = bundle.occurrences.get_mut(i) else { return };
    if let Some(old) = occ.rows.replace(rows) {
        for e in scanner.entries.iter_mut().skip(old.entries.0).take(old.entries.1) {
            e.ord = DEAD;
        }
    }
}

/// The target's project rows the bundle can name (the projects table is one row per project):
/// what it reads grows with the bundle, not with the workspace's projects.
async fn stored_projects(
    snapshot: &dyn Snapshot,
    target: &WsKey,
    stored: &HashMap<String, TableMeta>,
    bundle: &BundleScan,
) -> Result<HashMap<String, Row>, ApiError> {
    let table = projects_table(&target.workspace_id);
    if !stored.contains_key(&table) {
        return Ok(HashMap::new());
    }
    Ok(snapshot.get_rows(&table, &candidate_project_ids(bundle)).await?.into_iter().collect())
}

fn decide(
    ctx: &PlanContext<'_>,
    base_revision: u64,
    stored: &HashMap<String, TableMeta>,
    stored_projects: &HashMap<String, Row>,
    bundle: &BundleScan,
    scanner: &mut Scanner,
    classified: Classified,
) -> Result<ImportPlan, ApiError> {
    let req = ctx.request;
    let create_workspace = match ctx.workspace_exists {
        true => None,
        false => Some(checks::workspace_seed(&classified, req, ctx.principal)?),
    };
    let project_map = checks::project_map(&classified.all_project_ids, req)?;
    let map: HashMap<&str, &str> = project_map.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let occs = &classified.occurrences;
    let owners: Vec<TableOwner> = occs.iter().map(|o| checks::target_owner(o, &map)).collect();
    let names = checks::check_names(occs, &owners, stored, &req.workspace_id)?;
    let mapped = |key: &str| map.get(key).map_or(key, |t| *t).to_owned();
    let rows_of = |i: usize| bundle.occurrences.get(occs[i].scan).and_then(|o| o.rows.as_ref());

    // Target tables in first-touched order, with their schema after the import.
    let mut tables: Vec<TablePlan> = Vec::new();
    let mut occurrences = Vec::with_capacity(occs.len());
    let mut total = 0u64;
    for (i, (occ, name)) in occs.iter().zip(&names).enumerate() {
        let existing = tables.iter().position(|t| t.name == *name);
        let created = existing.is_none() && !stored.contains_key(name);
        let t = existing.unwrap_or_else(|| {
            let base = stored.get(name).map(|t| t.columns.clone()).unwrap_or_default();
            tables.push(TablePlan {
                name: name.clone(),
                owner: owners[i].clone(),
                columns: base,
                key_column: occ.key_column.clone(),
                stored: stored.contains_key(name),
                keys: 0,
            });
            tables.len() - 1
        });
        let table = &mut tables[t];
        checks::merge_columns(&mut table.columns, &occ.columns);
        if occ.is_projects_table() {
            let extras = crate::api::projects::projects_columns();
            let missing: Vec<Column> =
                extras.into_iter().filter(|c| !table.columns.iter().any(|w| w.name == c.name)).collect();
            table.columns.extend(missing);
        }
        table.key_column = occ.key_column.clone();
        let rows = rows_of(i).map_or(0, |r| r.rows);
        occurrences.push(OccurrencePlan {
            group: occ.group.clone(),
            name: occ.name.clone(),
            table: u32::try_from(t).map_err(|_| too_many_rows())?,
            columns: occ.columns.clone(),
            key_column: occ.key_column.clone(),
            projects_table: occ.is_projects_table(),
            first_ordinal: total,
            rows,
            created,
        });
        total += rows;
    }
    if total >= u64::from(DEAD) {
        return Err(too_many_rows());
    }

    // The index: each live row placed at its ordinal, its hash mixed with its target table.
    let mut live: Vec<(usize, usize, usize)> = Vec::new();
    for i in 0..occurrences.len() {
        if let Some(r) = rows_of(i) {
            live.push((r.entries.0, r.entries.1, i));
        }
    }
    live.sort_unstable();
    let mut next = 0;
    for &(start, len, i) in &live {
        scanner.entries[next.min(start)..start].iter_mut().for_each(|e| e.ord = DEAD);
        let (o, r) = (&occurrences[i], rows_of(i));
        let project_rows = r.map(|r| r.project_rows.as_slice()).unwrap_or_default();
        for (j, e) in scanner.entries.iter_mut().skip(start).take(len).enumerate() {
            if o.projects_table && req.force_new_id {
                if let Some((key, _)) = project_rows.get(j) {
                    e.hash = key_hash(&mapped(key));
                }
            }
            e.hash[0] ^= o.table;
            e.ord = u32::try_from(o.first_ordinal + u64::from(e.ord)).map_err(|_| too_many_rows())?;
        }
        next = start + len;
    }
    let len = scanner.entries.len();
    scanner.entries[next.min(len)..].iter_mut().for_each(|e| e.ord = DEAD);
    let mut entries: Vec<Entry> = std::mem::take(&mut scanner.entries);
    entries.retain(|e| e.ord != DEAD);
    let firsts: Vec<u64> = occurrences.iter().map(|o| o.first_ordinal).collect();
    let table_of = |ord: u32| {
        let i = firsts.partition_point(|f| *f <= u64::from(ord)).saturating_sub(1);
        occurrences.get(i).map_or(0, |o| o.table as usize)
    };
    let (index, keys) = KeyIndex::build(&mut entries, total, tables.len(), table_of);
    drop(entries);
    for (table, n) in tables.iter_mut().zip(keys) {
        table.keys = n;
    }
    if let Some(max) = ctx.sync_max_rows {
        checks::check_sync_limit(tables.iter().map(|t| t.keys).sum(), max)?;
    }

    let project_keys = (0..occs.len())
        .filter(|i| occurrences[*i].projects_table)
        .flat_map(|i| rows_of(i).into_iter().flat_map(|r| r.project_rows.iter()).map(move |(k, c)| (i, k, c)));
    let touched: Vec<String> = owners
        .iter()
        .filter_map(TableOwner::project_id)
        .map(str::to_owned)
        .chain(project_keys.clone().map(|(_, k, _)| mapped(k)))
        .collect();
    checks::check_projects(touched.iter().map(String::as_str), stored_projects, ctx.principal, ctx.target)?;
    checks::check_catalog(occs, &owners, &names, stored)?;

    // Which occurrence first holds each repeated project row, and what its created_at is there.
    let mut repeats: BTreeMap<String, (RepeatedProject, u32)> = BTreeMap::new();
    for (i, key, created) in project_keys {
        let i = u32::try_from(i).map_err(|_| too_many_rows())?;
        let entry = repeats
            .entry(mapped(key))
            .or_insert_with(|| (RepeatedProject { first_occurrence: i, created_at: created.clone() }, 0));
        entry.1 += 1;
        if entry.0.first_occurrence == i {
            entry.0.created_at = created.clone();
        }
    }
    let repeated_projects = repeats.into_iter().filter(|(_, (_, n))| *n > 1).map(|(k, (r, _))| (k, r)).collect();

    let mut chunks = Vec::new();
    for i in 0..occs.len() {
        let occurrence = u32::try_from(i).map_err(|_| too_many_rows())?;
        let drafts = rows_of(i).map(|r| r.chunks.as_slice()).unwrap_or_default();
        chunks.extend(drafts.iter().map(|c| Chunk {
            occurrence,
            first_row: c.first_row,
            rows: c.rows,
            start: c.start,
            end: c.end,
            keys_digest: c.keys_digest,
        }));
    }
    Ok(ImportPlan {
        request: req.clone(),
        importer: ctx.principal.username.clone(),
        now: ctx.now.clone(),
        base_revision,
        project_ids: classified.project_ids,
        project_map,
        create_workspace,
        occurrences,
        tables,
        chunks,
        index,
        repeated_projects,
    })
}
