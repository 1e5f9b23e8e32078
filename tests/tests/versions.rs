//! Per-object versions (`shared::api::versions`): load answers `version` and an `ETag`, a save
//! naming a stale version (body `version` or `If-Match`) is 409 `conflict` and changes nothing,
//! a save naming none works as before; a project's version is its own, never the workspace's or
//! another project's. On both backends; DynamoDB through a serialised proxy, since moto does not
//! make one conditional write atomic under concurrent requests (DynamoDB does).

use std::collections::HashSet;
use std::sync::Arc;

use blackbox_tests::counting_proxy::CountingProxy;
use blackbox_tests::{
    aws_endpoint, harness, harness_with_dynamodb_endpoint, sample_bundle, Answer, Backend, Client, Harness,
};
use serde_json::{json, Value};
use shared::routes::Endpoint;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
            if let Some(h) = super::harness(super::Backend::Embedded, stringify!($case), &[]).await {
                super::$case(std::sync::Arc::new(h)).await
            }
        })* }
        mod aws { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
            let Some(moto) = super::aws_endpoint("AWS_ENDPOINT_URL_DYNAMODB", stringify!($case), "dynamodb") else { return };
            let proxy = super::CountingProxy::start_serialised(&moto).await.expect("proxy");
            if let Some(h) = super::harness_with_dynamodb_endpoint(stringify!($case), &[], proxy.url()).await {
                super::$case(std::sync::Arc::new(h)).await
            }
        })* }
    };
}

on_both_backends!(
    workspace_load_answers_its_version_and_saves_check_it,
    bad_version_preconditions_are_400,
    project_load_answers_its_version_and_saves_check_it,
    versions_belong_to_one_object,
    concurrent_workspace_saves_naming_one_version_have_one_winner,
    concurrent_workspace_writers_that_reload_and_retry_all_land,
    concurrent_project_saves_naming_one_version_have_one_winner,
    concurrent_project_writers_that_reload_and_retry_all_land,
    imports_never_take_a_bundles_version,
    a_dynamodb_item_from_before_versions_counts_as_version_1,
);

const WRITERS: usize = 50;
const PROJECT_WRITERS: usize = 12;

fn ann(h: &Harness) -> Client<'_> {
    Client::new(&h.app, "devorg", "ann")
}

async fn save_ws(c: &Client<'_>, body: Value, if_match: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = if_match.map(|v| vec![("if-match", v)]).unwrap_or_default();
    c.call_with_headers(Endpoint::SaveWorkspace, "POST", "/workspaces/save", Some(&body), &headers).await
}

async fn load_ws(c: &Client<'_>, id: &str) -> Answer {
    c.get(Endpoint::LoadWorkspace, &format!("/workspaces/{id}/load")).await
}

async fn save_project(c: &Client<'_>, ws: &str, project: Value, if_match: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = if_match.map(|v| vec![("if-match", v)]).unwrap_or_default();
    let body = json!({ "project": project });
    c.call_with_headers(Endpoint::SaveProject, "POST", &format!("/projects/{ws}/save"), Some(&body), &headers).await
}

async fn load_project(c: &Client<'_>, ws: &str, id: &str) -> Answer {
    c.get(Endpoint::LoadProject, &format!("/projects/{ws}/load?project_id={id}")).await
}

/// A successful answer's version, checked against its `ETag`.
#[track_caller]
fn version_of(a: &Answer) -> u64 {
    let version = a.ok()["version"].as_u64().unwrap_or_else(|| panic!("no version in {}", a.body));
    assert_eq!(a.header("etag"), Some(format!("\"{version}\"").as_str()), "ETag of {}", a.body);
    version
}

async fn workspace_load_answers_its_version_and_saves_check_it(h: Arc<Harness>) {
    let c = ann(&h);
    let created = save_ws(&c, json!({"id": "ws_v", "name": "one"}), None).await;
    assert_eq!(created.ok()["workspace_id"], "ws_v");
    assert_eq!(version_of(&created), 1, "created at 1");
    let loaded = load_ws(&c, "ws_v").await;
    assert_eq!(version_of(&loaded), 1);

    // The current version, in the body and as If-Match (quoted as the ETag, and bare): each bumps it.
    assert_eq!(version_of(&save_ws(&c, json!({"id": "ws_v", "name": "two", "version": 1}), None).await), 2);
    assert_eq!(version_of(&save_ws(&c, json!({"id": "ws_v", "name": "three"}), Some("\"2\"")).await), 3);
    assert_eq!(version_of(&save_ws(&c, json!({"id": "ws_v", "name": "four"}), Some("3")).await), 4);
    // What load answers saves back as it is, and is then conditional.
    let mut loaded = load_ws(&c, "ws_v").await.ok().clone();
    loaded["name"] = json!("five");
    assert_eq!(version_of(&save_ws(&c, loaded.clone(), None).await), 5);

    // Stale: 409 conflict naming both versions, nothing changed.
    let before = load_ws(&c, "ws_v").await.ok().clone();
    let stale = save_ws(&c, loaded, None).await;
    stale.assert_error(409, "workspace 'ws_v' is at version 5, not 4");
    assert!(stale.header("etag").is_none());
    save_ws(&c, json!({"id": "ws_v", "name": "x"}), Some("\"1\"")).await.assert_error(409, "not 1");
    save_ws(&c, json!({"id": "ws_v", "name": "x", "version": 0}), None).await.assert_error(409, "not 0");
    assert_eq!(load_ws(&c, "ws_v").await.ok(), &before, "a refused save changes nothing");

    // No version: as before, and it still counts.
    assert_eq!(version_of(&save_ws(&c, json!({"id": "ws_v", "name": "six"}), None).await), 6);
    // `*`: it must exist.
    assert_eq!(version_of(&save_ws(&c, json!({"id": "ws_v", "name": "seven"}), Some("*")).await), 7);
    save_ws(&c, json!({"id": "ws_new", "name": "n"}), Some("*")).await.assert_error(409, "ws_new");
    // A version for a workspace that is not there: 409, and it is not created.
    save_ws(&c, json!({"id": "ws_new", "name": "n", "version": 1}), None).await.assert_error(409, "does not exist");
    save_ws(&c, json!({"id": "ws_new", "name": "n"}), Some("\"1\"")).await.assert_error(409, "ws_new");
    load_ws(&c, "ws_new").await.assert_error(404, "ws_new");
    // Same id, other scope: another object with its own version.
    let org = save_ws(&c, json!({"id": "ws_v", "name": "org", "scope": "organization"}), None).await;
    assert_eq!(version_of(&org), 1);
    // Lists carry each workspace's version.
    let list = c.get(Endpoint::ListWorkspaces, "/workspaces/list").await;
    let items = list.ok().as_array().expect("a list").clone();
    assert_eq!(items.iter().find(|w| w["id"] == "ws_v").map(|w| w["version"].clone()), Some(json!(7)));
}

async fn bad_version_preconditions_are_400(h: Arc<Harness>) {
    let c = ann(&h);
    save_ws(&c, json!({"id": "ws_b", "name": "b"}), None).await.ok();
    save_project(&c, "ws_b", json!({"id": "p", "name": "p"}), None).await.ok();
    for bad in ["W/\"1\"", "\"1\", \"2\"", "one", "\"1", "-1", ""] {
        save_ws(&c, json!({"id": "ws_b", "name": "x"}), Some(bad)).await.assert_error(400, "If-Match");
        save_project(&c, "ws_b", json!({"id": "p", "name": "x"}), Some(bad)).await.assert_error(400, "If-Match");
    }
    // Body and header disagreeing: no object is at both, a 409 naming both.
    let both = save_ws(&c, json!({"id": "ws_b", "name": "x", "version": 1}), Some("\"2\"")).await;
    both.assert_error(409, "version");
    assert!(both.message().contains('1') && both.message().contains('2'), "{}", both.message());
    save_project(&c, "ws_b", json!({"id": "p", "name": "x", "version": 1}), Some("2"))
        .await
        .assert_error(409, "version");
    // Past the document's int64: 400, on save and (though it ignores it) on cleanup.
    let huge = json!(u64::MAX);
    save_ws(&c, json!({"id": "ws_b", "name": "x", "version": huge}), None).await.assert_error(400, "largest version");
    c.post(Endpoint::CleanupProject, "/projects/ws_b/cleanup", json!({"project": {"id": "p", "version": huge}}))
        .await
        .assert_error(400, "largest version");
    // Agreeing is fine.
    assert_eq!(version_of(&save_ws(&c, json!({"id": "ws_b", "name": "x", "version": 1}), Some("\"1\"")).await), 2);
    for body in [json!("3"), json!(-1), json!(1.5)] {
        save_ws(&c, json!({"id": "ws_b", "name": "x", "version": body}), None).await.assert_error(400, "version");
    }
    assert_eq!(version_of(&load_ws(&c, "ws_b").await), 2, "nothing a 400 refused was written");
    assert_eq!(version_of(&load_project(&c, "ws_b", "p").await), 1);
}

async fn project_load_answers_its_version_and_saves_check_it(h: Arc<Harness>) {
    let c = ann(&h);
    save_ws(&c, json!({"id": "ws_p", "name": "p"}), None).await.ok();
    let created = save_project(&c, "ws_p", json!({"id": "p1", "name": "one"}), None).await;
    assert_eq!(created.ok()["project_id"], "p1");
    assert_eq!(version_of(&created), 1);
    assert_eq!(version_of(&load_project(&c, "ws_p", "p1").await), 1);
    assert_eq!(version_of(&save_project(&c, "ws_p", json!({"id": "p1", "name": "two", "version": 1}), None).await), 2);
    assert_eq!(version_of(&save_project(&c, "ws_p", json!({"id": "p1", "name": "three"}), Some("\"2\"")).await), 3);
    // Load's answer saves back as is.
    let mut loaded = load_project(&c, "ws_p", "p1").await.ok().clone();
    loaded["name"] = json!("four");
    assert_eq!(version_of(&save_project(&c, "ws_p", loaded.clone(), None).await), 4);

    let before = load_project(&c, "ws_p", "p1").await.ok().clone();
    save_project(&c, "ws_p", loaded, None).await.assert_error(409, "project 'p1' is at version 4, not 3");
    save_project(&c, "ws_p", json!({"id": "p1", "name": "x"}), Some("\"2\"")).await.assert_error(409, "not 2");
    assert_eq!(load_project(&c, "ws_p", "p1").await.ok(), &before, "a refused save changes nothing");

    assert_eq!(version_of(&save_project(&c, "ws_p", json!({"id": "p1", "name": "five"}), None).await), 5);
    assert_eq!(version_of(&save_project(&c, "ws_p", json!({"id": "p1", "name": "six"}), Some("*")).await), 6);
    save_project(&c, "ws_p", json!({"id": "p_new", "name": "n"}), Some("*")).await.assert_error(409, "p_new");
    save_project(&c, "ws_p", json!({"id": "p_new", "name": "n", "version": 1}), None)
        .await
        .assert_error(409, "does not exist");
    load_project(&c, "ws_p", "p_new").await.assert_error(404, "p_new");
    // The list shows versions; the export carries the column as stored.
    let list = c.get(Endpoint::ListProjects, "/projects/ws_p/list").await;
    assert_eq!(list.ok()[0]["version"], 6);
    let exported =
        c.post(Endpoint::ExportTables, "/workspaces/ws_p/export-tables", json!({})).await.ok()["tables"].clone();
    let table = &exported["projects_ws_p"];
    assert!(table["schema"].as_array().expect("schema").iter().any(|col| col["name"] == "version"), "{table}");
    assert_eq!(table["data"][0]["version"], 6, "{table}");
}

async fn versions_belong_to_one_object(h: Arc<Harness>) {
    let c = ann(&h);
    save_ws(&c, json!({"id": "ws_o", "name": "o"}), None).await.ok();
    assert_eq!(version_of(&save_project(&c, "ws_o", json!({"id": "a", "name": "a"}), None).await), 1);
    assert_eq!(version_of(&save_project(&c, "ws_o", json!({"id": "b", "name": "b"}), None).await), 1);
    // A saved several times; B's version 1 is still current.
    for v in 1..=3 {
        save_project(&c, "ws_o", json!({"id": "a", "name": format!("a{v}"), "version": v}), None).await.ok();
    }
    assert_eq!(version_of(&save_project(&c, "ws_o", json!({"id": "b", "name": "b2", "version": 1}), None).await), 2);
    // Project saves leave the workspace's version alone, and workspace saves the projects'.
    assert_eq!(version_of(&load_ws(&c, "ws_o").await), 1);
    assert_eq!(version_of(&save_ws(&c, json!({"id": "ws_o", "name": "o2", "version": 1}), None).await), 2);
    assert_eq!(version_of(&save_project(&c, "ws_o", json!({"id": "a", "name": "a4"}), Some("\"4\"")).await), 5);
    assert_eq!(version_of(&load_project(&c, "ws_o", "b").await), 2);
}

/// `WRITERS` concurrent saves all naming version `start`: one applies, every other is a 409 and
/// the stored record is the winner's.
async fn concurrent_workspace_saves_naming_one_version_have_one_winner(h: Arc<Harness>) {
    let c = ann(&h);
    save_ws(&c, json!({"id": "ws_race", "name": "start"}), None).await.ok();
    let start = version_of(&save_ws(&c, json!({"id": "ws_race", "name": "start", "version": 1}), None).await);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let c = ann(&h);
                let body = json!({"id": "ws_race", "name": format!("writer {i}"), "version": start});
                let a = save_ws(&c, body, None).await;
                (i, a.status, a.body)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.expect("writer task");
        match status {
            200 => winners.push((i, body)),
            409 => {
                assert_eq!(body["status"], "conflict", "{body}");
                assert_eq!(body["data"], Value::Null, "{body}");
            }
            other => panic!("writer {i}: {other} {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of {WRITERS} wins: {winners:?}");
    let (winner, answer) = &winners[0];
    assert_eq!(answer["data"]["version"], start + 1);
    let stored = load_ws(&c, "ws_race").await;
    assert_eq!(stored.ok()["name"], format!("writer {winner}"));
    assert_eq!(version_of(&stored), start + 1);
}

/// `WRITERS` concurrent writers, each adding its own key to the metadata by load → modify →
/// save with the loaded version, again on a 409: all land, one version each.
async fn concurrent_workspace_writers_that_reload_and_retry_all_land(h: Arc<Harness>) {
    let c = ann(&h);
    let start = version_of(&save_ws(&c, json!({"id": "ws_many", "name": "many"}), None).await);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let c = ann(&h);
                for attempt in 0..10 * WRITERS {
                    let mut ws = load_ws(&c, "ws_many").await.ok().clone();
                    ws["metadata"][format!("w{i}")] = json!(i);
                    let saved = save_ws(&c, ws, None).await;
                    match saved.status {
                        200 => return attempt,
                        409 => assert_eq!(saved.body["status"], "conflict", "{}", saved.body),
                        other => panic!("writer {i}: {other} {}", saved.body),
                    }
                }
                panic!("writer {i} never got its save in");
            })
        })
        .collect();
    let mut retries = 0;
    for task in tasks {
        retries += task.await.expect("writer task");
    }
    let stored = load_ws(&c, "ws_many").await;
    assert_eq!(version_of(&stored), start + WRITERS as u64, "one version per accepted write");
    let keys: HashSet<&String> = stored.ok()["metadata"].as_object().expect("metadata").keys().collect();
    assert_eq!(keys.len(), WRITERS, "every accepted write is reflected: {keys:?}");
    assert!(retries > 0, "the writers did race");
}

async fn concurrent_project_saves_naming_one_version_have_one_winner(h: Arc<Harness>) {
    let c = ann(&h);
    save_ws(&c, json!({"id": "ws_pr", "name": "pr"}), None).await.ok();
    let start = version_of(&save_project(&c, "ws_pr", json!({"id": "p", "name": "start"}), None).await);
    // A bystander project, saved during the race with its own version: never stale because of it.
    save_project(&c, "ws_pr", json!({"id": "other", "name": "other"}), None).await.ok();
    let bystander = {
        let h = h.clone();
        tokio::spawn(async move {
            let c = ann(&h);
            let mut version = 1;
            for n in 0..3 {
                let a = save_project(
                    &c,
                    "ws_pr",
                    json!({"id": "other", "name": format!("o{n}"), "version": version}),
                    None,
                )
                .await;
                version = version_of(&a);
            }
            version
        })
    };
    let tasks: Vec<_> = (0..PROJECT_WRITERS)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let c = ann(&h);
                let a = save_project(
                    &c,
                    "ws_pr",
                    json!({"id": "p", "name": format!("writer {i}"), "version": start}),
                    None,
                )
                .await;
                (i, a.status, a.body)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.expect("writer task");
        match status {
            200 => winners.push(i),
            409 => assert_eq!(body["status"], "conflict", "{body}"),
            other => panic!("writer {i}: {other} {body}"),
        }
    }
    assert_eq!(bystander.await.expect("bystander"), 4);
    assert_eq!(winners.len(), 1, "exactly one of {PROJECT_WRITERS} wins: {winners:?}");
    let stored = load_project(&c, "ws_pr", "p").await;
    assert_eq!(stored.ok()["name"], format!("writer {}", winners[0]));
    assert_eq!(version_of(&stored), start + 1);
}

async fn concurrent_project_writers_that_reload_and_retry_all_land(h: Arc<Harness>) {
    let c = ann(&h);
    save_ws(&c, json!({"id": "ws_pm", "name": "pm"}), None).await.ok();
    let start = version_of(&save_project(&c, "ws_pm", json!({"id": "p", "name": "p"}), None).await);
    let tasks: Vec<_> = (0..PROJECT_WRITERS)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let c = ann(&h);
                for _ in 0..20 * PROJECT_WRITERS {
                    let mut p = load_project(&c, "ws_pm", "p").await.ok().clone();
                    p["metadata"][format!("w{i}")] = json!(i);
                    let saved = save_project(&c, "ws_pm", p, None).await;
                    match saved.status {
                        200 => return,
                        409 => assert_eq!(saved.body["status"], "conflict", "{}", saved.body),
                        other => panic!("writer {i}: {other} {}", saved.body),
                    }
                }
                panic!("writer {i} never got its save in");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    let stored = load_project(&c, "ws_pm", "p").await;
    assert_eq!(version_of(&stored), start + PROJECT_WRITERS as u64);
    assert_eq!(stored.ok()["metadata"].as_object().expect("metadata").len(), PROJECT_WRITERS);
}

async fn import(c: &Client<'_>, export_data: Value, workspace_id: &str) -> Answer {
    let body = json!({"export_data": export_data, "workspace_id": workspace_id, "scope": "user"});
    c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await
}

async fn imports_never_take_a_bundles_version(h: Arc<Harness>) {
    let c = Client::new(&h.app, "devorg", "devuser");
    // The platform's bundle has no version column: its projects start at 1, and import again
    // unchanged, they stay there.
    import(&c, sample_bundle(), "ws_i").await.ok();
    assert_eq!(version_of(&load_project(&c, "ws_i", "1e0e4e01aa8").await), 1);
    assert_eq!(version_of(&load_ws(&c, "ws_i").await), 1, "the workspace an import creates");
    import(&c, sample_bundle(), "ws_i").await.ok();
    assert_eq!(version_of(&load_project(&c, "ws_i", "1e0e4e01aa8").await), 1, "nothing changed");
    // A row from before versions counts as 1.
    assert_eq!(
        version_of(
            &save_project(&c, "ws_i", json!({"id": "1e0e4e01aa8", "name": "renamed", "version": 1}), None).await
        ),
        2
    );
    // Our export carries the stored version; a bundle claiming another is not believed.
    let exported = c.post(Endpoint::ExportTables, "/workspaces/ws_i/export-tables", json!({})).await.ok().clone();
    let mut claimed = exported.clone();
    let table = claimed["tables"]["projects_ws_i"]["data"].as_array_mut().expect("projects rows");
    let row = table.iter_mut().find(|r| r["project_id"] == "1e0e4e01aa8").expect("the project");
    assert_eq!(row["version"], 2);
    row["version"] = json!(99);
    import(&c, claimed.clone(), "ws_i").await.ok();
    assert_eq!(version_of(&load_project(&c, "ws_i", "1e0e4e01aa8").await), 2, "only the claimed version differs");
    let row = claimed["tables"]["projects_ws_i"]["data"]
        .as_array_mut()
        .and_then(|rows| rows.iter_mut().find(|r| r["project_id"] == "1e0e4e01aa8"))
        .expect("the project");
    row["name"] = json!("changed by the import");
    import(&c, claimed.clone(), "ws_i").await.ok();
    let loaded = load_project(&c, "ws_i", "1e0e4e01aa8").await;
    assert_eq!((loaded.ok()["name"].clone(), version_of(&loaded)), (json!("changed by the import"), 3));
    // Into another workspace: new projects, at 1 whatever the bundle says.
    import(&c, claimed, "ws_j").await.ok();
    assert_eq!(version_of(&load_project(&c, "ws_j", "1e0e4e01aa8").await), 1);
}

/// DynamoDB only: an item written before versions (no `version` attribute) is at 1; its first
/// save, named or not, makes it 2.
async fn a_dynamodb_item_from_before_versions_counts_as_version_1(h: Arc<Harness>) {
    let shared::config::StoreUrl::DynamoDb { table } = &h.app.config.store else { return };
    let c = ann(&h);
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let strip = |id: &'static str| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            client
                .update_item()
                .table_name(table)
                .key("PK", aws_sdk_dynamodb::types::AttributeValue::S("org#devorg#user#ann".into()))
                .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(format!("ws#{id}")))
                .update_expression("REMOVE #v")
                .expression_attribute_names("#v", "version")
                .send()
                .await
                .expect("removing the version attribute");
        }
    };
    for id in ["old_named", "old_unnamed"] {
        save_ws(&c, json!({"id": id, "name": "old"}), None).await.ok();
        strip(id).await;
        assert_eq!(version_of(&load_ws(&c, id).await), 1);
    }
    save_ws(&c, json!({"id": "old_named", "name": "x", "version": 2}), None)
        .await
        .assert_error(409, "version 1, not 2");
    assert_eq!(version_of(&save_ws(&c, json!({"id": "old_named", "name": "x", "version": 1}), None).await), 2);
    assert_eq!(version_of(&save_ws(&c, json!({"id": "old_unnamed", "name": "x"}), None).await), 2);
    save_ws(&c, json!({"id": "old_unnamed", "name": "x", "version": 1}), None).await.assert_error(409, "not 1");
}

/// A SQLite file from before versions opens with every workspace at 1.
#[tokio::test]
async fn a_sqlite_file_from_before_versions_opens_at_version_1() {
    use adapter_sqlite::SqliteStore;
    use shared::model::{now_timestamp, Owner, Scope, WorkspaceDraft};
    use shared::store::{StoreError, Workspaces};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("old file");
        conn.execute_batch(
            "CREATE TABLE workspaces (owner TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
                 metadata TEXT NOT NULL, scope TEXT NOT NULL, author TEXT NOT NULL, updated_by TEXT NOT NULL,
                 created_at TEXT NOT NULL, updated_at TEXT NOT NULL, list_key TEXT NOT NULL,
                 PRIMARY KEY (owner, id)) WITHOUT ROWID;
             INSERT INTO workspaces VALUES ('org#o#user#u', 'ws_old', 'old', NULL, '{}', 'user', 'u', 'u',
                 '2024-01-01T00:00:00.000000+00:00', '2024-01-01T00:00:00.000000+00:00',
                 '2024-01-01T00:00:00.000000+00:00#user#ws_old');",
        )
        .expect("old schema");
    }
    let store = SqliteStore::open(&path).expect("opening an old file");
    let owner = Owner::user("o", "u");
    let got = store.get_workspace(&owner, "ws_old").await.expect("get").expect("the old workspace");
    assert_eq!(got.version, 1);
    let draft = |expected| WorkspaceDraft {
        id: "ws_old".into(),
        name: "new".into(),
        description: None,
        metadata: Default::default(),
        scope: Scope::User,
        writer: "u".into(),
        now: now_timestamp(),
        expected_version: expected,
    };
    match store.save_workspace(&owner, draft(Some(2))).await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, "workspace 'ws_old' is at version 1, not 2; reload it and retry"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.save_workspace(&owner, draft(Some(1))).await.expect("save").version, 2);
    assert_eq!(store.save_workspace(&owner, draft(None)).await.expect("save").version, 3);
    drop(store);
    // Opened again (the column is there now): unchanged.
    let store = SqliteStore::open(&path).expect("reopening");
    assert_eq!(store.get_workspace(&owner, "ws_old").await.expect("get").map(|w| w.version), Some(3));
}
