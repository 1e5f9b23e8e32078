//! Jobs' half of the contract (`JobTables`): a staged commit is invisible until its finish, then
//! lands whole on top of whatever the head is by then (a merge, never a conflict with edits made
//! meanwhile), with exact row counts; a delete of the workspace since its begin fails it; a held
//! revision reads exactly, or not at all. Every function here runs once per adapter.

use shared::store::job_tables::{StagedFinish, StagedTable};

use super::support::*;
use super::table_cases::*;
use super::*;

fn staged(name: &str, new_keys: u64) -> StagedTable {
    StagedTable { name: name.into(), owner: owner_of(name), columns: columns(), key_column: "id".into(), new_keys }
}

fn finishing(base: u64, tables: Vec<StagedTable>) -> StagedFinish {
    StagedFinish { base_revision: base, create_workspace: None, tables }
}

async fn begin(store: &dyn JobStore, ws: &WsKey, id: &str, tables: &[(&str, u64)]) {
    let tables: Vec<(String, u64)> = tables.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect();
    store.begin_staging(ws, id, &tables).await.unwrap_or_else(|e| panic!("begin {id}: {e}"));
}

async fn stage(store: &dyn JobStore, ws: &WsKey, id: &str, table: &str, rows: Vec<(String, Row)>) {
    store.stage_rows(ws, id, table, rows).await.unwrap_or_else(|e| panic!("stage {table} into {id}: {e}"));
}

async fn finish(store: &dyn JobStore, ws: &WsKey, id: &str, f: StagedFinish) -> u64 {
    store.finish_staging(ws, id, f).await.unwrap_or_else(|e| panic!("finish {id}: {e}"))
}

fn counts(tables: &[TableMeta]) -> Vec<(&str, u64)> {
    tables.iter().map(|t| (t.name.as_str(), t.row_count)).collect()
}

fn keyed(keys: &[&str], value: i64) -> Vec<(String, Row)> {
    rows(keys, value)
}

pub async fn staging_is_invisible_until_its_finish(store: &dyn JobStore) {
    let ws = w(&ann(), "ws_1");
    let r1 = commit(store, &ws, upserts("seed", vec![write("t", keyed(&["a", "b"], 1))])).await;
    let before = snap(store, &ws).await;
    begin(store, &ws, "job_1", &[("t", 3), ("n", 2)]).await;
    stage(store, &ws, "job_1", "t", keyed(&["b", "c", "d"], 2)).await;
    stage(store, &ws, "job_1", "n", keyed(&["x", "y"], 2)).await;

    let during = snap(store, &ws).await;
    assert_eq!(during.revision(), r1, "staging makes no revision");
    assert_eq!(during.tables(), before.tables(), "nor a table or a count");
    assert_eq!(snap_rows(during.as_ref(), "t", 10).await, keyed(&["a", "b"], 1));
    let got = during.get_rows("t", &["b".into(), "c".into(), "d".into()]).await.expect("get_rows");
    assert_eq!(got, keyed(&["b"], 1), "staged keys are not there, replaced ones are as stored");
    assert!(snap_rows(during.as_ref(), "n", 10).await.is_empty(), "a staged table is not there");

    let r2 = finish(store, &ws, "job_1", finishing(r1, vec![staged("t", 2), staged("n", 2)])).await;
    assert_eq!(r2, r1 + 1, "one revision for the whole staging");
    let after = snap(store, &ws).await;
    assert_eq!(after.revision(), r2);
    assert_eq!(counts(after.tables()), [("n", 2), ("t", 4)]);
    assert_eq!(snap_rows(after.as_ref(), "t", 10).await, [keyed(&["a"], 1), keyed(&["b", "c", "d"], 2)].concat());
    assert_eq!(snap_rows(after.as_ref(), "n", 10).await, keyed(&["x", "y"], 2));
    assert_eq!(after.table("n").map(|t| t.owner.clone()), Some(owner_of("n")), "the owner given is recorded");
    assert_eq!(snap_rows(before.as_ref(), "t", 10).await, keyed(&["a", "b"], 1), "an older snapshot keeps its own");
}

/// Decided at `base`; meanwhile one commit to another table and one to the same table (which
/// also deletes a key the staging writes): the finish applies on top of them all.
pub async fn staging_merges_on_top_of_later_commits(store: &dyn JobStore) {
    let ws = w(&acme(), "ws_1");
    let seed = upserts(
        "seed",
        vec![
            write("t", keyed(&["a", "b", "c", "d"], 1)),
            write("u", keyed(&["u1"], 1)),
            write("k", keyed(&["k1", "k2"], 1)),
        ],
    );
    let base = commit(store, &ws, seed).await;
    begin(store, &ws, "job_2", &[("t", 4), ("k", 2)]).await;
    stage(store, &ws, "job_2", "t", keyed(&["c", "d", "e", "f"], 3)).await;
    stage(store, &ws, "job_2", "k", keyed(&["k2", "k3"], 3)).await;

    commit(store, &ws, upserts("other", vec![write("u", keyed(&["u2"], 2))])).await;
    let same = Commit {
        delete_rows: vec![("t".into(), vec!["b".into(), "d".into()])],
        ..upserts("same", vec![write("t", keyed(&["a", "g", "h"], 2))])
    };
    let moved = commit(store, &ws, same).await;

    // Against `base`: e and f are new in t, k3 in k. Since then t lost b and d and gained g and h,
    // so neither the count at `base` nor the current one plus 2 is right: the store counts again.
    let rev = finish(store, &ws, "job_2", finishing(base, vec![staged("t", 2), staged("k", 1)])).await;
    assert_eq!(rev, moved + 1, "on top of the head as it is at the finish");
    let now = snap(store, &ws).await;
    assert_eq!(counts(now.tables()), [("k", 3), ("t", 7), ("u", 2)], "exact counts");
    let t = snap_rows(now.as_ref(), "t", 3).await;
    let expected = [keyed(&["a"], 2), keyed(&["c", "d", "e", "f"], 3), keyed(&["g", "h"], 2)].concat();
    assert_eq!(t, expected, "staged rows win, every other row stays, d is back");
    assert_eq!(snap_rows(now.as_ref(), "u", 10).await, [keyed(&["u1"], 1), keyed(&["u2"], 2)].concat());
    assert_eq!(snap_rows(now.as_ref(), "k", 10).await, [keyed(&["k1"], 1), keyed(&["k2", "k3"], 3)].concat());
    let got = now.get_rows("t", &["b".into(), "f".into()]).await.expect("get_rows");
    assert_eq!(got, keyed(&["f"], 3));
}

pub async fn staging_after_a_delete_is_a_conflict_even_once_recreated(store: &dyn JobStore) {
    let ws = w(&ann(), "ws_1");
    save(store, &ann(), draft(&ann(), "ws_1", "First", "ann", &tick().await)).await;
    commit(store, &ws, upserts("seed", vec![write("t", keyed(&["a"], 1))])).await;
    begin(store, &ws, "job_a", &[("t", 2)]).await;
    stage(store, &ws, "job_a", "t", keyed(&["b", "c"], 2)).await;

    store.delete_workspace(&ann(), "ws_1").await.expect("delete");
    save(store, &ann(), draft(&ann(), "ws_1", "Second", "ann", &tick().await)).await;
    let again = commit(store, &ws, upserts("again", vec![write("t", keyed(&["z"], 9))])).await;
    let mut f = finishing(0, vec![staged("t", 2)]);
    f.create_workspace = Some(draft(&ann(), "ws_1", "From the job", "ann", &tick().await));
    let got = store.finish_staging(&ws, "job_a", f.clone()).await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "begun before a delete: {got:?}");
    let now = snap(store, &ws).await;
    assert_eq!(now.revision(), again, "no revision");
    assert_eq!(counts(now.tables()), [("t", 1)]);
    assert_eq!(all_rows(store, &ws, "t").await, keyed(&["z"], 9), "only the recreated workspace's rows");
    assert_eq!(get(store, &ann(), "ws_1").await.map(|w| w.name).as_deref(), Some("Second"));

    // Begun on the recreated workspace, deleted again: not even asked to create it, it does not.
    begin(store, &ws, "job_b", &[("t", 1)]).await;
    stage(store, &ws, "job_b", "t", keyed(&["b"], 2)).await;
    store.delete_workspace(&ann(), "ws_1").await.expect("delete");
    let got = store.finish_staging(&ws, "job_b", f).await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "{got:?}");
    assert_eq!(get(store, &ann(), "ws_1").await, None);
    assert!(tables(store, &ws).await.is_empty());
}

pub async fn staging_the_same_rows_twice_keeps_exact_counts(store: &dyn JobStore) {
    let ws = w(&ann(), "ws_1");
    let seed: Vec<(String, Row)> = (0..10).map(|i| row(&format!("k{i:04}"), 1)).collect();
    let base = commit(store, &ws, upserts("seed", vec![write("t", seed)])).await;
    begin(store, &ws, "job_3", &[("t", 300), ("n", 300)]).await;
    begin(store, &ws, "job_3", &[("t", 300), ("n", 300)]).await;
    let piece =
        |from: usize, to: usize| -> Vec<(String, Row)> { (from..to).map(|i| row(&format!("k{i:04}"), 2)).collect() };
    for (from, to) in [(5, 155), (155, 305), (5, 155), (100, 200)] {
        stage(store, &ws, "job_3", "t", piece(from, to)).await;
        stage(store, &ws, "job_3", "n", piece(from, to)).await;
    }
    // A commit to a third table: the head moved, so the store counts n again itself.
    commit(store, &ws, upserts("beside", vec![write("u", keyed(&["u"], 1))])).await;
    finish(store, &ws, "job_3", finishing(base, vec![staged("t", 295), staged("n", 300)])).await;
    let now = snap(store, &ws).await;
    assert_eq!(counts(now.tables()), [("n", 300), ("t", 305), ("u", 1)]);
    let t = snap_rows(now.as_ref(), "t", 1000).await;
    assert_eq!(t, [(0..5).map(|i| row(&format!("k{i:04}"), 1)).collect::<Vec<_>>(), piece(5, 305)].concat());
    assert_eq!(snap_rows(now.as_ref(), "n", 1000).await, piece(5, 305));
}

pub async fn staging_aborted_leaves_nothing(store: &dyn JobStore) {
    let ws = w(&ann(), "ws_1");
    let base = commit(store, &ws, upserts("seed", vec![write("t", keyed(&["a"], 1))])).await;
    let before = (tables(store, &ws).await, all_rows(store, &ws, "t").await);
    begin(store, &ws, "job_4", &[("t", 2), ("n", 1)]).await;
    stage(store, &ws, "job_4", "t", keyed(&["a", "b"], 2)).await;
    stage(store, &ws, "job_4", "n", keyed(&["x"], 2)).await;
    store.abort_staging(&ws, "job_4").await.expect("abort");
    store.abort_staging(&ws, "job_4").await.expect("abort again is no error");
    store.abort_staging(&ws, "job_unknown").await.expect("aborting an unknown staging is no error");
    let late = store.stage_rows(&ws, "job_4", "t", keyed(&["c"], 2)).await;
    assert!(late.is_err(), "an aborted staging takes no more rows: {late:?}");
    let got = store.finish_staging(&ws, "job_4", finishing(base, vec![staged("t", 1), staged("n", 1)])).await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "an aborted staging never finishes: {got:?}");
    assert_eq!((tables(store, &ws).await, all_rows(store, &ws, "t").await), before);
    assert_eq!(snap(store, &ws).await.revision(), base);

    // Another staging of the same tables carries nothing of the aborted one.
    begin(store, &ws, "job_5", &[("t", 1)]).await;
    stage(store, &ws, "job_5", "t", keyed(&["c"], 3)).await;
    finish(store, &ws, "job_5", finishing(base, vec![staged("t", 1), staged("n", 0)])).await;
    let now = snap(store, &ws).await;
    assert_eq!(counts(now.tables()), [("n", 0), ("t", 2)]);
    assert_eq!(snap_rows(now.as_ref(), "t", 10).await, [keyed(&["a"], 1), keyed(&["c"], 3)].concat());
}

pub async fn staging_finished_twice_answers_one_revision(store: &dyn JobStore) {
    let ws = w(&ann(), "ws_1");
    let base = commit(store, &ws, upserts("seed", vec![write("t", keyed(&["a"], 1))])).await;
    begin(store, &ws, "job_6", &[("t", 1)]).await;
    stage(store, &ws, "job_6", "t", keyed(&["b"], 2)).await;
    let f = finishing(base, vec![staged("t", 1)]);
    let rev = finish(store, &ws, "job_6", f.clone()).await;
    assert_eq!(finish(store, &ws, "job_6", f.clone()).await, rev, "answered, not applied again");
    let later = commit(store, &ws, upserts("later", vec![write("t", keyed(&["c"], 3))])).await;
    assert_eq!(finish(store, &ws, "job_6", f).await, rev, "even after later commits");
    let now = snap(store, &ws).await;
    assert_eq!(now.revision(), later);
    assert_eq!(counts(now.tables()), [("t", 3)]);
    let again = store.stage_rows(&ws, "job_6", "t", keyed(&["d"], 2)).await;
    assert!(again.is_err(), "a finished staging takes no more rows: {again:?}");
}

pub async fn staging_finish_creates_the_workspace(store: &dyn JobStore) {
    let ws = w(&acme(), "ws_new");
    assert_eq!(get(store, &acme(), "ws_new").await, None);
    begin(store, &ws, "job_7", &[("t", 2)]).await;
    stage(store, &ws, "job_7", "t", keyed(&["a", "b"], 1)).await;
    let d = draft(&acme(), "ws_new", "Imported", "ann", &tick().await);
    let f = StagedFinish { create_workspace: Some(d.clone()), ..finishing(0, vec![staged("t", 2), staged("e", 0)]) };
    let rev = finish(store, &ws, "job_7", f).await;
    assert_eq!(get(store, &acme(), "ws_new").await, Some(created(&d)));
    let now = snap(store, &ws).await;
    assert_eq!(now.revision(), rev);
    assert_eq!(counts(now.tables()), [("e", 0), ("t", 2)], "a table without rows is created too");
    assert_eq!(snap_rows(now.as_ref(), "t", 10).await, keyed(&["a", "b"], 1));
}

/// A fanned-out import job's parts (or a task retried after its worker died) may finish the same
/// staging at once: every finish answers the one revision it made, none fails, and it lands once.
pub async fn staging_finished_concurrently_answers_one_revision(store: &dyn JobStore) {
    let ws = w(&acme(), "ws_race");
    begin(store, &ws, "job_9", &[("t", 3)]).await;
    stage(store, &ws, "job_9", "t", keyed(&["a", "b", "c"], 1)).await;
    let d = draft(&acme(), "ws_race", "Imported", "ann", &tick().await);
    let f = StagedFinish { create_workspace: Some(d.clone()), ..finishing(0, vec![staged("t", 3)]) };
    let finishes = (0..4).map(|_| store.finish_staging(&ws, "job_9", f.clone()));
    let got: Vec<_> = futures::future::join_all(finishes).await;
    let revs: Vec<u64> =
        got.into_iter().map(|r| r.unwrap_or_else(|e| panic!("a concurrent finish failed: {e}"))).collect();
    assert!(revs.iter().all(|r| *r == revs[0]), "one revision for all: {revs:?}");
    let now = snap(store, &ws).await;
    assert_eq!(now.revision(), revs[0], "it landed once");
    assert_eq!(counts(now.tables()), [("t", 3)]);
    assert_eq!(get(store, &acme(), "ws_race").await, Some(created(&d)));
}

pub async fn staging_onto_a_table_of_another_owner_is_a_conflict(store: &dyn JobStore) {
    let ws = w(&ann(), "ws_1");
    let base = commit(store, &ws, upserts("seed", vec![write("t", keyed(&["a"], 1))])).await;
    let before = (tables(store, &ws).await, all_rows(store, &ws, "t").await);
    begin(store, &ws, "job_8", &[("t", 1), ("n", 1)]).await;
    stage(store, &ws, "job_8", "t", keyed(&["b"], 2)).await;
    stage(store, &ws, "job_8", "n", keyed(&["x"], 2)).await;
    let theirs = StagedTable { owner: TableOwner::Workspace { kind: "t".into() }, ..staged("t", 1) };
    let got = store.finish_staging(&ws, "job_8", finishing(base, vec![staged("n", 1), theirs])).await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "{got:?}");
    assert_eq!((tables(store, &ws).await, all_rows(store, &ws, "t").await), before, "nothing of it, n neither");
    assert_eq!(snap(store, &ws).await.revision(), base);
}

pub async fn staging_five_thousand_rows_in_ten_pieces(store: &dyn JobStore) {
    let ws = w(&ann(), "ws_1");
    save(store, &ann(), draft(&ann(), "ws_1", "Big", "ann", &tick().await)).await;
    begin(store, &ws, "job_9", &[("big", 5000)]).await;
    let piece = |p: usize| -> Vec<(String, Row)> {
        (p * 500..p * 500 + 500).map(|i| row(&format!("r{i:05}"), i as i64)).collect()
    };
    // Two workers at a time, as an import's concurrent chunks.
    for pair in 0..5 {
        let (a, b) = (piece(pair * 2), piece(pair * 2 + 1));
        let (x, y) = tokio::join!(store.stage_rows(&ws, "job_9", "big", a), store.stage_rows(&ws, "job_9", "big", b));
        x.expect("stage");
        y.expect("stage");
    }
    finish(store, &ws, "job_9", finishing(0, vec![staged("big", 5000)])).await;
    let now = snap(store, &ws).await;
    assert_eq!(counts(now.tables()), [("big", 5000)]);
    let all = snap_rows(now.as_ref(), "big", 1000).await;
    assert_eq!(all, (0..10).flat_map(piece).collect::<Vec<_>>());
}

/// A held revision opened again reads that revision exactly, or is `None`, never another one;
/// the current one always opens; a deleted workspace's never does.
pub async fn staging_held_revision_reads_exactly_or_not_at_all(store: &dyn JobStore) {
    let ws = w(&ann(), "ws_1");
    save(store, &ann(), draft(&ann(), "ws_1", "Held", "ann", &tick().await)).await;
    let r1 = commit(store, &ws, upserts("c1", vec![write("t", keyed(&["a", "b"], 1))])).await;
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 3600;
    store.hold_revision(&ws, "lease_1", r1, until).await.expect("hold");
    store.hold_revision(&ws, "lease_1", r1, until + 60).await.expect("hold again moves it");
    let held = store.snapshot_at(&ws, r1).await.expect("snapshot_at").expect("the current revision opens");
    assert_eq!((held.revision(), counts(held.tables())), (r1, vec![("t", 2)]));
    let r2 =
        commit(store, &ws, upserts("c2", vec![write("t", keyed(&["a", "c"], 2)), write("u", keyed(&["u"], 2))])).await;
    if let Some(old) = store.snapshot_at(&ws, r1).await.expect("snapshot_at") {
        assert_eq!((old.revision(), counts(old.tables())), (r1, vec![("t", 2)]));
        assert_eq!(snap_rows(old.as_ref(), "t", 10).await, keyed(&["a", "b"], 1));
        assert!(old.get_rows("t", &["c".into()]).await.expect("get_rows").is_empty());
    }
    let current = store.snapshot_at(&ws, r2).await.expect("snapshot_at").expect("the current revision opens");
    assert_eq!(counts(current.tables()), [("t", 3), ("u", 1)]);
    assert!(store.snapshot_at(&ws, r2 + 1).await.expect("snapshot_at").is_none(), "no revision from the future");
    store.release_revision(&ws, "lease_1").await.expect("release");
    store.release_revision(&ws, "lease_1").await.expect("releasing again is no error");
    store.delete_workspace(&ann(), "ws_1").await.expect("delete");
    for rev in [r1, r2] {
        assert!(store.snapshot_at(&ws, rev).await.expect("snapshot_at").is_none(), "deleted: {rev}");
    }
}
