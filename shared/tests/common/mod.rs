//! Test support: an app over a fresh SQLite file, token minting, and request builders that go
//! through the same `http::serve` edge as Lambda does.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use adapter_sqlite::SqliteStore;
use lambda_http::{Body, Request, RequestExt};
use serde_json::Value;
use shared::auth::Verifier;
use shared::bundles::folder::FolderBundles;
use shared::bundles::LinkSigner;
use shared::config::{Config, JwtConfig};
use shared::routes::Endpoint;
use shared::App;

pub const SECRET: &str = "handler-test-secret";
pub const LINK_SECRET: &str = "handler-test-link-secret";

pub fn temp_db() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ws-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{}.db", shared::model::new_id("t", 12)))
}

pub fn jwt_config() -> JwtConfig {
    JwtConfig { secret: Some(SECRET.into()), ..JwtConfig::default() }
}

/// A bundle folder of its own per app, next to its database (a sibling of the `.db` file).
pub fn app_with(jwt: JwtConfig, max_response_bytes: usize) -> App {
    let path = temp_db();
    let store = Arc::new(SqliteStore::open(&path).expect("sqlite store"));
    let bundles_dir = path.with_extension("bundles");
    let signer = LinkSigner::new(LINK_SECRET);
    let bundles = Arc::new(FolderBundles::open(&bundles_dir, signer).expect("bundle folder"));
    // Every other setting as a deployment's defaults have it.
    let env: std::collections::HashMap<String, String> = [
        ("WORKSPACES_JWT_SECRET", SECRET.to_owned()),
        ("WORKSPACES_STORE", format!("sqlite://{}", path.display())),
        ("WORKSPACES_BUNDLES", format!("file://{}", bundles_dir.display())),
        ("WORKSPACES_LINK_SECRET", LINK_SECRET.to_owned()),
        ("WORKSPACES_MAX_RESPONSE_BYTES", max_response_bytes.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut config = Config::from_map(&env).expect("config");
    config.jwt = jwt.clone();
    App::new(config, Verifier::from_config(&jwt).expect("verifier"), store, bundles)
}

pub fn app() -> App {
    app_with(jwt_config(), shared::config::DEFAULT_MAX_RESPONSE_BYTES)
}

pub fn token(org: &str, user: &str) -> String {
    shared::auth::mint_hs256(SECRET, org, user, "user", 600).expect("token")
}

/// A request as API Gateway would hand it over (path parameters filled by the route).
pub fn request(method: &str, path: &str, auth: Option<&str>, body: Option<&str>) -> Request {
    let mut b = lambda_http::http::Request::builder().method(method).uri(format!("https://api.test{path}"));
    if let Some(auth) = auth {
        b = b.header("authorization", auth);
    }
    let body = body.map(|s| Body::Text(s.to_owned())).unwrap_or(Body::Empty);
    let req = b.body(body).expect("request");
    let query: std::collections::HashMap<String, String> =
        req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    req.with_query_string_parameters(query)
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
    /// Asserts the error envelope and that its message mentions `needle`.
    pub fn assert_error(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "status of {}", self.body);
        assert_eq!(self.body["data"], Value::Null, "{}", self.body);
        let word = if status == 409 { "conflict" } else { "error" };
        assert_eq!(self.body["status"], word, "{}", self.body);
        assert!(
            self.message().to_lowercase().contains(&needle.to_lowercase()),
            "message {:?} should mention {needle:?}",
            self.message()
        );
    }
}

pub async fn send(app: &App, endpoint: Endpoint, req: Request) -> Answer {
    let resp = shared::http::serve(app, endpoint, req).await.expect("serve never fails");
    let status = resp.status().as_u16();
    assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let body = match resp.body() {
        Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        other => panic!("unexpected body {other:?}"),
    };
    Answer { status, body }
}

/// A small client for one caller.
pub struct Client<'a> {
    pub app: &'a App,
    pub org: String,
    pub user: String,
    pub token: String,
}

impl<'a> Client<'a> {
    pub fn new(app: &'a App, org: &str, user: &str) -> Self {
        Self { app, org: org.into(), user: user.into(), token: token(org, user) }
    }
    pub fn base(&self) -> String {
        format!("/jarvispy/{}/{}/api/v1", self.org, self.user)
    }
    pub async fn call(&self, endpoint: Endpoint, method: &str, path: &str, body: Option<&str>) -> Answer {
        let auth = format!("Bearer {}", self.token);
        send(self.app, endpoint, request(method, &format!("{}{path}", self.base()), Some(&auth), body)).await
    }
    pub async fn save(&self, body: Value) -> Answer {
        self.call(Endpoint::SaveWorkspace, "POST", "/workspaces/save", Some(&body.to_string())).await
    }
    pub async fn save_ok(&self, body: Value) -> String {
        let a = self.save(body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["data"]["workspace_id"].as_str().expect("workspace_id").to_owned()
    }
    pub async fn load(&self, id: &str, scope: &str) -> Answer {
        self.call(Endpoint::LoadWorkspace, "GET", &format!("/workspaces/{id}/load?scope={scope}"), None).await
    }
    pub async fn list(&self, query: &str) -> Answer {
        self.call(Endpoint::ListWorkspaces, "GET", &format!("/workspaces/list{query}"), None).await
    }
}
