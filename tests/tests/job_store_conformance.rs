//! The job records port (`shared::store::jobs::Jobs`), pinned once and run against both
//! adapters: SQLite on a fresh temp file, DynamoDB on a fresh table (moto; skipped with a loud
//! SKIP when `AWS_ENDPOINT_URL_DYNAMODB` is unset, unless `WORKSPACES_TEST_REQUIRE_AWS=1`).
//! Adapter-only checks (the item layout, taking over a key, malformed stored data) are at the end.

use std::sync::Arc;
use std::time::Duration;

use adapter_dynamodb::DynamoStore;
use adapter_sqlite::SqliteStore;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::model::{now_timestamp, Owner};
use shared::store::jobs::{Counter, JobFailure, JobKind, JobRecord, JobState, Jobs, Progress};
use shared::store::StoreError;

struct Fixture {
    jobs: Arc<dyn Jobs>,
    _dir: Option<tempfile::TempDir>,
}

async fn fresh_sqlite(_case: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let store = SqliteStore::open(&dir.path().join("jobs.db")).expect("opening a fresh SQLite store");
    Some(Fixture { jobs: Arc::new(store), _dir: Some(dir) })
}

async fn fresh_dynamo_store(case: &str) -> Option<(DynamoStore, aws_sdk_dynamodb::Client, String)> {
    let endpoint = blackbox_tests::aws_endpoint("AWS_ENDPOINT_URL_DYNAMODB", case, "dynamodb")?;
    let client = blackbox_tests::dynamodb_client(&endpoint).await;
    let table = blackbox_tests::unique_table("jobs", case);
    let store = DynamoStore::new(client.clone(), table.clone());
    store.create_table_if_missing().await.unwrap_or_else(|e| panic!("creating table {table} at {endpoint}: {e}"));
    Some((store, client, table))
}

async fn fresh_dynamo(case: &str) -> Option<Fixture> {
    let (store, _, _) = fresh_dynamo_store(case).await?;
    Some(Fixture { jobs: Arc::new(store), _dir: None })
}

macro_rules! conformance {
    ($adapter:ident, $fresh:path) => {
        conformance!(@cases $adapter, $fresh;
            round_trip,
            nobody_else_sees_a_job,
            the_same_idempotency_key_answers_the_same_job,
            an_expired_job_frees_its_key,
            list_is_newest_first_and_pages,
            expired_jobs_are_neither_listed_nor_gotten,
            a_stale_update_is_a_conflict_and_writes_nothing,
            of_concurrent_updates_exactly_one_wins,
            versions_go_up_by_one,
            a_record_too_large_is_refused,
        );
    };
    (@cases $adapter:ident, $fresh:path; $($case:ident),+ $(,)?) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = $fresh(stringify!($case)).await else { return };
                    crate::cases::$case(fixture.jobs).await;
                }
            )+
        }
    };
}

conformance!(sqlite, crate::fresh_sqlite);
conformance!(dynamodb, crate::fresh_dynamo);

mod support {
    use super::*;

    pub fn ann() -> Owner {
        Owner::user("acme", "ann")
    }

    pub fn now_unix() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
    }

    /// The `n`-th id of a run: ids sort by `n` as real ones sort by creation time.
    pub fn id(n: u64) -> String {
        format!("job_{:012x}{:012x}", 0x0190_0000_0000 + n, n)
    }

    pub fn record(owner: &Owner, id: &str, key: &str) -> JobRecord {
        let request = json!({"workspace_id": "ws_1", "tables": ["projects_ws_1"]});
        JobRecord::queued(id.into(), owner.clone(), JobKind::Export, key.into(), request)
    }

    pub async fn create(jobs: &dyn Jobs, job: JobRecord) -> (JobRecord, bool) {
        let id = job.id.clone();
        jobs.create_job(job).await.unwrap_or_else(|e| panic!("create {id}: {e}"))
    }

    pub async fn get(jobs: &dyn Jobs, owner: &Owner, id: &str) -> Option<JobRecord> {
        jobs.get_job(owner, id).await.unwrap_or_else(|e| panic!("get {id} of {}: {e}", owner.key()))
    }

    pub async fn list(jobs: &dyn Jobs, owner: &Owner, after: Option<&str>, limit: usize) -> Vec<String> {
        let listed = jobs.list_jobs(owner, after, limit).await.unwrap_or_else(|e| panic!("list: {e}"));
        listed.into_iter().map(|j| j.id).collect()
    }

    pub async fn update(jobs: &dyn Jobs, job: &JobRecord) -> JobRecord {
        jobs.update_job(job).await.unwrap_or_else(|e| panic!("update {} at {}: {e}", job.id, job.version))
    }

    /// Ends `job` with an expiry `secs_from_now` away (negative: already past).
    pub async fn finish(jobs: &dyn Jobs, job: &JobRecord, secs_from_now: i64) -> JobRecord {
        let done =
            JobRecord { state: JobState::Succeeded, expires_at: Some(now_unix() + secs_from_now), ..job.clone() };
        update(jobs, &done).await
    }
}

mod cases {
    use super::support::*;
    use super::*;

    pub async fn round_trip(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        let job = record(&ann(), &id(1), "k1");
        let (stored, created) = create(jobs, JobRecord { version: 7, ..job.clone() }).await;
        assert!(created);
        assert_eq!(stored, job, "stored as given, at version 1 whatever the record said");
        assert_eq!(get(jobs, &ann(), &job.id).await, Some(job.clone()));
        // Every field, with values that are easy to lose on the way.
        let full = JobRecord {
            kind: JobKind::Import,
            state: JobState::Failed,
            request: json!({"nested": {"list": [1, 2.5, null, "ü✓"], "empty": {}}, "big": u64::MAX}),
            progress: Progress {
                tables: Counter { done: 1, total: Some(2) },
                rows: Counter { done: 10, total: None },
                bytes: Counter { done: 1 << 40, total: Some(1 << 41) },
            },
            result: Some(json!({"tables": [], "link": "https://example.test/x?y=1"})),
            error: Some(JobFailure { status: 413, message: "too large: \"x\"\n".into() }),
            checkpoint: Some(json!({"after": "k#1"})),
            cancel_requested: true,
            updated_at: now_timestamp(),
            expires_at: Some(now_unix() + 3600),
            ..job.clone()
        };
        let updated = update(jobs, &full).await;
        assert_eq!(updated, JobRecord { version: 2, ..full });
        assert_eq!(get(jobs, &ann(), &job.id).await, Some(updated.clone()));
        let listed = jobs.list_jobs(&ann(), None, 10).await.expect("list");
        assert_eq!(listed, vec![updated]);
    }

    pub async fn nobody_else_sees_a_job(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        let (job, _) = create(jobs, record(&ann(), &id(1), "k1")).await;
        let others = [Owner::user("acme", "bob"), Owner::organization("acme"), Owner::user("umbrella", "ann")];
        for other in &others {
            assert_eq!(get(jobs, other, &job.id).await, None, "{} got ann's job", other.key());
            assert!(list(jobs, other, None, 10).await.is_empty(), "{} listed ann's job", other.key());
            // Their own record naming ann's id: no update reaches ann's job.
            let theirs = JobRecord { owner: other.clone(), state: JobState::Cancelled, ..job.clone() };
            assert!(matches!(jobs.update_job(&theirs).await, Err(StoreError::Conflict(_))), "{}", other.key());
        }
        // The same key elsewhere is another job; ann's stays as it was.
        let (bobs, created) = create(jobs, record(&others[0], &id(2), "k1")).await;
        assert!(created, "an idempotency key is per owner");
        assert_eq!(get(jobs, &ann(), &job.id).await, Some(job.clone()));
        assert_eq!(list(jobs, &ann(), None, 10).await, std::slice::from_ref(&job.id));
        assert_eq!(list(jobs, &others[0], None, 10).await, [bobs.id]);
    }

    pub async fn the_same_idempotency_key_answers_the_same_job(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        let (first, created) = create(jobs, record(&ann(), &id(1), "k1")).await;
        assert!(created);
        let first = update(jobs, &JobRecord { state: JobState::Running, ..first }).await;
        let again = JobRecord { kind: JobKind::Import, ..record(&ann(), &id(2), "k1") };
        let (answer, created) = create(jobs, again).await;
        assert!(!created);
        assert_eq!(answer, first, "the stored job, as it is now");
        assert_eq!(get(jobs, &ann(), &id(2)).await, None, "the second record was not stored");
        // The very same record sent again (a retried create) is that job too.
        let (answer, created) = create(jobs, record(&ann(), &id(1), "k1")).await;
        assert!(!created);
        assert_eq!(answer, first);
        // A job that has ended but not expired still holds its key.
        let ended = finish(jobs, &first, 3600).await;
        let (answer, created) = create(jobs, record(&ann(), &id(3), "k1")).await;
        assert_eq!((answer, created), (ended, false));
        let (other, created) = create(jobs, record(&ann(), &id(4), "k2")).await;
        assert!(created && other.id == id(4), "another key is another job");
        assert_eq!(list(jobs, &ann(), None, 10).await, [id(4), id(1)]);
    }

    pub async fn an_expired_job_frees_its_key(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        let (first, _) = create(jobs, record(&ann(), &id(1), "k1")).await;
        finish(jobs, &first, -5).await;
        let (second, created) = create(jobs, record(&ann(), &id(2), "k1")).await;
        assert!(created, "the expired job does not hold the key");
        assert_eq!(second.id, id(2));
        assert_eq!(get(jobs, &ann(), &id(1)).await, None);
        assert_eq!(get(jobs, &ann(), &id(2)).await, Some(second.clone()));
        // And the new job holds it now.
        let (answer, created) = create(jobs, record(&ann(), &id(3), "k1")).await;
        assert_eq!((answer, created), (second, false));
        assert_eq!(list(jobs, &ann(), None, 10).await, [id(2)]);
    }

    pub async fn list_is_newest_first_and_pages(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        // Created out of order: the order is the ids'.
        for n in [3, 1, 5, 2, 4] {
            create(jobs, record(&ann(), &id(n), &format!("k{n}"))).await;
        }
        let all: Vec<String> = (1..=5).rev().map(id).collect();
        assert_eq!(list(jobs, &ann(), None, 10).await, all);
        assert_eq!(list(jobs, &ann(), None, 2).await, all[..2]);
        assert_eq!(list(jobs, &ann(), Some(&id(4)), 2).await, all[2..4]);
        assert_eq!(list(jobs, &ann(), Some(&id(2)), 10).await, [id(1)]);
        assert!(list(jobs, &ann(), Some(&id(1)), 10).await.is_empty());
        assert!(list(jobs, &ann(), None, 0).await.is_empty());
        // A cursor that is no job's id pages from where it would sort.
        let between = format!("{}z", id(3));
        assert_eq!(list(jobs, &ann(), Some(&between), 10).await, [id(3), id(2), id(1)]);
        // Page by page with the last id as the cursor: every job once, in order.
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list(jobs, &ann(), after.as_deref(), 2).await;
            assert!(page.len() <= 2);
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            paged.extend(page);
        }
        assert_eq!(paged, all);
    }

    pub async fn expired_jobs_are_neither_listed_nor_gotten(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        for n in 1..=6 {
            let (job, _) = create(jobs, record(&ann(), &id(n), &format!("k{n}"))).await;
            match n {
                // Expired, between the live ones, so a page must skip them and go on.
                4 | 5 => drop(finish(jobs, &job, -5).await),
                // Ended, not yet expired: still there.
                2 => drop(finish(jobs, &job, 3600).await),
                _ => {}
            }
        }
        assert_eq!(get(jobs, &ann(), &id(4)).await, None);
        assert_eq!(get(jobs, &ann(), &id(5)).await, None);
        assert_eq!(get(jobs, &ann(), &id(2)).await.map(|j| j.state), Some(JobState::Succeeded));
        assert_eq!(list(jobs, &ann(), None, 2).await, [id(6), id(3)]);
        assert_eq!(list(jobs, &ann(), Some(&id(6)), 1).await, [id(3)]);
        assert_eq!(list(jobs, &ann(), None, 10).await, [id(6), id(3), id(2), id(1)]);
        // An expired job is gone for updates too.
        let expired = JobRecord { version: 2, ..record(&ann(), &id(4), "k4") };
        assert!(matches!(jobs.update_job(&expired).await, Err(StoreError::Conflict(_))));
    }

    pub async fn a_stale_update_is_a_conflict_and_writes_nothing(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        let (v1, _) = create(jobs, record(&ann(), &id(1), "k1")).await;
        let v2 = update(jobs, &JobRecord { state: JobState::Running, ..v1.clone() }).await;
        let stale = JobRecord { state: JobState::Cancelled, cancel_requested: true, ..v1.clone() };
        assert!(matches!(jobs.update_job(&stale).await, Err(StoreError::Conflict(_))));
        let ahead = JobRecord { version: 5, ..stale.clone() };
        assert!(matches!(jobs.update_job(&ahead).await, Err(StoreError::Conflict(_))));
        // The idempotency key is fixed at create: a record with another one is not this job.
        let rekeyed = JobRecord { idempotency_key: "k9".into(), ..v2.clone() };
        assert!(matches!(jobs.update_job(&rekeyed).await, Err(StoreError::Conflict(_))));
        assert_eq!(get(jobs, &ann(), &id(1)).await, Some(v2.clone()));
        let (answer, _) = create(jobs, record(&ann(), &id(2), "k1")).await;
        assert_eq!(answer, v2, "k1 still names the job");
        // A job never created cannot be updated into existence.
        let missing = record(&ann(), &id(3), "k3");
        assert!(matches!(jobs.update_job(&missing).await, Err(StoreError::Conflict(_))));
        assert_eq!(get(jobs, &ann(), &id(3)).await, None);
    }

    pub async fn of_concurrent_updates_exactly_one_wins(jobs: Arc<dyn Jobs>) {
        let (v1, _) = create(jobs.as_ref(), record(&ann(), &id(1), "k1")).await;
        let tasks: Vec<_> = (0..20u64)
            .map(|i| {
                let (jobs, mine) =
                    (Arc::clone(&jobs), JobRecord { checkpoint: Some(json!({"writer": i})), ..v1.clone() });
                tokio::spawn(async move { jobs.update_job(&mine).await.map(|stored| (i, stored)) })
            })
            .collect();
        let mut won = Vec::new();
        for task in tasks {
            match task.await.expect("task") {
                Ok(win) => won.push(win),
                Err(StoreError::Conflict(_)) => {}
                // SQLite's busy timeout or DynamoDB throttling would be a test environment issue.
                Err(e) => panic!("an update failed otherwise than by conflict: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "winners: {:?}", won.iter().map(|(i, _)| i).collect::<Vec<_>>());
        let (i, stored) = won.remove(0);
        assert_eq!(stored.version, 2);
        assert_eq!(stored.checkpoint, Some(json!({"writer": i})));
        assert_eq!(get(jobs.as_ref(), &ann(), &id(1)).await, Some(stored));
    }

    pub async fn versions_go_up_by_one(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        let (mut job, _) = create(jobs, record(&ann(), &id(1), "k1")).await;
        assert_eq!(job.version, 1);
        for expected in 2..=6u64 {
            job.progress.rows.done += 10;
            let next = update(jobs, &job).await;
            assert_eq!(next.version, expected);
            assert_eq!(next, JobRecord { version: expected, ..job.clone() });
            assert_eq!(get(jobs, &ann(), &id(1)).await, Some(next.clone()));
            job = next;
        }
    }

    pub async fn a_record_too_large_is_refused(jobs: Arc<dyn Jobs>) {
        let jobs = jobs.as_ref();
        let mut big = record(&ann(), &id(1), "k1");
        big.request = json!({"blob": "x".repeat(shared::store::jobs::MAX_JOB_RECORD_BYTES)});
        assert!(matches!(jobs.create_job(big.clone()).await, Err(StoreError::TooLarge(_))));
        assert_eq!(get(jobs, &ann(), &id(1)).await, None);
        let (small, _) = create(jobs, record(&ann(), &id(1), "k1")).await;
        let grown = JobRecord { checkpoint: Some(big.request.clone()), ..small.clone() };
        assert!(matches!(jobs.update_job(&grown).await, Err(StoreError::TooLarge(_))));
        assert_eq!(get(jobs, &ann(), &id(1)).await, Some(small));
    }
}

mod dynamodb_only {
    use super::support::*;
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    type RawItem = std::collections::HashMap<String, AttributeValue>;

    async fn raw(client: &aws_sdk_dynamodb::Client, table: &str, sk: &str) -> Option<RawItem> {
        let out = client
            .get_item()
            .table_name(table)
            .key("PK", s("org#acme#user#ann#jobs"))
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .expect("raw get");
        out.item
    }

    #[tokio::test]
    async fn items_are_under_the_owners_key_and_expire_by_ttl() {
        let Some((store, client, table)) = fresh_dynamo_store("jobitems").await else { return };
        let (job, _) = create(&store, record(&ann(), &id(1), "k1")).await;
        let item = raw(&client, &table, &format!("job#{}", job.id)).await.expect("the job item");
        assert_eq!(item["version"], AttributeValue::N("1".into()));
        assert!(!item.contains_key("expires_at"), "a live job has no TTL");
        let idem = raw(&client, &table, "idem#k1").await.expect("the key's item");
        assert_eq!(idem["job"], s(&job.id));
        let at = now_unix() + 600;
        let done = update(&store, &JobRecord { state: JobState::Succeeded, expires_at: Some(at), ..job }).await;
        for sk in [format!("job#{}", done.id), "idem#k1".to_owned()] {
            let item = raw(&client, &table, &sk).await.expect("item");
            let ttl = &item["expires_at"];
            assert_eq!(*ttl, AttributeValue::N(at.to_string()), "{sk} expires with the job");
        }
    }

    /// The key's item lost (or never got) its expiry: the create reads the job it names, finds
    /// it expired and takes the key over from exactly that job.
    #[tokio::test]
    async fn a_key_whose_job_expired_is_taken_over() {
        let Some((store, client, table)) = fresh_dynamo_store("takeover").await else { return };
        let (first, _) = create(&store, record(&ann(), &id(1), "k1")).await;
        finish(&store, &first, -5).await;
        client
            .update_item()
            .table_name(&table)
            .key("PK", s("org#acme#user#ann#jobs"))
            .key("SK", s("idem#k1"))
            .update_expression("REMOVE expires_at")
            .send()
            .await
            .expect("raw update");
        let (second, created) = create(&store, record(&ann(), &id(2), "k1")).await;
        assert!(created && second.id == id(2));
        let idem = raw(&client, &table, "idem#k1").await.expect("the key's item");
        assert_eq!(idem["job"], s(&id(2)));
        // A key naming a job that is gone altogether is free as well.
        client
            .delete_item()
            .table_name(&table)
            .key("PK", s("org#acme#user#ann#jobs"))
            .key("SK", s(&format!("job#{}", id(2))))
            .send()
            .await
            .expect("raw delete");
        let (third, created) = create(&store, record(&ann(), &id(3), "k1")).await;
        assert!(created && third.id == id(3));
        assert_eq!(list(&store, &ann(), None, 10).await, [id(3)]);
    }

    #[tokio::test]
    async fn a_malformed_item_is_an_internal_error() {
        let Some((store, client, table)) = fresh_dynamo_store("jobmalformed").await else { return };
        let (job, _) = create(&store, record(&ann(), &id(1), "k1")).await;
        client
            .update_item()
            .table_name(&table)
            .key("PK", s("org#acme#user#ann#jobs"))
            .key("SK", s(&format!("job#{}", job.id)))
            .update_expression("SET #r = :r")
            .expression_attribute_names("#r", "record")
            .expression_attribute_values(":r", s("{not json"))
            .send()
            .await
            .expect("raw update");
        assert!(matches!(store.get_job(&ann(), &job.id).await, Err(StoreError::Internal(_))));
        assert!(matches!(store.list_jobs(&ann(), None, 10).await, Err(StoreError::Internal(_))));
    }
}

mod sqlite_only {
    use super::support::*;
    use super::*;

    #[tokio::test]
    async fn a_malformed_row_is_an_internal_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("jobs.db");
        let store = SqliteStore::open(&path).expect("open");
        let (job, _) = create(&store, record(&ann(), &id(1), "k1")).await;
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
        conn.execute("UPDATE jobs SET record = '{not json' WHERE id = ?1", [&job.id]).expect("raw update");
        assert!(matches!(store.get_job(&ann(), &job.id).await, Err(StoreError::Internal(_))));
        assert!(matches!(store.list_jobs(&ann(), None, 10).await, Err(StoreError::Internal(_))));
        // Another owner's record under ann's key is not shown as ann's.
        let theirs = serde_json::to_string(&record(&Owner::user("acme", "bob"), &job.id, "k1")).expect("json");
        conn.execute("UPDATE jobs SET record = ?1 WHERE id = ?2", [&theirs, &job.id]).expect("raw update");
        assert!(matches!(store.get_job(&ann(), &job.id).await, Err(StoreError::Internal(_))));
    }
}
