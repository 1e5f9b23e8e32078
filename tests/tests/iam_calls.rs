//! `shared::iam::Op::needs` against the adapters' real API calls. An SDK interceptor on the
//! DynamoDB and S3 clients of a `DynamoStore` / `S3Bundles` (on moto) records every call with
//! the IAM action and resource it needs, while each storage operation is driven through its
//! paths (oversized rows in blobs, copies and collection of versions, an abandoned commit
//! swept, multipart uploads and their abort, missing keys). Two checks per operation:
//! every call it made is declared for it, and every call it declares was made (so the table,
//! and the template checked against it by iam_agree.rs, cannot grant what nothing uses).
//!
//! IAM semantics applied here: a TransactWriteItems is checked per item (its input is read:
//! ConditionCheck → `dynamodb:ConditionCheckItem`, Put → `PutItem`, ...); a Query names the
//! index it reads; S3 writes (PutObject, multipart create/part/complete) are `s3:PutObject`,
//! HeadObject is `s3:GetObject`, and object actions apply to the key the call names.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter_dynamodb::DynamoStore;
use adapter_s3::{S3Bundles, PART_SIZE};
use adapter_sqs::SqsQueue;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{BeforeSerializationInterceptorContextRef, Input};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use futures::StreamExt;
use serde_json::{json, Map};
use shared::api::bundles::BUNDLE_PREFIX;
use shared::bundles::BundleStore;
use shared::iam::{Grant, Op, Resource};
use shared::model::{now_timestamp, Owner, Scope, WorkspaceDraft};
use shared::queue::{JobMessage, JobQueue, JobTask, QueueReceiver};
use shared::store::job_tables::{JobTables, StagedFinish, StagedTable};
use shared::store::jobs::{new_job_id, JobKind, JobRecord, JobState, Jobs};
use shared::store::{Blobs, Faults, Tables, Workspaces};
use shared::tables::{Column, Commit, Row, TableOwner, TableWrite, WsKey};

/// What one API call needs, as the recorder saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    /// The SDK operation, for messages (`TransactWriteItems`, `UploadPart`, ...).
    api: String,
    action: String,
    resource: SeenResource,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SeenResource {
    Table,
    Index(String),
    Bucket,
    Object(String),
    Queue,
}

fn covers(grant: &Grant, seen: &Seen) -> bool {
    grant.action == seen.action
        && match (&grant.resource, &seen.resource) {
            (Resource::Table, SeenResource::Table)
            | (Resource::Bucket, SeenResource::Bucket)
            | (Resource::Queue, SeenResource::Queue) => true,
            (Resource::Index(a), SeenResource::Index(b)) => a == b,
            (Resource::Objects(prefix), SeenResource::Object(key)) => key.starts_with(prefix),
            _ => false,
        }
}

/// Records every call of the clients it is installed on. Runs once per call, not per retry.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().expect("recorder lock"))
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "iam-call-recorder"
    }

    // Not `read_before_execution`: client interceptors run that before the operation's
    // configuration (its `Metadata`) is in the bag.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let meta = cfg.load::<Metadata>().ok_or("no operation Metadata in the config bag")?;
        let api = meta.name().to_owned();
        let needs = match meta.service() {
            "DynamoDB" => dynamodb_needs(&api, context.input()),
            "S3" => s3_needs(&api, context.input()),
            // One queue per client: every SQS action applies to it.
            "SQS" => vec![(format!("sqs:{api}"), SeenResource::Queue)],
            other => vec![(format!("{other}:{api}"), SeenResource::Table)],
        };
        let mut log = self.0.lock().map_err(|_| "recorder lock poisoned")?;
        log.extend(needs.into_iter().map(|(action, resource)| Seen { api: api.clone(), action, resource }));
        Ok(())
    }
}

fn dynamodb_needs(api: &str, input: &Input) -> Vec<(String, SeenResource)> {
    use aws_sdk_dynamodb::operation::{query::QueryInput, transact_write_items::TransactWriteItemsInput};
    if let Some(tx) = input.downcast_ref::<TransactWriteItemsInput>() {
        return tx
            .transact_items()
            .iter()
            .map(|item| {
                let action = match (&item.condition_check, &item.put, &item.update, &item.delete) {
                    (Some(_), ..) => "ConditionCheckItem",
                    (_, Some(_), ..) => "PutItem",
                    (_, _, Some(_), _) => "UpdateItem",
                    (.., Some(_)) => "DeleteItem",
                    _ => "(empty transaction item)",
                };
                (format!("dynamodb:{action}"), SeenResource::Table)
            })
            .collect();
    }
    let resource = match input.downcast_ref::<QueryInput>().and_then(QueryInput::index_name) {
        Some(index) => SeenResource::Index(index.to_owned()),
        None => SeenResource::Table,
    };
    vec![(format!("dynamodb:{api}"), resource)]
}

fn s3_needs(api: &str, input: &Input) -> Vec<(String, SeenResource)> {
    use aws_sdk_s3::operation::{
        abort_multipart_upload::AbortMultipartUploadInput, complete_multipart_upload::CompleteMultipartUploadInput,
        create_multipart_upload::CreateMultipartUploadInput, delete_object::DeleteObjectInput,
        get_object::GetObjectInput, head_object::HeadObjectInput, put_object::PutObjectInput,
        upload_part::UploadPartInput,
    };
    macro_rules! key_of {
        ($($input:ty),*) => {
            None $(.or_else(|| input.downcast_ref::<$input>().and_then(|i| i.key()).map(str::to_owned)))*
        };
    }
    let key: Option<String> = key_of!(
        GetObjectInput,
        HeadObjectInput,
        PutObjectInput,
        CreateMultipartUploadInput,
        UploadPartInput,
        CompleteMultipartUploadInput,
        AbortMultipartUploadInput,
        DeleteObjectInput
    );
    let action = match api {
        "PutObject" | "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload" => "PutObject",
        "GetObject" | "HeadObject" => "GetObject",
        "ListObjectsV2" | "ListObjects" => "ListBucket",
        other => other,
    };
    let resource = match key {
        Some(key) => SeenResource::Object(key),
        None => SeenResource::Bucket,
    };
    vec![(format!("s3:{action}"), resource)]
}

/// Attributes calls to the operation running: operations run one at a time.
struct Calls {
    recorder: Recorder,
    by_op: BTreeMap<Op, Vec<Seen>>,
}

impl Calls {
    async fn run<T>(&mut self, op: Op, operation: impl Future<Output = T>) -> T {
        self.recorder.take();
        let out = operation.await;
        self.by_op.entry(op).or_default().extend(self.recorder.take());
        out
    }

    /// Both checks for the operations whose names start with `family` (`Store::`, ...).
    fn check(&self, family: &[&str]) {
        let mut problems = Vec::new();
        for op in Op::ALL.iter().filter(|op| family.iter().any(|f| op.name().starts_with(f))) {
            let Some(seen) = self.by_op.get(op) else {
                problems.push(format!("{} was never driven here: add it to this test", op.name()));
                continue;
            };
            let declared = op.all_needs();
            for call in seen.iter().collect::<BTreeSet<_>>() {
                if !declared.keys().any(|g| covers(g, call)) {
                    problems.push(format!(
                        "{} called {} → {} on {:?}, which shared::iam::Op::needs does not declare for it",
                        op.name(),
                        call.api,
                        call.action,
                        call.resource
                    ));
                }
            }
            for grant in declared_calls(*op) {
                if !seen.iter().any(|call| covers(&grant, call)) {
                    problems.push(format!(
                        "{} declares {} on {:?} but made no such call here: drive that path or drop the grant",
                        op.name(),
                        grant.action,
                        grant.resource
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "AWS calls vs shared::iam::Op::needs:\n  {}", problems.join("\n  "));
    }
}

/// The grants an operation declares as calls (its own and its `via` operations'), not the
/// implied ones (presigned links, 404-vs-403), which no call of ours shows.
fn declared_calls(op: Op) -> BTreeSet<Grant> {
    let needs = op.needs();
    let mut out: BTreeSet<Grant> = needs.calls.iter().copied().collect();
    for via in needs.via {
        out.extend(declared_calls(*via));
    }
    out
}

struct Fixture {
    calls: Calls,
    store: DynamoStore,
    bundles: Arc<S3Bundles>,
}

/// A table and a bucket of their own on the local server, both clients recorded. The bucket
/// has no key prefix, as in the template, so recorded keys are the ones IAM sees.
async fn fixture(case: &str) -> Option<Fixture> {
    blackbox_tests::aws_endpoint("AWS_ENDPOINT_URL_DYNAMODB", case, "dynamodb")?;
    blackbox_tests::aws_endpoint("AWS_ENDPOINT_URL_S3", case, "s3")?;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(Credentials::new("test", "test", None, None, "iam-calls"))
        .load()
        .await;
    let recorder = Recorder::default();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(recorder.clone()).build();
    let s3 = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).interceptor(recorder.clone()).build();
    let name = format!("iam-{case}-{}", shared::model::new_id("", 8)).replace('_', "-");
    let bundles = Arc::new(S3Bundles::new(aws_sdk_s3::Client::from_conf(s3), &name, ""));
    bundles.create_bucket_if_missing().await.expect("creating the test bucket");
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), &name).with_blobs(bundles.clone());
    store.create_table_if_missing().await.expect("creating the test table");
    Some(Fixture { calls: Calls { recorder, by_op: BTreeMap::new() }, store, bundles })
}

fn draft(id: &str) -> WorkspaceDraft {
    WorkspaceDraft {
        id: id.into(),
        name: format!("workspace {id}"),
        description: None,
        metadata: Map::new(),
        scope: Scope::User,
        writer: "ann".into(),
        now: now_timestamp(),
        expected_version: None,
    }
}

/// Rows of table `t` keyed by `k`; a `size` over 350,000 bytes goes to a blob.
fn commit(id: &str, create: Option<&str>, rows: &[(&str, usize)]) -> Commit {
    let rows: Vec<(String, Row)> = rows
        .iter()
        .map(|(key, size)| {
            let row = json!({"k": key, "v": "x".repeat(*size)});
            (key.to_string(), row.as_object().cloned().unwrap_or_default())
        })
        .collect();
    let columns = vec![Column::new("k", "text", false), Column::new("v", "text", true)];
    Commit {
        id: id.into(),
        create_workspace: create.map(draft),
        upserts: vec![TableWrite {
            name: "t".into(),
            owner: TableOwner::Workspace { kind: "t".into() },
            columns,
            key_column: "k".into(),
            rows,
        }],
        ..Commit::default()
    }
}

#[tokio::test]
async fn every_dynamodb_store_call_is_declared_for_its_operation() {
    let Some(mut f) = fixture("store").await else { return };
    let (store, c) = (&f.store, &mut f.calls);
    let owner = Owner::user("acme", "ann");
    // Once per store, before its first call: the table's layout item.
    c.run(Op::CheckLayout, store.check_layout()).await.expect("layout");
    c.run(Op::SaveWorkspace, store.save_workspace(&owner, draft("ws_a"))).await.expect("save");
    // A stale version: refused, then the stored one read to say which it is.
    let stale = WorkspaceDraft { expected_version: Some(99), ..draft("ws_a") };
    assert!(c.run(Op::SaveWorkspace, store.save_workspace(&owner, stale)).await.is_err());
    assert!(c.run(Op::GetWorkspace, store.get_workspace(&owner, "ws_a")).await.expect("get").is_some());
    assert_eq!(c.run(Op::ListWorkspaces, store.list_workspaces(&owner, None, 10)).await.expect("list").items.len(), 1);

    // Created by its first commit (a conditional Put), with a row over the item limit (a blob,
    // so the commit is staged: record, batches, then the flip).
    let ws = WsKey::new(owner.clone(), "ws_b");
    let big = 400_000;
    let s0 = c.run(Op::ListTables, store.snapshot(&ws)).await.expect("snapshot");
    let c1 = commit("c1", Some("ws_b"), &[("k1", 10), ("k2", big)]);
    let r1 = c.run(Op::Commit, store.commit(&ws, s0.revision(), c1)).await.expect("c1");
    // A small one into the existing workspace: one transaction with its ConditionCheck.
    let r2 = c.run(Op::Commit, store.commit(&ws, r1, commit("c2", Some("ws_b"), &[("k3", 10)]))).await.expect("c2");
    let s2 = c.run(Op::ListTables, store.snapshot(&ws)).await.expect("snapshot");
    assert_eq!((s2.revision(), s2.tables()[0].row_count), (r2, 3));
    let rows = c.run(Op::ReadRows, s2.read_rows("t", None, 10)).await.expect("read");
    assert_eq!(rows.iter().map(|(_, r)| r["v"].as_str().map_or(0, str::len)).collect::<Vec<_>>(), [10, big, 10]);
    let got = c.run(Op::GetRows, s2.get_rows("t", &["k2".to_owned()])).await.expect("get rows");
    assert_eq!(got.len(), 1);
    // A stale base: refused after reading the head, before writing anything.
    let stale = c.run(Op::Commit, store.commit(&ws, r1, commit("c2b", None, &[("k9", 10)]))).await;
    assert!(matches!(stale, Err(shared::store::StoreError::Conflict(_))), "{stale:?}");

    // A staged commit that dies half-way, and one more layer with a blob.
    store.inject_commit_fault(Some(1));
    let faulted = c.run(Op::Commit, store.commit(&ws, r2, commit("c3", None, &[("k4", 10), ("k5", big)]))).await;
    store.inject_commit_fault(None);
    assert!(faulted.is_err(), "the injected fault fails the commit");
    let r4 = c.run(Op::Commit, store.commit(&ws, r2, commit("c4", None, &[("k7", big)]))).await.expect("c4");
    // Compaction with no grace period: aborts c3, folds c2 and c4 into c1's layer (copying k7's
    // blob); the second run deletes what the fold superseded (c4's blob with it).
    let compactor = store.clone().with_grace_secs(0);
    c.run(Op::Compact, compactor.compact_marked(Duration::from_secs(60))).await.expect("compact");
    c.run(Op::Compact, compactor.compact_marked(Duration::from_secs(60))).await.expect("compact again");
    let s4 = store.snapshot(&ws).await.expect("snapshot");
    assert!(s4.revision() > r4, "the fold is a commit");
    assert_eq!(s4.tables()[0].row_count, 4);
    // One more staged commit, so the delete's catalog read meets a staged entry (and its log).
    store.commit(&ws, s4.revision(), commit("c5", None, &[("k8", big)])).await.expect("c5");

    let (store, c) = (&f.store, &mut f.calls);
    let deleted = c.run(Op::DeleteWorkspace, store.delete_workspace(&owner, "ws_b")).await.expect("delete");
    assert_eq!(deleted, Some(5));
    // Without tables (no head yet): the delete puts one, so no commit based on nothing lands.
    assert_eq!(c.run(Op::DeleteWorkspace, store.delete_workspace(&owner, "ws_a")).await.expect("delete"), Some(0));
    c.check(&["Workspaces::", "Tables::", "Snapshot::", "DynamoStore::"]);
}

#[tokio::test]
async fn every_job_tables_call_is_declared_for_its_operation() {
    let Some(mut f) = fixture("jobs").await else { return };
    let (store, c) = (&f.store, &mut f.calls);
    store.check_layout().await.expect("layout");
    let ws = WsKey::new(Owner::user("acme", "ann"), "ws_j");
    let big = 400_000;
    let rows = |c: Commit| c.upserts.into_iter().flat_map(|t| t.rows).collect::<Vec<_>>();
    let table = StagedTable {
        name: "t".into(),
        owner: TableOwner::Workspace { kind: "t".into() },
        columns: vec![Column::new("k", "text", false), Column::new("v", "text", true)],
        key_column: "k".into(),
        new_keys: 2,
    };
    let finish = StagedFinish { base_revision: 0, create_workspace: Some(draft("ws_j")), tables: vec![table] };

    c.run(Op::BeginStaging, store.begin_staging(&ws, "job_1", &[("t".into(), 2)])).await.expect("begin");
    // An oversized row: named in the record, then its blob written.
    let staged = rows(commit("x", None, &[("k2", 10), ("k3", big)]));
    c.run(Op::StageRows, store.stage_rows(&ws, "job_1", "t", staged)).await.expect("stage");
    // The head moved since the job's base: the finish counts the staged keys against the table.
    store.commit(&ws, 0, commit("c1", None, &[("k1", 10)])).await.expect("c1");
    let rev = c.run(Op::FinishStaging, store.finish_staging(&ws, "job_1", finish)).await.expect("finish");
    // Its entry is a staged one: the snapshot reads the log too.
    let snap = c.run(Op::SnapshotAt, store.snapshot_at(&ws, rev)).await.expect("snapshot_at");
    assert_eq!(snap.expect("the current revision").tables()[0].row_count, 3);
    let until = shared::bundles::now_unix() + 600;
    c.run(Op::HoldRevision, store.hold_revision(&ws, "lease_1", rev, until.try_into().unwrap_or(0)))
        .await
        .expect("hold");
    c.run(Op::ReleaseRevision, store.release_revision(&ws, "lease_1")).await.expect("release");

    store.begin_staging(&ws, "job_2", &[("t".into(), 1)]).await.expect("begin");
    store.stage_rows(&ws, "job_2", "t", rows(commit("y", None, &[("k4", big)]))).await.expect("stage");
    c.run(Op::AbortStaging, store.abort_staging(&ws, "job_2")).await.expect("abort");
    c.check(&["JobTables::"]);
}

#[tokio::test]
async fn every_s3_bundle_call_is_declared_for_its_operation() {
    let Some(mut f) = fixture("bundles").await else { return };
    let (b, c) = (f.bundles.as_ref(), &mut f.calls);
    let key = |name: &str| format!("{BUNDLE_PREFIX}tenant/{name}.json");
    let upload = |name: String, size: usize, finish: bool| async move {
        let mut upload = b.create_upload(&name).await?;
        upload.write(&vec![b'x'; size]).await?;
        if finish {
            upload.finish().await.map(Some)
        } else {
            upload.abort().await.map(|()| None)
        }
    };
    assert_eq!(c.run(Op::CreateUpload, upload(key("small"), 10, true)).await.expect("put"), Some(10));
    // Over one part: a multipart upload, completed, then another aborted.
    let multipart = PART_SIZE + 1024;
    c.run(Op::CreateUpload, upload(key("big"), multipart, true)).await.expect("multipart");
    c.run(Op::CreateUpload, upload(key("dropped"), multipart, false)).await.expect("abort");
    // A job's upload: checkpointed after one part, resumed, one finished and one aborted.
    for (name, finish) in [("resumed", true), ("resumed-dropped", false)] {
        let mut first = b.create_upload(&key(name)).await.expect("create");
        first.write(&vec![b'y'; adapter_s3::MIN_PART_SIZE]).await.expect("write");
        let state = first.checkpoint().await.expect("checkpoint").expect("at a part boundary");
        first.suspend();
        let resumed = async {
            let mut upload = b.resume_upload(&key(name), &state).await?;
            upload.write(b"tail").await?;
            if finish {
                upload.finish().await.map(Some)
            } else {
                upload.abort().await.map(|()| None)
            }
        };
        let done = c.run(Op::ResumeUpload, resumed).await.expect("resumed upload");
        assert_eq!(done, finish.then_some(adapter_s3::MIN_PART_SIZE as u64 + 4));
    }

    assert!(c.run(Op::Get, b.get(&key("small"), 1024)).await.expect("get").is_some());
    assert!(c.run(Op::Get, b.get(&key("missing"), 1024)).await.expect("get missing").is_none());
    let stream = async {
        let (size, chunks) = b.open_stream(&key("small")).await?.expect("the object exists");
        let read: usize = chunks.map(|c| c.map_or(0, |c| c.len())).collect::<Vec<_>>().await.iter().sum();
        Ok::<_, shared::store::StoreError>((size, read))
    };
    assert_eq!(c.run(Op::OpenStream, stream).await.expect("stream"), (10, 10));
    assert_eq!(c.run(Op::ReadRange, b.read_range(&key("small"), 2, 5)).await.expect("range"), b"xxx".to_vec());
    assert!(c.run(Op::ReadRange, b.read_range(&key("missing"), 0, 5)).await.is_err(), "a range of a missing object");
    assert_eq!(c.run(Op::Head, b.head(&key("big"))).await.expect("head"), Some(multipart as u64));
    assert_eq!(c.run(Op::Head, b.head(&key("missing"))).await.expect("head missing"), None);
    let expires = shared::bundles::now_unix() + 600;
    c.run(Op::DownloadUrl, b.download_url(&key("small"), expires, "")).await.expect("download url");
    c.run(Op::UploadUrl, b.upload_url(&key("next"), expires, "")).await.expect("upload url");
    // A parted upload: created (its part URLs presigned), a part sent, completed.
    let parted_key = key("parted");
    let parted = c.run(Op::PartedUpload, b.parted_upload(&parted_key, 10, expires, "")).await.expect("parted");
    let part = b.upload_part(&parted_key, &parted.upload_id, 1, b"0123456789");
    let etag = c.run(Op::UploadPart, part).await.expect("part");
    let sent = [shared::bundles::SentPart { number: 1, etag }];
    c.run(Op::CompleteParts, b.complete_parts(&parted_key, &parted.upload_id, &sent)).await.expect("complete");
    c.run(Op::Sweep, b.sweep(BUNDLE_PREFIX, Duration::ZERO)).await.expect("sweep");
    c.run(Op::Delete, b.delete(&key("small"))).await.expect("delete");

    let blob = format!("{}iam/blob", shared::iam::ROW_BLOB_PREFIX);
    c.run(Op::PutBlob, b.put_blob(&blob, b"{}".to_vec())).await.expect("put blob");
    assert_eq!(c.run(Op::GetBlob, b.get_blob(&blob)).await.expect("get blob"), Some(b"{}".to_vec()));
    c.run(Op::DeleteBlob, b.delete_blob(&blob)).await.expect("delete blob");
    c.check(&["BundleStore::", "Blobs::"]);
}

fn job(owner: &Owner, key: &str) -> JobRecord {
    JobRecord::queued(new_job_id(), owner.clone(), JobKind::Export, key.into(), json!({"workspace_id": "ws_a"}))
}

#[tokio::test]
async fn every_job_store_call_is_declared_for_its_operation() {
    let Some(mut f) = fixture("jobs").await else { return };
    let (store, c) = (&f.store, &mut f.calls);
    let owner = Owner::user("acme", "ann");
    c.run(Op::CheckLayout, store.check_layout()).await.expect("layout");
    // A new key: one transaction; the same key again: the transaction fails, the key's item and
    // its job are read and answered.
    let (first, created) = c.run(Op::CreateJob, store.create_job(job(&owner, "k1"))).await.expect("create");
    assert!(created);
    let (same, created) = c.run(Op::CreateJob, store.create_job(job(&owner, "k1"))).await.expect("create again");
    assert!(!created && same.id == first.id);
    assert!(c.run(Op::GetJob, store.get_job(&owner, &first.id)).await.expect("get").is_some());
    assert_eq!(c.run(Op::ListJobs, store.list_jobs(&owner, None, 10)).await.expect("list").len(), 1);
    let running = JobRecord { state: JobState::Running, ..first };
    let running = c.run(Op::UpdateJob, store.update_job(&running)).await.expect("update");
    // Ending it expired: the key's item takes the expiry, and the key is free again.
    let now = shared::bundles::now_unix();
    let ended = JobRecord { state: JobState::Succeeded, expires_at: Some(now - 5), ..running };
    c.run(Op::UpdateJob, store.update_job(&ended)).await.expect("end");
    let stale = c.run(Op::UpdateJob, store.update_job(&ended)).await;
    assert!(matches!(stale, Err(shared::store::StoreError::Conflict(_))), "{stale:?}");
    let (second, created) = c.run(Op::CreateJob, store.create_job(job(&owner, "k1"))).await.expect("create anew");
    assert!(created && second.id != ended.id);
    c.check(&["Jobs::"]);
}

#[tokio::test]
async fn every_sqs_call_is_declared_for_its_operation() {
    let Some(endpoint) = blackbox_tests::aws_endpoint("AWS_ENDPOINT_URL_SQS", "sqs", "sqs") else { return };
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(Credentials::new("test", "test", None, None, "iam-calls"))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let name = format!("iam-jobs-{}", shared::model::new_id("", 8));
    let created = aws_sdk_sqs::Client::new(&sdk).create_queue().queue_name(&name).send().await.expect("create queue");
    let url = created.queue_url().expect("queue url").to_owned();
    let recorder = Recorder::default();
    let conf = aws_sdk_sqs::config::Builder::from(&sdk).interceptor(recorder.clone()).build();
    let q = SqsQueue::with_client(aws_sdk_sqs::Client::from_conf(conf), url);
    let mut c = Calls { recorder, by_op: BTreeMap::new() };
    let message = JobMessage { org: "acme".into(), user: "ann".into(), job_id: new_job_id(), task: JobTask::Run };
    c.run(Op::SendJob, q.send(&message)).await.expect("send");
    let got = c.run(Op::ReceiveJobs, q.receive(10, Duration::from_secs(30), Duration::from_secs(1))).await;
    let got = got.expect("receive");
    assert_eq!(got.len(), 1);
    c.run(Op::DeleteJobMessage, q.delete(&got[0].receipt)).await.expect("delete");
    c.check(&["JobQueue::", "QueueReceiver::"]);
}
