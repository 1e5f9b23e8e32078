//! The two passes on their own: chunks' byte ranges, and bundles whose keys come in an order
//! the stream reader cannot check rows in at once (schema after data, an id known only later).

use serde_json::{json, Value};

use super::tests::{engine, engine_bytes, generated, normalized, principal, sample, Case, MemSnapshot};
use super::*;

async fn plan_of(case: &Case, bytes: &[u8], limits: ChunkLimits) -> Result<ImportPlan, ApiError> {
    let source = MemorySource(bytes.to_vec().into());
    let target = WsKey::new(crate::model::Owner::user("acme", "ann"), &case.workspace_id);
    let req = ImportRequest {
        workspace_id: case.workspace_id.clone(),
        scope: Scope::User,
        force_new_id: false,
        commit_id: "c".into(),
    };
    let who = principal("ann");
    let ctx = PlanContext {
        principal: &who,
        target: &target,
        request: &req,
        workspace_exists: false,
        sync_max_rows: None,
        limits,
        now: "now".into(),
    };
    plan(&source, &case.snapshot, &ctx).await
}

/// The rows of each occurrence, from the tree, in bundle order.
fn rows_by_occurrence(bundle: &Value, plan: &ImportPlan) -> Vec<Vec<Value>> {
    plan.occurrences
        .iter()
        .map(|o| {
            let table = match &o.group {
                Group::TopLevel => &bundle["tables"][&o.name],
                Group::Project(pid) => &bundle["projects"][pid]["tables"][&o.name],
            };
            table["data"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn chunks_are_exact_byte_ranges_of_their_rows() {
    let limits = ChunkLimits { max_rows: 3, max_bytes: 200 };
    for seed in 0..12u64 {
        let bundle = generated(seed, 1);
        for bytes in [serde_json::to_vec(&bundle), serde_json::to_vec_pretty(&bundle)] {
            let bytes = bytes.expect("bytes");
            let case = Case::new(bundle.clone(), "ws_gen");
            let plan = plan_of(&case, &bytes, limits).await.expect("plans");
            let rows = rows_by_occurrence(&bundle, &plan);
            let mut next = vec![0u64; plan.occurrences.len()];
            for c in &plan.chunks {
                let piece = &bytes[c.start as usize..c.end as usize];
                let text = format!("[{}]", String::from_utf8_lossy(piece));
                let parsed: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                let o = c.occurrence as usize;
                let want = &rows[o][c.first_row as usize..(c.first_row + c.rows) as usize];
                assert_eq!(parsed, want, "seed {seed}, chunk {c:?}");
                assert_eq!(c.first_row, next[o], "chunks follow each other");
                assert!(c.rows <= 3 && (c.rows == 1 || c.end - c.start <= 200), "{c:?}");
                next[o] += c.rows;
            }
            let counts: Vec<u64> = rows.iter().map(|r| r.len() as u64).collect();
            assert_eq!(next, counts, "seed {seed}: every row in exactly one chunk");
        }
    }
}

/// A table's members reordered: `data` first, as a serializer sorting keys writes it.
fn data_first(bundle: &mut Value) {
    let fix = |tables: &mut Value| {
        for table in tables.as_object_mut().into_iter().flat_map(|t| t.values_mut()) {
            let Some(t) = table.as_object_mut() else { continue };
            let mut sorted: Vec<(String, Value)> = std::mem::take(t).into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            t.extend(sorted);
        }
    };
    fix(&mut bundle["tables"]);
    for p in bundle["projects"].as_object_mut().into_iter().flat_map(|p| p.values_mut()) {
        fix(&mut p["tables"]);
    }
}

#[tokio::test]
async fn schema_after_data_imports_the_same() {
    for seed in [0u64, 3, 5, 8] {
        let case = Case::new(generated(seed, 1), "ws_gen");
        let want = normalized(engine(&case, ChunkLimits::default()).await);
        let mut sorted = case.bundle.clone();
        data_first(&mut sorted);
        let text = serde_json::to_string(&sorted).expect("json");
        assert!(text.find("\"data\"") < text.find("\"schema\""), "data comes first");
        let got = normalized(engine_bytes(&case, text.into_bytes(), ChunkLimits { max_rows: 2, max_bytes: 100 }).await);
        assert_eq!(got, want, "seed {seed}");
    }
    // An invalid row there is still the problem named.
    let mut bundle = sample();
    bundle["projects"]["1e0e4e01aa8"]["tables"]["cells_1e0e4e01aa8"]["data"][1]["position"] = json!("x");
    data_first(&mut bundle);
    let got = engine(&Case::new(bundle, "ws_x"), ChunkLimits::default()).await.map(|_| ()).unwrap_err();
    assert_eq!(got.status, 422);
    assert!(got.message.contains("cells_1e0e4e01aa8.data[1].position"), "{}", got.message);
}

#[tokio::test]
async fn a_kind_decided_by_a_later_id_rechecks_the_rows() {
    // `cells_x_b`: project `b` is known when its rows are read (kind `cells_x`, key `other`);
    // the projects table, read later, names project `x_b` (kind `cells`, key `id`).
    let schema = json!([
        {"name": "other", "type": "text", "nullable": "NO", "default": null},
        {"name": "id", "type": "text", "nullable": "NO", "default": null},
    ]);
    let rows = json!([{"other": "o", "id": "i1"}, {"other": "o", "id": "i2"}]);
    let projects = json!({"schema": [{"name": "project_id", "type": "text", "nullable": "NO", "default": null}],
                          "data": [{"project_id": "b"}, {"project_id": "x_b"}]});
    let bundle = json!({
        "workspace_id": "ws_k",
        "projects": {"b": {"tables": {"cells_x_b": {"schema": schema, "data": rows}}}},
        "tables": {"projects_ws_k": projects},
    });
    let (commit, _) = engine(&Case::new(bundle, "ws_k"), ChunkLimits::default()).await.expect("imports");
    let cells = commit.upserts.iter().find(|w| w.name == "cells_x_b").expect("the table");
    assert_eq!(cells.key_column, "id");
    let keys: Vec<&str> = cells.rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["i1", "i2"], "keyed by id, both rows");
}

#[tokio::test]
async fn envelopes_and_bad_json_in_a_stored_object() {
    let case = Case::new(sample(), "workspace_id");
    let want = normalized(engine(&case, ChunkLimits::default()).await);
    let envelope = json!({"data": sample(), "message": "m", "status": "success"});
    let got = engine_bytes(&case, serde_json::to_vec(&envelope).expect("json"), ChunkLimits::default()).await;
    assert_eq!(normalized(got), want);
    for (bytes, needle) in [
        (&b"{\"projects\": {"[..], "not valid JSON"),
        (b"{} {}", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b"{\"status\": 1}", "not a workspace export"),
        (b"{\"bundle_id\": \"bnd_1\", \"projects\": {}}", "names another bundle"),
        (b"{\"tables\": {}, \"tables\": {}}", "appears twice"),
    ] {
        let e = engine_bytes(&case, bytes.to_vec(), ChunkLimits::default()).await.map(|_| ()).unwrap_err();
        assert_eq!(e.status, 422, "{e:?}");
        assert!(e.message.contains(needle), "{needle}: {}", e.message);
    }
    let _ = MemSnapshot::default();
}
