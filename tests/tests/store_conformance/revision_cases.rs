//! Revisions: a commit names the revision its reads were made at and fails with `Conflict`,
//! writing nothing, once the workspace has moved past it (a commit or a delete); a snapshot
//! keeps reading its revision after later commits land. Every function here runs once per
//! adapter.

use super::support::*;
use super::table_cases::*;
use super::*;

/// 2,500 rows (three pages of 1,000) of `t` and a few of `u`, all at `value`.
fn base_commit(id: &str, value: i64) -> Commit {
    let t: Vec<(String, Row)> = (0..2500).map(|i| row(&format!("k{i:04}"), value)).collect();
    upserts(id, vec![write("t", t), write("u", rows(&["u1", "u2"], value))])
}

pub async fn tables_stale_base_is_a_conflict_and_writes_nothing(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    let r1 = commit(store, &ws, upserts("c1", vec![write("t", rows(&["a", "b"], 1))])).await;
    let stale = snap(store, &ws).await;
    assert_eq!(stale.revision(), r1, "a snapshot reads the revision the last commit made");
    let r2 = commit(store, &ws, upserts("c2", vec![write("t", rows(&["b"], 2))])).await;
    assert!(r2 > r1, "each commit makes a new revision: {r1} then {r2}");
    let before = (tables(store, &ws).await, all_rows(store, &ws, "t").await);

    // Decided on what `stale` read: it must not land on top of c2.
    let late = Commit {
        create_workspace: Some(draft(&ann(), "ws_1", "From a stale read", "ann", &tick().await)),
        delete_rows: vec![("t".into(), vec!["a".into()])],
        ..upserts("c3", vec![write("t", rows(&["b", "c"], 3)), write("x", rows(&["x"], 3))])
    };
    let got = store.commit(&ws, stale.revision(), late.clone()).await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "a stale base is a conflict: {got:?}");
    drop(stale);
    assert!((tables(store, &ws).await, all_rows(store, &ws, "t").await) == before, "nothing of it is written");
    assert!(all_rows(store, &ws, "x").await.is_empty());
    assert_eq!(get(store, &ann(), "ws_1").await, None, "nor the workspace it would create");
    assert_eq!(snap(store, &ws).await.revision(), r2, "nor a new revision");

    // Read again, decided again (the same change id), applied on top of c2.
    let fresh = snap(store, &ws).await;
    let r3 = store.commit(&ws, fresh.revision(), late).await.expect("the retry from a fresh snapshot applies");
    assert!(r3 > r2);
    assert_eq!(snap(store, &ws).await.revision(), r3, "the answer is the revision a new snapshot reads");
    assert_eq!(all_rows(store, &ws, "t").await, rows(&["b", "c"], 3));
    assert_eq!(all_rows(store, &ws, "x").await, rows(&["x"], 3));
    assert!(get(store, &ann(), "ws_1").await.is_some());
    // The snapshot the retry read is stale now too.
    let again = store.commit(&ws, fresh.revision(), upserts("c4", vec![write("t", rows(&["d"], 4))])).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

/// What a snapshot knows without reading rows (its revision and tables), and the rows of a
/// table no later commit touched, stay as they were when it was taken.
pub async fn tables_snapshot_keeps_its_revision(store: &dyn Store) {
    let ws = w(&acme(), "ws_1");
    commit(store, &ws, base_commit("c1", 1)).await;
    commit(store, &ws, upserts("c2", vec![write("keep", rows(&["a", "b", "c"], 1))])).await;
    let old = snap(store, &ws).await;
    let old_tables = old.tables().to_vec();
    assert_eq!(
        old_tables.iter().map(|t| (t.name.as_str(), t.row_count)).collect::<Vec<_>>(),
        [("keep", 3), ("t", 2500), ("u", 2)]
    );

    let change = Commit {
        id: "c3".into(),
        upserts: vec![
            write("t", (2000..3000).map(|i| row(&format!("k{i:04}"), 2)).collect()),
            write("v", rows(&["v"], 2)),
        ],
        delete_rows: vec![("t".into(), (0..10).map(|i| format!("k{i:04}")).collect())],
        drop_tables: vec!["u".into()],
        ..Commit::default()
    };
    let new_rev = commit(store, &ws, change).await;

    assert!(old.revision() < new_rev);
    assert_eq!(old.tables(), &old_tables[..], "the table list and row counts of its revision");
    assert!(old.table("v").is_none() && old.table("u").is_some());
    assert!(snap_page(old.as_ref(), "v", None, 10).await.is_empty(), "a table made later is not there");
    assert_eq!(snap_rows(old.as_ref(), "keep", 2).await, rows(&["a", "b", "c"], 1), "untouched rows, in pages");

    let new = snap(store, &ws).await;
    assert_eq!(new.revision(), new_rev);
    let counts: Vec<(&str, u64)> = new.tables().iter().map(|t| (t.name.as_str(), t.row_count)).collect();
    assert_eq!(counts, [("keep", 3), ("t", 2990), ("v", 1)], "a new snapshot sees the commit");
    let t = snap_rows(new.as_ref(), "t", 1000).await;
    assert_eq!(t.len(), 2990);
    assert_eq!(t[0], row("k0010", 1));
    assert_eq!(t[1990], row("k2000", 2));
}

/// The rows of tables a later commit replaced or dropped, read through a snapshot taken before
/// it: page by page, and by key.
pub async fn tables_snapshot_reads_replaced_rows(store: &dyn Store) {
    let ws = w(&acme(), "ws_1");
    commit(store, &ws, base_commit("c1", 1)).await;
    let old = snap(store, &ws).await;
    // Read one page before the commit and the rest after it: the pages must join up.
    let first = snap_page(old.as_ref(), "t", None, 1000).await;

    let change = Commit {
        id: "c2".into(),
        upserts: vec![write("t", (0..2500).map(|i| row(&format!("k{i:04}"), 2)).collect())],
        delete_rows: vec![("t".into(), vec!["k1500".into()])],
        drop_tables: vec!["u".into()],
        ..Commit::default()
    };
    commit(store, &ws, change).await;

    let mut t = first;
    loop {
        let next = snap_page(old.as_ref(), "t", t.last().map(|(k, _)| k.as_str()), 1000).await;
        if next.is_empty() {
            break;
        }
        t.extend(next);
    }
    let expected: Vec<(String, Row)> = (0..2500).map(|i| row(&format!("k{i:04}"), 1)).collect();
    assert!(t == expected, "every row of the old revision, across pages, none of the new");
    let keys = vec!["k1500".to_owned(), "k0001".to_owned(), "nope".to_owned()];
    assert_eq!(old.get_rows("t", &keys).await.expect("get_rows"), vec![row("k1500", 1), row("k0001", 1)]);
    assert_eq!(snap_rows(old.as_ref(), "u", 1).await, rows(&["u1", "u2"], 1), "a table dropped later");

    let new = snap(store, &ws).await;
    assert_eq!(new.get_rows("t", &keys).await.expect("get_rows"), vec![row("k0001", 2)]);
    assert!(new.table("u").is_none());
    assert_eq!(snap_rows(new.as_ref(), "t", 1000).await.len(), 2499);
}

pub async fn tables_delete_racing_a_commit_is_a_conflict(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    let d = draft(&ann(), "ws_1", "Doomed", "ann", &tick().await);
    let first = Commit { create_workspace: Some(d.clone()), ..upserts("c1", vec![write("t", rows(&["a"], 1))]) };
    commit(store, &ws, first).await;
    let before_delete = snap(store, &ws).await;

    assert_eq!(store.delete_workspace(&ann(), "ws_1").await.expect("delete"), Some(1));
    // Decided before the delete, committed after it: with and without creating the workspace.
    for (id, create) in [("c2", Some(d.clone())), ("c3", None)] {
        let late = Commit { create_workspace: create, ..upserts(id, vec![write("t", rows(&["b"], 2))]) };
        let got = store.commit(&ws, before_delete.revision(), late).await;
        assert!(matches!(got, Err(StoreError::Conflict(_))), "{id}: {got:?}");
        assert_eq!(get(store, &ann(), "ws_1").await, None, "{id}: the workspace stays deleted");
        assert!(tables(store, &ws).await.is_empty(), "{id}: no tables come back");
        assert!(all_rows(store, &ws, "t").await.is_empty(), "{id}: no rows come back");
    }
    drop(before_delete);

    // Made again, it starts empty: by a save, then by a commit from a fresh snapshot.
    save(store, &ann(), draft(&ann(), "ws_1", "Again", "ann", &tick().await)).await;
    assert!(tables(store, &ws).await.is_empty(), "a saved workspace of that id has no tables");
    commit(store, &ws, upserts("c4", vec![write("t2", rows(&["new"], 4))])).await;
    assert_eq!(tables(store, &ws).await.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["t2"]);
    assert!(all_rows(store, &ws, "t").await.is_empty());
    assert_eq!(get(store, &ann(), "ws_1").await.map(|w| w.name).as_deref(), Some("Again"));
}
