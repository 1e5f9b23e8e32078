//! From what the scan read to the bundle's classified tables, refusing (422) exactly what the
//! whole-tree parser refused, in its order, so the first problem wins as it always did: the
//! bundle's shape, its projects, the source workspace, then table by table (name, owner,
//! schema, key column, rows).

use serde_json::{Map, Value};

use super::parse::{bad, key_column, read_columns, Group, MAX_TABLES_PER_BUNDLE};
use super::scan::{BundleScan, Data, Item, Member, Scan};
use crate::error::ApiError;
use crate::model::validate_id;
use crate::naming::{classify, validate_table_name, TableOwner};
use crate::tables::Column;

/// The bundle's tables, each with its owner in the source workspace.
#[derive(Debug)]
pub(super) struct Classified {
    pub workspace: Option<Map<String, Value>>,
    /// The keys of `projects`, in order.
    pub project_ids: Vec<String>,
    /// Those, then the projects only in its projects table.
    pub all_project_ids: Vec<String>,
    pub occurrences: Vec<Occ>,
}

#[derive(Debug)]
pub(super) struct Occ {
    /// Its index in [`BundleScan::occurrences`].
    pub scan: usize,
    pub group: Group,
    pub name: String,
    pub owner: TableOwner,
    pub columns: Vec<Column>,
    pub key_column: String,
}

impl Occ {
    pub fn is_projects_table(&self) -> bool {
        matches!(&self.owner, TableOwner::Workspace { kind } if kind == "projects")
    }
}

/// Tables whose rows must be read again with this key column (and these columns) before the
/// bundle can be judged.
pub(super) type Rescan = Vec<(usize, String, Vec<Column>)>;

pub(super) enum Verdict {
    Valid(Classified),
    Rescan(Rescan),
}

/// The object's bundle: itself, or an envelope's `data` (as `resolve_export_data` unwraps).
pub(super) fn choose(scan: Scan, label: &str) -> Result<BundleScan, ApiError> {
    let bundle = match scan.inner {
        Some(inner) if scan.has_status => inner,
        _ => scan.top,
    };
    if let Some(id) = &bundle.staged {
        return Err(bad(format!("{label} names another bundle ('{id}') instead of holding one; import that one")));
    }
    if bundle.projects == Member::Absent && bundle.tables == Member::Absent {
        return Err(bad("export_data: not a workspace export (no 'projects' or 'tables', no 'bundle_id')"));
    }
    Ok(bundle)
}

/// Every id the bundle may refer to a stored project by: its projects, the project ids of its
/// projects tables, and each tail after a `_` of each table name.
pub(super) fn candidate_project_ids(b: &BundleScan) -> Vec<String> {
    let mut ids: Vec<String> = b.projects_list.iter().map(|(p, _)| p.clone()).collect();
    for occ in &b.occurrences {
        let name = &occ.name;
        ids.extend(name.match_indices('_').map(|(i, _)| name[i + 1..].to_owned()).filter(|t| !t.is_empty()));
        ids.extend(occ.project_id_field.iter().cloned());
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

pub(super) fn classify_bundle(b: &BundleScan, target_project_ids: &[String]) -> Result<Verdict, ApiError> {
    if b.projects == Member::Other {
        return Err(bad("export_data.projects: must be an object of projects by id"));
    }
    if b.tables == Member::Other {
        return Err(bad("export_data.tables: must be an object of tables by name"));
    }
    let mut project_ids = Vec::with_capacity(b.projects_list.len());
    for (pid, is_object) in &b.projects_list {
        validate_id("project id", pid).map_err(|e| bad(format!("export_data.projects: {}", e.message)))?;
        if !is_object {
            return Err(bad(format!("export_data.projects.{pid}: must be an object")));
        }
        project_ids.push(pid.clone());
    }
    let top = || b.occurrences.iter().filter(|o| o.group == Group::TopLevel);
    let source = source_workspace_id(b, top().map(|o| o.name.as_str()))?;
    validate_id("workspace_id", &source).map_err(|e| bad(format!("export_data.{}", e.message)))?;

    let mut known = project_ids.clone();
    let mut seen: std::collections::HashSet<String> = known.iter().cloned().collect();
    let projects_name = format!("projects_{source}");
    for occ in top().filter(|o| o.name == projects_name) {
        for pid in &occ.project_id_field {
            if validate_id("project_id", pid).is_err() {
                return Err(bad(format!("export_data.tables.{}: project_id {pid:?} is not a valid id", occ.name)));
            }
            if seen.insert(pid.clone()) {
                known.push(pid.clone());
            }
        }
    }
    let all_project_ids = known.clone();
    known.extend(target_project_ids.iter().filter(|p| seen.insert((*p).clone())).cloned());
    if let Some(pid) = all_project_ids.iter().find(|p| **p == source) {
        return Err(bad(format!(
            "export_data: project id '{pid}' equals the workspace id, so table names are ambiguous"
        )));
    }
    let tables = b.occurrences.len();
    if tables > MAX_TABLES_PER_BUNDLE {
        return Err(bad(format!("export_data: {tables} tables, more than {MAX_TABLES_PER_BUNDLE} in one bundle")));
    }

    let mut occurrences = Vec::with_capacity(tables);
    let mut rescan = Rescan::new();
    // After a table whose rows are still to be checked, a problem is not yet the first one.
    let fail = |e: ApiError, rescan: Rescan| if rescan.is_empty() { Err(e) } else { Ok(Verdict::Rescan(rescan)) };
    for item in &b.items {
        let index = match item {
            Item::BadProjectTables(pid) => {
                return fail(bad(format!("export_data.projects.{pid}.tables: must be an object")), rescan);
            }
            Item::Table(index) => *index,
        };
        let Some(occ) = b.occurrences.get(index) else { continue };
        let at = &occ.at;
        let checked = (|| {
            validate_table_name(&occ.name)?;
            let owner = classify(&occ.name, &known, &source).ok_or_else(|| {
                bad(format!("{at}: a table name must end with _<project id> or _<workspace id> ({source})"))
            })?;
            if !occ.is_object {
                return Err(bad(format!("{at}: must be an object with schema and data")));
            }
            let columns = match &occ.columns {
                Some(result) => result.clone()?,
                None => read_columns(at, None)?,
            };
            let key = key_column(at, owner.kind(), &columns)?;
            if !matches!(occ.data, Data::Array { .. }) {
                return Err(bad(format!("{at}.data: must be a list of rows")));
            }
            Ok((owner, columns, key))
        })();
        let (owner, columns, key_column) = match checked {
            Ok(found) => found,
            Err(e) => return fail(e, rescan),
        };
        match &occ.rows {
            Some(rows) if rows.key_column == key_column => {
                if let Some(e) = &rows.error {
                    return fail(e.clone(), rescan);
                }
            }
            _ => rescan.push((index, key_column.clone(), columns.clone())),
        }
        let (group, name) = (occ.group.clone(), occ.name.clone());
        occurrences.push(Occ { scan: index, group, name, owner, columns, key_column });
    }
    if !rescan.is_empty() {
        return Ok(Verdict::Rescan(rescan));
    }
    let workspace = b.workspace.clone();
    Ok(Verdict::Valid(Classified { workspace, project_ids, all_project_ids, occurrences }))
}

/// Ours carry `workspace_id`; the platform's name it only in `projects_<ws>`.
fn source_workspace_id<'a>(b: &'a BundleScan, top: impl Iterator<Item = &'a str>) -> Result<String, ApiError> {
    if let Some(id) = &b.workspace_id {
        return Ok(id.clone());
    }
    let names = b.workspace_level_tables.iter().map(String::as_str).chain(top);
    for name in names {
        if let Some(ws) = name.strip_prefix("projects_").filter(|w| !w.is_empty()) {
            return Ok(ws.to_owned());
        }
    }
    Err(bad("export_data: cannot tell the source workspace (no workspace_id and no projects_<workspace> table)"))
}
