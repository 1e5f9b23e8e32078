//! Jobs through the API and the worker, on both backends: `"async": true` answers 202 with a
//! job, the worker (driven as Lambda's event source mapping would) does it in checkpointed
//! chunks, and the job's result is what the synchronous route would have answered. Resuming
//! after a pause or a killed worker loses and doubles nothing; a job is its starter's alone.

use std::time::Duration;

use blackbox_tests::{fetch_url, harness, Answer, Backend, Client, Harness};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::model::Owner;
use shared::routes::Endpoint;
use shared::store::jobs::{JobRecord, JobState};

fn bundle(ws: &str, rows: usize, row_bytes: usize) -> Value {
    blackbox_tests::facts_bundle(ws, 0..rows, row_bytes)
}

/// In imports of at most 5,000 rows each (a request body stops at 6 MB).
async fn seed(c: &Client<'_>, ws: &str, rows: usize, row_bytes: usize) {
    let mut from = 0;
    while from < rows {
        let b = blackbox_tests::facts_bundle(ws, from..rows.min(from + 5_000), row_bytes);
        let body = json!({"export_data": b, "workspace_id": ws});
        c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await.ok();
        from += 5_000;
    }
}

#[track_caller]
fn started(a: &Answer) -> String {
    assert_eq!(a.status, 202, "{}", a.body);
    let data = a.data();
    let id = data["job_id"].as_str().expect("a job id").to_owned();
    assert!(id.starts_with("job_"), "{id}");
    let url = data["status_url"].as_str().expect("a status url");
    assert!(url.starts_with("http://") && url.ends_with(&format!("/workspaces/jobs/{id}")), "{url}");
    id
}

fn owner(c: &Client<'_>) -> Owner {
    Owner::user(&c.org, &c.user)
}

/// The bundle a finished export job links, fetched with no token, checked against its
/// declared size and sha256.
async fn bundle_of(h: &Harness, c: &Client<'_>, job_id: &str) -> Value {
    let a = c.get(Endpoint::GetJob, &format!("/workspaces/jobs/{job_id}")).await;
    let data = a.ok();
    assert_eq!(data["state"], "succeeded", "{data}");
    let bundle = &data["result"]["bundle"];
    let (status, bytes) = fetch_url(&h.app, "GET", bundle["url"].as_str().expect("a link"), None).await;
    assert_eq!(status, 200);
    assert_eq!(bytes.len() as u64, bundle["size"].as_u64().expect("a size"));
    assert_eq!(hex::encode(Sha256::digest(&bytes)), bundle["sha256"].as_str().expect("a sha256"));
    serde_json::from_slice(&bytes).expect("the bundle is JSON")
}

/// What a synchronous export of the same workspace says (the bundle itself), for comparison.
async fn sync_export(h: &Harness, c: &Client<'_>, ws: &str) -> Value {
    let a = c.post(Endpoint::ExportTables, &format!("/workspaces/{ws}/export-tables"), json!({})).await;
    let data = a.ok().clone();
    match data["bundle"]["url"].as_str() {
        Some(url) => {
            let (_, bytes) = fetch_url(&h.app, "GET", url, None).await;
            serde_json::from_slice(&bytes).expect("JSON")
        }
        None => data,
    }
}

/// Equal but for when each was made.
fn without_times(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("extraction_timestamp");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

async fn export_job_is_the_synchronous_export(backend: Backend) {
    let Some(h) = harness(backend, "jobs_export", &[("WORKSPACES_INLINE_LIMIT_BYTES", "2000")]).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    seed(&ann, "ws_1", 300, 200).await;
    let a = ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", json!({"async": true})).await;
    let job_id = started(&a);
    assert_eq!(a.data()["state"], "queued");
    let (job, invocations) = h.work_job(&owner(&ann), &job_id, Duration::from_secs(300), 5).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(invocations, 1);
    assert_eq!(job.progress.rows.done, 300 + 2 + 1);
    assert_eq!(job.progress.rows.total, Some(303));
    let via_job = bundle_of(&h, &ann, &job_id).await;
    let via_route = sync_export(&h, &ann, "ws_1").await;
    assert_eq!(without_times(via_job), without_times(via_route));
    let result = &ann.get(Endpoint::GetJob, &format!("/workspaces/jobs/{job_id}")).await.ok().clone()["result"];
    assert_eq!(result["summary"]["total_rows"], 303);
    assert_eq!(result["workspace_id"], "ws_1");
}

#[tokio::test]
async fn an_export_job_answers_what_the_route_would_embedded() {
    export_job_is_the_synchronous_export(Backend::Embedded).await;
}

#[tokio::test]
async fn an_export_job_answers_what_the_route_would_aws() {
    export_job_is_the_synchronous_export(Backend::Aws).await;
}

/// Over 5 MiB, so the upload is checkpointed; invocations given almost no time pause at every
/// checkpoint, and killed ones stop anywhere: the bundle still holds every row once.
async fn an_export_job_resumes_exactly(backend: Backend, kill: bool) {
    let Some(h) = harness(backend, "jobs_resume", &[]).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    let rows = 14_000;
    seed(&ann, "ws_1", rows, 1_000).await;
    let job_id =
        started(&ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", json!({"async": true})).await);
    let owner = owner(&ann);
    let mut seen: Vec<u64> = Vec::new();
    let mut invocations = 0;
    let mut kills = 0;
    loop {
        let job: JobRecord = h.app.jobs.get_job(&owner, &job_id).await.expect("get").expect("job");
        // Progress only moves forward.
        if let Some(last) = seen.last() {
            assert!(job.progress.rows.done >= *last, "progress went back: {seen:?} then {}", job.progress.rows.done);
        }
        seen.push(job.progress.rows.done);
        if job.state.is_final() {
            assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
            break;
        }
        assert!(invocations < 60, "still {:?} after {invocations} invocations", job.state);
        invocations += 1;
        if kill && invocations % 2 == 1 {
            // A worker that dies mid-way: the invocation is dropped where it stands (no code
            // of it runs after), its message comes again once its claim has expired.
            let ms = 50 + (invocations as u64 * 137) % 700;
            let work = h.work_job(&owner, &job_id, Duration::from_secs(1), 1_000);
            if tokio::time::timeout(Duration::from_millis(ms), work).await.is_err() {
                kills += 1;
                tokio::time::sleep(Duration::from_secs(7)).await;
            }
            continue;
        }
        blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::ZERO).await;
    }
    assert!(seen.len() > 2, "the job should have taken several invocations: {seen:?}");
    if kill {
        assert!(kills > 0, "no invocation was killed mid-way");
    }
    let bundle = bundle_of(&h, &ann, &job_id).await;
    // A workspace with projects repeats its workspace tables in each project, as the platform does.
    let facts = bundle["projects"]["p1"]["tables"]["facts_ws_1"]["data"].as_array().expect("facts rows").clone();
    let ids: Vec<&str> = facts.iter().filter_map(|r| r["id"].as_str()).collect();
    let expected: Vec<String> = (0..rows).map(|i| format!("r{i:07}")).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(bundle["summary"]["total_rows"], rows as u64 + 3);
}

#[tokio::test]
async fn an_export_job_goes_on_in_fresh_invocations_embedded() {
    an_export_job_resumes_exactly(Backend::Embedded, false).await;
}

#[tokio::test]
async fn an_export_job_goes_on_in_fresh_invocations_aws() {
    an_export_job_resumes_exactly(Backend::Aws, false).await;
}

#[tokio::test]
async fn a_killed_export_worker_resumes_without_losing_or_doubling_rows_embedded() {
    an_export_job_resumes_exactly(Backend::Embedded, true).await;
}

/// A job is its starter's alone: another member of the organization, another organization and
/// the organization's admin all get 404 for it, on every job route, and never see it listed.
async fn a_job_is_its_starters_alone(backend: Backend) {
    let Some(h) = harness(backend, "jobs_private", &[]).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    seed(&ann, "ws_1", 5, 50).await;
    let job_id =
        started(&ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", json!({"async": true})).await);
    h.work_job(&owner(&ann), &job_id, Duration::from_secs(60), 3).await;
    let path = format!("/workspaces/jobs/{job_id}");
    for other in [
        Client::new(&h.app, "acme", "bob"),
        Client::with_role(&h.app, "acme", "carol", "admin"),
        Client::new(&h.app, "evil", "ann"),
    ] {
        other.get(Endpoint::GetJob, &path).await.assert_error(404, "not found");
        other.post(Endpoint::CancelJob, &format!("{path}/cancel"), json!({})).await.assert_error(404, "not found");
        let listed = other.get(Endpoint::ListJobs, "/workspaces/jobs").await;
        assert_eq!(listed.ok(), &json!([]), "{}", other.user);
    }
    // A made-up id is exactly as absent.
    ann.get(Endpoint::GetJob, "/workspaces/jobs/job_000000000000000000000000").await.assert_error(404, "not found");
    ann.get(Endpoint::GetJob, "/workspaces/jobs/nonsense").await.assert_error(404, "not found");
    let listed = ann.get(Endpoint::ListJobs, "/workspaces/jobs").await;
    assert_eq!(listed.ok()[0]["job_id"], job_id.as_str());
}

#[tokio::test]
async fn a_job_is_its_starters_alone_embedded() {
    a_job_is_its_starters_alone(Backend::Embedded).await;
}

#[tokio::test]
async fn a_job_is_its_starters_alone_aws() {
    a_job_is_its_starters_alone(Backend::Aws).await;
}

#[tokio::test]
async fn the_same_request_finds_the_same_job() {
    let h = harness(Backend::Embedded, "jobs_same", &[]).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    seed(&ann, "ws_1", 5, 50).await;
    let body = json!({"async": true});
    let first = started(&ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", body.clone()).await);
    let again = started(&ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", body.clone()).await);
    assert_eq!(first, again, "the same body while the job is queued");
    let keyed = |key: &'static str| {
        let ann = &ann;
        let body = body.clone();
        async move {
            let a = ann
                .call_with_headers(
                    Endpoint::ExportTables,
                    "POST",
                    "/workspaces/ws_1/export-tables",
                    Some(&body),
                    &[("Idempotency-Key", key)],
                )
                .await;
            started(&a)
        }
    };
    let k1 = keyed("k-1").await;
    assert_ne!(k1, first, "a key of its own is another job");
    assert_eq!(keyed("k-1").await, k1);
    for id in [&first, &k1] {
        h.work_job(&owner(&ann), id, Duration::from_secs(60), 5).await;
    }
    // Finished: the same key still finds it; the same body alone starts a new export.
    assert_eq!(keyed("k-1").await, k1);
    let later = started(&ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", body.clone()).await);
    assert_ne!(later, first);
    let bad = ann
        .call_with_headers(
            Endpoint::ExportTables,
            "POST",
            "/workspaces/ws_1/export-tables",
            Some(&body),
            &[("Idempotency-Key", " ")],
        )
        .await;
    bad.assert_error(400, "Idempotency-Key");
}

/// Cancelled while queued: at once; while running: at its next checkpoint. Either way no bundle
/// is left and the job says so.
#[tokio::test]
async fn a_cancelled_export_leaves_nothing() {
    let h = harness(Backend::Embedded, "jobs_cancel", &[]).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    seed(&ann, "ws_1", 14_000, 1_000).await;
    let queued =
        started(&ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", json!({"async": true})).await);
    let a = ann.post(Endpoint::CancelJob, &format!("/workspaces/jobs/{queued}/cancel"), json!({})).await;
    assert_eq!(a.ok()["state"], "cancelled");
    // Its message still comes; the worker leaves a cancelled job as it is.
    assert_eq!(blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::from_secs(60)).await, 1);
    let job = h.app.jobs.get_job(&owner(&ann), &queued).await.expect("get").expect("job");
    assert_eq!(job.state, JobState::Cancelled);
    ann.post(Endpoint::CancelJob, &format!("/workspaces/jobs/{queued}/cancel"), json!({}))
        .await
        .assert_error(409, "already");

    let running = started(
        &ann.call_with_headers(
            Endpoint::ExportTables,
            "POST",
            "/workspaces/ws_1/export-tables",
            Some(&json!({"async": true})),
            &[("Idempotency-Key", "second")],
        )
        .await,
    );
    // One short invocation: it pauses at its first checkpoint, mid-bundle.
    blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::ZERO).await;
    let mid = h.app.jobs.get_job(&owner(&ann), &running).await.expect("get").expect("job");
    assert_eq!(mid.state, JobState::Running);
    assert!(mid.progress.rows.done > 0);
    let a = ann.post(Endpoint::CancelJob, &format!("/workspaces/jobs/{running}/cancel"), json!({})).await;
    assert_eq!(a.ok()["cancel_requested"], true);
    let (job, _) = h.work_job(&owner(&ann), &running, Duration::from_secs(60), 3).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.result.is_none());
    // No bundle, no half-written upload left in the folder.
    let files = h.bundle_files("");
    assert!(files.is_empty(), "left behind: {files:?}");
}

#[tokio::test]
async fn a_synchronous_export_too_large_for_30_s_names_the_job() {
    let env = [("WORKSPACES_SYNC_EXPORT_MAX_ROWS", "100")];
    let h = harness(Backend::Embedded, "jobs_413", &env).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    seed(&ann, "ws_1", 150, 50).await;
    let a = ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", json!({})).await;
    a.assert_error(413, "\"async\": true");
    assert!(a.message().contains("/workspaces/jobs/"), "{}", a.message());
    let job_id =
        started(&ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", json!({"async": true})).await);
    let (job, _) = h.work_job(&owner(&ann), &job_id, Duration::from_secs(60), 3).await;
    assert_eq!(job.state, JobState::Succeeded);
}

#[tokio::test]
async fn jobs_and_bundles_are_not_workspace_ids() {
    let h = harness(Backend::Embedded, "jobs_reserved", &[]).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    for id in ["jobs", "bundles"] {
        let a = ann.post(Endpoint::SaveWorkspace, "/workspaces/save", json!({"id": id, "name": "x"})).await;
        a.assert_error(400, "reserved");
        let a = ann
            .post(
                Endpoint::ImportTables,
                "/workspaces/import-tables",
                json!({"export_data": bundle("w", 1, 10), "workspace_id": id}),
            )
            .await;
        a.assert_error(400, "reserved");
    }
}

#[tokio::test]
async fn a_job_of_a_workspace_deleted_before_it_ran_fails_with_the_routes_answer() {
    let h = harness(Backend::Embedded, "jobs_gone", &[]).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    seed(&ann, "ws_1", 5, 50).await;
    let job_id =
        started(&ann.post(Endpoint::ExportTables, "/workspaces/ws_1/export-tables", json!({"async": true})).await);
    ann.post(Endpoint::CleanupWorkspace, "/workspaces/ws_1/cleanup", json!({})).await.ok();
    let (job, _) = h.work_job(&owner(&ann), &job_id, Duration::from_secs(60), 3).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.expect("an error");
    assert_eq!(error.status, 404);
    assert!(error.message.contains("ws_1"), "{}", error.message);
    let view = ann.get(Endpoint::GetJob, &format!("/workspaces/jobs/{job_id}")).await;
    assert_eq!(view.ok()["error"]["status"], 404);
}
