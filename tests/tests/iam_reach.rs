//! `shared::iam::FUNCTIONS` against the handlers: every endpoint is driven through the Lambda
//! edge (test kit, embedded backend) with the app's `Store` and `BundleStore` wrapped in
//! recorders, and each function may reach only the storage operations the table gives it.
//! It must also reach every one of them somewhere here, so the table (and the template checked
//! against it by iam_agree.rs) grants nothing a handler no longer uses. Bundle keys must stay
//! under `api::bundles::BUNDLE_PREFIX`, the only objects the table grants bundle operations.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use blackbox_tests::{fetch_url, harness, sample_bundle, send_parts, Answer, Backend, Client};
use serde_json::{json, Value};
use shared::api::bundles::BUNDLE_PREFIX;
use shared::bundles::{BundleStore, ByteStream, DynBundles, PartedUpload, SentPart, Upload};
use shared::iam::{self, Op};
use shared::model::{Owner, Workspace, WorkspaceDraft};
use shared::queue::{JobMessage, JobQueue};
use shared::routes::{route, Endpoint};
use shared::store::job_tables::{JobTables, StagedFinish};
use shared::store::jobs::{JobRecord, Jobs};
use shared::store::{Blobs, DynStore, Faults, Snapshot, StoreResult, Tables, WorkspacePage, Workspaces};
use shared::tables::{Commit, Row, TableMeta, WsKey};
use shared::App;

/// An operation reached, with the object key for bundle and blob operations.
type Reach = (Op, Option<String>);

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Reach>>>);

impl Log {
    fn push(&self, op: Op, key: Option<&str>) {
        if let Ok(mut log) = self.0.lock() {
            log.push((op, key.map(str::to_owned)));
        }
    }
    fn take(&self) -> Vec<Reach> {
        self.0.lock().map(|mut log| std::mem::take(&mut *log)).unwrap_or_default()
    }
}

struct RecordingStore {
    inner: DynStore,
    log: Log,
}

#[async_trait]
impl Workspaces for RecordingStore {
    async fn save_workspace(&self, owner: &Owner, draft: WorkspaceDraft) -> StoreResult<Workspace> {
        self.log.push(Op::SaveWorkspace, None);
        self.inner.save_workspace(owner, draft).await
    }
    async fn get_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<Workspace>> {
        self.log.push(Op::GetWorkspace, None);
        self.inner.get_workspace(owner, id).await
    }
    async fn list_workspaces(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<WorkspacePage> {
        self.log.push(Op::ListWorkspaces, None);
        self.inner.list_workspaces(owner, after, limit).await
    }
    async fn delete_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>> {
        self.log.push(Op::DeleteWorkspace, None);
        self.inner.delete_workspace(owner, id).await
    }
}

/// Taking a snapshot is `Op::ListTables` (what the adapters do then: read the table list, on
/// DynamoDB the manifest); its row reads are `ReadRows` and `GetRows`, as they were on the store.
#[async_trait]
impl Tables for RecordingStore {
    async fn snapshot(&self, ws: &WsKey) -> StoreResult<Box<dyn Snapshot>> {
        self.log.push(Op::ListTables, None);
        let inner = self.inner.snapshot(ws).await?;
        Ok(Box::new(RecordingSnapshot { inner, log: self.log.clone() }))
    }
    async fn commit(&self, ws: &WsKey, base: u64, commit: Commit) -> StoreResult<u64> {
        self.log.push(Op::Commit, None);
        self.inner.commit(ws, base, commit).await
    }
}

impl Faults for RecordingStore {
    fn inject_commit_fault(&self, after_rows: Option<usize>) {
        self.inner.inject_commit_fault(after_rows)
    }
}

struct RecordingSnapshot {
    inner: Box<dyn Snapshot>,
    log: Log,
}

#[async_trait]
impl Snapshot for RecordingSnapshot {
    fn revision(&self) -> u64 {
        self.inner.revision()
    }
    fn tables(&self) -> &[TableMeta] {
        self.inner.tables()
    }
    async fn read_rows(&self, table: &str, after: Option<&str>, limit: usize) -> StoreResult<Vec<(String, Row)>> {
        self.log.push(Op::ReadRows, None);
        self.inner.read_rows(table, after, limit).await
    }
    async fn get_rows(&self, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>> {
        self.log.push(Op::GetRows, None);
        self.inner.get_rows(table, keys).await
    }
}

struct RecordingBundles {
    inner: DynBundles,
    log: Log,
}

#[async_trait]
impl Blobs for RecordingBundles {
    async fn put_blob(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        self.log.push(Op::PutBlob, Some(key));
        self.inner.put_blob(key, bytes).await
    }
    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.log.push(Op::GetBlob, Some(key));
        self.inner.get_blob(key).await
    }
    async fn delete_blob(&self, key: &str) -> StoreResult<()> {
        self.log.push(Op::DeleteBlob, Some(key));
        self.inner.delete_blob(key).await
    }
}

/// An `Upload` is only ever made by `create_upload`, whose grants cover writing it.
#[async_trait]
impl BundleStore for RecordingBundles {
    async fn create_upload(&self, key: &str) -> StoreResult<Box<dyn Upload>> {
        self.log.push(Op::CreateUpload, Some(key));
        self.inner.create_upload(key).await
    }
    async fn get(&self, key: &str, max_bytes: u64) -> StoreResult<Option<Vec<u8>>> {
        self.log.push(Op::Get, Some(key));
        self.inner.get(key, max_bytes).await
    }
    async fn open_stream(&self, key: &str) -> StoreResult<Option<(u64, ByteStream)>> {
        self.log.push(Op::OpenStream, Some(key));
        self.inner.open_stream(key).await
    }
    async fn read_range(&self, key: &str, start: u64, end: u64) -> StoreResult<Vec<u8>> {
        self.log.push(Op::ReadRange, Some(key));
        self.inner.read_range(key, start, end).await
    }
    async fn head(&self, key: &str) -> StoreResult<Option<u64>> {
        self.log.push(Op::Head, Some(key));
        self.inner.head(key).await
    }
    async fn download_url(&self, key: &str, expires_at: i64, public_base: &str) -> StoreResult<String> {
        self.log.push(Op::DownloadUrl, Some(key));
        self.inner.download_url(key, expires_at, public_base).await
    }
    async fn upload_url(&self, key: &str, expires_at: i64, public_base: &str) -> StoreResult<String> {
        self.log.push(Op::UploadUrl, Some(key));
        self.inner.upload_url(key, expires_at, public_base).await
    }
    async fn parted_upload(&self, key: &str, size: u64, expires_at: i64, base: &str) -> StoreResult<PartedUpload> {
        self.log.push(Op::PartedUpload, Some(key));
        self.inner.parted_upload(key, size, expires_at, base).await
    }
    async fn upload_part(&self, key: &str, upload_id: &str, n: u32, bytes: &[u8]) -> StoreResult<String> {
        self.log.push(Op::UploadPart, Some(key));
        self.inner.upload_part(key, upload_id, n, bytes).await
    }
    async fn complete_parts(&self, key: &str, upload_id: &str, parts: &[SentPart]) -> StoreResult<()> {
        self.log.push(Op::CompleteParts, Some(key));
        self.inner.complete_parts(key, upload_id, parts).await
    }
    async fn sweep(&self, prefix: &str, max_age: Duration) -> StoreResult<usize> {
        self.log.push(Op::Sweep, Some(prefix));
        self.inner.sweep(prefix, max_age).await
    }
    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.log.push(Op::Delete, Some(key));
        self.inner.delete(key).await
    }
    async fn resume_upload(&self, key: &str, state: &Value) -> StoreResult<Box<dyn Upload>> {
        self.log.push(Op::ResumeUpload, Some(key));
        self.inner.resume_upload(key, state).await
    }
}

struct RecordingJobs {
    jobs: Arc<dyn Jobs>,
    tables: Arc<dyn JobTables>,
    queue: Arc<dyn JobQueue>,
    log: Log,
}

#[async_trait]
impl Jobs for RecordingJobs {
    async fn create_job(&self, job: JobRecord) -> StoreResult<(JobRecord, bool)> {
        self.log.push(Op::CreateJob, None);
        self.jobs.create_job(job).await
    }
    async fn get_job(&self, owner: &Owner, id: &str) -> StoreResult<Option<JobRecord>> {
        self.log.push(Op::GetJob, None);
        self.jobs.get_job(owner, id).await
    }
    async fn list_jobs(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<Vec<JobRecord>> {
        self.log.push(Op::ListJobs, None);
        self.jobs.list_jobs(owner, after, limit).await
    }
    async fn update_job(&self, job: &JobRecord) -> StoreResult<JobRecord> {
        self.log.push(Op::UpdateJob, None);
        self.jobs.update_job(job).await
    }
}

/// A snapshot opened again reads as one taken: `ReadRows` and `GetRows` are recorded the same.
#[async_trait]
impl JobTables for RecordingJobs {
    async fn hold_revision(&self, ws: &WsKey, lease: &str, rev: u64, until: u64) -> StoreResult<()> {
        self.log.push(Op::HoldRevision, None);
        self.tables.hold_revision(ws, lease, rev, until).await
    }
    async fn release_revision(&self, ws: &WsKey, lease: &str) -> StoreResult<()> {
        self.log.push(Op::ReleaseRevision, None);
        self.tables.release_revision(ws, lease).await
    }
    async fn snapshot_at(&self, ws: &WsKey, rev: u64) -> StoreResult<Option<Box<dyn Snapshot>>> {
        self.log.push(Op::SnapshotAt, None);
        let inner = self.tables.snapshot_at(ws, rev).await?;
        Ok(inner.map(|inner| Box::new(RecordingSnapshot { inner, log: self.log.clone() }) as Box<dyn Snapshot>))
    }
    async fn begin_staging(&self, ws: &WsKey, id: &str, tables: &[(String, u64)]) -> StoreResult<()> {
        self.log.push(Op::BeginStaging, None);
        self.tables.begin_staging(ws, id, tables).await
    }
    async fn stage_rows(&self, ws: &WsKey, id: &str, table: &str, rows: Vec<(String, Row)>) -> StoreResult<()> {
        self.log.push(Op::StageRows, None);
        self.tables.stage_rows(ws, id, table, rows).await
    }
    async fn finish_staging(&self, ws: &WsKey, id: &str, finish: StagedFinish) -> StoreResult<u64> {
        self.log.push(Op::FinishStaging, None);
        self.tables.finish_staging(ws, id, finish).await
    }
    async fn abort_staging(&self, ws: &WsKey, id: &str) -> StoreResult<()> {
        self.log.push(Op::AbortStaging, None);
        self.tables.abort_staging(ws, id).await
    }
}

#[async_trait]
impl JobQueue for RecordingJobs {
    async fn send(&self, message: &JobMessage) -> StoreResult<()> {
        self.log.push(Op::SendJob, None);
        self.queue.send(message).await
    }
}

/// What each function reached, request by request.
#[derive(Default)]
struct Reached {
    log: Log,
    by_function: BTreeMap<&'static str, BTreeSet<Op>>,
    keys: Vec<(Op, String)>,
}

impl Reached {
    /// Runs one request of `endpoint` and books what it reached to the endpoint's function.
    async fn run<T>(&mut self, endpoint: Endpoint, request: impl Future<Output = T>) -> T {
        self.log.take();
        let out = request.await;
        let function = route(endpoint).function;
        for (op, key) in self.log.take() {
            self.by_function.entry(function).or_default().insert(op);
            self.keys.extend(key.map(|k| (op, k)));
        }
        out
    }

    /// Like `run`, for a function no route reaches (the jobs worker).
    async fn run_function<T>(&mut self, function: &'static str, work: impl Future<Output = T>) -> T {
        self.log.take();
        let out = work.await;
        for (op, key) in self.log.take() {
            self.by_function.entry(function).or_default().insert(op);
            self.keys.extend(key.map(|k| (op, k)));
        }
        out
    }

    /// `run` for an API request that must succeed; its `data`.
    async fn request(&mut self, endpoint: Endpoint, request: impl Future<Output = Answer>) -> Value {
        self.run(endpoint, request).await.ok().clone()
    }

    fn check(&self) {
        let mut problems = Vec::new();
        // Compaction is the DynamoDB store's own method, not a handler's: iam_calls drives it.
        for function in iam::FUNCTIONS.iter().filter(|f| f.ops != [Op::Compact]) {
            let declared: BTreeSet<Op> = function.ops.iter().copied().collect();
            let Some(reached) = self.by_function.get(function.name) else {
                problems.push(format!("{} was never driven here: add its requests to this test", function.name));
                continue;
            };
            for op in reached.difference(&declared) {
                problems.push(format!(
                    "{} reached {}, which iam::FUNCTIONS does not give it",
                    function.name,
                    op.name()
                ));
            }
            for op in declared.difference(reached) {
                problems.push(format!(
                    "{} is given {} but never reached it here: drive that path or drop it",
                    function.name,
                    op.name()
                ));
            }
        }
        for (op, key) in &self.keys {
            if !key.starts_with(BUNDLE_PREFIX) {
                problems.push(format!("{} on key {key:?}: handlers keep bundles under {BUNDLE_PREFIX}", op.name()));
            }
        }
        assert!(problems.is_empty(), "handlers vs shared::iam::FUNCTIONS:\n  {}", problems.join("\n  "));
    }
}

#[tokio::test]
async fn each_function_reaches_exactly_its_declared_operations() {
    // A small inline limit, so the export is staged (upload + link).
    // Import jobs in chunks of 1,000 rows, so one can be cancelled between two.
    let env = [("WORKSPACES_INLINE_LIMIT_BYTES", "4000"), ("WORKSPACES_IMPORT_CHUNK_ROWS", "1000")];
    let h = harness(Backend::Embedded, "iam_reach", &env).await.expect("embedded backend");
    let mut reached = Reached::default();
    let store = Arc::new(RecordingStore { inner: h.app.store.clone(), log: reached.log.clone() });
    let bundles = Arc::new(RecordingBundles { inner: h.app.bundles.clone(), log: reached.log.clone() });
    let jobs = Arc::new(RecordingJobs {
        jobs: h.app.jobs.clone(),
        tables: h.app.job_tables.clone(),
        queue: h.app.queue.clone(),
        log: reached.log.clone(),
    });
    let app = App::new(h.app.config.clone(), h.app.verifier.clone(), store, bundles).with_jobs(
        jobs.clone(),
        jobs.clone(),
        jobs,
    );
    let c = Client::new(&app, "acme", "ann");
    let r = &mut reached;

    r.request(
        Endpoint::SaveWorkspace,
        c.post(Endpoint::SaveWorkspace, "/workspaces/save", json!({"id": "ws_1", "name": "one"})),
    )
    .await;
    r.request(Endpoint::ListWorkspaces, c.get(Endpoint::ListWorkspaces, "/workspaces/list?scope=user")).await;
    r.request(Endpoint::LoadWorkspace, c.get(Endpoint::LoadWorkspace, "/workspaces/ws_1/load?scope=user")).await;

    let saved = r
        .request(
            Endpoint::SaveProject,
            c.post(Endpoint::SaveProject, "/projects/ws_1/save", json!({"project": {"name": "p"}})),
        )
        .await;
    let project = saved["project_id"].as_str().expect("a project id").to_owned();
    r.request(Endpoint::ListProjects, c.get(Endpoint::ListProjects, "/projects/ws_1/list")).await;
    let load = format!("/projects/ws_1/load?project_id={project}");
    r.request(Endpoint::LoadProject, c.get(Endpoint::LoadProject, &load)).await;

    let import = |export_data: Value, ws: &str| {
        c.post(
            Endpoint::ImportTables,
            "/workspaces/import-tables",
            json!({"export_data": export_data, "workspace_id": ws}),
        )
    };
    r.request(Endpoint::ImportTables, import(sample_bundle(), "ws_2")).await;
    let export = r
        .request(Endpoint::ExportTables, c.post(Endpoint::ExportTables, "/workspaces/ws_2/export-tables", json!({})))
        .await;
    let link = export["bundle"]["url"].as_str().expect("a staged export").to_owned();
    let (status, _) = r.run(Endpoint::DownloadBundle, fetch_url(&app, "GET", &link, None)).await;
    assert_eq!(status, 200);

    let slot = r
        .request(Endpoint::CreateBundleUpload, c.post(Endpoint::CreateBundleUpload, "/workspaces/bundles", json!({})))
        .await;
    let bytes = serde_json::to_vec(&sample_bundle()).expect("bundle bytes");
    let upload_url = slot["upload_url"].as_str().expect("an upload url");
    let (status, _) = r.run(Endpoint::UploadBundle, fetch_url(&app, "PUT", upload_url, Some(bytes.clone()))).await;
    assert_eq!(status, 200);
    // Into the workspace imported above: the stored rows it merges into are read first.
    r.request(Endpoint::ImportTables, import(json!({"bundle_id": slot["bundle_id"]}), "ws_2")).await;

    // The same bundle in parts: part links PUT (the local route stores each), then completed.
    let sized = json!({"size": bytes.len()});
    let slot = r
        .request(Endpoint::CreateBundleUpload, c.post(Endpoint::CreateBundleUpload, "/workspaces/bundles", sized))
        .await;
    let parts = r.run(Endpoint::UploadBundle, send_parts(&app, &slot, &bytes)).await;
    let complete = format!("/workspaces/bundles/{}/complete", slot["bundle_id"].as_str().expect("a bundle id"));
    let body = json!({"upload_id": slot["upload_id"], "parts": parts});
    r.request(Endpoint::CompleteBundleUpload, c.post(Endpoint::CompleteBundleUpload, &complete, body)).await;

    // One project by id, then all of the caller's (which lists them).
    let cleanup = |body: Value| c.post(Endpoint::CleanupProject, "/projects/ws_1/cleanup", body);
    r.request(Endpoint::CleanupProject, cleanup(json!({"project": {"id": project}}))).await;
    r.request(Endpoint::CleanupProject, cleanup(json!({"project": {}}))).await;

    // An export job over 5 MiB, worked in invocations that pause at each checkpoint: the worker
    // creates the upload, resumes it and re-opens its revision in the next invocation.
    let pad = "x".repeat(1_000);
    let schema = json!([{"name": "id", "type": "text", "nullable": "NO", "default": null},
                        {"name": "pad", "type": "text", "nullable": "YES", "default": null}]);
    for half in 0..2 {
        let rows: Vec<Value> =
            (half * 4_000..(half + 1) * 4_000).map(|i| json!({"id": format!("r{i:05}"), "pad": pad})).collect();
        let big = json!({"workspace_id": "ws_3", "tables": {"facts_ws_3": {"schema": schema, "data": rows}}});
        r.request(Endpoint::ImportTables, import(big, "ws_3")).await;
    }
    let started = r
        .run(
            Endpoint::ExportTables,
            c.post(Endpoint::ExportTables, "/workspaces/ws_3/export-tables", json!({"async": true})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let job_id = started.data()["job_id"].as_str().expect("a job").to_owned();
    let owner = Owner::user("acme", "ann");
    let work = blackbox_tests::work_job(&app, &*h.queue, &owner, &job_id, Duration::from_millis(10), 50);
    let (job, _) = r.run_function("jobs-worker", work).await;
    assert_eq!(job.state, shared::store::jobs::JobState::Succeeded, "{:?}", job.error);
    let path = format!("/workspaces/jobs/{job_id}");
    r.request(Endpoint::GetJob, c.get(Endpoint::GetJob, &path)).await;
    r.request(Endpoint::ListJobs, c.get(Endpoint::ListJobs, "/workspaces/jobs")).await;
    // Cancelled while queued (a second job, by its own key).
    let second = r
        .run(
            Endpoint::ExportTables,
            c.call_with_headers(
                Endpoint::ExportTables,
                "POST",
                "/workspaces/ws_3/export-tables",
                Some(&json!({"async": true})),
                &[("Idempotency-Key", "2")],
            ),
        )
        .await;
    let second = second.data()["job_id"].as_str().expect("a job").to_owned();
    r.request(
        Endpoint::CancelJob,
        c.post(Endpoint::CancelJob, &format!("/workspaces/jobs/{second}/cancel"), json!({})),
    )
    .await;

    // Import jobs: an inline bundle (copied for the worker) into a stored table, cancelled after
    // its first chunk (the staging is aborted), then the same by a staged bundle, to the end.
    let rows: Vec<Value> = (0..3_000).map(|i| json!({"id": format!("r{i:05}"), "pad": "y"})).collect();
    let big = json!({"workspace_id": "ws_3", "tables": {"facts_ws_3": {"schema": schema, "data": rows}}});
    let as_job = |export_data: Value, key: &'static str| {
        let c = &c;
        async move {
            let body = json!({"export_data": export_data, "workspace_id": "ws_3", "async": true});
            let path = "/workspaces/import-tables";
            c.call_with_headers(Endpoint::ImportTables, "POST", path, Some(&body), &[("Idempotency-Key", key)]).await
        }
    };
    let started = r.run(Endpoint::ImportTables, as_job(big.clone(), "import-1")).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let cancelled = started.data()["job_id"].as_str().expect("a job").to_owned();
    // Sent again: it finds the job, and drops the copy it made.
    let again = r.run(Endpoint::ImportTables, as_job(big.clone(), "import-1")).await;
    assert_eq!(again.data()["job_id"], cancelled.as_str());
    // Until it has begun (the cancelled export's message may come first).
    for _ in 0..5 {
        let job = app.jobs.get_job(&owner, &cancelled).await.expect("get").expect("the job");
        if job.state == shared::store::jobs::JobState::Running {
            break;
        }
        let once = blackbox_tests::invoke_once(&app, &*h.queue, Duration::from_millis(10));
        r.run_function("jobs-worker", once).await;
    }
    r.request(
        Endpoint::CancelJob,
        c.post(Endpoint::CancelJob, &format!("/workspaces/jobs/{cancelled}/cancel"), json!({})),
    )
    .await;
    let work = blackbox_tests::work_job(&app, &*h.queue, &owner, &cancelled, Duration::from_millis(10), 50);
    let (job, _) = r.run_function("jobs-worker", work).await;
    assert_eq!(job.state, shared::store::jobs::JobState::Cancelled, "{:?}", job.error);

    let slot = c.post(Endpoint::CreateBundleUpload, "/workspaces/bundles", json!({})).await.ok().clone();
    let bytes = serde_json::to_vec(&big).expect("bundle bytes");
    let (status, _) = fetch_url(&app, "PUT", slot["upload_url"].as_str().expect("an upload url"), Some(bytes)).await;
    assert_eq!(status, 200);
    let started = r.run(Endpoint::ImportTables, as_job(json!({"bundle_id": slot["bundle_id"]}), "import-2")).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let job_id = started.data()["job_id"].as_str().expect("a job").to_owned();
    let work = blackbox_tests::work_job(&app, &*h.queue, &owner, &job_id, Duration::from_secs(60), 50);
    let (job, _) = r.run_function("jobs-worker", work).await;
    assert_eq!(job.state, shared::store::jobs::JobState::Succeeded, "{:?}", job.error);

    r.request(Endpoint::CleanupWorkspace, c.post(Endpoint::CleanupWorkspace, "/workspaces/ws_2/cleanup", json!({})))
        .await;
    reached.check();
}
