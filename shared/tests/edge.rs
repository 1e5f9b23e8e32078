//! The Lambda edge as a function runs it: the access log line, body limits before parsing, the
//! local upload's size limit, and capabilities a function did not ask for.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{app, request, send, token, Client};
use lambda_http::RequestExt;
use serde_json::{json, Value};
use shared::routes::Endpoint;
use shared::{App, Links, Needs};

/// Everything the telemetry subscriber writes while the guard lives, on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        tracing::subscriber::set_default(shared::telemetry::subscriber("info", move || writer.clone()))
    }
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    /// The JSON lines with `"message": "request"`.
    fn requests(&self) -> Vec<Value> {
        let lines = self.text();
        let all: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
        all.into_iter().filter(|l| l["message"] == "request").collect()
    }
}

#[tokio::test]
async fn every_request_logs_one_json_line_without_token_or_body() {
    let app = app();
    let log = Captured::default();
    let _guard = log.start();
    let bearer = format!("Bearer {}", token("acme", "ann"));
    let body = json!({"name": "n", "description": "body-marker-7f3a"}).to_string();
    let mut ctx = lambda_http::Context::default();
    ctx.request_id = "req-8d1e".into();
    let req = request("POST", "/jarvispy/acme/ann/api/v1/workspaces/save", Some(&bearer), Some(&body))
        .with_lambda_context(ctx);
    assert_eq!(send(&app, Endpoint::SaveWorkspace, req).await.status, 200);
    let forged = request("GET", "/jarvispy/acme/ann/api/v1/workspaces/list", Some("Bearer not.a.token"), None);
    assert_eq!(send(&app, Endpoint::ListWorkspaces, forged).await.status, 401);

    let lines = log.requests();
    assert_eq!(lines.len(), 2, "{}", log.text());
    let ok = &lines[0];
    assert_eq!(ok["request_id"], "req-8d1e");
    assert_eq!(ok["function"], "save-workspace");
    assert_eq!((ok["method"].as_str(), ok["route"].as_str()), (Some("POST"), Some("/workspaces/save")));
    assert_eq!((ok["org"].as_str(), ok["user"].as_str()), (Some("acme"), Some("ann")));
    assert_eq!(ok["status"], 200);
    assert!(ok["latency_ms"].is_u64(), "{ok}");
    assert_eq!(ok["level"], "INFO");
    assert!(ok.get("error").is_none(), "{ok}");
    let rejected = &lines[1];
    assert_eq!((rejected["function"].as_str(), rejected["status"].as_u64()), (Some("list-workspaces"), Some(401)));
    assert!(rejected["error"].as_str().is_some_and(|e| !e.is_empty()), "{rejected}");
    let text = log.text();
    for secret in [bearer.as_str(), &bearer[7..], "not.a.token", "Bearer", "body-marker-7f3a"] {
        assert!(!text.contains(secret), "the log must not carry {secret:?}: {text}");
    }
}

#[tokio::test]
async fn a_gateway_event_logs_its_request_id() {
    let app = app();
    let log = Captured::default();
    let _guard = log.start();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events");
    let text = std::fs::read_to_string(format!("{dir}/list-workspaces.json")).unwrap();
    let event = lambda_http::request::from_str(&text.replace("TOKEN", &token("my-org", "my-user"))).unwrap();
    assert_eq!(send(&app, Endpoint::ListWorkspaces, event).await.status, 200);
    let lines = log.requests();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["request_id"], "fixture");
    assert_eq!((lines[0]["org"].as_str(), lines[0]["user"].as_str()), (Some("my-org"), Some("my-user")));
}

#[tokio::test]
async fn dense_or_deep_bodies_are_refused_before_they_become_a_tree() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    // Just under the 6 MB request limit, ~3 million values.
    let dense = format!("[{}0]", "0,".repeat(3_000_000));
    assert!(dense.len() < 6 * 1024 * 1024);
    let a = ann.call(Endpoint::SaveWorkspace, "POST", "/workspaces/save", Some(&dense)).await;
    a.assert_error(413, "1000000 JSON values");
    let inside = format!(r#"{{"name": "n", "metadata": {{"a": [{}0]}}}}"#, "0,".repeat(1_000_000));
    let a = ann.call(Endpoint::SaveWorkspace, "POST", "/workspaces/save", Some(&inside)).await;
    a.assert_error(413, "JSON values");
    let deep = format!(r#"{{"name": "n", "metadata": {{"a": {}1{}}}}}"#, "[".repeat(100), "]".repeat(100));
    let a = ann.call(Endpoint::ImportTables, "POST", "/workspaces/import-tables", Some(&deep)).await;
    a.assert_error(400, "nested deeper than 64 levels");
    let a = ann.call(Endpoint::SaveWorkspace, "POST", "/workspaces/save", Some(r#"{"name": "n", "scope": 5}"#)).await;
    a.assert_error(400, "scope: invalid type: integer");
}

/// A signed local upload link for `client`, as `POST /workspaces/bundles` hands it out.
async fn upload_link(client: &Client<'_>) -> String {
    let a = client.call(Endpoint::CreateBundleUpload, "POST", "/workspaces/bundles", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["data"]["upload_url"].as_str().expect("upload_url").to_owned()
}

fn put(url: &str, body: &str, content_length: Option<u64>) -> lambda_http::Request {
    let path = url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).expect("url path");
    let mut req = request("PUT", path, None, Some(body));
    if let Some(n) = content_length {
        req.headers_mut().insert("content-length", n.into());
    }
    req
}

#[tokio::test]
async fn the_local_upload_refuses_bundles_over_the_limit() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    let url = upload_link(&ann).await;
    let a = send(&app, Endpoint::UploadBundle, put(&url, "{}", Some(300 * 1024 * 1024))).await;
    a.assert_error(413, "256 MiB");
    let a = send(&app, Endpoint::UploadBundle, put(&url, r#"{"tables": []}"#, None)).await;
    assert_eq!((a.status, &a.body["data"]["size"]), (200, &json!(14)), "{}", a.body);
}

fn sqlite_config() -> shared::config::Config {
    let db = common::temp_db();
    let env: HashMap<String, String> = [
        ("WORKSPACES_JWT_SECRET", common::SECRET.to_owned()),
        ("WORKSPACES_STORE", format!("sqlite://{}", db.display())),
        ("WORKSPACES_BUNDLES", format!("file://{}", db.with_extension("bundles").display())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    shared::config::Config::from_map(&env).expect("config")
}

/// What the local functions link: the embedded store (the folder bundle store is built in).
const LINKS: Links = Links::NONE.with_embedded(&adapter_sqlite::LINK);

#[tokio::test]
async fn a_store_the_binary_does_not_link_fails_at_start_naming_the_adapter() {
    let err = App::wire(sqlite_config(), Needs::STORE, Links::NONE).await.err().expect("wiring must fail");
    let text = err.to_string();
    assert!(text.contains("WORKSPACES_STORE") && text.contains("adapter-sqlite"), "{text}");
    // Bundles only: the folder needs no adapter, and the store is not opened at all.
    App::wire(sqlite_config(), Needs::BUNDLES, Links::NONE).await.expect("a folder needs no adapter");
}

#[tokio::test]
async fn a_capability_not_asked_for_fails_as_a_logged_wiring_bug() {
    let log = Captured::default();
    let _guard = log.start();
    let store_only = App::wire(sqlite_config(), Needs::STORE, LINKS).await.expect("app");
    let ann = Client::new(&store_only, "acme", "ann");
    ann.save_ok(json!({"name": "n"})).await;
    let a = ann.call(Endpoint::CreateBundleUpload, "POST", "/workspaces/bundles", None).await;
    a.assert_error(500, "Internal server error");
    assert!(log.text().contains("wiring bug: this function's main does not ask for Needs::BUNDLES"), "{}", log.text());

    let bundles_only = App::wire(sqlite_config(), Needs::BUNDLES, LINKS).await.expect("app");
    let bob = Client::new(&bundles_only, "acme", "bob");
    assert!(upload_link(&bob).await.contains("/jarvispy/_local/bundles/"));
    bob.save(json!({"name": "n"})).await.assert_error(500, "Internal server error");
    assert!(log.text().contains("does not ask for Needs::STORE"), "{}", log.text());
}

#[test]
fn every_function_main_runs_its_own_endpoint() {
    for route in shared::routes::ROUTES {
        let path = format!("{}/../functions/{}/src/main.rs", env!("CARGO_MANIFEST_DIR"), route.function);
        let main = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let runs = match route.endpoint {
            Endpoint::DownloadBundle => "shared::http::run_download(".to_owned(),
            Endpoint::UploadBundle => "shared::http::run_upload(".to_owned(),
            other => format!("shared::http::run(Endpoint::{other:?}, "),
        };
        assert!(main.contains(&runs), "{path} should call {runs}");
        assert_eq!(main.matches("Endpoint::").count(), usize::from(!route.local_only), "{path}");
    }
}
