//! The engine against what the whole-tree import it replaced gave: the same commit and the same
//! answer (or the same refusal) for the platform's sample, its invalid variants, and generated
//! bundles with repeated tables, repeated keys, projects and secrets, into empty and stored
//! workspaces. The old outcomes were compared with the engine's directly, then kept as digests
//! (`testdata/`), so a change to either side shows here.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::*;
use crate::model::Owner;
use crate::secrets::REDACTED;
use crate::store::StoreResult;
use crate::tables::{Row, TableMeta};

pub(super) const SAMPLE: &str = include_str!("../../../../tests/fixtures/prometheux-export-sample.json");
const NOW: &str = "2024-05-01T10:00:00.000000+00:00";

/// A workspace's tables in memory.
#[derive(Default, Clone)]
pub(super) struct MemSnapshot {
    tables: Vec<TableMeta>,
    rows: HashMap<String, BTreeMap<String, Row>>,
}

#[async_trait]
impl Snapshot for MemSnapshot {
    fn revision(&self) -> u64 {
        7
    }
    fn tables(&self) -> &[TableMeta] {
        &self.tables
    }
    async fn read_rows(&self, _: &str, _: Option<&str>, _: usize) -> StoreResult<Vec<(String, Row)>> {
        Ok(Vec::new())
    }
    async fn get_rows(&self, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>> {
        let Some(rows) = self.rows.get(table) else { return Ok(Vec::new()) };
        Ok(keys.iter().filter_map(|k| rows.get(k).map(|r| (k.clone(), r.clone()))).collect())
    }
}

impl MemSnapshot {
    pub(super) fn apply(&mut self, commit: &Commit) {
        for w in &commit.upserts {
            let rows = self.rows.entry(w.name.clone()).or_default();
            rows.extend(w.rows.iter().cloned());
            let meta = TableMeta {
                name: w.name.clone(),
                owner: w.owner.clone(),
                columns: w.columns.clone(),
                key_column: w.key_column.clone(),
                row_count: rows.len() as u64,
            };
            self.tables.retain(|t| t.name != w.name);
            self.tables.push(meta);
        }
        self.tables.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

pub(super) fn principal(user: &str) -> Principal {
    Principal { sub: user.into(), username: user.into(), organization: "acme".into(), role: None, jti: None }
}

pub(super) struct Case {
    pub bundle: Value,
    pub workspace_id: String,
    pub force_new_id: bool,
    pub snapshot: MemSnapshot,
    pub workspace_exists: bool,
}

impl Case {
    pub(super) fn new(bundle: Value, workspace_id: &str) -> Self {
        Self {
            bundle,
            workspace_id: workspace_id.into(),
            force_new_id: false,
            snapshot: MemSnapshot::default(),
            workspace_exists: false,
        }
    }

    fn request(&self) -> ImportRequest {
        let target = self.target();
        let commit_id = commit_id(&target, self.bundle.to_string().as_bytes());
        ImportRequest {
            workspace_id: self.workspace_id.clone(),
            scope: Scope::User,
            force_new_id: self.force_new_id,
            commit_id,
        }
    }

    fn target(&self) -> WsKey {
        WsKey::new(Owner::user("acme", "ann"), &self.workspace_id)
    }
}

pub(super) type Outcome = Result<(Commit, Reply), ApiError>;

pub(super) async fn engine(case: &Case, limits: ChunkLimits) -> Outcome {
    let bytes = serde_json::to_vec(&case.bundle).map_err(ApiError::internal)?;
    engine_bytes(case, bytes, limits).await
}

pub(super) async fn engine_bytes(case: &Case, bytes: Vec<u8>, limits: ChunkLimits) -> Outcome {
    let source = MemorySource(bytes.into());
    let (req, target, who) = (case.request(), case.target(), principal("ann"));
    let ctx = PlanContext {
        principal: &who,
        target: &target,
        request: &req,
        workspace_exists: case.workspace_exists,
        sync_max_rows: Some(150_000),
        limits,
        now: NOW.into(),
    };
    let plan = plan(&source, &case.snapshot, &ctx).await?;
    let json = serde_json::to_string(&plan).map_err(ApiError::internal)?;
    let plan: ImportPlan = serde_json::from_str(&json).map_err(ApiError::internal)?;
    commit_of(&plan, &source, &case.snapshot).await
}

/// Rows by key, the last of a key winning (the old path could list a key twice in one write).
pub(super) fn normalized(outcome: Outcome) -> Result<(Commit, Value, String), ApiError> {
    let (mut commit, reply) = outcome?;
    for w in &mut commit.upserts {
        let rows: BTreeMap<String, Row> = std::mem::take(&mut w.rows).into_iter().collect();
        w.rows = rows.into_iter().collect();
    }
    Ok((commit, reply.data, reply.message))
}

/// An outcome as canonical JSON, for the expected digests.
fn outcome_json(outcome: &Result<(Commit, Value, String), ApiError>) -> Value {
    let (commit, data, message) = match outcome {
        Err(e) => return json!({"error": [e.status, e.message]}),
        Ok(found) => found,
    };
    let upserts: Vec<Value> = commit
        .upserts
        .iter()
        .map(|w| json!({"name": w.name, "owner": w.owner, "columns": w.columns, "key": w.key_column, "rows": w.rows}))
        .collect();
    let create = commit
        .create_workspace
        .as_ref()
        .map(|d| json!([d.id, d.name, d.description, d.metadata, d.scope, d.writer, d.now, d.expected_version]));
    json!({"id": commit.id, "create": create, "upserts": upserts, "deletes": commit.delete_rows,
           "drops": commit.drop_tables, "data": data, "message": message})
}

fn digest(outcome: &Result<(Commit, Value, String), ApiError>) -> String {
    use sha2::{Digest as _, Sha256};
    hex::encode(&Sha256::digest(outcome_json(outcome).to_string().as_bytes())[..12])
}

/// What each case must come to: digests of the outcomes the whole-tree import gave.
pub(super) struct Expected(BTreeMap<String, String>);

impl Expected {
    pub(super) fn load(file: &str) -> Self {
        let path = format!("{}/src/api/import/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}")))
    }
}

/// Asserts the engine's outcome, with every chunk size, is the expected one; returns the commit.
async fn same(case: &Case, what: &str, expected: &Expected) -> Option<Commit> {
    let mut first: Option<Result<(Commit, Value, String), ApiError>> = None;
    for limits in
        [ChunkLimits::default(), ChunkLimits { max_rows: 2, max_bytes: 150 }, ChunkLimits { max_rows: 1, max_bytes: 1 }]
    {
        let got = normalized(engine(case, limits).await);
        match &first {
            Some(first) => assert_eq!(&got, first, "{what} with {limits:?}"),
            None => first = Some(got),
        }
    }
    let got = first?;
    let want = expected.0.get(what).unwrap_or_else(|| panic!("no expected outcome for {what}"));
    assert_eq!(&digest(&got), want, "{what}: {}", outcome_json(&got));
    got.ok().map(|(commit, _, _)| commit)
}

pub(super) fn sample() -> Value {
    serde_json::from_str(SAMPLE).expect("the sample is JSON")
}

#[tokio::test]
async fn the_sample_imports_as_before_fresh_and_again() {
    let expected = Expected::load("sample.json");
    let mut case = Case::new(sample(), "workspace_id");
    let commit = same(&case, "fresh", &expected).await.expect("imports");
    case.snapshot.apply(&commit);
    case.workspace_exists = true;
    same(&case, "again", &expected).await.expect("imports again");
    case.force_new_id = true;
    same(&case, "force_new_id", &expected).await.expect("imports with new ids");
    let mut other = Case::new(sample(), "ws_other");
    other.force_new_id = true;
    same(&other, "force_new_id, fresh", &expected).await.expect("imports with new ids");
}

#[tokio::test]
async fn invalid_samples_are_refused_as_before() {
    let p1 = "1e0e4e01aa8";
    type Mutation = (&'static str, Box<dyn Fn(&mut Value)>);
    let mutations: Vec<Mutation> = vec![
        ("projects list", Box::new(|b| b["projects"] = json!([1]))),
        ("tables list", Box::new(|b| b["tables"] = json!("x"))),
        ("data object", Box::new(|b| b["tables"]["projects_workspace_id"]["data"] = json!({"a": 1}))),
        ("row text", Box::new(move |b| b["projects"][p1]["tables"]["cells_1e0e4e01aa8"]["data"][4] = json!("row"))),
        ("no key", Box::new(move |b| b["projects"][p1]["tables"]["cells_1e0e4e01aa8"]["data"][2]["id"] = Value::Null)),
        (
            "misfit",
            Box::new(move |b| b["projects"][p1]["tables"]["cells_1e0e4e01aa8"]["data"][1]["position"] = json!("x")),
        ),
        ("schema text", Box::new(move |b| b["projects"][p1]["tables"]["concepts_1e0e4e01aa8"]["schema"] = json!("c"))),
        (
            "nullable",
            Box::new(move |b| {
                b["projects"][p1]["tables"]["concepts_1e0e4e01aa8"]["schema"][0]["nullable"] = json!(false)
            }),
        ),
        (
            "no schema",
            Box::new(move |b| {
                drop(b["projects"][p1]["tables"]["cells_1e0e4e01aa8"].as_object_mut().map(|t| t.remove("schema")))
            }),
        ),
        ("table text", Box::new(move |b| b["projects"][p1]["tables"]["cells_1e0e4e01aa8"] = json!(3))),
        ("project text", Box::new(move |b| b["projects"][p1] = json!(3))),
        ("project tables text", Box::new(move |b| b["projects"][p1]["tables"] = json!(3))),
        ("bad pid", Box::new(|b| b["tables"]["projects_workspace_id"]["data"][0]["project_id"] = json!("a#b"))),
        (
            "no source",
            Box::new(|b| {
                let tables = b["tables"].as_object_mut().expect("tables");
                let t = tables.remove("projects_workspace_id").expect("projects");
                tables.insert("things_workspace_id".into(), t);
                b["workspace_level_tables"] = json!([]);
            }),
        ),
        (
            "two errors, later first",
            Box::new(move |b| {
                b["tables"]["projects_workspace_id"]["data"][0]["name"] = json!(5);
                b["projects"][p1]["tables"]["cells_1e0e4e01aa8"]["data"][0]["position"] = json!("x");
            }),
        ),
        ("long workspace name", Box::new(|b| b["workspace"] = json!({"name": "n".repeat(300)}))),
        (
            "equals workspace",
            Box::new(|b| b["tables"]["projects_workspace_id"]["data"][0]["project_id"] = json!("workspace_id")),
        ),
        ("not an export", Box::new(|b| *b = json!({"projects": null}))),
        (
            "marker, nothing stored",
            Box::new(move |b| b["projects"][p1]["tables"]["cells_1e0e4e01aa8"]["data"][0]["token"] = json!(REDACTED)),
        ),
    ];
    let expected = Expected::load("invalid.json");
    for (what, mutate) in mutations {
        let mut bundle = sample();
        mutate(&mut bundle);
        let imported = same(&Case::new(bundle, "ws_invalid"), what, &expected).await.is_some();
        // An orphan marker has nothing to restore: it becomes null.
        assert_eq!(imported, what == "marker, nothing stored", "{what}");
    }
}

/// A bundle of workspace `ws_gen`: projects, their own tables, workspace tables repeated in
/// each (overlapping keys), a projects table with repeated rows, secrets redacted or in clear.
pub(super) fn generated(seed: u64, generation: u64) -> Value {
    let mut rng = StdRng::seed_from_u64(seed);
    let ws = "ws_gen";
    let cols = |key: &str| {
        json!([
            {"name": "label", "type": "text", "nullable": "YES", "default": null},
            {"name": key, "type": "text", "nullable": "NO", "default": null},
            {"name": "n", "type": "integer", "nullable": "YES", "default": "0"},
            {"name": "conf", "type": "jsonb", "nullable": "YES", "default": null},
        ])
    };
    // Secret-bearing rows are a function of their key, as the platform repeats them.
    let ds_row = |k: u64, redacted: bool| {
        let password = if redacted { json!(REDACTED) } else { json!(format!("pw{k}")) };
        json!({"datasource_id": format!("d{k}"), "label": "ds", "n": k, "conf": {"password": password, "host": "h"}})
    };
    let projects: Vec<String> = (0..rng.gen_range(0..4)).map(|i| format!("p{i}x{seed}")).collect();
    let mut out_projects = serde_json::Map::new();
    let redacted = rng.gen_bool(0.5);
    for pid in &projects {
        let mut tables = serde_json::Map::new();
        let rows = |rng: &mut StdRng, key: &str, pool: u64| -> Vec<Value> {
            (0..rng.gen_range(0..12))
                .map(|_| {
                    let k = rng.gen_range(0..pool);
                    json!({key: format!("k{k}"), "label": format!("g{generation}"), "n": rng.gen_range(0..100), "conf": null})
                })
                .collect()
        };
        tables.insert(format!("cells_{pid}"), json!({"schema": cols("id"), "data": rows(&mut rng, "id", 6)}));
        tables.insert(format!("notes_{ws}"), json!({"schema": cols("nid"), "data": rows(&mut rng, "nid", 5)}));
        let ds: Vec<Value> = (0..rng.gen_range(0..3)).map(|_| ds_row(rng.gen_range(0..3), redacted)).collect();
        tables.insert(format!("datasources_{ws}"), json!({"schema": cols("datasource_id"), "data": ds}));
        out_projects.insert(pid.clone(), json!({"project_id": pid, "tables": tables}));
    }
    let project_cols = json!([
        {"name": "project_id", "type": "text", "nullable": "NO", "default": null},
        {"name": "name", "type": "text", "nullable": "YES", "default": null},
        {"name": "author", "type": "text", "nullable": "YES", "default": null},
        {"name": "created_at", "type": "timestamp with time zone", "nullable": "YES", "default": null},
    ]);
    let mut project_rows: Vec<Value> = Vec::new();
    for pid in &projects {
        for _ in 0..rng.gen_range(1..3) {
            let created =
                if rng.gen_bool(0.5) { json!(format!("2020-01-0{}", rng.gen_range(1..9))) } else { Value::Null };
            project_rows.push(
                json!({"project_id": pid, "name": format!("n{generation}"), "author": "zed", "created_at": created}),
            );
        }
    }
    let mut top = serde_json::Map::new();
    top.insert(format!("projects_{ws}"), json!({"schema": project_cols, "data": project_rows}));
    if rng.gen_bool(0.5) {
        top.insert(format!("notes_{ws}"), json!({"schema": cols("nid"), "data": [{"nid": "k1", "label": "top", "n": 1, "conf": [1, {"token": "t"}]}]}));
    }
    let mut bundle = json!({"workspace_id": ws, "workspace": {"name": "Generated", "metadata": {"seed": seed}}});
    if rng.gen_bool(0.5) {
        bundle["projects"] = Value::Object(out_projects);
        bundle["tables"] = Value::Object(top);
    } else {
        bundle["tables"] = Value::Object(top);
        bundle["projects"] = Value::Object(out_projects);
    }
    bundle
}

#[tokio::test]
async fn generated_bundles_import_as_before() {
    let expected = Expected::load("generated.json");
    let mut imported = 0;
    for seed in 0..40u64 {
        let mut case = Case::new(generated(seed, 1), "ws_gen");
        let Some(commit) = same(&case, &format!("seed {seed}, fresh"), &expected).await else { continue };
        imported += 1;
        // Into what the first import stored: updates, secrets kept behind markers.
        case.snapshot.apply(&commit);
        case.workspace_exists = true;
        case.bundle = generated(seed, 2);
        same(&case, &format!("seed {seed}, over itself"), &expected).await;
        case.force_new_id = seed % 2 == 0;
        case.bundle = generated(seed + 1000, 3);
        imported += usize::from(same(&case, &format!("seed {seed}, over another"), &expected).await.is_some());
    }
    assert!(imported > 60, "only {imported} of 80 generated imports succeeded");
}
