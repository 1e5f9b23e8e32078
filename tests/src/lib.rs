//! Test kit for the black-box suites: an `App` over each backend (SQLite + folder, or DynamoDB +
//! S3 on a local compatible server), tokens, and requests sent through the same `http::serve`
//! edge a Lambda function runs.

use std::collections::HashMap;
use std::io::Write;

use lambda_http::{Body, Request, RequestExt};
use serde_json::{json, Value};
use shared::routes::Endpoint;
use shared::App;

pub mod counting_proxy;
pub mod http_server;

pub const SECRET: &str = "blackbox-test-secret";
/// `make test` sets it: then a missing local AWS endpoint fails the suites instead of skipping.
pub const REQUIRE_VAR: &str = "WORKSPACES_TEST_REQUIRE_AWS";

/// The local AWS-compatible endpoint named by `var` (e.g. `AWS_ENDPOINT_URL_DYNAMODB`). Unset:
/// a loud SKIP and `None`, so a plain `cargo test` works without moto, unless `REQUIRE_VAR=1`,
/// where it panics, so CI cannot skip silently.
pub fn aws_endpoint(var: &str, case: &str, service: &str) -> Option<String> {
    if let Some(endpoint) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        return Some(endpoint);
    }
    if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
        panic!(
            "{var} is unset but {REQUIRE_VAR}=1: start moto first (`make test` does it), e.g. \
             `.venv/bin/moto_server -H 127.0.0.1 -p 5055 &` and {var}=http://127.0.0.1:5055"
        );
    }
    // Straight to stderr: the harness captures `eprintln!` of passing tests, which would hide it.
    let _ = writeln!(std::io::stderr(), "SKIP {case} ({service}): {var} is unset; start moto or run `make test`");
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The local default: SQLite file + bundle folder.
    Embedded,
    /// DynamoDB + S3 through the server at `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_S3`.
    Aws,
}

pub struct Harness {
    pub app: App,
    /// The jobs queue's receiving side, as Lambda's event source mapping would poll it.
    pub queue: std::sync::Arc<dyn shared::queue::QueueReceiver>,
    _dir: tempfile::TempDir,
}

fn unique(case: &str) -> String {
    let clean: String = case.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect();
    format!("t-{}-{}", clean.to_ascii_lowercase(), shared::model::new_id("", 8))
}

/// Every adapter: the kits, the suites and the tools run each backend.
pub const LINKS: shared::Links = shared::Links::NONE
    .with_embedded(&adapter_sqlite::LINK)
    .with_dynamodb(&adapter_dynamodb::LINK)
    .with_s3(&adapter_s3::LINK)
    .with_sqs(&adapter_sqs::LINK);

/// An app on a fresh backend; `None` (after a loud SKIP) for `Aws` when no local AWS-compatible
/// server is configured and none is required (`make test` requires it).
pub async fn harness(backend: Backend, case: &str, extra_env: &[(&str, &str)]) -> Option<Harness> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("WORKSPACES_JWT_SECRET".into(), SECRET.into());
    let queue: std::sync::Arc<dyn shared::queue::QueueReceiver> = match backend {
        Backend::Embedded => {
            env.insert("WORKSPACES_STORE".into(), format!("sqlite://{}", dir.path().join("ws.db").display()));
            env.insert("WORKSPACES_BUNDLES".into(), format!("file://{}", dir.path().join("bundles").display()));
            let path = dir.path().join("queue.db");
            env.insert("WORKSPACES_JOBS_QUEUE".into(), format!("sqlite://{}", path.display()));
            std::sync::Arc::new(adapter_sqlite::queue::LocalQueue::open(&path).expect("local queue"))
        }
        Backend::Aws => {
            aws_endpoint("AWS_ENDPOINT_URL_DYNAMODB", case, "dynamodb")?;
            aws_endpoint("AWS_ENDPOINT_URL_S3", case, "s3")?;
            let name = unique(case);
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            let store = adapter_dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &name);
            store.create_table_if_missing().await.expect("creating the test table");
            let s3 = adapter_s3::S3Bundles::from_env(&name, "exports").await;
            s3.create_bucket_if_missing().await.expect("creating the test bucket");
            env.insert("WORKSPACES_STORE".into(), format!("dynamodb://{name}"));
            env.insert("WORKSPACES_BUNDLES".into(), format!("s3://{name}/exports"));
            aws_endpoint("AWS_ENDPOINT_URL_SQS", case, "sqs")?;
            let sqs = adapter_sqs::SqsQueue::create(&config, &name).await.expect("creating the test queue");
            env.insert("WORKSPACES_JOBS_QUEUE".into(), sqs.url().to_owned());
            std::sync::Arc::new(sqs)
        }
    };
    for (k, v) in extra_env {
        env.insert((*k).into(), (*v).into());
    }
    let config = shared::config::Config::from_map(&env).expect("test config");
    let app = App::from_config(config, LINKS).await.expect("test app");
    Some(Harness { app, queue, _dir: dir })
}

impl Harness {
    /// Every file under `under` of the bundle folder (embedded harnesses only), to show what a
    /// job left behind.
    pub fn bundle_files(&self, under: &str) -> Vec<std::path::PathBuf> {
        match &self.app.config.bundles {
            shared::config::BundlesUrl::Folder(root) => files_under(&root.join(under)),
            other => panic!("not a bundle folder: {other:?}"),
        }
    }

    /// [`work_job`] on this harness's app and queue.
    pub async fn work_job(
        &self,
        owner: &shared::model::Owner,
        job_id: &str,
        left: std::time::Duration,
        max_invocations: usize,
    ) -> (shared::store::jobs::JobRecord, usize) {
        work_job(&self.app, &*self.queue, owner, job_id, left, max_invocations).await
    }
}

/// One invocation of the worker on the next message, if one comes within a second or two; answers
/// how many messages it took (0 or 1).
pub async fn invoke_once(app: &App, queue: &dyn shared::queue::QueueReceiver, left: std::time::Duration) -> usize {
    let (visibility, wait) = (std::time::Duration::from_secs(1), std::time::Duration::from_secs(2));
    shared::jobs::lambda::pump(queue, 1, visibility, wait, |event| async {
        Ok(shared::jobs::lambda::handle_event(app, event, left).await)
    })
    .await
    .expect("pumping the jobs queue")
}

/// Works the jobs queue as Lambda's event source mapping would (one message per invocation,
/// each invocation given `left` to run) until job `job_id` of `owner` has ended, and answers it
/// with the number of invocations it took. Panics past `max_invocations`.
pub async fn work_job(
    app: &App,
    queue: &dyn shared::queue::QueueReceiver,
    owner: &shared::model::Owner,
    job_id: &str,
    left: std::time::Duration,
    max_invocations: usize,
) -> (shared::store::jobs::JobRecord, usize) {
    let mut invocations = 0;
    loop {
        let job = app.jobs.get_job(owner, job_id).await.expect("get job").expect("the job exists");
        if job.state.is_final() {
            return (job, invocations);
        }
        assert!(invocations < max_invocations, "job {job_id} still {:?} after {invocations} invocations", job.state);
        // A message handed back comes again after this; short, so tests run quickly.
        let visibility = std::time::Duration::from_secs(1);
        let wait = std::time::Duration::from_secs(2);
        let taken = shared::jobs::lambda::pump(queue, 1, visibility, wait, |event| async {
            Ok(shared::jobs::lambda::handle_event(app, event, left).await)
        })
        .await
        .expect("pumping the jobs queue");
        invocations += taken;
    }
}

/// A DynamoDB client for `endpoint` (a local server, or a counting proxy in front of one) with
/// static dummy credentials and a fixed region, so no suite depends on (or touches) real AWS
/// configuration.
pub async fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test-kit"))
        .endpoint_url(endpoint)
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// A table name no other case or run uses, so cases run in parallel against a long-lived server.
pub fn unique_table(prefix: &str, case: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{case}-{}-{nanos}-{seq}", std::process::id())
}

/// Like `harness(Backend::Aws, ..)`, but the app's DynamoDB client talks to `dynamodb_endpoint`
/// (say a `counting_proxy::CountingProxy`) instead of `AWS_ENDPOINT_URL_DYNAMODB`; the test
/// table is still created directly there. S3 is unchanged.
pub async fn harness_with_dynamodb_endpoint(
    case: &str,
    extra_env: &[(&str, &str)],
    dynamodb_endpoint: &str,
) -> Option<Harness> {
    let mut h = harness(Backend::Aws, case, extra_env).await?;
    let shared::config::StoreUrl::DynamoDb { table } = &h.app.config.store else {
        panic!("an Aws harness stores in DynamoDB");
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    // Set on the service config, which wins over the environment's endpoint for DynamoDB.
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(dynamodb_endpoint).build();
    let blobs: std::sync::Arc<dyn shared::store::Blobs> = h.app.bundles.clone();
    let store = adapter_dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), table.as_str());
    h.app.store = std::sync::Arc::new(store.with_blobs(blobs));
    Some(h)
}

pub fn token(org: &str, user: &str, role: &str) -> String {
    shared::auth::mint_hs256(SECRET, org, user, role, 600).expect("token")
}

/// A request as API Gateway hands it over, for any URL (query string parsed like the runtime).
pub fn request(method: &str, url: &str, auth: Option<&str>, body: Option<Vec<u8>>) -> Request {
    request_with_headers(method, url, auth, body, &[])
}

/// Same, with more headers (such as `If-Match`).
pub fn request_with_headers(
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Request {
    let full = if url.starts_with("http") { url.to_owned() } else { format!("http://127.0.0.1:9000{url}") };
    let mut b = lambda_http::http::Request::builder().method(method).uri(&full).header("host", "127.0.0.1:9000");
    if let Some(auth) = auth {
        b = b.header("authorization", auth);
    }
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    let body = match body {
        Some(bytes) => Body::Binary(bytes),
        None => Body::Empty,
    };
    let req = b.body(body).expect("request");
    let query: HashMap<String, String> =
        req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    req.with_query_string_parameters(query)
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub bytes: Vec<u8>,
    pub headers: lambda_http::http::HeaderMap,
}

impl Answer {
    /// A response header as text (`None` when absent or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        &self.body["data"]
    }
    #[track_caller]
    pub fn assert_error(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "{}", self.body);
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
    let bytes = match resp.body() {
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, body, bytes, headers: resp.headers().clone() }
}

/// One caller of the API.
pub struct Client<'a> {
    pub app: &'a App,
    pub org: String,
    pub user: String,
    pub token: String,
}

impl<'a> Client<'a> {
    pub fn new(app: &'a App, org: &str, user: &str) -> Self {
        Self::with_role(app, org, user, "user")
    }
    pub fn with_role(app: &'a App, org: &str, user: &str, role: &str) -> Self {
        Self { app, org: org.into(), user: user.into(), token: token(org, user, role) }
    }
    pub async fn call(&self, endpoint: Endpoint, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.call_with_headers(endpoint, method, path, body, &[]).await
    }
    pub async fn call_with_headers(
        &self,
        endpoint: Endpoint,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = format!("/jarvispy/{}/{}/api/v1{path}", self.org, self.user);
        let body = body.map(|b| serde_json::to_vec(b).expect("json"));
        let auth = format!("Bearer {}", self.token);
        send(self.app, endpoint, request_with_headers(method, &url, Some(&auth), body, headers)).await
    }
    pub async fn post(&self, endpoint: Endpoint, path: &str, body: Value) -> Answer {
        self.call(endpoint, "POST", path, Some(&body)).await
    }
    pub async fn get(&self, endpoint: Endpoint, path: &str) -> Answer {
        self.call(endpoint, "GET", path, None).await
    }
}

/// PUTs one part to a part link (of `POST /workspaces/bundles {"size"}`) as a plain HTTP
/// client would, with no token; answers the status and the `ETag` header.
pub async fn put_part(app: &App, url: &str, bytes: Vec<u8>) -> (u16, Option<String>) {
    if url.contains("/jarvispy/_local/") {
        let a = send(app, Endpoint::UploadBundle, request("PUT", url, None, Some(bytes))).await;
        return (a.status, a.header("etag").map(str::to_owned));
    }
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let resp = agent.put(&url).send(&bytes[..]).unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (resp.status().as_u16(), etag)
    })
    .await
    .expect("http thread")
}

/// Sends `bytes` through the parts of a parted upload's answer (`data` of `POST
/// /workspaces/bundles {"size"}`); answers the completion's `parts` list.
pub async fn send_parts(app: &App, slot: &Value, bytes: &[u8]) -> Value {
    let part_size = slot["part_size"].as_u64().expect("part_size") as usize;
    let mut parts = Vec::new();
    for part in slot["parts"].as_array().expect("parts") {
        let n = part["part_number"].as_u64().expect("part_number") as usize;
        let start = (n - 1) * part_size;
        let end = (start + part["size"].as_u64().expect("size") as usize).min(bytes.len());
        let (status, etag) = put_part(app, part["url"].as_str().expect("url"), bytes[start..end].to_vec()).await;
        assert_eq!(status, 200, "part {n}");
        parts.push(serde_json::json!({"part_number": n, "etag": etag.expect("an ETag")}));
    }
    Value::Array(parts)
}

/// Fetches a bundle link as a plain HTTP client would, with no token. Local links go to the
/// local-only download route; others (presigned S3 URLs) over HTTP.
pub async fn fetch_url(app: &App, method: &str, url: &str, body: Option<Vec<u8>>) -> (u16, Vec<u8>) {
    if url.contains("/jarvispy/_local/") {
        let endpoint = match method {
            "PUT" => Endpoint::UploadBundle,
            "POST" => Endpoint::CompleteBundleUpload,
            _ => Endpoint::DownloadBundle,
        };
        let a = send(app, endpoint, request(method, url, None, body)).await;
        return (a.status, a.bytes);
    }
    let (method, url) = (method.to_owned(), url.to_owned());
    tokio::task::spawn_blocking(move || {
        let result = match body {
            Some(b) => ureq::put(&url).send(&b[..]),
            None if method == "GET" => ureq::get(&url).call(),
            None => ureq::put(&url).send(&[][..]),
        };
        match result {
            // ureq stops a body at 10 MB by default; bundles are larger.
            Ok(mut r) => {
                (r.status().as_u16(), r.body_mut().with_config().limit(u64::MAX).read_to_vec().expect("the body"))
            }
            Err(ureq::Error::StatusCode(code)) => (code, Vec::new()),
            Err(e) => panic!("fetching {url}: {e}"),
        }
    })
    .await
    .expect("http thread")
}

/// A platform-shaped bundle: one workspace table `facts_<ws>` of rows `rows` (ids `r0000000`…,
/// about `row_bytes` each), and one project `p1` with a table of its own.
pub fn facts_bundle(ws: &str, rows: std::ops::Range<usize>, row_bytes: usize) -> Value {
    let pad = "x".repeat(row_bytes.saturating_sub(60));
    let data: Vec<Value> = rows.map(|i| json!({"id": format!("r{i:07}"), "n": i, "pad": pad})).collect();
    let schema = json!([
        {"name": "id", "type": "text", "nullable": "NO", "default": null},
        {"name": "n", "type": "integer", "nullable": "YES", "default": null},
        {"name": "pad", "type": "text", "nullable": "YES", "default": null},
    ]);
    let mut projects = projects_table(&[("p1", "ann", "user")]);
    projects["data"][0]["workspace_id"] = json!(ws);
    json!({
        "workspace_id": ws,
        "projects": {"p1": {"project_id": "p1", "tables": {
            "cells_p1": {"schema": [{"name": "id", "type": "text", "nullable": "NO", "default": null}],
                         "data": [{"id": "c1"}, {"id": "c2"}]}}}},
        "tables": {format!("projects_{ws}"): projects, format!("facts_{ws}"): {"schema": schema, "data": data}},
    })
}

pub fn sample_bundle() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/prometheux-export-sample.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample bundle")).expect("sample JSON")
}

pub fn sample_import_answer() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/prometheux-import-response-sample.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample answer")).expect("sample JSON")
}

/// A platform-shaped `projects_<ws>` table for hand-built bundles: one row per
/// `(project id, author, scope)`.
pub fn projects_table(rows: &[(&str, &str, &str)]) -> Value {
    let data: Vec<Value> = rows
        .iter()
        .map(|(id, author, scope)| serde_json::json!({"project_id": id, "name": format!("project {id}"), "author": author, "scope": scope}))
        .collect();
    serde_json::json!({
        "schema": [
            {"name": "project_id", "type": "text", "nullable": "NO", "default": null},
            {"name": "name", "type": "text", "nullable": "YES", "default": null},
            {"name": "author", "type": "text", "nullable": "YES", "default": null},
            {"name": "scope", "type": "text", "nullable": "YES", "default": null},
        ],
        "data": data,
    })
}

/// Every file under `dir`, at any depth (none when it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}
