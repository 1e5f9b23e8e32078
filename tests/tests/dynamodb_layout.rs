//! What only the DynamoDB adapter's tables half has (storage layout 2, see the module doc of
//! `adapters/dynamodb/src/lib.rs`): commits that write only what they change, in one
//! transaction when small; staged large commits that a crash leaves invisible; compaction that
//! folds layers, honours the grace period and leases, and sweeps deleted workspaces; the layout
//! item. Counted through the test kit's proxy in front of moto, so these are exact assertions.

use std::sync::Arc;

use adapter_dynamodb::DynamoStore;
use aws_sdk_dynamodb::types::AttributeValue;
use blackbox_tests::counting_proxy::{CountingProxy, Counts};
use blackbox_tests::{aws_endpoint, dynamodb_client, unique_table};
use serde_json::{json, Map};
use shared::model::{Owner, Scope, WorkspaceDraft};
use shared::store::job_tables::{JobTables, StagedFinish, StagedTable, STAGING_IDLE_SECS};
use shared::store::{Faults, Snapshot, StoreError, Tables, Workspaces, SNAPSHOT_GRACE_SECS};
use shared::tables::{Column, Commit, Row, TableOwner, TableWrite, WsKey};

struct Fixture {
    store: DynamoStore,
    raw: aws_sdk_dynamodb::Client,
    table: String,
    proxy: CountingProxy,
    ws: WsKey,
}

/// A store on a fresh table, reached through a counting proxy, with a workspace `ws_1`.
async fn fresh(case: &str) -> Option<Fixture> {
    let endpoint = aws_endpoint("AWS_ENDPOINT_URL_DYNAMODB", case, "DynamoDB")?;
    let proxy = CountingProxy::start(&endpoint).await.expect("proxy");
    let raw = dynamodb_client(&endpoint).await;
    let table = unique_table("layout", case);
    let store = DynamoStore::new(dynamodb_client(proxy.url()).await, table.clone());
    store.create_table_if_missing().await.expect("table");
    let owner = Owner::user("acme", "alice");
    store.save_workspace(&owner, draft("ws_1")).await.expect("workspace");
    Some(Fixture { store, raw, table, proxy, ws: WsKey::new(owner, "ws_1") })
}

fn draft(id: &str) -> WorkspaceDraft {
    WorkspaceDraft {
        id: id.into(),
        name: id.into(),
        description: None,
        metadata: Map::new(),
        scope: Scope::User,
        writer: "alice".into(),
        now: "2026-11-28T00:00:00Z".into(),
        expected_version: None,
    }
}

fn row(key: &str, v: &str) -> Row {
    let mut row = Row::new();
    row.insert("id".into(), json!(key));
    row.insert("v".into(), json!(v));
    row
}

fn write(table: &str, rows: impl IntoIterator<Item = (String, String)>) -> TableWrite {
    TableWrite {
        name: table.into(),
        owner: TableOwner::Workspace { kind: table.into() },
        columns: vec![Column::new("id", "text", false), Column::new("v", "text", true)],
        key_column: "id".into(),
        rows: rows.into_iter().map(|(k, v)| (k.clone(), row(&k, &v))).collect(),
    }
}

fn rows(prefix: &str, range: std::ops::Range<usize>, v: &str) -> Vec<(String, String)> {
    range.map(|i| (format!("{prefix}{i:06}"), v.to_owned())).collect()
}

fn commit(id: &str, upserts: Vec<TableWrite>) -> Commit {
    Commit { id: id.into(), upserts, ..Commit::default() }
}

impl Fixture {
    async fn snapshot(&self) -> Box<dyn Snapshot> {
        self.store.snapshot(&self.ws).await.expect("snapshot")
    }

    async fn rev(&self) -> u64 {
        self.snapshot().await.revision()
    }

    async fn commit(&self, c: Commit) -> u64 {
        let base = self.rev().await;
        self.store.commit(&self.ws, base, c).await.expect("commit")
    }

    /// What running `f` cost, through the proxy.
    async fn cost<T>(&self, f: impl std::future::Future<Output = T>) -> (T, Counts) {
        self.proxy.reset();
        let out = f.await;
        (out, self.proxy.snapshot())
    }

    /// Every row of `table` through `snap`, paging by 500.
    async fn all(snap: &dyn Snapshot, table: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = snap.read_rows(table, after.as_deref(), 500).await.expect("read");
            let short = page.len() < 500;
            after = page.last().map(|(k, _)| k.clone());
            out.extend(page.into_iter().map(|(k, r)| (k, r["v"].as_str().unwrap_or("").to_owned())));
            if short {
                return out;
            }
        }
    }

    /// Every item whose partition key starts with the workspace's key (a Scan: test-only).
    async fn items_of_workspace(&self) -> Vec<String> {
        let prefix = self.ws.key();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page =
                self.raw.scan().table_name(&self.table).set_exclusive_start_key(start).send().await.expect("scan");
            for item in page.items() {
                if let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) = (item.get("PK"), item.get("SK")) {
                    if pk.starts_with(&prefix) && !(pk == &prefix && sk == "head") {
                        out.push(format!("{pk} {sk}"));
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return out,
            }
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A time at which everything committed so far is past the grace period.
fn later() -> u64 {
    now() + SNAPSHOT_GRACE_SECS + 5
}

#[tokio::test]
async fn a_small_commit_is_one_transaction_that_writes_only_what_it_changes() {
    let Some(f) = fresh("small").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..2000, "a"))])).await;
    let base = f.rev().await;
    let (rev, counts) = f
        .cost(f.store.commit(&f.ws, base, commit("one", vec![write("t", [("k000007".to_owned(), "b".to_owned())])])))
        .await;
    assert_eq!(rev.expect("commit"), base + 1);
    let tx = counts.op("TransactWriteItems");
    assert_eq!(tx.requests, 1, "{counts}");
    assert_eq!(tx.written, 3, "the row, the table's entry and the head: {counts}");
    assert_eq!(counts.op("BatchWriteItem").requests, 0, "nothing staged: {counts}");
    assert_eq!(counts.total().written, 3, "{counts}");
    assert!(counts.total().read < 20, "reads grow with the change, not the table: {counts}");
    let snap = f.snapshot().await;
    assert_eq!(snap.table("t").map(|t| t.row_count), Some(2000), "a replaced row is not a new one");
    let got = snap.get_rows("t", &["k000007".into(), "k000008".into()]).await.expect("get");
    assert_eq!(got[0].1["v"], "b");
    assert_eq!(got[1].1["v"], "a");
}

#[tokio::test]
async fn a_large_commit_is_staged_then_flipped_and_costs_its_rows() {
    let Some(f) = fresh("large").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..2000, "a"))])).await;
    let base = f.rev().await;
    let (rev, counts) =
        f.cost(f.store.commit(&f.ws, base, commit("big", vec![write("t", rows("n", 0..1000, "n"))]))).await;
    assert_eq!(rev.expect("commit"), base + 1);
    let written = counts.total().written;
    assert!((1000..=1010).contains(&written), "1,000 rows plus record, entry, head and log: {counts}");
    assert_eq!(counts.op("TransactWriteItems").requests, 1, "{counts}");
    assert_eq!(f.snapshot().await.table("t").map(|t| t.row_count), Some(3000));
}

#[tokio::test]
async fn a_killed_large_commit_leaves_the_previous_state_and_its_retry_converges() {
    let Some(f) = fresh("killed").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..300, "a"))])).await;
    let before = Fixture::all(&*f.snapshot().await, "t").await;
    let change = || Commit {
        id: "change".into(),
        upserts: vec![write("t", rows("k", 100..400, "b")), write("u", rows("u", 0..200, "u"))],
        delete_rows: vec![("t".into(), (0..50).map(|i| format!("k{i:06}")).collect())],
        ..Commit::default()
    };
    let base = f.rev().await;
    for kill_after in [0, 1, 137, 499] {
        f.store.inject_commit_fault(Some(kill_after));
        let err = f.store.commit(&f.ws, base, change()).await.expect_err("killed");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        f.store.inject_commit_fault(None);
        let snap = f.snapshot().await;
        assert_eq!(snap.revision(), base, "nothing moved");
        assert!(snap.table("u").is_none(), "no table of the killed commit shows");
        assert_eq!(Fixture::all(&*snap, "t").await, before, "killed after {kill_after} rows");
    }
    // The retry (same request, same base) rewrites the same items and commits.
    assert_eq!(f.store.commit(&f.ws, base, change()).await.expect("retry"), base + 1);
    let snap = f.snapshot().await;
    let t = Fixture::all(&*snap, "t").await;
    assert_eq!(t.len(), 350);
    assert!(t.iter().all(|(k, v)| if k.as_str() < "k000100" { v == "a" } else { v == "b" }));
    assert_eq!(snap.table("t").map(|m| m.row_count), Some(350));
    assert_eq!(snap.table("u").map(|m| m.row_count), Some(200));
}

#[tokio::test]
async fn a_killed_commit_that_another_overtook_is_swept_by_compaction() {
    let Some(f) = fresh("overtaken").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..10, "a"))])).await;
    let settled = {
        f.store.compact_workspace_at(&f.ws.key(), later()).await.expect("compact");
        f.store.compact_workspace_at(&f.ws.key(), later() + SNAPSHOT_GRACE_SECS).await.expect("compact");
        f.items_of_workspace().await.len()
    };
    let base = f.rev().await;
    f.store.inject_commit_fault(Some(120));
    f.store.commit(&f.ws, base, commit("lost", vec![write("t", rows("x", 0..400, "x"))])).await.expect_err("killed");
    f.store.inject_commit_fault(None);
    f.commit(commit("winner", vec![write("t", [("k000001".to_owned(), "w".to_owned())])])).await;
    assert!(f.items_of_workspace().await.len() > settled + 100, "the killed commit's rows are there, unseen");
    // Within the grace period the pending commit might still be running: left alone.
    f.store.compact_workspace(&f.ws.key()).await.expect("compact now");
    assert!(f.items_of_workspace().await.len() > settled + 100);
    let report = f.store.compact_workspace_at(&f.ws.key(), later()).await.expect("compact later");
    assert_eq!(report.commits_aborted, 1, "{report:?}");
    f.store.compact_workspace_at(&f.ws.key(), later() + SNAPSHOT_GRACE_SECS).await.expect("compact");
    assert_eq!(f.items_of_workspace().await.len(), settled, "back to one base, one entry");
    let snap = f.snapshot().await;
    assert_eq!(snap.table("t").map(|m| m.row_count), Some(10));
    assert_eq!(snap.get_rows("t", &["k000001".into()]).await.expect("get")[0].1["v"], "w");
}

#[tokio::test]
async fn fifty_small_commits_and_a_compaction_leave_reads_as_cheap_as_before() {
    let Some(f) = fresh("fold").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..2000, "a"))])).await;
    // Reading every row of a table through one snapshot, without the snapshot's own cost.
    let read = |table: &'static str| {
        let f = &f;
        async move {
            let snap = f.snapshot().await;
            f.cost(Fixture::all(&*snap, table)).await
        }
    };
    let (_, before) = read("t").await;
    let mut expected: std::collections::BTreeMap<String, String> = rows("k", 0..2000, "a").into_iter().collect();
    for i in 0..50 {
        let key = format!("k{:06}", i * 37);
        let mut c = commit(&format!("c{i}"), vec![write("t", [(key.clone(), format!("v{i}"))])]);
        expected.insert(key, format!("v{i}"));
        if i % 10 == 9 {
            let gone = format!("k{:06}", 1999 - i);
            c.delete_rows = vec![("t".into(), vec![gone.clone()])];
            expected.remove(&gone);
        }
        f.commit(c).await;
    }
    let expected: Vec<(String, String)> = expected.into_iter().collect();
    let (layered, during) = read("t").await;
    assert_eq!(layered, expected, "base and 50 layers merge to the truth");
    assert!(during.total().requests > before.total().requests + 40, "layers cost reads until folded: {during}");
    // The same rows written in one commit: what reading them should cost.
    f.commit(commit("reference", vec![write("r", expected.clone())])).await;

    // Now: nothing folds (every layer is within the grace period).
    let report = f.store.compact_workspace(&f.ws.key()).await.expect("compact");
    assert_eq!(report.tables_folded, 0, "{report:?}");
    let report = f.store.compact_workspace_at(&f.ws.key(), later()).await.expect("compact");
    assert_eq!(report.tables_folded, 1, "t (r has one layer, promoted in place: {report:?})");
    assert_eq!(report.items_folded, 55, "50 rows and 5 tombstones copied into the base, nothing else: {report:?}");
    f.store.compact_workspace_at(&f.ws.key(), later() + SNAPSHOT_GRACE_SECS).await.expect("compact");
    let (folded, after) = read("t").await;
    assert_eq!(folded, expected);
    let (reference, written_once) = read("r").await;
    assert_eq!(reference, expected);
    assert_eq!(after, written_once, "after:\n{after}written in one commit:\n{written_once}");
    assert!(after.total().requests <= before.total().requests, "before:\n{before}after:\n{after}");
}

#[tokio::test]
async fn a_snapshot_reads_one_revision_while_commits_and_compaction_run() {
    let Some(f) = fresh("beside").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..1500, "a"))])).await;
    let old = f.snapshot().await;
    let expected = Fixture::all(&*old, "t").await;
    let store = f.store.clone();
    let ws = f.ws.clone();
    let writer = tokio::spawn(async move {
        for i in 0..20 {
            let base = store.snapshot(&ws).await.expect("snap").revision();
            let c = Commit {
                id: format!("w{i}"),
                upserts: vec![write("t", rows("k", i * 50..i * 50 + 50, "z"))],
                delete_rows: vec![("t".into(), vec![format!("k{:06}", 1499 - i)])],
                ..Commit::default()
            };
            match store.commit(&ws, base, c).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{e}"),
            }
            store.compact_workspace(&ws.key()).await.expect("compaction beside the writer");
        }
    });
    for _ in 0..5 {
        assert_eq!(Fixture::all(&*old, "t").await, expected, "the old snapshot never changes");
    }
    writer.await.expect("writer");
    assert_eq!(Fixture::all(&*old, "t").await, expected);
    assert_eq!(old.table("t").map(|t| t.row_count), Some(1500));
    let new = Fixture::all(&*f.snapshot().await, "t").await;
    assert!(new.iter().filter(|(_, v)| v == "z").count() >= 50, "the writers' rows show in a new snapshot");
}

#[tokio::test]
async fn a_lease_holds_its_revision_against_compaction() {
    let Some(f) = fresh("lease").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..100, "a"))])).await;
    let leased = f.snapshot().await;
    f.store.take_lease(&f.ws.key(), "job_1", leased.revision(), later() + 3600).await.expect("lease");
    f.commit(commit("after", vec![write("t", [("k000001".to_owned(), "b".to_owned())])])).await;
    for at in [later(), later() + SNAPSHOT_GRACE_SECS] {
        let report = f.store.compact_workspace_at(&f.ws.key(), at).await.expect("compact");
        assert_eq!(report.tables_folded, 0, "the leased revision's layers stay: {report:?}");
    }
    assert_eq!(leased.get_rows("t", &["k000001".into()]).await.expect("get")[0].1["v"], "a");
    f.store.release_lease(&f.ws.key(), "job_1").await.expect("release");
    let report = f.store.compact_workspace_at(&f.ws.key(), later()).await.expect("compact");
    assert_eq!(report.tables_folded, 1, "{report:?}");
}

#[tokio::test]
async fn a_deleted_workspace_vanishes_at_once_and_is_swept_after_the_grace_period() {
    let Some(f) = fresh("deleted").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..300, "a")), write("u", rows("u", 0..30, "u"))])).await;
    let before_delete = f.rev().await;
    let (deleted, counts) = f.cost(f.store.delete_workspace(&f.ws.owner, "ws_1")).await;
    assert_eq!(deleted.expect("delete"), Some(330));
    assert!(counts.total().written <= 2, "the delete writes the workspace and the head only: {counts}");
    let snap = f.snapshot().await;
    assert!(snap.tables().is_empty());
    assert_eq!(snap.read_rows("t", None, 10).await.expect("read"), vec![]);
    let err = f.store.commit(&f.ws, before_delete, commit("late", vec![write("t", rows("z", 0..1, "z"))])).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "a commit based on before the delete: {err:?}");
    assert!(f.items_of_workspace().await.len() >= 330, "rows stay until compaction sweeps them");
    f.store.compact_workspace(&f.ws.key()).await.expect("compact now");
    assert!(f.items_of_workspace().await.len() >= 330, "not within the grace period");
    let report = f.store.compact_workspace_at(&f.ws.key(), later()).await.expect("compact later");
    assert_eq!(report.generations_swept, 1, "{report:?}");
    assert_eq!(report.rows_deleted, 330, "{report:?}");
    assert_eq!(f.items_of_workspace().await, Vec::<String>::new());
    // Created again, it starts empty.
    f.store.save_workspace(&f.ws.owner, draft("ws_1")).await.expect("again");
    assert!(f.snapshot().await.tables().is_empty());
}

#[tokio::test]
async fn five_thousand_tables_commit_and_list() {
    let Some(f) = fresh("many").await else { return };
    let writes: Vec<TableWrite> =
        (0..5000).map(|i| write(&format!("t{i:05}"), [("k".to_owned(), format!("{i}"))])).collect();
    let (_, counts) = f.cost(f.commit(commit("many", writes))).await;
    let snap = f.snapshot().await;
    assert_eq!(snap.tables().len(), 5000);
    assert_eq!(snap.get_rows("t04321", &["k".into()]).await.expect("get")[0].1["v"], "4321");
    assert!(counts.total().written <= 10_010, "a row and an entry per table: {counts}");
    // One more row in one of them costs what it changes.
    let base = snap.revision();
    let (_, counts) = f
        .cost(f.store.commit(&f.ws, base, commit("one", vec![write("t00007", [("k2".to_owned(), "x".to_owned())])])))
        .await;
    assert_eq!(counts.total().written, 3, "{counts}");
}

#[tokio::test]
async fn a_table_of_another_layout_is_refused_with_a_message_saying_so() {
    let Some(f) = fresh("layout").await else { return };
    f.raw
        .put_item()
        .table_name(&f.table)
        .item("PK", AttributeValue::S("layout".into()))
        .item("SK", AttributeValue::S("layout".into()))
        .item("version", AttributeValue::N("7".into()))
        .send()
        .await
        .expect("put");
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("endpoint");
    let other = DynamoStore::new(dynamodb_client(&endpoint).await, f.table.clone());
    let err = other.snapshot(&f.ws).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("has storage layout 7; this build reads layout 2"), "{err}");
    let err = other.get_workspace(&f.ws.owner, "ws_1").await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("storage layout 7"), "{err}");
}

#[tokio::test]
async fn large_rows_live_in_blobs_and_survive_compaction() {
    let Some(f) = fresh("blobs").await else { return };
    let blobs = Arc::new(MemBlobs::default());
    let store = f.store.clone().with_blobs(blobs.clone());
    let big = "x".repeat(400_000);
    let base = store.snapshot(&f.ws).await.expect("snap").revision();
    store.commit(&f.ws, base, commit("big", vec![write("t", [("b".to_owned(), big.clone())])])).await.expect("commit");
    let base = store.snapshot(&f.ws).await.expect("snap").revision();
    store.commit(&f.ws, base, commit("small", vec![write("t", [("s".to_owned(), "s".to_owned())])])).await.expect("c");
    assert_eq!(blobs.len(), 1);
    store.compact_workspace_at(&f.ws.key(), later()).await.expect("compact");
    store.compact_workspace_at(&f.ws.key(), later() + SNAPSHOT_GRACE_SECS).await.expect("compact");
    let snap = store.snapshot(&f.ws).await.expect("snap");
    let got = snap.get_rows("t", &["b".into(), "s".into()]).await.expect("get");
    assert_eq!(got[0].1["v"].as_str().map(str::len), Some(400_000));
    assert_eq!(got[1].1["v"], "s");
    assert_eq!(blobs.len(), 1, "the folded blob has one copy, in the base");

    // A commit killed after writing its oversized row's blob, before the row's item: the blob is
    // named by the commit's record, so compaction removes it with the rest.
    let base = snap.revision();
    store.inject_commit_fault(Some(0));
    let killed = store.commit(&f.ws, base, commit("killed", vec![write("t", [("k".to_owned(), big.clone())])])).await;
    store.inject_commit_fault(None);
    assert!(killed.is_err());
    assert_eq!(blobs.len(), 2, "its blob was written");
    let report = store.compact_workspace_at(&f.ws.key(), later() + 2 * SNAPSHOT_GRACE_SECS).await.expect("compact");
    assert_eq!(report.commits_aborted, 1, "{report:?}");
    assert_eq!(blobs.len(), 1, "and is gone with the aborted commit");
}

/// A staged table as `write` makes them.
fn staged(table: &str, new_keys: u64) -> StagedTable {
    let w = write(table, []);
    StagedTable { name: w.name, owner: w.owner, columns: w.columns, key_column: w.key_column, new_keys }
}

fn staged_rows(prefix: &str, range: std::ops::Range<usize>, v: &str) -> Vec<(String, Row)> {
    rows(prefix, range, v).into_iter().map(|(k, v)| (k.clone(), row(&k, &v))).collect()
}

impl Fixture {
    /// What is there once compaction has settled (two runs past the grace period).
    async fn settled(&self) -> Vec<String> {
        self.store.compact_workspace_at(&self.ws.key(), later()).await.expect("compact");
        self.store.compact_workspace_at(&self.ws.key(), later() + SNAPSHOT_GRACE_SECS).await.expect("compact");
        self.items_of_workspace().await
    }

    /// Every item of the workspace but staging `id`'s pointer (which stays, to answer a finish).
    async fn items_but_pointer(&self, id: &str) -> Vec<String> {
        let pointer = format!("{} staging#{id}", self.ws.key());
        self.items_of_workspace().await.into_iter().filter(|i| *i != pointer).collect()
    }
}

#[tokio::test]
async fn a_held_revision_reads_exactly_after_commits_and_compaction() {
    let Some(f) = fresh("held").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..100, "a"))])).await;
    let held = f.rev().await;
    let expected = Fixture::all(&*f.snapshot().await, "t").await;
    f.store.hold_revision(&f.ws, "job_1", held, now() + 3600).await.expect("hold");
    f.commit(commit("after", vec![write("t", rows("k", 0..10, "b"))])).await;
    f.commit(commit("more", vec![write("t", rows("k", 50..60, "c")), write("u", rows("u", 0..5, "u"))])).await;
    // A grace period of one second, passed: only the lease keeps the held revision's layers.
    let compactor = f.store.clone().with_grace_secs(1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for _ in 0..2 {
        let report = compactor.compact_workspace(&f.ws.key()).await.expect("compact");
        assert_eq!(report.tables_folded, 0, "the leased revision's layers stay: {report:?}");
    }
    let old = f.store.snapshot_at(&f.ws, held).await.expect("snapshot_at").expect("the held revision opens");
    assert_eq!(old.revision(), held);
    assert_eq!(old.tables().iter().map(|t| (t.name.as_str(), t.row_count)).collect::<Vec<_>>(), [("t", 100)]);
    assert_eq!(Fixture::all(&*old, "t").await, expected, "exactly the held revision's rows");
    f.store.release_revision(&f.ws, "job_1").await.expect("release");
    let report = compactor.compact_workspace(&f.ws.key()).await.expect("compact");
    assert_eq!(report.tables_folded, 1, "released, the layers fold: {report:?}");
}

#[tokio::test]
async fn compaction_leaves_a_live_staging_alone() {
    let Some(f) = fresh("live").await else { return };
    f.commit(commit("seed", vec![write("t", rows("k", 0..10, "a"))])).await;
    let base = f.rev().await;
    f.store.begin_staging(&f.ws, "job_1", &[("t".into(), 20)]).await.expect("begin");
    f.store.stage_rows(&f.ws, "job_1", "t", staged_rows("x", 0..20, "x")).await.expect("stage");
    // Past the grace period (a plain staged commit would be aborted), within the idle limit.
    let report = f.store.compact_workspace_at(&f.ws.key(), later()).await.expect("compact");
    assert_eq!(report.commits_aborted, 0, "{report:?}");
    assert!(later() < now() + STAGING_IDLE_SECS);
    let finish = StagedFinish { base_revision: base, create_workspace: None, tables: vec![staged("t", 20)] };
    let rev = f.store.finish_staging(&f.ws, "job_1", finish).await.expect("finish");
    let snap = f.snapshot().await;
    assert_eq!((snap.revision(), snap.table("t").map(|t| t.row_count)), (rev, Some(30)));
    assert_eq!(Fixture::all(&*snap, "t").await.len(), 30);
}

#[tokio::test]
async fn compaction_aborts_a_staging_idle_past_the_limit() {
    let Some(f) = fresh("idle").await else { return };
    let blobs = Arc::new(MemBlobs::default());
    let store = f.store.clone().with_blobs(blobs.clone());
    f.commit(commit("seed", vec![write("t", rows("k", 0..10, "a"))])).await;
    let settled = f.settled().await;
    store.begin_staging(&f.ws, "job_1", &[("t".into(), 20)]).await.expect("begin");
    let mut piece = staged_rows("x", 0..20, "x");
    piece.push(("big".into(), row("big", &"x".repeat(400_000))));
    store.stage_rows(&f.ws, "job_1", "t", piece).await.expect("stage");
    assert_eq!(blobs.len(), 1);
    assert!(f.items_of_workspace().await.len() > settled.len() + 20);

    let idle = now() + STAGING_IDLE_SECS + SNAPSHOT_GRACE_SECS + 5;
    let report = store.compact_workspace_at(&f.ws.key(), idle).await.expect("compact");
    assert_eq!(report.commits_aborted, 1, "{report:?}");
    assert_eq!(blobs.len(), 0, "its blob went with it");
    assert_eq!(f.items_but_pointer("job_1").await, settled, "its record, parts and rows are gone");
    let finish = StagedFinish { base_revision: 0, create_workspace: None, tables: vec![staged("t", 21)] };
    let got = store.finish_staging(&f.ws, "job_1", finish).await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "{got:?}");
    let got = store.stage_rows(&f.ws, "job_1", "t", staged_rows("y", 0..1, "y")).await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "{got:?}");
    assert_eq!(f.snapshot().await.table("t").map(|t| t.row_count), Some(10));
}

#[tokio::test]
async fn an_aborted_staging_is_removed_at_once() {
    let Some(f) = fresh("abort").await else { return };
    let blobs = Arc::new(MemBlobs::default());
    let store = f.store.clone().with_blobs(blobs.clone());
    f.commit(commit("seed", vec![write("t", rows("k", 0..10, "a"))])).await;
    let settled = f.settled().await;
    store.begin_staging(&f.ws, "job_1", &[("t".into(), 1500), ("n".into(), 5)]).await.expect("begin");
    let mut piece = staged_rows("x", 0..1500, "x");
    piece.push(("big".into(), row("big", &"x".repeat(400_000))));
    store.stage_rows(&f.ws, "job_1", "t", piece).await.expect("stage");
    store.stage_rows(&f.ws, "job_1", "n", staged_rows("n", 0..5, "n")).await.expect("stage");
    store.abort_staging(&f.ws, "job_1").await.expect("abort");
    assert_eq!(blobs.len(), 0);
    let left = f.items_but_pointer("job_1").await;
    let record = format!("{}#g#1 txn#job.job_1", f.ws.key());
    assert_eq!(left.iter().filter(|i| **i != record).cloned().collect::<Vec<_>>(), settled, "rows gone at once");
    // The record, kept as aborting, goes a grace period after the abort.
    let report = store.compact_workspace_at(&f.ws.key(), later()).await.expect("compact");
    assert_eq!(report.commits_aborted, 1, "{report:?}");
    assert_eq!(f.items_but_pointer("job_1").await, settled);
}

/// Blobs in memory.
#[derive(Default)]
struct MemBlobs(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>);

impl MemBlobs {
    fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl shared::store::Blobs for MemBlobs {
    async fn put_blob(&self, key: &str, bytes: Vec<u8>) -> shared::store::StoreResult<()> {
        self.0.lock().expect("lock").insert(key.into(), bytes);
        Ok(())
    }
    async fn get_blob(&self, key: &str) -> shared::store::StoreResult<Option<Vec<u8>>> {
        Ok(self.0.lock().expect("lock").get(key).cloned())
    }
    async fn delete_blob(&self, key: &str) -> shared::store::StoreResult<()> {
        self.0.lock().expect("lock").remove(key);
        Ok(())
    }
}
