//! Handler tests for save / list / load, through the same edge Lambda uses.

mod common;

use common::{app, app_with, jwt_config, Client};
use serde_json::{json, Value};
use shared::routes::Endpoint;

#[tokio::test]
async fn save_without_id_creates_and_answers_the_contract_envelope() {
    let app = app();
    let ann = Client::new(&app, "my-org", "my-user");
    let a = ann
        .save(json!({"name": "Financial Analysis Workspace", "description": "Workspace for financial data analysis",
                     "metadata": {"department": "finance", "created_by": "analyst_team"}}))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["status"], "success");
    assert_eq!(a.body["message"], "Workspace saved successfully");
    let id = a.body["data"]["workspace_id"].as_str().unwrap();
    assert!(id.starts_with("ws_") && id.len() > 10, "{id}");
    // Keys in the contract's order.
    let keys: Vec<_> = a.body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["data", "message", "status"]);

    let loaded = ann.load(id, "user").await;
    assert_eq!(loaded.status, 200);
    let ws = &loaded.body["data"];
    assert_eq!(ws["id"], id);
    assert_eq!(ws["name"], "Financial Analysis Workspace");
    assert_eq!(ws["metadata"]["department"], "finance");
    assert_eq!(ws["scope"], "user");
    assert_eq!(ws["author"], "my-user");
    assert_eq!(ws["created_at"], ws["updated_at"]);
}

#[tokio::test]
async fn null_id_is_the_same_as_no_id() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let a = ann.save_ok(json!({"id": null, "name": "n"})).await;
    let b = ann.save_ok(json!({"id": null, "name": "n"})).await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn known_id_updates_in_place_and_unknown_id_creates_with_it() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let id = ann.save_ok(json!({"id": "ws_mine", "name": "first", "metadata": {"v": 1}})).await;
    assert_eq!(id, "ws_mine");
    let first = ann.load("ws_mine", "user").await.body["data"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    ann.save_ok(json!({"id": "ws_mine", "name": "second", "description": "d", "metadata": {"v": 2}})).await;
    let second = ann.load("ws_mine", "user").await.body["data"].clone();
    assert_eq!(second["name"], "second");
    assert_eq!(second["description"], "d");
    assert_eq!(second["metadata"], json!({"v": 2}));
    assert_eq!(second["created_at"], first["created_at"]);
    assert!(second["updated_at"].as_str() > first["updated_at"].as_str());
    let all = ann.list("").await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 1, "an update must not duplicate");
}

#[tokio::test]
async fn a_loaded_workspace_sent_back_saves_fine() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let id = ann.save_ok(json!({"name": "round trip", "metadata": {"a": [1, 2]}})).await;
    let mut loaded = ann.load(&id, "user").await.body["data"].clone();
    loaded["name"] = json!("renamed");
    let again = ann.save_ok(loaded).await;
    assert_eq!(again, id);
    assert_eq!(ann.load(&id, "user").await.body["data"]["name"], "renamed");
}

#[tokio::test]
async fn invalid_saves_are_400_naming_the_problem_and_write_nothing() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let cases: Vec<(&str, &str)> = vec![
        (r#"{"description": "no name"}"#, "name"),
        (r#"{"name": "   "}"#, "name"),
        (r#"{"name": 42}"#, "name"),
        (r#"{"name": "n", "metadata": [1]}"#, "metadata"),
        (r#"{"name": "n", "metadata": "x"}"#, "metadata"),
        (r#"{"name": "n", "description": 5}"#, "description"),
        (r#"{"name": "n", "scope": "galaxy"}"#, "scope"),
        (r#"{"name": "n", "id": "a#b"}"#, "id"),
        (r#"{"name": "n", "id": 7}"#, "id"),
        (r#"{"name": "n""#, "JSON"),
        (r#"[{"name": "n"}]"#, "object"),
        ("", "body"),
    ];
    for (body, needle) in cases {
        let a = ann.call(Endpoint::SaveWorkspace, "POST", "/workspaces/save", Some(body)).await;
        a.assert_error(400, needle);
    }
    assert_eq!(ann.list("?scopes=user,organization").await.body["data"], json!([]));
}

#[tokio::test]
async fn a_body_over_six_megabytes_is_413() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let big = json!({"name": "n", "description": "x".repeat(7 * 1024 * 1024)}).to_string();
    ann.call(Endpoint::SaveWorkspace, "POST", "/workspaces/save", Some(&big)).await.assert_error(413, "6 MB");
}

#[tokio::test]
async fn load_of_an_unknown_id_is_404() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    ann.load("ws_nope", "user").await.assert_error(404, "not found");
    ann.load("ws_nope", "planet").await.assert_error(400, "scope");
    ann.load("bad%23id", "user").await.assert_error(400, "workspace_id");
}

#[tokio::test]
async fn other_tenants_workspaces_look_exactly_like_missing_ones() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let bob = Client::new(&app, "acme", "bob");
    let eve = Client::new(&app, "evil", "ann");
    let id = ann.save_ok(json!({"id": "ws_shared_name", "name": "ann's"})).await;
    let missing = ann.load("ws_never", "user").await;
    for other in [&bob, &eve] {
        let a = other.load(&id, "user").await;
        assert_eq!(a.status, 404);
        assert_eq!(a.body["message"], missing.body["message"].as_str().unwrap().replace("ws_never", &id));
        assert_eq!(other.load(&id, "organization").await.status, 404);
        assert_eq!(other.list("?scopes=user,organization").await.body["data"], json!([]));
        // Saving with someone else's id creates the caller's own, never touches theirs.
        other.save_ok(json!({"id": id, "name": "intruder"})).await;
    }
    assert_eq!(ann.load(&id, "user").await.body["data"]["name"], "ann's");
    assert_eq!(bob.load(&id, "user").await.body["data"]["name"], "intruder");
}

#[tokio::test]
async fn organization_scope_is_shared_by_the_organization_only() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let bob = Client::new(&app, "acme", "bob");
    let eve = Client::new(&app, "evil", "eve");
    let id = ann.save_ok(json!({"name": "team", "scope": "organization"})).await;
    let seen = bob.load(&id, "organization").await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.body["data"]["author"], "ann");
    assert_eq!(seen.body["data"]["scope"], "organization");
    // Any member may write it; the author stays.
    bob.save_ok(json!({"id": id, "name": "team (bob)", "scope": "organization"})).await;
    let after = ann.load(&id, "organization").await.body["data"].clone();
    assert_eq!(
        (after["name"].as_str(), after["author"].as_str(), after["updated_by"].as_str()),
        (Some("team (bob)"), Some("ann"), Some("bob"))
    );
    // Not a user-scope workspace of anyone, and invisible to another org.
    assert_eq!(ann.load(&id, "user").await.status, 404);
    assert_eq!(eve.load(&id, "organization").await.status, 404);
}

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn list_is_newest_first_and_merges_scopes() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    for id in ["u1", "u2"] {
        ann.save_ok(json!({"id": id, "name": id})).await;
    }
    ann.save_ok(json!({"id": "o1", "name": "o1", "scope": "organization"})).await;
    ann.save_ok(json!({"id": "u1", "name": "u1 again"})).await; // moves to the top
    let user = ann.list("").await;
    assert_eq!(user.status, 200);
    assert_eq!(ids(&user.body), ["u1", "u2"]);
    assert_eq!(ids(&ann.list("?scope=user").await.body), ["u1", "u2"]);
    assert_eq!(ids(&ann.list("?scope=organization").await.body), ["o1"]);
    assert_eq!(ids(&ann.list("?scopes=user,organization").await.body), ["u1", "o1", "u2"]);
    let first = &user.body["data"][0];
    for field in ["id", "name", "description", "metadata", "scope", "author", "created_at", "updated_at"] {
        assert!(first.get(field).is_some(), "list items carry {field}");
    }
    assert!(user.body.get("next_token").is_none(), "a complete list has no next_token");
}

#[tokio::test]
async fn list_pages_by_limit_across_scopes_without_loss_or_repeats() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let mut expected = Vec::new();
    for i in 0..7 {
        let scope = if i % 2 == 0 { "user" } else { "organization" };
        expected.push(ann.save_ok(json!({"id": format!("ws_{i}"), "name": "n", "scope": scope})).await);
    }
    expected.reverse();
    let mut got = Vec::new();
    let mut query = "?scopes=user,organization&limit=3".to_owned();
    for _ in 0..10 {
        let page = ann.list(&query).await;
        assert_eq!(page.status, 200, "{}", page.body);
        got.extend(ids(&page.body));
        match page.body.get("next_token").and_then(Value::as_str) {
            Some(t) => {
                assert!(page.message().contains("next_token"));
                query = format!("?scopes=user,organization&limit=3&next_token={t}");
            }
            None => break,
        }
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_list_larger_than_the_response_limit_is_paged_and_says_so() {
    let app = app_with(jwt_config(), 4_000);
    let ann = Client::new(&app, "acme", "ann");
    for i in 0..12 {
        ann.save_ok(json!({"id": format!("w{i:02}"), "name": "x".repeat(200)})).await;
    }
    let first = ann.list("").await;
    let token = first.body["next_token"].as_str().expect("paged by size").to_owned();
    let n = first.body["data"].as_array().unwrap().len();
    assert!(n > 0 && n < 12, "{n}");
    assert!(serde_json::to_vec(&first.body).unwrap().len() <= 4_000);
    let mut total = n;
    let mut token = Some(token);
    while let Some(t) = token {
        let page = ann.list(&format!("?next_token={t}")).await;
        total += page.body["data"].as_array().unwrap().len();
        token = page.body.get("next_token").and_then(Value::as_str).map(str::to_owned);
    }
    assert_eq!(total, 12);
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    ann.list("?scope=everyone").await.assert_error(400, "scope");
    ann.list("?scopes=user,nobody").await.assert_error(400, "scope");
    ann.list("?limit=0").await.assert_error(400, "limit");
    ann.list("?limit=many").await.assert_error(400, "limit");
    ann.list("?next_token=%%%").await.assert_error(400, "next_token");
    ann.list("?next_token=bm90LWEta2V5").await.assert_error(400, "next_token");
}

#[tokio::test]
async fn fixture_events_from_api_gateway_are_served() {
    // The same files serve `cargo lambda invoke --data-file`.
    let app = app();
    let token = common::token("my-org", "my-user");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events");
    let load = |name: &str| {
        let text = std::fs::read_to_string(format!("{dir}/{name}.json")).unwrap().replace("TOKEN", &token);
        lambda_http::request::from_str(&text).expect("API Gateway v2 event")
    };
    let saved = common::send(&app, Endpoint::SaveWorkspace, load("save-workspace")).await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let listed = common::send(&app, Endpoint::ListWorkspaces, load("list-workspaces")).await;
    assert_eq!(listed.body["data"][0]["name"], "Financial Analysis Workspace");
    let missing = common::send(&app, Endpoint::LoadWorkspace, load("load-workspace")).await;
    missing.assert_error(404, "ws_12345");
}

#[tokio::test]
async fn a_wrong_method_is_405_in_the_envelope() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    ann.call(Endpoint::SaveWorkspace, "GET", "/workspaces/save", None).await.assert_error(405, "POST");
}
