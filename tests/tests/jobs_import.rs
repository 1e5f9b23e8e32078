//! Import jobs through the API and the worker, on both backends: `"async": true` on
//! import-tables answers 202, the worker plans (a bad bundle fails the job with the route's 422),
//! stages chunk by chunk in parts fanned out to concurrent invocations, and the part that records
//! the last chunk commits. The result is what the synchronous route answers, and the workspace
//! ends exactly as after it; a killed worker, a cancel, an edit or a delete meanwhile are each
//! exact too.

use std::time::Duration;

use blackbox_tests::{facts_bundle, fetch_url, harness, Answer, Backend, Client, Harness};
use serde_json::{json, Value};
use shared::model::Owner;
use shared::routes::Endpoint;
use shared::store::jobs::{JobRecord, JobState};

#[track_caller]
fn started(a: &Answer) -> String {
    assert_eq!(a.status, 202, "{}", a.body);
    let id = a.data()["job_id"].as_str().expect("a job id").to_owned();
    assert!(id.starts_with("job_"), "{id}");
    assert_eq!(a.data()["state"], "queued");
    id
}

fn owner(c: &Client<'_>) -> Owner {
    Owner::user(&c.org, &c.user)
}

/// Stages `bundle` through the upload route; answers its bundle id.
async fn upload(h: &Harness, c: &Client<'_>, bundle: &Value) -> (String, String) {
    let slot = c.post(Endpoint::CreateBundleUpload, "/workspaces/bundles", json!({})).await.ok().clone();
    let url = slot["upload_url"].as_str().expect("an upload url").to_owned();
    let (status, _) = fetch_url(&h.app, "PUT", &url, Some(serde_json::to_vec(bundle).expect("bytes"))).await;
    assert_eq!(status, 200);
    (slot["bundle_id"].as_str().expect("a bundle id").to_owned(), url)
}

async fn import(c: &Client<'_>, ws: &str, export_data: Value, as_job: bool) -> Answer {
    let mut body = json!({"export_data": export_data, "workspace_id": ws});
    if as_job {
        body["async"] = json!(true);
    }
    c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await
}

/// Works the queue with `workers` invocations side by side (Lambda's concurrency for the
/// fanned-out parts) until the job ends; answers it and the invocations it took.
async fn work(h: &Harness, owner: &Owner, id: &str, workers: usize, left: Duration, max: usize) -> (JobRecord, usize) {
    let mut invocations = 0;
    let mut progress = 0;
    loop {
        let job = h.app.jobs.get_job(owner, id).await.expect("get").expect("the job");
        // Progress only moves forward.
        assert!(job.progress.rows.done >= progress, "progress went back to {:?}", job.progress);
        progress = job.progress.rows.done;
        if job.state.is_final() {
            return (job, invocations);
        }
        assert!(invocations < max, "job {id} still {:?} after {invocations} invocations", job.state);
        let pumps = (0..workers).map(|_| blackbox_tests::invoke_once(&h.app, &*h.queue, left));
        invocations += futures::future::join_all(pumps).await.into_iter().sum::<usize>();
    }
}

/// Equal but for when each was made, and who made it (the two imports are two users').
fn normalized(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in
                    ["extraction_timestamp", "injection_timestamp", "created_at", "updated_at", "author", "updated_by"]
                {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// The workspace as a synchronous export has it (the bundle itself).
async fn exported(h: &Harness, c: &Client<'_>, ws: &str) -> Value {
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

/// Equal, or a panic naming the first place they differ (not both values: they are big).
#[track_caller]
fn assert_same(a: &Value, b: &Value) {
    fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, format!("{at}.{k}")),
                    (p, q) => Some(format!("{at}.{k}: {p:?} vs {q:?}")),
                })
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, format!("{at}[{i}]")))
            }
            (Value::Array(x), Value::Array(y)) => Some(format!("{at}: {} vs {} items", x.len(), y.len())),
            _ if a == b => None,
            _ => Some(format!("{at}: {a} vs {b}")),
        }
    }
    if let Some(d) = first_difference(a, b, String::new()) {
        panic!("they differ at {d}");
    }
}

fn facts_ids(bundle: &Value, ws: &str) -> Vec<String> {
    let facts = &bundle["projects"]["p1"]["tables"][format!("facts_{ws}")]["data"];
    facts.as_array().expect("facts rows").iter().filter_map(|r| r["id"].as_str().map(str::to_owned)).collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("r{i:07}")).collect()
}

/// The same bundle imported synchronously and as a job, into the same starting point (a quarter
/// of its rows already stored, with other values), each on a store of its own (moto walks a whole
/// table per query): the job's result is the route's answer, and both workspaces end the same,
/// every row once.
async fn an_import_job_is_the_synchronous_import(backend: Backend, rows: usize, env: &[(&str, &str)], workers: usize) {
    let big = facts_bundle("ws_1", 0..rows, 70);
    let mut seeded = facts_bundle("ws_1", 0..rows / 4, 90);
    seeded["projects"] = json!({});
    let mut answers = Vec::new();
    let mut exports = Vec::new();
    for (case, as_job) in [("jobs_import_sync", false), ("jobs_import_job", true)] {
        let Some(h) = harness(backend, case, env).await else { return };
        let ann = Client::new(&h.app, "acme", "ann");
        import(&ann, "ws_1", seeded.clone(), false).await.ok();
        let (bundle_id, _) = upload(&h, &ann, &big).await;
        let a = import(&ann, "ws_1", json!({"bundle_id": bundle_id}), as_job).await;
        if as_job {
            let job_id = started(&a);
            let (job, invocations) = work(&h, &owner(&ann), &job_id, workers, Duration::from_secs(600), 400).await;
            assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
            let view = ann.get(Endpoint::GetJob, &format!("/workspaces/jobs/{job_id}")).await.ok().clone();
            assert_eq!(view["kind"], "import");
            assert_eq!(view["progress"]["rows"]["done"], view["progress"]["rows"]["total"]);
            assert_eq!(
                view["progress"]["bytes"]["done"], view["progress"]["bytes"]["total"],
                "a job that ended is all done"
            );
            answers.push(view["result"].clone());
            let parts = env.iter().find(|(k, _)| *k == "WORKSPACES_IMPORT_PART_CHUNKS").map_or(1, |_| 10);
            assert!(invocations > parts, "{invocations} invocations for {parts} parts");
        } else {
            answers.push(a.ok().clone());
        }
        exports.push(exported(&h, &ann, "ws_1").await);
    }
    assert_eq!(answers[1]["summary"]["rows_inserted"], (rows - rows / 4) as u64 + 2, "{}", answers[1]);
    assert_same(&normalized(answers[0].clone()), &normalized(answers[1].clone()));
    assert!(facts_ids(&exports[1], "ws_1") == ids(0..rows), "the job's workspace lacks or repeats rows");
    assert_same(&normalized(exports[0].clone()), &normalized(exports[1].clone()));
}

#[tokio::test]
async fn a_200k_row_import_job_is_the_synchronous_import_embedded() {
    // Default chunks (5,000 rows): 40 chunks in 2 parts of 20.
    let env = [("WORKSPACES_SYNC_IMPORT_MAX_ROWS", "300000")];
    an_import_job_is_the_synchronous_import(Backend::Embedded, 200_000, &env, 1).await;
}

#[tokio::test]
async fn a_20k_row_import_job_in_10_parts_is_the_synchronous_import_aws() {
    let env = [("WORKSPACES_IMPORT_CHUNK_ROWS", "500"), ("WORKSPACES_IMPORT_PART_CHUNKS", "4")];
    an_import_job_is_the_synchronous_import(Backend::Aws, 20_000, &env, 3).await;
}

#[tokio::test]
async fn a_fanned_out_import_job_is_the_synchronous_import_embedded() {
    let env = [("WORKSPACES_IMPORT_CHUNK_ROWS", "200"), ("WORKSPACES_IMPORT_PART_CHUNKS", "2")];
    an_import_job_is_the_synchronous_import(Backend::Embedded, 4_000, &env, 3).await;
}

/// Polls `work` at most `budget` times and drops it where it stands (nothing of it runs after);
/// answers its output if it finished, and the polls it took.
async fn polled<F: std::future::Future>(work: F, budget: usize) -> (Option<F::Output>, usize) {
    let mut work = std::pin::pin!(work);
    let mut polls = 0;
    std::future::poll_fn(move |cx| {
        if polls == budget {
            return std::task::Poll::Ready((None, polls));
        }
        polls += 1;
        work.as_mut().poll(cx).map(|out| (Some(out), polls))
    })
    .await
}

/// Invocations killed at arbitrary points (the future dropped where it stands, nothing of it
/// runs after) and others given almost no time: the workspace still ends with every row once.
async fn a_killed_import_worker_resumes_exactly(backend: Backend, rows: usize) {
    let env = [("WORKSPACES_IMPORT_CHUNK_ROWS", "250"), ("WORKSPACES_IMPORT_PART_CHUNKS", "2")];
    let Some(h) = harness(backend, "jobs_import_kill", &env).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    let (bundle_id, _) = upload(&h, &ann, &facts_bundle("ws_1", 0..rows, 70)).await;
    let job_id = started(&import(&ann, "ws_1", json!({"bundle_id": bundle_id}), true).await);
    let owner = owner(&ann);
    let (mut invocations, mut kills, mut progress) = (0u64, 0, 0);
    // Polls a whole one-chunk invocation takes here (learnt from the short ones): a kill is
    // placed at a count below it, so it lands inside the job's work on any backend and machine
    // (SQLite answers small reads without yielding, moto's HTTP yields at every read; a timer
    // let a fast worker finish the whole job first).
    let mut one_chunk = 4;
    loop {
        let job = h.app.jobs.get_job(&owner, &job_id).await.expect("get").expect("job");
        assert!(job.progress.rows.done >= progress, "progress went back");
        progress = job.progress.rows.done;
        if job.state.is_final() {
            assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
            break;
        }
        assert!(invocations < 200, "still {:?} after {invocations} invocations", job.state);
        invocations += 1;
        if invocations % 3 == 1 && kills < 5 {
            let work = blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::from_secs(1));
            let budget = 2 + (invocations as usize * 7) % (one_chunk - 2);
            let (finished, _) = polled(work, budget).await;
            let now = h.app.jobs.get_job(&owner, &job_id).await.expect("get").expect("job");
            if finished.is_none() && !now.state.is_final() {
                kills += 1;
                // A killed Run task's claim expires 5 s after its deadline.
                tokio::time::sleep(Duration::from_secs(7)).await;
            }
            continue;
        }
        let work = blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::ZERO);
        // Only an invocation that took a message counts (an empty one polls while it waits).
        if let (Some(1), polls) = polled(work, usize::MAX).await {
            one_chunk = one_chunk.max(polls);
        }
    }
    assert!(kills > 0, "no invocation was killed mid-way");
    let bundle = exported(&h, &ann, "ws_1").await;
    assert_eq!(facts_ids(&bundle, "ws_1"), ids(0..rows));
    assert_eq!(bundle["summary"]["total_rows"], rows as u64 + 3);
}

#[tokio::test]
async fn a_killed_import_worker_resumes_exactly_embedded() {
    a_killed_import_worker_resumes_exactly(Backend::Embedded, 10_000).await;
}

#[tokio::test]
async fn a_killed_import_worker_resumes_exactly_aws() {
    a_killed_import_worker_resumes_exactly(Backend::Aws, 2_000).await;
}

/// Cancelled between two chunks (some rows already staged): none of them becomes visible, and
/// the job's plan and its copy of the inline bundle are gone.
#[tokio::test]
async fn a_cancelled_import_leaves_nothing() {
    let env = [("WORKSPACES_IMPORT_CHUNK_ROWS", "500")];
    let h = harness(Backend::Embedded, "jobs_import_cancel", &env).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    import(&ann, "ws_1", facts_bundle("ws_1", 0..10, 70), false).await.ok();
    let before = exported(&h, &ann, "ws_1").await;
    let job_id = started(&import(&ann, "ws_1", facts_bundle("ws_1", 0..3_000, 70), true).await);
    // One short invocation: it plans, stages one chunk and pauses.
    assert_eq!(blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::ZERO).await, 1);
    let mid = h.app.jobs.get_job(&owner(&ann), &job_id).await.expect("get").expect("job");
    assert_eq!(mid.state, JobState::Running);
    let rows = mid.progress.rows;
    assert!(rows.done > 0 && Some(rows.done) < rows.total, "{:?}", mid.progress);
    let a = ann.post(Endpoint::CancelJob, &format!("/workspaces/jobs/{job_id}/cancel"), json!({})).await;
    assert_eq!(a.ok()["cancel_requested"], true);
    let (job, _) = work(&h, &owner(&ann), &job_id, 1, Duration::from_secs(60), 5).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.result.is_none());
    assert_same(&normalized(exported(&h, &ann, "ws_1").await), &normalized(before));
    let left: Vec<_> = h.bundle_files("bundles/jobs");
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A bundle the route refuses fails the job with the route's own answer, before anything is
/// staged: nothing is visible, not even the workspace it would have created.
async fn a_bad_bundle_fails_the_job_with_the_routes_422(backend: Backend) {
    let Some(h) = harness(backend, "jobs_import_bad", &[]).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    let mut bad = facts_bundle("ws_1", 0..50, 70);
    bad["tables"]["facts_ws_1"]["data"][37] = json!({"n": 1});
    let route = import(&ann, "ws_1", bad.clone(), false).await;
    assert_eq!(route.status, 422, "{}", route.body);
    let job_id = started(&import(&ann, "ws_1", bad, true).await);
    let (job, _) = work(&h, &owner(&ann), &job_id, 1, Duration::from_secs(60), 5).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.expect("an error");
    assert_eq!((error.status, error.message.as_str()), (422, route.message()));
    let view = ann.get(Endpoint::GetJob, &format!("/workspaces/jobs/{job_id}")).await.ok().clone();
    assert_eq!(view["error"]["message"], route.message());
    ann.get(Endpoint::LoadWorkspace, "/workspaces/ws_1/load").await.assert_error(404, "not found");
}

#[tokio::test]
async fn a_bad_bundle_fails_the_job_with_the_routes_422_embedded() {
    a_bad_bundle_fails_the_job_with_the_routes_422(Backend::Embedded).await;
}

#[tokio::test]
async fn a_bad_bundle_fails_the_job_with_the_routes_422_aws() {
    a_bad_bundle_fails_the_job_with_the_routes_422(Backend::Aws).await;
}

/// The staged bundle replaced between two chunks (same upload link, other rows): the next chunk
/// sees it, the job fails naming it, and the rows already staged never become visible.
#[tokio::test]
async fn a_bundle_changed_under_a_running_job_fails_it_with_nothing_visible() {
    let env = [("WORKSPACES_IMPORT_CHUNK_ROWS", "500")];
    let h = harness(Backend::Embedded, "jobs_import_changed", &env).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    let (bundle_id, url) = upload(&h, &ann, &facts_bundle("ws_1", 0..3_000, 70)).await;
    let job_id = started(&import(&ann, "ws_1", json!({"bundle_id": bundle_id}), true).await);
    assert_eq!(blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::ZERO).await, 1);
    let other = serde_json::to_vec(&facts_bundle("ws_1", 5_000..8_000, 70)).expect("bytes");
    let (status, _) = fetch_url(&h.app, "PUT", &url, Some(other)).await;
    assert_eq!(status, 200);
    let (job, _) = work(&h, &owner(&ann), &job_id, 1, Duration::from_secs(60), 5).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.expect("an error");
    assert_eq!(error.status, 409, "{}", error.message);
    assert!(error.message.contains(&bundle_id) && error.message.contains("changed"), "{}", error.message);
    ann.get(Endpoint::LoadWorkspace, "/workspaces/ws_1/load").await.assert_error(404, "not found");
}

/// An import is a merge: a write to the same table while the job runs does not fail it, and
/// both end visible. (On SQLite, which keeps one revision, the job plans again.)
async fn an_edit_while_an_import_job_runs_is_kept(backend: Backend) {
    let env = [("WORKSPACES_IMPORT_CHUNK_ROWS", "500")];
    let Some(h) = harness(backend, "jobs_import_edit", &env).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    import(&ann, "ws_1", facts_bundle("ws_1", 0..10, 70), false).await.ok();
    let job_id = started(&import(&ann, "ws_1", facts_bundle("ws_1", 0..3_000, 70), true).await);
    assert_eq!(blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::ZERO).await, 1);
    let mut edit = facts_bundle("ws_1", 9_000..9_001, 70);
    edit["projects"] = json!({});
    import(&ann, "ws_1", edit, false).await.ok();
    let (job, _) = work(&h, &owner(&ann), &job_id, 1, Duration::from_secs(60), 10).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let mut expected = ids(0..3_000);
    expected.push("r0009000".into());
    assert_eq!(facts_ids(&exported(&h, &ann, "ws_1").await, "ws_1"), expected);
}

#[tokio::test]
async fn an_edit_while_an_import_job_runs_is_kept_embedded() {
    an_edit_while_an_import_job_runs_is_kept(Backend::Embedded).await;
}

#[tokio::test]
async fn an_edit_while_an_import_job_runs_is_kept_aws() {
    an_edit_while_an_import_job_runs_is_kept(Backend::Aws).await;
}

/// The workspace deleted while its import runs: the job fails (409), and does not bring the
/// workspace back.
async fn a_workspace_deleted_under_an_import_job_fails_it(backend: Backend) {
    let env = [("WORKSPACES_IMPORT_CHUNK_ROWS", "500")];
    let Some(h) = harness(backend, "jobs_import_deleted", &env).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    import(&ann, "ws_1", facts_bundle("ws_1", 0..10, 70), false).await.ok();
    let job_id = started(&import(&ann, "ws_1", facts_bundle("ws_1", 0..3_000, 70), true).await);
    assert_eq!(blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::ZERO).await, 1);
    ann.post(Endpoint::CleanupWorkspace, "/workspaces/ws_1/cleanup", json!({})).await.ok();
    let (job, _) = work(&h, &owner(&ann), &job_id, 1, Duration::from_secs(60), 10).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.expect("an error");
    assert_eq!(error.status, 409, "{}", error.message);
    assert!(error.message.contains("deleted"), "{}", error.message);
    ann.get(Endpoint::LoadWorkspace, "/workspaces/ws_1/load").await.assert_error(404, "not found");
}

#[tokio::test]
async fn a_workspace_deleted_under_an_import_job_fails_it_embedded() {
    a_workspace_deleted_under_an_import_job_fails_it(Backend::Embedded).await;
}

#[tokio::test]
async fn a_workspace_deleted_under_an_import_job_fails_it_aws() {
    a_workspace_deleted_under_an_import_job_fails_it(Backend::Aws).await;
}

/// The route's own checks come first: a missing staged bundle is a 404 at once, another
/// tenant's bundle id too; the same request again finds the same job.
#[tokio::test]
async fn an_import_job_is_refused_or_found_as_the_route_would() {
    let h = harness(Backend::Embedded, "jobs_import_route", &[]).await.expect("embedded");
    let (ann, eve) = (Client::new(&h.app, "acme", "ann"), Client::new(&h.app, "evil", "eve"));
    import(&ann, "ws_1", json!({"bundle_id": "bnd_0123456789abcdef"}), true).await.assert_error(404, "not found");
    let (bundle_id, _) = upload(&h, &ann, &facts_bundle("ws_1", 0..5, 70)).await;
    import(&eve, "ws_1", json!({"bundle_id": bundle_id}), true).await.assert_error(404, "not found");
    import(&ann, "jobs", json!({"bundle_id": bundle_id}), true).await.assert_error(400, "reserved");
    let first = started(&import(&ann, "ws_1", json!({"bundle_id": bundle_id}), true).await);
    let again = import(&ann, "ws_1", json!({"bundle_id": bundle_id}), true).await;
    assert_eq!(again.data()["job_id"], first.as_str());
    let inline = facts_bundle("ws_2", 0..5, 70);
    let one = started(&import(&ann, "ws_2", inline.clone(), true).await);
    assert_eq!(import(&ann, "ws_2", inline, true).await.data()["job_id"], one.as_str());
    // The second request's copy of the inline bundle is dropped: one copy, the job's.
    let copies = h.bundle_files("bundles/jobs");
    assert_eq!(copies.len(), 1, "{copies:?}");
    eve.get(Endpoint::GetJob, &format!("/workspaces/jobs/{one}")).await.assert_error(404, "not found");
    for id in [&first, &one] {
        let (job, _) = work(&h, &owner(&ann), id, 1, Duration::from_secs(60), 5).await;
        assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    }
    let left = h.bundle_files("bundles/jobs");
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// An import job ends once: when its commit has begun (and that worker died), a task that keeps
/// coming back and a cancel asked for meanwhile do not abort the staging under it; the next
/// delivery finishes the commit, every row visible.
#[tokio::test]
async fn a_commit_under_way_is_finished_not_abandoned() {
    use lambda_http::aws_lambda_events::sqs::{SqsEvent, SqsMessage};
    let env = [("WORKSPACES_IMPORT_CHUNK_ROWS", "500")];
    let h = harness(Backend::Embedded, "jobs_import_committing", &env).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    let job_id = started(&import(&ann, "ws_1", facts_bundle("ws_1", 0..1_500, 70), true).await);
    // Short invocations record a chunk each and pause: stop once every chunk is recorded.
    for _ in 0..20 {
        let job = h.app.jobs.get_job(&owner(&ann), &job_id).await.expect("get").expect("job");
        if job.progress.rows.total.is_some_and(|t| t == job.progress.rows.done) {
            break;
        }
        assert_eq!(blackbox_tests::invoke_once(&h.app, &*h.queue, Duration::ZERO).await, 1);
    }
    let mut job = h.app.jobs.get_job(&owner(&ann), &job_id).await.expect("get").expect("job");
    assert_eq!(job.state, JobState::Running, "{:?}", job.error);
    assert_eq!(job.progress.rows.total, Some(job.progress.rows.done), "every chunk recorded");
    // As the commit step records it before its finish, whose worker then died.
    if let Some(checkpoint) = job.checkpoint.as_mut() {
        checkpoint["run"]["committing"] = json!(true);
    }
    h.app.jobs.update_job(&job).await.expect("marking the commit begun");
    ann.post(Endpoint::CancelJob, &format!("/workspaces/jobs/{job_id}/cancel"), json!({})).await.ok();

    // A delivery past the limit, which would otherwise fail the job.
    let message = shared::queue::JobMessage {
        org: "acme".into(),
        user: "ann".into(),
        job_id: job_id.clone(),
        task: shared::queue::JobTask::Run,
    };
    let mut record = SqsMessage::default();
    record.message_id = Some("again".into());
    record.body = Some(serde_json::to_string(&message).expect("message"));
    record.attributes.insert("ApproximateReceiveCount".into(), "9".into());
    let mut event = SqsEvent::default();
    event.records = vec![record];
    let answer = shared::jobs::lambda::handle_event(&h.app, event, Duration::from_secs(60)).await;
    assert!(answer.batch_item_failures.is_empty(), "it finished the commit: {answer:?}");

    let (job, _) = work(&h, &owner(&ann), &job_id, 1, Duration::from_secs(60), 10).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let inserted = job.result.as_ref().and_then(|r| r["summary"]["rows_inserted"].as_u64());
    assert_eq!(inserted, job.progress.rows.total, "every row of the bundle, once");
    let ws = exported(&h, &ann, "ws_1").await;
    let facts = &ws["projects"]["p1"]["tables"]["facts_ws_1"]["data"];
    assert_eq!(facts.as_array().map(Vec::len), Some(1_500), "every row visible");
}
