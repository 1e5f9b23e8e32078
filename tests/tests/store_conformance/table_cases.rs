//! The tables half of the contract: commits, reads in key order, merging, deleting, dropping,
//! workspace creation and deletion, tenancy, all-or-nothing under an injected fault, large
//! rows and batching. Every function here runs once per adapter.

use super::support::*;
use super::*;

pub fn w(owner: &Owner, id: &str) -> WsKey {
    WsKey::new(owner.clone(), id)
}

pub fn columns() -> Vec<Column> {
    vec![Column::new("id", "TEXT", false), Column::new("value", "INTEGER", true)]
}

pub fn row(key: &str, value: impl Into<Value>) -> (String, Row) {
    (key.to_owned(), obj(json!({"id": key, "value": value.into()})))
}

pub fn rows(keys: &[&str], value: i64) -> Vec<(String, Row)> {
    keys.iter().map(|k| row(k, value)).collect()
}

pub fn write(table: &str, rows: Vec<(String, Row)>) -> TableWrite {
    TableWrite { name: table.into(), owner: owner_of(table), columns: columns(), key_column: "id".into(), rows }
}

/// What the suite records as each table's owner: a project's table, so that reading it back
/// as anything else (say, the fallback for tables stored before owners were recorded) fails.
pub fn owner_of(table: &str) -> TableOwner {
    TableOwner::Project { kind: "cells".into(), project_id: format!("p_{table}") }
}

pub fn upserts(id: &str, writes: Vec<TableWrite>) -> Commit {
    Commit { id: id.into(), upserts: writes, ..Commit::default() }
}

/// The workspace as it is now.
pub async fn snap(store: &dyn Store, ws: &WsKey) -> Box<dyn Snapshot> {
    store.snapshot(ws).await.unwrap_or_else(|e| panic!("snapshot of {}: {e}", ws.key()))
}

/// `c` on top of the current revision (a fresh snapshot's), as a caller that read first does.
pub async fn try_commit(store: &dyn Store, ws: &WsKey, c: Commit) -> StoreResult<u64> {
    let base = snap(store, ws).await.revision();
    store.commit(ws, base, c).await
}

/// `try_commit` that must apply; the new revision.
pub async fn commit(store: &dyn Store, ws: &WsKey, c: Commit) -> u64 {
    let id = c.id.clone();
    try_commit(store, ws, c).await.unwrap_or_else(|e| panic!("commit {id} to {}: {e}", ws.key()))
}

pub async fn tables(store: &dyn Store, ws: &WsKey) -> Vec<TableMeta> {
    snap(store, ws).await.tables().to_vec()
}

pub async fn page(store: &dyn Store, ws: &WsKey, table: &str, after: Option<&str>, limit: usize) -> Vec<(String, Row)> {
    snap_page(snap(store, ws).await.as_ref(), table, after, limit).await
}

pub async fn snap_page(s: &dyn Snapshot, table: &str, after: Option<&str>, limit: usize) -> Vec<(String, Row)> {
    s.read_rows(table, after, limit)
        .await
        .unwrap_or_else(|e| panic!("read_rows {table} at revision {} after {after:?}: {e}", s.revision()))
}

/// Every row of `table` at the snapshot's revision, in pages of `limit`.
pub async fn snap_rows(s: &dyn Snapshot, table: &str, limit: usize) -> Vec<(String, Row)> {
    let mut all: Vec<(String, Row)> = Vec::new();
    loop {
        let next = snap_page(s, table, all.last().map(|(k, _)| k.as_str()), limit).await;
        if next.is_empty() {
            return all;
        }
        all.extend(next);
    }
}

/// Every row, paging with `limit` and the last key as the cursor until an empty page.
pub async fn read_all(store: &dyn Store, ws: &WsKey, table: &str, limit: usize) -> Vec<(String, Row)> {
    let mut all: Vec<(String, Row)> = Vec::new();
    loop {
        let next = page(store, ws, table, all.last().map(|(k, _)| k.as_str()), limit).await;
        assert!(next.len() <= limit, "a page of {} rows for limit {limit}", next.len());
        if next.is_empty() {
            return all;
        }
        all.extend(next);
    }
}

pub async fn all_rows(store: &dyn Store, ws: &WsKey, table: &str) -> Vec<(String, Row)> {
    read_all(store, ws, table, 1000).await
}

pub async fn get_rows(store: &dyn Store, ws: &WsKey, table: &str, keys: &[String]) -> Vec<(String, Row)> {
    let s = snap(store, ws).await;
    s.get_rows(table, keys).await.unwrap_or_else(|e| panic!("get_rows {table} of {}: {e}", ws.key()))
}

pub fn keys_of(rows: &[(String, Row)]) -> Vec<&str> {
    rows.iter().map(|(k, _)| k.as_str()).collect()
}

fn meta(name: &str, columns: Vec<Column>, row_count: u64) -> TableMeta {
    TableMeta { name: name.into(), owner: owner_of(name), columns, key_column: "id".into(), row_count }
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

pub async fn tables_commit_creates_and_lists(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    assert!(tables(store, &ws).await.is_empty(), "no tables before any commit");
    let mut wide = columns();
    wide.push(Column { default: Some("CURRENT_TIMESTAMP".into()), ..Column::new("at", "TIMESTAMP", true) });
    // Column order of a row is kept, whatever the schema's order.
    let odd = ("b".to_owned(), obj(json!({"zeta": 1, "id": "b", "alpha": [1, {"x": null}], "value": 2.5})));
    let zeta = TableWrite {
        name: "zeta".into(),
        owner: owner_of("zeta"),
        columns: wide.clone(),
        key_column: "id".into(),
        rows: vec![row("a", 1), odd.clone()],
    };
    commit(store, &ws, upserts("c1", vec![zeta, write("alpha", rows(&["x"], 1)), write("empty", vec![])])).await;

    let expected = vec![meta("alpha", columns(), 1), meta("empty", columns(), 0), meta("zeta", wide, 2)];
    assert_eq!(tables(store, &ws).await, expected, "sorted by name, with schema, key and row count");
    let zeta_rows = all_rows(store, &ws, "zeta").await;
    assert_eq!(zeta_rows, vec![row("a", 1), odd.clone()]);
    let text = |r: &Row| serde_json::to_string(r).expect("serialize");
    assert_eq!(text(&zeta_rows[1].1), text(&odd.1), "exact text, column order included");
    assert!(all_rows(store, &ws, "empty").await.is_empty());
    assert!(tables(store, &w(&ann(), "ws_2")).await.is_empty(), "another workspace has none");
}

pub async fn tables_read_rows_in_byte_order(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    let keys = ["9", "10", "100", "-1", "a", "B", "Z", "z", "é", "ä", "日本", "🚀", "a#b", "#", "a b", "a.b", "ws#x"];
    let table_rows: Vec<(String, Row)> = keys.iter().enumerate().map(|(i, k)| row(k, i as i64)).collect();
    commit(store, &ws, upserts("c1", vec![write("t", table_rows.clone())])).await;

    let mut expected = table_rows.clone();
    expected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    assert_eq!(keys_of(&expected)[..4], ["#", "-1", "10", "100"], "the test's own premise: byte order");
    assert_eq!(page(store, &ws, "t", None, 100).await, expected, "one page, in byte order of the keys");
    for limit in [1, 3, 5, 16, 17] {
        assert_eq!(read_all(store, &ws, "t", limit).await, expected, "pages of {limit}");
    }
    assert_eq!(
        page(store, &ws, "t", Some(&expected[4].0), 3).await,
        expected[5..8].to_vec(),
        "the cursor is exclusive"
    );
    assert_eq!(page(store, &ws, "t", Some("a!"), 2).await, expected[9..11].to_vec(), "a cursor between keys");
    assert_eq!(page(store, &ws, "t", Some(""), 100).await, expected, "every key sorts after the empty one");
    assert!(page(store, &ws, "t", Some("\u{10FFFF}"), 100).await.is_empty(), "a cursor after every key");
    assert!(page(store, &ws, "t", None, 0).await.is_empty(), "limit 0");
    assert_eq!(page(store, &ws, "t", None, usize::MAX).await, expected, "huge limit");
    assert!(page(store, &ws, "nope", None, 10).await.is_empty(), "unknown table");
}

pub async fn tables_paging_across_shards(store: &dyn Store) {
    let ws = w(&acme(), "ws_big");
    let table_rows: Vec<(String, Row)> = (0..2500).map(|i| row(&i.to_string(), i)).collect();
    commit(store, &ws, upserts("c1", vec![write("t", table_rows.clone())])).await;
    assert_eq!(tables(store, &ws).await, vec![meta("t", columns(), 2500)]);

    let mut expected = table_rows;
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sizes = Vec::new();
    let mut got: Vec<(String, Row)> = Vec::new();
    loop {
        let next = page(store, &ws, "t", got.last().map(|(k, _)| k.as_str()), 1000).await;
        sizes.push(next.len());
        if next.is_empty() {
            break;
        }
        got.extend(next);
    }
    assert_eq!(sizes, [1000, 1000, 500, 0]);
    assert!(got == expected, "every row exactly once, in key order");
    assert_eq!(page(store, &ws, "t", Some(&expected[1499].0), 7).await, expected[1500..1507].to_vec());
}

pub async fn tables_get_rows_returns_only_present_keys(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    let present: Vec<(String, Row)> = (0..200).map(|i| row(&format!("k{i:03}"), i)).collect();
    commit(store, &ws, upserts("c1", vec![write("t", present.clone())])).await;

    // 150 keys (more than one BatchGetItem holds), interleaving present and absent ones.
    let mut asked = Vec::new();
    for i in 50..150 {
        asked.push(format!("k{i:03}"));
        if i % 2 == 0 {
            asked.push(format!("n{i:03}"));
        }
    }
    assert_eq!(asked.len(), 150);
    let mut got = get_rows(store, &ws, "t", &asked).await;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, present[50..150].to_vec());

    assert!(get_rows(store, &ws, "t", &[]).await.is_empty(), "no keys");
    assert!(get_rows(store, &ws, "t", &strings(&["nope", ""])).await.is_empty(), "only absent keys");
    assert!(get_rows(store, &ws, "other", &strings(&["k001"])).await.is_empty(), "unknown table");
    assert_eq!(get_rows(store, &ws, "t", &strings(&["k007"])).await, vec![row("k007", 7)]);
}

pub async fn tables_merge_replaces_and_keeps(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    commit(store, &ws, upserts("c1", vec![write("t", rows(&["a", "b", "c"], 1)), write("u", rows(&["x"], 1))])).await;
    let mut wider = columns();
    wider.push(Column::new("note", "TEXT", true));
    let second = TableWrite {
        name: "t".into(),
        owner: owner_of("t"),
        columns: wider.clone(),
        key_column: "id".into(),
        rows: vec![row("b", 20), ("d".into(), obj(json!({"id": "d", "value": 4, "note": "new"})))],
    };
    commit(store, &ws, upserts("c2", vec![second])).await;

    let got = all_rows(store, &ws, "t").await;
    let expected =
        vec![row("a", 1), row("b", 20), row("c", 1), ("d".into(), obj(json!({"id": "d", "value": 4, "note": "new"})))];
    assert_eq!(got, expected, "overlapping keys replaced, the others kept");
    assert_eq!(
        tables(store, &ws).await,
        vec![meta("t", wider, 4), meta("u", columns(), 1)],
        "schema of the last write"
    );
    assert_eq!(all_rows(store, &ws, "u").await, rows(&["x"], 1), "an untouched table stays");

    // The same key twice in one commit: the later write wins.
    commit(store, &ws, upserts("c3", vec![write("u", rows(&["x"], 2)), write("u", rows(&["x"], 3))])).await;
    assert_eq!(all_rows(store, &ws, "u").await, rows(&["x"], 3));
    assert_eq!(tables(store, &ws).await[1].row_count, 1);
}

pub async fn tables_delete_rows(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    commit(store, &ws, upserts("c1", vec![write("t", rows(&["a", "b", "c"], 1))])).await;
    let delete = Commit {
        id: "c2".into(),
        delete_rows: vec![("t".into(), strings(&["b", "missing"])), ("nope".into(), strings(&["x"]))],
        ..Commit::default()
    };
    commit(store, &ws, delete).await;
    assert_eq!(all_rows(store, &ws, "t").await, rows(&["a", "c"], 1));
    assert_eq!(tables(store, &ws).await, vec![meta("t", columns(), 2)], "deleting rows of no table creates none");

    // Upserted and deleted in one commit: deleted (upserts apply first).
    let both = Commit {
        id: "c3".into(),
        upserts: vec![write("t", rows(&["b", "e"], 5))],
        delete_rows: vec![("t".into(), strings(&["b", "a"]))],
        ..Commit::default()
    };
    commit(store, &ws, both).await;
    assert_eq!(all_rows(store, &ws, "t").await, vec![row("c", 1), row("e", 5)]);
    assert_eq!(tables(store, &ws).await[0].row_count, 2);
}

pub async fn tables_drop_tables(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    commit(store, &ws, upserts("c1", vec![write("t1", rows(&["a", "b"], 1)), write("t2", rows(&["x"], 1))])).await;
    let drop = Commit { id: "c2".into(), drop_tables: vec!["t1".into(), "never".into()], ..Commit::default() };
    commit(store, &ws, drop).await;
    assert_eq!(tables(store, &ws).await, vec![meta("t2", columns(), 1)]);
    assert!(all_rows(store, &ws, "t1").await.is_empty());
    assert!(get_rows(store, &ws, "t1", &strings(&["a"])).await.is_empty());

    commit(store, &ws, upserts("c3", vec![write("t1", rows(&["c"], 3))])).await;
    assert_eq!(all_rows(store, &ws, "t1").await, rows(&["c"], 3), "a table made again starts empty");

    // Written and dropped in one commit: dropped.
    let both = Commit {
        id: "c4".into(),
        upserts: vec![write("t2", rows(&["y"], 1))],
        drop_tables: vec!["t2".into()],
        ..Commit::default()
    };
    commit(store, &ws, both).await;
    assert_eq!(tables(store, &ws).await, vec![meta("t1", columns(), 1)]);
}

pub async fn tables_commit_creates_the_workspace(store: &dyn Store) {
    let ws = w(&ann(), "ws_new");
    let mut d = draft(&ann(), "ws_new", "Made by a commit", "ann", &tick().await);
    d.description = Some("with tables".into());
    d.metadata = obj(json!({"from": "import"}));
    let c = Commit { create_workspace: Some(d.clone()), ..upserts("c1", vec![write("t", rows(&["a"], 1))]) };
    commit(store, &ws, c).await;
    assert_eq!(get(store, &ann(), "ws_new").await, Some(created(&d)));
    assert_eq!(list_all(store, &ann()).await, vec![created(&d)]);

    let mut other = draft(&ann(), "ws_new", "Another name", "bob", &tick().await);
    other.description = Some("other".into());
    let c = Commit { create_workspace: Some(other), ..upserts("c2", vec![write("t", rows(&["b"], 2))]) };
    commit(store, &ws, c).await;
    assert_eq!(get(store, &ann(), "ws_new").await, Some(created(&d)), "an existing workspace is left untouched");
    assert_eq!(all_rows(store, &ws, "t").await, vec![row("a", 1), row("b", 2)]);

    // Untouched means untouched: no description added to one saved without.
    let saved = save(store, &ann(), draft(&ann(), "ws_saved", "Saved", "ann", &tick().await)).await;
    let mut with_description = draft(&ann(), "ws_saved", "Import", "bob", &tick().await);
    with_description.description = Some("should not appear".into());
    let c = Commit { create_workspace: Some(with_description), ..upserts("c1", vec![write("t", rows(&["a"], 1))]) };
    commit(store, &w(&ann(), "ws_saved"), c).await;
    assert_eq!(get(store, &ann(), "ws_saved").await, Some(saved));
    assert_eq!(list_all(store, &ann()).await.len(), 2);
}

pub async fn tables_delete_workspace(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    assert_eq!(store.delete_workspace(&ann(), "ws_1").await.expect("delete unknown"), None);
    let d = draft(&ann(), "ws_1", "Doomed", "ann", &tick().await);
    let c = Commit {
        create_workspace: Some(d.clone()),
        ..upserts("c1", vec![write("t1", rows(&["a", "b", "c"], 1)), write("t2", rows(&["w", "x", "y", "z"], 1))])
    };
    commit(store, &ws, c.clone()).await;
    save(store, &ann(), draft(&ann(), "ws_2", "Kept", "ann", &tick().await)).await;
    commit(store, &w(&ann(), "ws_2"), upserts("c1", vec![write("t1", rows(&["k"], 1))])).await;

    assert_eq!(store.delete_workspace(&ann(), "ws_1").await.expect("delete"), Some(7), "the rows that went");
    assert!(tables(store, &ws).await.is_empty());
    assert!(all_rows(store, &ws, "t1").await.is_empty());
    assert!(get_rows(store, &ws, "t2", &strings(&["w"])).await.is_empty());
    assert_eq!(get(store, &ann(), "ws_1").await, None);
    assert_eq!(store.delete_workspace(&ann(), "ws_1").await.expect("delete again"), None);
    assert_eq!(all_rows(store, &w(&ann(), "ws_2"), "t1").await, rows(&["k"], 1), "other workspaces stay");

    // Made again, even by a commit of the same id: only the new content.
    let again = Commit { create_workspace: Some(d.clone()), ..upserts("c1", vec![write("t1", rows(&["new"], 2))]) };
    commit(store, &ws, again).await;
    assert_eq!(tables(store, &ws).await, vec![meta("t1", columns(), 1)]);
    assert_eq!(all_rows(store, &ws, "t1").await, rows(&["new"], 2));
    assert!(get(store, &ann(), "ws_1").await.is_some());

    save(store, &ann(), draft(&ann(), "ws_bare", "No tables", "ann", &tick().await)).await;
    assert_eq!(store.delete_workspace(&ann(), "ws_bare").await.expect("delete bare"), Some(0));
}

pub async fn tables_tenancy(store: &dyn Store) {
    // Owners whose keys look alike, one of them named like the key separator's neighbour `ws`.
    let owners = [
        Owner::user("acme", "ann"),
        Owner::user("acme", "ws"),
        Owner::organization("acme"),
        Owner::organization("ws"),
        Owner::user("ws", "ws"),
    ];
    for (i, owner) in owners.iter().enumerate() {
        let keys: Vec<String> = (0..=i).map(|j| format!("k{j}")).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let d = draft(owner, "ws_1", &format!("of {}", owner.key()), "ann", &tick().await);
        let c = Commit { create_workspace: Some(d), ..upserts("c1", vec![write("t", rows(&key_refs, i as i64))]) };
        commit(store, &w(owner, "ws_1"), c).await;
    }
    for (i, owner) in owners.iter().enumerate() {
        let ws = w(owner, "ws_1");
        let got = all_rows(store, &ws, "t").await;
        assert_eq!(got.len(), i + 1, "{} sees only its rows", owner.key());
        assert!(got.iter().all(|(_, r)| r["value"] == json!(i)), "{}", owner.key());
        assert_eq!(tables(store, &ws).await[0].row_count, (i + 1) as u64);
        let workspace = get(store, owner, "ws_1").await.unwrap_or_else(|| panic!("{} has its workspace", owner.key()));
        assert_eq!(workspace.name, format!("of {}", owner.key()));
        assert_eq!(get_rows(store, &ws, "t", &strings(&["k0"])).await, rows(&["k0"], i as i64));
    }
    assert_eq!(store.delete_workspace(&owners[1], "ws_1").await.expect("delete"), Some(2));
    for (i, owner) in owners.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert_eq!(all_rows(store, &w(owner, "ws_1"), "t").await.len(), i + 1, "{} keeps its rows", owner.key());
    }
    assert!(tables(store, &w(&Owner::organization("acm"), "ws_1")).await.is_empty());
}

pub async fn tables_fault_injection_is_all_or_nothing(store: &dyn Store) {
    let base = |id: &str| {
        let t: Vec<(String, Row)> = (0..200).map(|i| row(&format!("k{i:03}"), 1)).collect();
        let u: Vec<(String, Row)> = (0..10).map(|i| row(&format!("u{i}"), 1)).collect();
        upserts(id, vec![write("t", t), write("u", u)])
    };
    let change = |ws: &WsKey| Commit {
        id: "c2".into(),
        create_workspace: Some(draft(
            &ws.owner,
            &ws.workspace_id,
            "Created late",
            "ann",
            "2024-01-01T00:00:00.000000+00:00",
        )),
        upserts: vec![write("t", (100..400).map(|i| row(&format!("k{i:03}"), 2)).collect())],
        delete_rows: vec![("u".into(), strings(&["u0"]))],
        drop_tables: vec![],
    };
    let ws = w(&ann(), "ws_1");
    commit(store, &ws, base("c1")).await;
    let before = (tables(store, &ws).await, all_rows(store, &ws, "t").await, all_rows(store, &ws, "u").await);

    for limit in [0, 1, 100, 299, 300, 1000] {
        store.inject_commit_fault(Some(limit));
        let failed = try_commit(store, &ws, change(&ws)).await;
        assert!(matches!(failed, Err(StoreError::Unavailable(_))), "fault after {limit} rows: {failed:?}");
        let after = (tables(store, &ws).await, all_rows(store, &ws, "t").await, all_rows(store, &ws, "u").await);
        assert!(after == before, "fault after {limit} rows: nothing of the commit is visible");
        assert_eq!(get(store, &ann(), "ws_1").await, None, "nor the workspace it would create");
    }
    store.inject_commit_fault(None);
    commit(store, &ws, change(&ws)).await;

    // What one clean run gives, on a workspace that never saw a fault.
    let clean = w(&ann(), "ws_clean");
    commit(store, &clean, base("c1")).await;
    commit(store, &clean, change(&clean)).await;
    assert_eq!(tables(store, &ws).await, tables(store, &clean).await);
    let t = all_rows(store, &ws, "t").await;
    assert!(t == all_rows(store, &clean, "t").await);
    assert_eq!(all_rows(store, &ws, "u").await, all_rows(store, &clean, "u").await);
    let expected: Vec<(String, Row)> =
        (0..400).map(|i| row(&format!("k{i:03}"), if i < 100 { 1 } else { 2 })).collect();
    assert!(t == expected, "100 kept, 100 replaced, 200 added");
    assert_eq!(tables(store, &ws).await.iter().map(|m| m.row_count).collect::<Vec<_>>(), [400, 9]);
    assert_eq!(get(store, &ann(), "ws_1").await.map(|w| w.name).as_deref(), Some("Created late"));
}

pub async fn tables_large_row_round_trips(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    let big = ("big".to_owned(), obj(json!({"id": "big", "text": "é".repeat(250_000), "n": 1})));
    commit(store, &ws, upserts("c1", vec![write("t", vec![row("a", 1), big.clone(), row("c", 3)])])).await;
    assert_eq!(all_rows(store, &ws, "t").await, vec![row("a", 1), big.clone(), row("c", 3)]);
    assert_eq!(get_rows(store, &ws, "t", &strings(&["big"])).await, vec![big.clone()]);

    // Carried over by a commit that changes other rows of the table.
    commit(store, &ws, upserts("c2", vec![write("t", rows(&["b"], 2))])).await;
    assert_eq!(all_rows(store, &ws, "t").await, vec![row("a", 1), row("b", 2), big.clone(), row("c", 3)]);
    assert_eq!(get_rows(store, &ws, "t", &strings(&["big", "c"])).await, vec![big, row("c", 3)]);

    let delete = Commit { id: "c3".into(), delete_rows: vec![("t".into(), strings(&["big"]))], ..Commit::default() };
    commit(store, &ws, delete).await;
    assert_eq!(keys_of(&all_rows(store, &ws, "t").await), ["a", "b", "c"]);
}

pub async fn tables_many_rows_are_batched(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    let many: Vec<(String, Row)> = (0..61).map(|i| row(&format!("r{i:02}"), i)).collect();
    commit(store, &ws, upserts("c1", vec![write("t", many.clone())])).await;
    assert_eq!(all_rows(store, &ws, "t").await, many);
    let delete: Vec<String> = (0..26).map(|i| format!("r{i:02}")).collect();
    commit(store, &ws, Commit { id: "c2".into(), delete_rows: vec![("t".into(), delete)], ..Commit::default() }).await;
    assert_eq!(all_rows(store, &ws, "t").await, many[26..].to_vec());
    assert_eq!(tables(store, &ws).await[0].row_count, 35);
}

pub async fn tables_concurrent_commits_never_lose_writes(store: &dyn Store) {
    let ws = w(&ann(), "ws_1");
    commit(store, &ws, upserts("c0", vec![write("t", rows(&["base"], 0))])).await;
    let mut expected = vec!["base".to_owned()];
    let mut conflicts = 0;
    for round in 0..4 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        // Both read the same revision, then race to commit on top of it.
        let base = snap(store, &ws).await.revision();
        let (ra, rb) = tokio::join!(
            store.commit(&ws, base, upserts(&format!("ca{round}"), vec![write("t", rows(&[&a], 1))])),
            store.commit(&ws, base, upserts(&format!("cb{round}"), vec![write("t", rows(&[&b], 1))])),
        );
        for (key, result) in [(a, ra), (b, rb)] {
            match result {
                Ok(_) => expected.push(key),
                Err(StoreError::Conflict(_)) => conflicts += 1,
                Err(e) => panic!("round {round}: {key}: neither applied nor a conflict: {e}"),
            }
        }
        expected.sort();
        let got = all_rows(store, &ws, "t").await;
        assert_eq!(keys_of(&got), expected, "round {round}: exactly the commits that succeeded");
        assert_eq!(tables(store, &ws).await[0].row_count, expected.len() as u64);
    }
    // Both of a pair may lose on a real DynamoDB (TransactionConflict), but not every time.
    assert!(expected.len() >= 2, "some commits succeed: {expected:?}");
    eprintln!("concurrent commits: {conflicts} of 8 lost with a conflict");
}
