//! Pass 1's reader: the bundle read once, as a stream ([`struson`]), into what the plan needs and
//! nothing more: the bundle's structure, each table's schema and the byte ranges of its rows,
//! each row checked and reduced to a hash of its key ([`Entry`]). One row is in memory at a time.
//!
//! A table's rows can be checked only once its schema and kind are known. Both are known when
//! its `data` is reached in the platform's order (`schema` before `data`, project ids before
//! their tables); when not (keys sorted, or an id that changes a kind known only later), the
//! rows are checked on a second read of just those byte ranges (`Scanner::rescan`, in `rows`).

use std::collections::HashSet;
use std::io::Read;

use serde_json::{Map, Value};
use struson::reader::{JsonReader, JsonStreamReader, ReaderError, ReaderSettings, ValueType};

use super::index::Entry;
use super::parse::{bad, key_column, read_columns, Group};
use super::rows::{RowCtx, RowsScan};
use super::ChunkLimits;
use crate::api::projects::PROJECT_KEY;
use crate::error::ApiError;
use crate::naming::classify;
use crate::tables::{key_text, Column};

/// Whatever stops the scan: bad JSON (or a failed read), or a bundle refused on the spot.
pub(super) enum Stop {
    Json(ReaderError),
    Api(ApiError),
}

impl From<ReaderError> for Stop {
    fn from(e: ReaderError) -> Self {
        Stop::Json(e)
    }
}

pub(super) type Res<T> = Result<T, Stop>;

/// How a member of the bundle object was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Member {
    #[default]
    Absent,
    Null,
    Object,
    Other,
}

#[derive(Debug, Default)]
pub(super) struct BundleScan {
    pub projects: Member,
    pub tables: Member,
    pub workspace_id: Option<String>,
    pub workspace_level_tables: Vec<String>,
    pub workspace: Option<Map<String, Value>>,
    /// `bundle_id` or `bundle.id`: a staged answer, not a bundle.
    pub staged: Option<String>,
    /// The keys of `projects`, in order, and whether each is an object.
    pub projects_list: Vec<(String, bool)>,
    pub items: Vec<Item>,
    pub occurrences: Vec<OccScan>,
}

/// What the occurrences' sequence holds: a table, or a project whose `tables` is not an object.
#[derive(Debug)]
pub(super) enum Item {
    Table(usize),
    BadProjectTables(String),
}

#[derive(Debug)]
pub(super) enum Data {
    Absent,
    NotArray,
    /// The array's bytes, `[` to `]`.
    Array {
        start: u64,
        end: u64,
    },
}

#[derive(Debug)]
pub(super) struct OccScan {
    pub group: Group,
    pub name: String,
    pub at: String,
    pub is_object: bool,
    /// `None`: no `schema` member.
    pub columns: Option<Result<Vec<Column>, ApiError>>,
    pub data: Data,
    /// The rows as checked with `rows.key_column`; `None` when they were not checked yet.
    pub rows: Option<RowsScan>,
    /// For tables named `projects*`: each object row's `project_id`, in order.
    pub project_id_field: Vec<String>,
}

impl OccScan {
    pub fn is_projects_name(&self) -> bool {
        self.name.starts_with("projects")
    }
}

/// The object read, as the bundle itself and as an envelope around its `data`.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub top: BundleScan,
    pub inner: Option<BundleScan>,
    pub has_status: bool,
}

pub(super) fn settings() -> ReaderSettings {
    // Nesting as deep as serde_json parses; no path tracking (it costs on every value).
    ReaderSettings { track_path: false, max_nesting_depth: Some(128), ..ReaderSettings::default() }
}

pub(super) fn pos<R: Read>(r: &JsonStreamReader<R>) -> u64 {
    r.current_position(false).data_pos.unwrap_or(0)
}

/// Any JSON value as serde_json would build it (numbers parsed by serde_json itself).
pub(super) fn read_value<R: Read>(r: &mut JsonStreamReader<R>) -> Res<Value> {
    Ok(match r.peek()? {
        ValueType::Array => {
            r.begin_array()?;
            let mut items = Vec::new();
            while r.has_next()? {
                items.push(read_value(r)?);
            }
            r.end_array()?;
            Value::Array(items)
        }
        ValueType::Object => {
            r.begin_object()?;
            let mut map = Map::new();
            while r.has_next()? {
                let name = r.next_name_owned()?;
                let value = read_value(r)?;
                map.insert(name, value);
            }
            r.end_object()?;
            Value::Object(map)
        }
        ValueType::String => Value::String(r.next_string()?),
        ValueType::Number => {
            let text = r.next_number_as_str()?;
            serde_json::from_str::<Value>(text)
                .map_err(|e| Stop::Api(bad(format!("the number {text} cannot be read ({e})"))))?
        }
        ValueType::Boolean => Value::Bool(r.next_bool()?),
        ValueType::Null => {
            r.next_null()?;
            Value::Null
        }
    })
}

/// What the scan has learnt so far of the ids names end with, to guess a table's kind when its
/// rows are reached (a wrong guess only costs a second read of them).
#[derive(Default)]
struct Known {
    ids: Vec<String>,
    seen: HashSet<String>,
    workspace: Option<String>,
}

impl Known {
    fn add(&mut self, id: &str) {
        if self.seen.insert(id.to_owned()) {
            self.ids.push(id.to_owned());
        }
    }
    fn kind_of(&self, name: &str) -> String {
        guess_kind(name, &self.ids, self.workspace.as_deref())
    }
}

/// The kind `classify` gives with these ids; else the first segment, the only way to one of
/// the kinds with a known key column.
pub(super) fn guess_kind(name: &str, ids: &[String], workspace: Option<&str>) -> String {
    let owner = classify(name, ids, workspace.unwrap_or("\0"));
    owner.map(|o| o.kind().to_owned()).unwrap_or_else(|| name.split('_').next().unwrap_or(name).to_owned())
}

pub(super) struct Scanner {
    pub limits: ChunkLimits,
    /// Every checked row's key hash, table by table (see [`RowsScan::entries`]).
    pub entries: Vec<Entry>,
    known: Known,
}

impl Scanner {
    pub fn new(limits: ChunkLimits) -> Self {
        Self { limits, entries: Vec::new(), known: Known::default() }
    }

    /// Reads the whole object from `reader`.
    pub fn scan<R: Read>(&mut self, reader: R) -> Res<Scan> {
        let mut r = JsonStreamReader::new_custom(reader, settings());
        let mut scan = Scan::default();
        if r.peek()? != ValueType::Object {
            return Err(Stop::Api(bad("export_data: the bundle must be a JSON object")));
        }
        r.begin_object()?;
        let mut seen = HashSet::new();
        while r.has_next()? {
            let name = r.next_name_owned()?;
            match name.as_str() {
                "data" if r.peek()? == ValueType::Object => {
                    // An envelope's bundle; its own `data`/`status` are nothing to it.
                    let mut inner = BundleScan::default();
                    let mut seen = HashSet::new();
                    r.begin_object()?;
                    while r.has_next()? {
                        let name = r.next_name_owned()?;
                        self.member(&mut r, &mut inner, &mut seen, name)?;
                    }
                    r.end_object()?;
                    scan.inner = Some(inner);
                }
                "status" => {
                    scan.has_status = true;
                    r.skip_value()?;
                }
                _ => self.member(&mut r, &mut scan.top, &mut seen, name)?,
            }
        }
        r.end_object()?;
        r.consume_trailing_whitespace()?;
        Ok(scan)
    }

    fn member<R: Read>(
        &mut self,
        r: &mut JsonStreamReader<R>,
        b: &mut BundleScan,
        seen: &mut HashSet<String>,
        name: String,
    ) -> Res<()> {
        let once = matches!(name.as_str(), "projects" | "tables" | "workspace_id" | "workspace_level_tables");
        if once && !seen.insert(name.clone()) {
            return Err(Stop::Api(bad(format!("export_data: '{name}' appears twice"))));
        }
        match name.as_str() {
            "projects" | "tables" => {
                let member = match r.peek()? {
                    ValueType::Null => Member::Null,
                    ValueType::Object => Member::Object,
                    _ => Member::Other,
                };
                // Bundle order is the object's order: the occurrences are read in it.
                if name == "projects" {
                    b.projects = member;
                } else {
                    b.tables = member;
                }
                match member {
                    Member::Object if name == "projects" => self.projects(r, b)?,
                    Member::Object => self.tables(r, b, Group::TopLevel)?,
                    _ => r.skip_value()?,
                }
            }
            "workspace_id" => {
                if r.peek()? == ValueType::String {
                    let id = r.next_string()?;
                    self.known.workspace = Some(id.clone());
                    b.workspace_id = Some(id);
                } else {
                    r.skip_value()?;
                }
            }
            "workspace_level_tables" => {
                if let Value::Array(names) = read_value(r)? {
                    b.workspace_level_tables =
                        names.into_iter().filter_map(|n| n.as_str().map(str::to_owned)).collect();
                    if self.known.workspace.is_none() {
                        let ws = b.workspace_level_tables.iter().find_map(|n| n.strip_prefix("projects_"));
                        self.known.workspace = ws.filter(|w| !w.is_empty()).map(str::to_owned);
                    }
                }
            }
            "workspace" => b.workspace = read_object(r)?,
            "bundle_id" if r.peek()? == ValueType::String => b.staged = Some(r.next_string()?),
            "bundle" => {
                let id = read_object(r)?.and_then(|m| m.get("id").and_then(Value::as_str).map(str::to_owned));
                b.staged = b.staged.take().or(id);
            }
            _ => r.skip_value()?,
        }
        Ok(())
    }

    fn projects<R: Read>(&mut self, r: &mut JsonStreamReader<R>, b: &mut BundleScan) -> Res<()> {
        r.begin_object()?;
        while r.has_next()? {
            let pid = r.next_name_owned()?;
            if b.projects_list.iter().any(|(p, _)| *p == pid) {
                return Err(Stop::Api(bad(format!("export_data.projects: project '{pid}' appears twice"))));
            }
            self.known.add(&pid);
            let is_object = r.peek()? == ValueType::Object;
            b.projects_list.push((pid.clone(), is_object));
            if !is_object {
                r.skip_value()?;
                continue;
            }
            r.begin_object()?;
            let mut tables_seen = false;
            while r.has_next()? {
                let name = r.next_name_owned()?;
                if name != "tables" {
                    r.skip_value()?;
                    continue;
                }
                if std::mem::replace(&mut tables_seen, true) {
                    return Err(Stop::Api(bad(format!("export_data.projects.{pid}: 'tables' appears twice"))));
                }
                match r.peek()? {
                    ValueType::Null => r.skip_value()?,
                    ValueType::Object => self.tables(r, b, Group::Project(pid.clone()))?,
                    _ => {
                        b.items.push(Item::BadProjectTables(pid.clone()));
                        r.skip_value()?;
                    }
                }
            }
            r.end_object()?;
        }
        r.end_object()?;
        Ok(())
    }

    fn tables<R: Read>(&mut self, r: &mut JsonStreamReader<R>, b: &mut BundleScan, group: Group) -> Res<()> {
        r.begin_object()?;
        let mut names = HashSet::new();
        while r.has_next()? {
            let name = r.next_name_owned()?;
            let at = group.path_of(&name);
            if !names.insert(name.clone()) {
                return Err(Stop::Api(bad(format!("{at}: the table appears twice"))));
            }
            let mut occ = OccScan {
                group: group.clone(),
                name,
                at,
                is_object: r.peek()? == ValueType::Object,
                columns: None,
                data: Data::Absent,
                rows: None,
                project_id_field: Vec::new(),
            };
            if occ.is_object {
                self.table(r, &mut occ)?;
            } else {
                r.skip_value()?;
            }
            b.items.push(Item::Table(b.occurrences.len()));
            b.occurrences.push(occ);
        }
        r.end_object()?;
        Ok(())
    }

    fn table<R: Read>(&mut self, r: &mut JsonStreamReader<R>, occ: &mut OccScan) -> Res<()> {
        r.begin_object()?;
        let (mut schema_seen, mut data_seen) = (false, false);
        while r.has_next()? {
            let member = r.next_name_owned()?;
            let twice = match member.as_str() {
                "schema" => std::mem::replace(&mut schema_seen, true),
                "data" => std::mem::replace(&mut data_seen, true),
                _ => false,
            };
            if twice {
                return Err(Stop::Api(bad(format!("{}: '{member}' appears twice", occ.at))));
            }
            match member.as_str() {
                "schema" => occ.columns = Some(read_columns(&occ.at, Some(&read_value(r)?))),
                "data" if r.peek()? == ValueType::Array => {
                    let start = pos(r);
                    let kind = self.known.kind_of(&occ.name);
                    let key = match &occ.columns {
                        Some(Ok(columns)) => key_column(&occ.at, &kind, columns).ok().map(|k| (k, columns.clone())),
                        _ => None,
                    };
                    match key {
                        Some((key_column, columns)) => {
                            let ctx = RowCtx {
                                at: &occ.at,
                                columns: &columns,
                                key_column: &key_column,
                                projects_name: occ.is_projects_name(),
                            };
                            let rows = self.rows(r, 0, &ctx, &mut occ.project_id_field)?;
                            occ.rows = Some(rows);
                        }
                        // Checked later, on a second read; the project ids are needed now.
                        None if occ.is_projects_name() => light_rows(r, &mut occ.project_id_field)?,
                        None => r.skip_value()?,
                    }
                    for pid in &occ.project_id_field {
                        self.known.add(pid);
                    }
                    occ.data = Data::Array { start, end: pos(r) };
                }
                "data" => {
                    occ.data = Data::NotArray;
                    r.skip_value()?;
                }
                _ => r.skip_value()?,
            }
        }
        r.end_object()?;
        Ok(())
    }
}

/// Rows read only for their `project_id` (a projects table whose schema comes later).
fn light_rows<R: Read>(r: &mut JsonStreamReader<R>, project_ids: &mut Vec<String>) -> Res<()> {
    r.begin_array()?;
    while r.has_next()? {
        let row = read_value(r)?;
        project_ids.extend(key_text(row.get(PROJECT_KEY)));
    }
    r.end_array()?;
    Ok(())
}

fn read_object<R: Read>(r: &mut JsonStreamReader<R>) -> Res<Option<Map<String, Value>>> {
    if r.peek()? != ValueType::Object {
        r.skip_value()?;
        return Ok(None);
    }
    Ok(match read_value(r)? {
        Value::Object(m) => Some(m),
        _ => None,
    })
}
