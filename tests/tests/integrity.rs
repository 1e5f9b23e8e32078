//! Tenancy and integrity, tried as two members of one organization and as a hostile caller, on
//! every path that touches the data (export, import, cleanup), on both backends.

use blackbox_tests::{harness, projects_table, Answer, Backend, Client, Harness};
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use shared::routes::Endpoint;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
            if let Some(h) = super::harness(super::Backend::Embedded, stringify!($case), &[]).await { super::$case(&h).await }
        })* }
        mod aws { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
            if let Some(h) = super::harness(super::Backend::Aws, stringify!($case), &[]).await { super::$case(&h).await }
        })* }
    };
}

on_both_backends!(
    project_cleanup_never_drops_workspace_tables,
    a_member_cannot_delete_the_workspace_through_a_project_named_after_it,
    export_contains_only_what_the_caller_may_load,
    import_never_touches_another_members_private_project,
    a_bundles_author_is_not_trusted,
    a_redacted_secret_cannot_be_repointed,
    a_recorded_table_owner_never_changes,
    bundle_limits_are_422_and_write_nothing,
    a_table_schema_too_big_for_one_item_is_413_and_writes_nothing,
    the_contracts_flow_works_on_a_new_empty_workspace,
    export_import_export_keeps_generated_workspaces_exactly,
    projects_list_pages_like_the_workspaces_list,
);

// ---- bundles built by hand, in the platform's shape ----

fn schema(key: &str) -> Value {
    json!([
        {"name": key, "type": "text", "nullable": "NO", "default": null},
        {"name": "v", "type": "text", "nullable": "YES", "default": null},
    ])
}

fn table(key: &str, keys: &[&str]) -> Value {
    let rows: Vec<Value> = keys.iter().map(|k| json!({key: k, "v": format!("value of {k}")})).collect();
    json!({"schema": schema(key), "data": rows})
}

/// A bundle of workspace `ws`: `projects` maps a project id to its own tables (by name).
fn bundle(ws: &str, projects: Vec<(&str, Vec<(String, Value)>)>, top: Vec<(String, Value)>) -> Value {
    let projects: Map<String, Value> = projects
        .into_iter()
        .map(|(pid, tables)| {
            let tables: Map<String, Value> = tables.into_iter().collect();
            (pid.to_owned(), json!({"project_id": pid, "tables": tables}))
        })
        .collect();
    let top: Map<String, Value> = top.into_iter().collect();
    json!({"workspace_id": ws, "projects": projects, "tables": top})
}

async fn import_as(c: &Client<'_>, export_data: Value, ws: &str, scope: &str, force_new_id: bool) -> Answer {
    let body = json!({"export_data": export_data, "workspace_id": ws, "scope": scope, "force_new_id": force_new_id});
    c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await
}

async fn export_as(c: &Client<'_>, ws: &str, scope: &str, include_secrets: bool) -> Answer {
    let body = json!({"scope": scope, "include_secrets": include_secrets});
    c.post(Endpoint::ExportTables, &format!("/workspaces/{ws}/export-tables"), body).await
}

async fn save_ws(c: &Client<'_>, id: &str, scope: &str) {
    c.post(Endpoint::SaveWorkspace, "/workspaces/save", json!({"id": id, "name": id, "scope": scope})).await.ok();
}

/// Every table name anywhere in an export, sorted.
fn table_names(data: &Value) -> Vec<String> {
    let mut names: Vec<String> = data["tables"].as_object().map(|t| t.keys().cloned().collect()).unwrap_or_default();
    for p in data["projects"].as_object().into_iter().flat_map(|m| m.values()) {
        names.extend(p["tables"].as_object().into_iter().flat_map(|t| t.keys().cloned()));
    }
    names.sort();
    names.dedup();
    names
}

fn project_ids(data: &Value) -> Vec<String> {
    data["projects"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

fn rows_of<'a>(data: &'a Value, name: &str) -> Vec<&'a Value> {
    if let Some(t) = data["tables"].get(name) {
        return t["data"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    }
    for p in data["projects"].as_object().into_iter().flat_map(|m| m.values()) {
        if let Some(t) = p["tables"].get(name) {
            return t["data"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        }
    }
    Vec::new()
}

// ---- defect 1: ownership is recorded, never inferred from a name ----

/// Project `abc` in workspace `ws_abc`: its cleanup must drop `concepts_abc` only, never
/// `projects_ws_abc` or `concepts_ws_abc`, whose names also end in `abc`.
async fn project_cleanup_never_drops_workspace_tables(h: &Harness) {
    let c = Client::new(&h.app, "acme", "ann");
    let b = bundle(
        "ws_abc",
        vec![
            ("abc", vec![("concepts_abc".into(), table("predicate_name", &["p1", "p2"]))]),
            ("b_abc", vec![("cells_b_abc".into(), table("id", &["c1"]))]),
        ],
        vec![
            ("projects_ws_abc".into(), projects_table(&[("abc", "ann", "user"), ("b_abc", "ann", "user")])),
            ("concepts_ws_abc".into(), table("predicate_name", &["w1"])),
            ("datasources_ws_abc".into(), table("datasource_id", &["d1"])),
        ],
    );
    import_as(&c, b, "ws_abc", "user", false).await.ok();
    let before = export_as(&c, "ws_abc", "user", true).await;
    assert_eq!(
        table_names(before.ok()),
        ["cells_b_abc", "concepts_abc", "concepts_ws_abc", "datasources_ws_abc", "projects_ws_abc"]
    );
    let gone = c.post(Endpoint::CleanupProject, "/projects/ws_abc/cleanup", json!({"project": {"id": "abc"}})).await;
    assert_eq!(gone.ok()["tables_dropped"], 1, "{}", gone.body);
    let after = export_as(&c, "ws_abc", "user", true).await;
    let after = after.ok();
    assert_eq!(table_names(after), ["cells_b_abc", "concepts_ws_abc", "datasources_ws_abc", "projects_ws_abc"]);
    assert_eq!(project_ids(after), ["b_abc"]);
    assert_eq!(rows_of(after, "concepts_ws_abc").len(), 1);
    // `b_abc` also ends in `abc`; it is a project of its own and keeps its table.
    assert_eq!(rows_of(after, "cells_b_abc").len(), 1);
}

/// The attack of the review: in an organization workspace any member creates a project named
/// after the tail of the workspace id and deletes it. The workspace's tables must survive.
async fn a_member_cannot_delete_the_workspace_through_a_project_named_after_it(h: &Harness) {
    let admin = Client::with_role(&h.app, "acme", "ann", "admin");
    let bob = Client::new(&h.app, "acme", "bob");
    save_ws(&admin, "ws_team", "organization").await;
    let b = bundle(
        "ws_team",
        vec![],
        vec![
            ("concepts_ws_team".into(), table("predicate_name", &["w1", "w2"])),
            ("cells_ws_team".into(), table("id", &["c"])),
        ],
    );
    import_as(&admin, b, "ws_team", "organization", false).await.ok();
    for id in ["team", "ws_team", "m"] {
        let project = json!({"project": {"id": id, "name": "bob's trap", "scope": "organization"}});
        let saved =
            bob.post(Endpoint::SaveProject, "/projects/ws_team/save?workspace_scope=organization", project).await;
        if id == "ws_team" {
            saved.assert_error(400, "may not equal");
            continue;
        }
        saved.ok();
        let body = json!({"project": {"id": id}});
        bob.post(Endpoint::CleanupProject, "/projects/ws_team/cleanup?workspace_scope=organization", body).await.ok();
    }
    let after = export_as(&admin, "ws_team", "organization", false).await;
    assert_eq!(table_names(after.ok()), ["cells_ws_team", "concepts_ws_team", "projects_ws_team"]);
    assert_eq!(rows_of(after.ok(), "concepts_ws_team").len(), 2);
}

/// Two tables landing on one name with different owners, or a table whose recorded owner
/// differs: refused, nothing written.
async fn a_recorded_table_owner_never_changes(h: &Harness) {
    let c = Client::new(&h.app, "acme", "ann");
    // In workspace `t`, project `a_t` owns `concepts_a_t`; a workspace table of kind
    // `concepts_a` would be named `concepts_a_t` too.
    let first = bundle("t", vec![("a_t", vec![("concepts_a_t".into(), table("predicate_name", &["x"]))])], vec![]);
    import_as(&c, first, "t", "user", false).await.ok();
    let clash = bundle("src", vec![], vec![("concepts_a_src".into(), table("predicate_name", &["y"]))]);
    import_as(&c, clash, "t", "user", false).await.assert_error(409, "concepts_a_t");
    let exported = export_as(&c, "t", "user", true).await;
    let rows = rows_of(exported.ok(), "concepts_a_t");
    assert_eq!(rows.len(), 1, "nothing written by the refused import");
    assert_eq!(rows[0]["predicate_name"], "x");
}

// ---- defect 2: a member's private project is private everywhere ----

/// Ann's private project in an organization workspace, with a table of its own.
async fn ann_private_project(h: &Harness) -> (Client<'_>, Client<'_>) {
    let ann = Client::new(&h.app, "acme", "ann");
    let bob = Client::new(&h.app, "acme", "bob");
    save_ws(&ann, "ws_org", "organization").await;
    let p = json!({"project": {"id": "p_ann", "name": "ann's", "scope": "user"}});
    ann.post(Endpoint::SaveProject, "/projects/ws_org/save?workspace_scope=organization", p).await.ok();
    let p = json!({"project": {"id": "p_all", "name": "everyone's", "scope": "organization"}});
    ann.post(Endpoint::SaveProject, "/projects/ws_org/save?workspace_scope=organization", p).await.ok();
    let mut secret_table = table("datasource_id", &["d1"]);
    secret_table["schema"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "password", "type": "text", "nullable": "YES", "default": null}));
    secret_table["data"][0]["password"] = json!("ann-s3cret");
    let b = bundle(
        "ws_org",
        vec![
            (
                "p_ann",
                vec![("datasources_p_ann".into(), secret_table), ("cells_p_ann".into(), table("id", &["a1", "a2"]))],
            ),
            ("p_all", vec![("cells_p_all".into(), table("id", &["s1"]))]),
        ],
        vec![],
    );
    import_as(&ann, b, "ws_org", "organization", false).await.ok();
    (ann, bob)
}

async fn export_contains_only_what_the_caller_may_load(h: &Harness) {
    let (ann, bob) = ann_private_project(h).await;
    let carol = Client::with_role(&h.app, "acme", "carol", "admin");
    let mine = export_as(&ann, "ws_org", "organization", true).await;
    assert_eq!(table_names(mine.ok()), ["cells_p_all", "cells_p_ann", "datasources_p_ann", "projects_ws_org"]);
    for (who, include_secrets) in [(&bob, false), (&carol, true)] {
        let theirs = export_as(who, "ws_org", "organization", include_secrets).await;
        let data = theirs.ok();
        assert_eq!(project_ids(data), ["p_all"], "{}", who.user);
        assert_eq!(table_names(data), ["cells_p_all", "projects_ws_org"], "{}", who.user);
        let ids: Vec<&Value> = rows_of(data, "projects_ws_org").iter().map(|r| &r["project_id"]).collect();
        assert_eq!(ids, [&json!("p_all")], "the projects table has no row of ann's private project");
        assert!(!theirs.bytes.windows(10).any(|w| w == b"ann-s3cret"), "no secret of ann's leaks");
        assert!(!String::from_utf8_lossy(&theirs.bytes).contains("p_ann"), "not even its id");
        assert_eq!(data["summary"]["projects_found"], 1);
        assert_eq!(data["summary"]["total_rows"], 2, "one project row and one cell: {}", data["summary"]);
    }
}

async fn import_never_touches_another_members_private_project(h: &Harness) {
    let (ann, bob) = ann_private_project(h).await;
    let first = export_as(&ann, "ws_org", "organization", true).await.ok().clone();
    let attacks = vec![
        // Overwrite its row (author, name, scope)...
        bundle("ws_org", vec![], vec![("projects_ws_org".into(), projects_table(&[("p_ann", "bob", "organization")]))]),
        // ... or its tables ...
        bundle("ws_org", vec![("p_ann", vec![("cells_p_ann".into(), table("id", &["a1"]))])], vec![]),
        // ... or a new table of it, from a bundle of another workspace.
        bundle("elsewhere", vec![("p_ann", vec![("notes_p_ann".into(), table("id", &["n"]))])], vec![]),
    ];
    for attack in attacks {
        let before = export_as(&ann, "ws_org", "organization", true).await.ok().clone();
        let answer = import_as(&bob, attack.clone(), "ws_org", "organization", false).await;
        answer.assert_error(409, "p_ann");
        assert!(answer.message().contains("force_new_id"), "{}", answer.message());
        let now = export_as(&ann, "ws_org", "organization", true).await.ok().clone();
        assert!(normalized(now, "ws_org") == normalized(before, "ws_org"), "nothing written");
        // As new projects it is fine, and ann's stays as it was.
        let copied = import_as(&bob, attack, "ws_org", "organization", true).await;
        let new_id = copied.ok()["projects_imported"]
            .as_object()
            .and_then(|m| m.values().next())
            .map(|p| p["new_project_id"].clone());
        assert!(new_id.is_none_or(|id| id != "p_ann"));
    }
    let after = export_as(&ann, "ws_org", "organization", true).await;
    for name in ["cells_p_ann", "datasources_p_ann"] {
        assert_eq!(rows_of(after.ok(), name), rows_of(&first, name), "{name} untouched");
    }
    let row =
        ann.get(Endpoint::LoadProject, "/projects/ws_org/load?project_id=p_ann&workspace_scope=organization").await;
    assert_eq!((&row.ok()["author"], &row.ok()["scope"]), (&json!("ann"), &json!("user")));
    // And bob still cannot delete it.
    let body = json!({"project": {"id": "p_ann"}});
    bob.post(Endpoint::CleanupProject, "/projects/ws_org/cleanup?workspace_scope=organization", body)
        .await
        .assert_error(404, "p_ann");
}

async fn a_bundles_author_is_not_trusted(h: &Harness) {
    let bob = Client::new(&h.app, "acme", "bob");
    save_ws(&bob, "ws_org2", "organization").await;
    let forged = bundle("x", vec![], vec![("projects_x".into(), projects_table(&[("p_new", "ann", "user")]))]);
    import_as(&bob, forged, "ws_org2", "organization", false).await.ok();
    let row =
        bob.get(Endpoint::LoadProject, "/projects/ws_org2/load?project_id=p_new&workspace_scope=organization").await;
    assert_eq!(row.ok()["author"], "bob", "a new project is the importer's, whatever the bundle says");
}

// ---- defect 3: a redacted secret stays bound to its row ----

async fn a_redacted_secret_cannot_be_repointed(h: &Harness) {
    let c = Client::new(&h.app, "acme", "ann");
    let mut ds = table("datasource_id", &["d1"]);
    for col in ["host", "password"] {
        ds["schema"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": col, "type": "text", "nullable": "YES", "default": null}));
    }
    ds["data"][0]["host"] = json!("db.internal");
    ds["data"][0]["password"] = json!("s3cret");
    import_as(&c, bundle("ws_s", vec![], vec![("datasources_ws_s".into(), ds)]), "ws_s", "user", false).await.ok();
    let redacted = export_as(&c, "ws_s", "user", false).await.ok().clone();
    assert_eq!(redacted["tables"]["datasources_ws_s"]["data"][0]["password"], "**redacted**");
    // Same row back: the stored password stays.
    import_as(&c, redacted.clone(), "ws_s", "user", false).await.ok();
    let clear = export_as(&c, "ws_s", "user", true).await;
    assert_eq!(clear.ok()["tables"]["datasources_ws_s"]["data"][0]["password"], "s3cret");
    // Pointed at another host: refused, naming the field, nothing written.
    let mut repointed = redacted.clone();
    repointed["tables"]["datasources_ws_s"]["data"][0]["host"] = json!("evil.example");
    import_as(&c, repointed, "ws_s", "user", false).await.assert_error(422, "password");
    let clear = export_as(&c, "ws_s", "user", true).await;
    assert_eq!(clear.ok()["tables"]["datasources_ws_s"]["data"][0]["host"], "db.internal");
    assert_eq!(clear.ok()["tables"]["datasources_ws_s"]["data"][0]["password"], "s3cret");
    // The same, hidden in the middle copy of a workspace table a bundle repeats in three
    // projects (a copy that is neither the first nor the last of its key is still checked).
    let table = redacted["tables"]["datasources_ws_s"].clone();
    let mut middle = table.clone();
    middle["data"][0]["host"] = json!("evil.example");
    let copies = [("p1", table.clone()), ("p2", middle), ("p3", table)];
    let projects = copies.into_iter().map(|(pid, t)| (pid, vec![("datasources_ws_s".to_owned(), t)])).collect();
    import_as(&c, bundle("ws_s", projects, vec![]), "ws_s", "user", false).await.assert_error(422, "password");
    let clear = export_as(&c, "ws_s", "user", true).await;
    assert_eq!(clear.ok()["tables"]["datasources_ws_s"]["data"][0]["host"], "db.internal");
    assert_eq!(clear.ok()["tables"]["datasources_ws_s"]["data"][0]["password"], "s3cret");
}

// ---- defect 6: limits, before anything is written ----

async fn bundle_limits_are_422_and_write_nothing(h: &Harness) {
    let c = Client::new(&h.app, "acme", "ann");
    let wide = |columns: usize, type_len: usize| {
        let mut t = table("id", &["r"]);
        let cols = t["schema"].as_array_mut().unwrap();
        for i in 0..columns {
            cols.push(
                json!({"name": format!("c{i}"), "type": "t".repeat(type_len), "nullable": "YES", "default": null}),
            );
        }
        bundle("src", vec![], vec![("cells_src".into(), t)])
    };
    let many: Vec<(String, Value)> = (0..2001).map(|i| (format!("k{i}_src"), table("id", &[]))).collect();
    let long_name = json!({"workspace_id": "src", "tables": {}, "workspace": {"name": "n".repeat(257)}});
    let cases = [
        (wide(500, 8), "more than 500"),
        (wide(3, 129), "type: longer than 128"),
        (bundle("src", vec![], many), "2001 tables"),
        (long_name, "workspace.name"),
        (bundle("src", vec![("src", vec![])], vec![]), "equals the workspace id"),
    ];
    for (b, needle) in cases {
        import_as(&c, b, "ws_limits", "user", false).await.assert_error(422, needle);
        let owner = shared::model::Owner::user("acme", "ann");
        assert!(h.app.store.get_workspace(&owner, "ws_limits").await.unwrap().is_none(), "{needle}: nothing written");
    }
}

/// On DynamoDB each table's catalog entry is one item: a schema too big for it is refused
/// before anything is written (before, such an import wrote every row and then failed with a
/// 500), on both stores alike. Many wide tables, which one catalog item could not hold, fit.
async fn a_table_schema_too_big_for_one_item_is_413_and_writes_nothing(h: &Harness) {
    let c = Client::new(&h.app, "acme", "ann");
    let wide = |columns: usize, type_len: usize, default: Option<String>| {
        let mut t = table("id", &["r1", "r2"]);
        let cols = t["schema"].as_array_mut().unwrap();
        for j in 0..columns {
            cols.push(json!({"name": format!("column_{j}"), "type": "t".repeat(type_len), "nullable": "YES", "default": default}));
        }
        t
    };
    let many: Vec<(String, Value)> = (0..8).map(|i| (format!("wide{i}_src"), wide(400, 100, None))).collect();
    import_as(&c, bundle("src", vec![], many), "ws_wide", "user", false).await.ok();
    let owner = shared::model::Owner::user("acme", "ann");
    let ws = shared::tables::WsKey::new(owner.clone(), "ws_wide");
    assert_eq!(h.app.store.snapshot(&ws).await.unwrap().tables().len(), 8, "400 KB of schemas over 8 tables fit");

    let huge = vec![("huge_src".to_owned(), wide(450, 100, Some(format!("'{}'", "d".repeat(900)))))];
    import_as(&c, bundle("src", vec![], huge), "ws_big", "user", false).await.assert_error(413, "schema would take");
    assert!(h.app.store.get_workspace(&owner, "ws_big").await.unwrap().is_none());
    let ws = shared::tables::WsKey::new(owner, "ws_big");
    assert!(h.app.store.snapshot(&ws).await.unwrap().tables().is_empty());
}

// ---- defect 7: every answer our export gives imports ----

/// The contract's flow on a new workspace: save, export (nothing in it yet), import elsewhere.
async fn the_contracts_flow_works_on_a_new_empty_workspace(h: &Harness) {
    let c = Client::new(&h.app, "acme", "ann");
    let saved = c.post(Endpoint::SaveWorkspace, "/workspaces/save", json!({"name": "fresh", "description": "d"})).await;
    let id = saved.ok()["workspace_id"].as_str().unwrap().to_owned();
    let exported = export_as(&c, &id, "user", false).await;
    assert_eq!(exported.ok()["projects"], json!({}));
    assert_eq!(exported.ok()["tables"], json!({}));
    let answer = import_as(&c, exported.ok().clone(), "ws_fresh_copy", "user", false).await;
    assert_eq!(answer.ok()["summary"]["tables_created"], 0);
    let loaded = c.get(Endpoint::LoadWorkspace, "/workspaces/ws_fresh_copy/load").await;
    assert_eq!((&loaded.ok()["name"], &loaded.ok()["description"]), (&json!("fresh"), &json!("d")));
    // The whole envelope imports too.
    import_as(&c, exported.body.clone(), "ws_fresh_copy2", "user", false).await.ok();
}

/// What legitimately differs between two exports of equal content in workspaces `ws`.
fn normalized(mut data: Value, ws: &str) -> Value {
    if let Some(m) = data.as_object_mut() {
        for k in ["extraction_timestamp", "workspace", "workspace_id", "database_info"] {
            m.remove(k);
        }
    }
    for p in data["projects"].as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
        if let Some(m) = p.as_object_mut() {
            m.remove("extraction_timestamp");
            m.remove("database_info");
        }
    }
    let text = data.to_string().replace(&format!("_{ws}\""), "_WS\"");
    serde_json::from_str(&text).expect("json")
}

/// Property: for generated workspaces (empty, workspace tables only, projects without tables,
/// many projects, ids full of `_` and shared tails), export → import elsewhere → export gives
/// the same content. With `include_secrets`, so redaction does not blur the comparison.
async fn export_import_export_keeps_generated_workspaces_exactly(h: &Harness) {
    let c = Client::new(&h.app, "acme", "ann");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let tails = ["a", "b_a", "ws_a", "x.y", "p-1", "a_b_a", "q@r", "z+1"];
    for case in 0..6 {
        let ws = format!("ws_{}", tails[rng.gen_range(0..tails.len())]);
        let ws = format!("{ws}{case}");
        save_ws(&c, &ws, "user").await;
        let shape = case % 6;
        let project_count = match shape {
            0 | 1 => 0,
            2 => 2,
            _ => rng.gen_range(1..5),
        };
        let mut pids: Vec<String> = Vec::new();
        for i in 0..project_count {
            let pid = format!("{}{i}", tails[rng.gen_range(0..tails.len())]);
            let p = json!({"project": {"id": pid, "name": format!("p {i}"), "description": "d", "metadata": {"k": i}}});
            c.post(Endpoint::SaveProject, &format!("/projects/{ws}/save"), p).await.ok();
            pids.push(pid);
        }
        if shape == 1 || shape >= 3 {
            let mut projects = Vec::new();
            for pid in pids.iter().filter(|_| shape >= 3) {
                let t = table("id", &["r1", "r_2"]);
                projects.push((pid.as_str(), vec![(format!("cells_{pid}"), t)]));
            }
            let mut creds = table("datasource_id", &["d1"]);
            creds["schema"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "password", "type": "text", "nullable": "YES", "default": null}));
            creds["data"][0]["password"] = json!("pw");
            let top =
                vec![(format!("datasources_{ws}"), creds), (format!("concepts_{ws}"), table("predicate_name", &["c"]))];
            import_as(&c, bundle(&ws, projects, top), &ws, "user", false).await.ok();
        }
        let first = export_as(&c, &ws, "user", true).await.ok().clone();
        let copy = format!("copy_{case}");
        import_as(&c, first.clone(), &copy, "user", false).await.ok();
        let second = export_as(&c, &copy, "user", true).await.ok().clone();
        assert_eq!(
            normalized(second, &copy),
            normalized(first.clone(), &ws),
            "case {case}: workspace {ws}, projects {pids:?}"
        );
        assert_eq!(project_ids(&first).len(), pids.len(), "case {case}: every project exported");
    }
}

async fn projects_list_pages_like_the_workspaces_list(h: &Harness) {
    let c = Client::new(&h.app, "acme", "ann");
    save_ws(&c, "ws_many", "user").await;
    for i in 0..5 {
        let p = json!({"project": {"id": format!("p{i}"), "name": format!("p{i}")}});
        c.post(Endpoint::SaveProject, "/projects/ws_many/save", p).await.ok();
    }
    let mut seen = Vec::new();
    let mut url = "/projects/ws_many/list?limit=2".to_owned();
    for _ in 0..5 {
        let page = c.get(Endpoint::ListProjects, &url).await;
        seen.extend(page.ok().as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page.body.get("next_token").and_then(Value::as_str) {
            Some(token) => url = format!("/projects/ws_many/list?limit=2&next_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen, ["p4", "p3", "p2", "p1", "p0"], "newest first, each once");
    let all = c.get(Endpoint::ListProjects, "/projects/ws_many/list").await;
    assert_eq!(all.ok().as_array().unwrap().len(), 5, "complete without a limit");
    assert!(all.body.get("next_token").is_none());
    c.get(Endpoint::ListProjects, "/projects/ws_many/list?limit=0").await.assert_error(400, "limit");
    c.get(Endpoint::ListProjects, "/projects/ws_many/list?next_token=%%").await.assert_error(400, "next_token");
}
