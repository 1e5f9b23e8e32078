//! What only the DynamoDB adapter's tables half has: the item layout its module doc documents
//! (manifest, versioned and sharded row items, blobs, commit records) and its garbage
//! collection: superseded versions after a commit, abandoned commits by the sweep, never a
//! version the manifest names.

use sha2::{Digest, Sha256};

use super::support::*;
use super::table_cases::*;
use super::*;

type RawItem = HashMap<String, AttributeValue>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

struct Raw {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Raw {
    async fn get(&self, pk: &str, sk: &str) -> Option<RawItem> {
        let out =
            self.client.get_item().table_name(&self.table).key("PK", s(pk)).key("SK", s(sk)).consistent_read(true);
        out.send().await.expect("raw get").item
    }

    /// Every item of a partition.
    async fn partition(&self, pk: &str) -> Vec<RawItem> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("raw query");
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return items,
            }
        }
    }

    /// The items of every shard of a version.
    async fn version(&self, ws: &WsKey, table: &str, version: &str, shards: u32) -> Vec<RawItem> {
        let mut items = Vec::new();
        for shard in 0..shards {
            items.extend(self.partition(&format!("{}#t#{table}#v#{version}#s#{shard}", ws.key())).await);
        }
        items
    }

    /// `(version, shards)` of a table, from the manifest's JSON.
    async fn entry(&self, ws: &WsKey, table: &str) -> (String, u32) {
        let manifest = self.get(&ws.key(), "manifest").await.expect("a manifest");
        let tables: Value =
            serde_json::from_str(manifest.get("tables").and_then(|v| v.as_s().ok()).expect("tables")).expect("JSON");
        let entry = &tables[table];
        let version = entry["v"].as_str().expect("v").to_owned();
        (version, u32::try_from(entry["shards"].as_u64().expect("shards")).expect("u32"))
    }

    async fn records(&self, ws: &WsKey) -> Vec<RawItem> {
        self.partition(&ws.key()).await.into_iter().filter(|i| text(i, "SK").starts_with("commit#")).collect()
    }
}

fn text<'a>(item: &'a RawItem, attr: &str) -> &'a str {
    item.get(attr).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("")
}

async fn fresh(case: &str, blobs: Option<Arc<MemBlobs>>) -> Option<(DynamoStore, Raw)> {
    let (store, (client, table)) = fresh_dynamo_store(case).await?;
    let store = match blobs {
        Some(blobs) => store.with_blobs(blobs),
        None => store,
    };
    Some((store, Raw { client, table }))
}

#[tokio::test]
async fn rows_live_in_sharded_versions_the_manifest_names() {
    let Some((store, raw)) = fresh("layout_rows", None).await else { return };
    let ws = w(&ann(), "ws_1");
    let many: Vec<(String, Row)> = (0..2500).map(|i| row(&i.to_string(), i)).collect();
    commit(&store, &ws, upserts("c1", vec![write("t", many)])).await;

    let manifest = raw.get(&ws.key(), "manifest").await.expect("manifest");
    assert_eq!(manifest.get("rev").and_then(|v| v.as_n().ok()).map(String::as_str), Some("1"));
    assert_eq!(raw.entry(&ws, "t").await, ("c1.0".to_owned(), 3), "version <id>.<rev>, ⌈2500 / 1000⌉ shards");
    let mut count = 0;
    for shard in 0..3u32 {
        for item in raw.partition(&format!("{}#t#t#v#c1.0#s#{shard}", ws.key())).await {
            let key = text(&item, "SK");
            let digest = Sha256::digest(key.as_bytes());
            let hash = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
            assert_eq!(hash % 3, u64::from(shard), "key {key} is in the shard of its hash");
            let stored: Value = serde_json::from_str(text(&item, "row")).expect("row JSON");
            assert_eq!(stored["id"], json!(key));
            count += 1;
        }
    }
    assert_eq!(count, 2500);
    assert!(raw.records(&ws).await.is_empty(), "a commit's record goes once it is done");
}

#[tokio::test]
async fn superseded_versions_are_collected() {
    let Some((store, raw)) = fresh("collect", None).await else { return };
    let ws = w(&ann(), "ws_1");
    let many: Vec<(String, Row)> = (0..1500).map(|i| row(&format!("k{i:04}"), 1)).collect();
    commit(&store, &ws, upserts("c1", vec![write("t", many), write("u", rows(&["x"], 1))])).await;
    commit(&store, &ws, upserts("c2", vec![write("t", rows(&["k0000", "new"], 2))])).await;

    assert!(raw.version(&ws, "t", "c1.0", 2).await.is_empty(), "the superseded version of t is gone");
    assert_eq!(raw.version(&ws, "t", "c2.1", 2).await.len(), 1501);
    assert_eq!(raw.entry(&ws, "u").await, ("c1.0".to_owned(), 1), "an untouched table keeps its version");
    assert_eq!(raw.version(&ws, "u", "c1.0", 1).await.len(), 1);

    commit(&store, &ws, Commit { id: "c3".into(), drop_tables: vec!["u".into()], ..Commit::default() }).await;
    assert!(raw.version(&ws, "u", "c1.0", 1).await.is_empty(), "a dropped table's rows go");
    assert_eq!(store.delete_workspace(&ann(), "ws_1").await.expect("delete"), None, "tables without a workspace");
    save(&store, &ann(), draft(&ann(), "ws_1", "n", "ann", &tick().await)).await;
    assert_eq!(store.delete_workspace(&ann(), "ws_1").await.expect("delete"), Some(1501));
    assert!(raw.version(&ws, "t", "c2.1", 2).await.is_empty(), "a deleted workspace's rows go");
    assert!(raw.partition(&ws.key()).await.is_empty(), "no manifest and no records are left");
}

/// moto, like DynamoDB, cuts a Query page at 1 MB: rows just under the blob threshold make every
/// page short, so reading, copying and collecting must all follow `LastEvaluatedKey`.
#[tokio::test]
async fn pages_cut_at_one_megabyte_are_followed() {
    let Some((store, raw)) = fresh("one_mb", None).await else { return };
    let ws = w(&ann(), "ws_1");
    let fat = |i: usize| {
        let key = format!("f{i:02}");
        (key.clone(), obj(json!({"id": key, "text": "y".repeat(300_000)})))
    };
    let fat_rows: Vec<(String, Row)> = (0..12).map(fat).collect();
    commit(&store, &ws, upserts("c1", vec![write("t", fat_rows.clone())])).await;
    assert!(page(&store, &ws, "t", None, 12).await == fat_rows, "one read_rows call, several Query pages");
    assert!(read_all(&store, &ws, "t", 5).await == fat_rows);

    commit(&store, &ws, upserts("c2", vec![write("t", rows(&["a"], 1))])).await;
    let got = all_rows(&store, &ws, "t").await;
    assert_eq!(got.len(), 13, "every fat row copied into the new version");
    assert!(got[1..] == fat_rows[..]);
    assert!(raw.version(&ws, "t", "c1.0", 1).await.is_empty(), "and every one of the old collected");
}

#[tokio::test]
async fn large_rows_are_stored_as_blobs() {
    let blobs = Arc::new(MemBlobs::default());
    let Some((store, raw)) = fresh("blobs", Some(Arc::clone(&blobs))).await else { return };
    let ws = w(&ann(), "ws_1");
    let big = ("big".to_owned(), obj(json!({"id": "big", "text": "x".repeat(500_000)})));
    let d = draft(&ann(), "ws_1", "n", "ann", &tick().await);
    let c = Commit { create_workspace: Some(d), ..upserts("c1", vec![write("t", vec![big.clone(), row("small", 1)])]) };
    commit(&store, &ws, c).await;

    let items = raw.version(&ws, "t", "c1.0", 1).await;
    let stored = items.iter().find(|i| text(i, "SK") == "big").expect("the big row's item");
    assert!(!stored.contains_key("row"), "the row is not in the item");
    let blob = text(stored, "blob");
    assert!(blob.starts_with("rows/"), "{blob}");
    assert_eq!(blobs.keys(), [blob.to_owned()]);
    let small = items.iter().find(|i| text(i, "SK") == "small").expect("the small row's item");
    assert!(small.contains_key("row") && !small.contains_key("blob"), "small rows stay inline");
    assert_eq!(get_rows(&store, &ws, "t", &["big".to_owned()]).await, vec![big.clone()]);

    // A new version gets its own blob; the old one goes with the old version.
    commit(&store, &ws, upserts("c2", vec![write("t", rows(&["other"], 1))])).await;
    let keys = blobs.keys();
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0], blob, "copied under the new version");
    assert_eq!(get_rows(&store, &ws, "t", &["big".to_owned()]).await, vec![big]);

    assert_eq!(store.delete_workspace(&ann(), "ws_1").await.expect("delete"), Some(3));
    assert!(blobs.keys().is_empty(), "deleting the workspace deletes its blobs");
}

#[tokio::test]
async fn large_rows_without_a_blob_store_are_refused() {
    let Some((store, _raw)) = fresh("no_blobs", None).await else { return };
    let ws = w(&ann(), "ws_1");
    let big = ("big one".to_owned(), obj(json!({"id": "big one", "text": "x".repeat(400_000)})));
    let got = try_commit(&store, &ws, upserts("c1", vec![write("wide", vec![row("a", 1), big])])).await;
    assert!(
        matches!(got, Err(StoreError::Internal(ref m)) if m.contains("wide") && m.contains("big one")),
        "names the table and the key: {got:?}"
    );
    assert!(tables(&store, &ws).await.is_empty(), "nothing of the commit is visible");
}

#[tokio::test]
async fn abandoned_commits_are_swept() {
    let Some((store, raw)) = fresh("sweep", None).await else { return };
    let ws = w(&ann(), "ws_1");
    commit(&store, &ws, upserts("c1", vec![write("t", rows(&["a", "b"], 1))])).await;
    store.inject_commit_fault(Some(40));
    let change = upserts("c2", vec![write("t", (0..100).map(|i| row(&format!("n{i:02}"), 2)).collect())]);
    assert!(matches!(try_commit(&store, &ws, change).await, Err(StoreError::Unavailable(_))));
    store.inject_commit_fault(None);
    assert_eq!(raw.version(&ws, "t", "c2.1", 1).await.len(), 40, "a crash leaves rows behind");
    let records = raw.records(&ws).await;
    assert_eq!(records.len(), 1);
    assert_eq!((text(&records[0], "SK"), text(&records[0], "state")), ("commit#c2.1", "pending"));
    assert!(records[0].contains_key("expires_at"), "a pending record has a TTL backstop");

    // A recent pending commit may still be running: left alone.
    commit(&store, &ws, upserts("c3", vec![write("u", rows(&["x"], 1))])).await;
    assert_eq!(raw.version(&ws, "t", "c2.1", 1).await.len(), 40);

    // Once it is older than any commit can run, the next commit aborts it.
    let old = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() - 3600)
        .to_string();
    raw.client
        .update_item()
        .table_name(&raw.table)
        .key("PK", s(&ws.key()))
        .key("SK", s("commit#c2.1"))
        .update_expression("SET created = :old")
        .expression_attribute_values(":old", AttributeValue::N(old))
        .send()
        .await
        .expect("backdate");
    commit(&store, &ws, upserts("c4", vec![write("u", rows(&["y"], 1))])).await;
    assert!(raw.version(&ws, "t", "c2.1", 1).await.is_empty(), "the abandoned rows are gone");
    assert!(raw.records(&ws).await.is_empty(), "and so is its record");
    assert_eq!(all_rows(&store, &ws, "t").await, rows(&["a", "b"], 1));
}

#[tokio::test]
async fn the_sweep_never_deletes_a_live_version() {
    let Some((store, raw)) = fresh("sweep_live", None).await else { return };
    let ws = w(&ann(), "ws_1");
    commit(&store, &ws, upserts("c1", vec![write("t", rows(&["a", "b"], 1))])).await;
    // A stale record naming the live version (as a late, lost retry of c1 could leave).
    let record: RawItem = HashMap::from([
        ("PK".to_owned(), s(&ws.key())),
        ("SK".to_owned(), s("commit#c1.0")),
        ("state".to_owned(), s("pending")),
        ("versions".to_owned(), s(r#"[{"table":"t","v":"c1.0","shards":1}]"#)),
        ("created".to_owned(), AttributeValue::N("1000".into())),
    ]);
    raw.client.put_item().table_name(&raw.table).set_item(Some(record)).send().await.expect("raw put");
    commit(&store, &ws, upserts("c2", vec![write("u", rows(&["x"], 1))])).await;
    assert_eq!(all_rows(&store, &ws, "t").await, rows(&["a", "b"], 1), "the live version is intact");
    assert!(raw.records(&ws).await.is_empty(), "the record itself is gone");
}

#[tokio::test]
async fn a_commit_whose_record_is_being_aborted_conflicts() {
    let Some((store, raw)) = fresh("aborting", None).await else { return };
    let ws = w(&ann(), "ws_1");
    commit(&store, &ws, upserts("c1", vec![write("t", rows(&["a"], 1))])).await;
    let record: RawItem = HashMap::from([
        ("PK".to_owned(), s(&ws.key())),
        ("SK".to_owned(), s("commit#c2.1")),
        ("state".to_owned(), s("aborting")),
        ("versions".to_owned(), s(r#"[{"table":"t","v":"c2.1","shards":1}]"#)),
        ("created".to_owned(), AttributeValue::N(now_secs().to_string())),
    ]);
    raw.client.put_item().table_name(&raw.table).set_item(Some(record)).send().await.expect("raw put");
    let got = try_commit(&store, &ws, upserts("c2", vec![write("t", rows(&["b"], 2))])).await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "{got:?}");
    assert_eq!(all_rows(&store, &ws, "t").await, rows(&["a"], 1));
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// Not a timed assertion: prints how long 10,000 rows take. Ignored by default: moto answers a
/// Query by scanning the whole table, so the copy and read parts take a minute there (and tell
/// little about DynamoDB). `cargo test --test store_conformance ten_thousand -- --ignored --nocapture`
#[tokio::test]
#[ignore = "timing only"]
async fn ten_thousand_rows_timing() {
    let Some((store, _raw)) = fresh("timing", None).await else { return };
    let ws = w(&ann(), "ws_1");
    let many: Vec<(String, Row)> = (0..10_000)
        .map(|i| {
            let key = format!("row-{i:05}");
            let row = obj(json!({"id": key, "value": i, "name": format!("name {i}"), "flag": i % 2 == 0}));
            (key, row)
        })
        .collect();
    let started = std::time::Instant::now();
    commit(&store, &ws, upserts("c1", vec![write("t", many)])).await;
    let create = started.elapsed();
    let started = std::time::Instant::now();
    commit(&store, &ws, upserts("c2", vec![write("t", rows(&["row-00001"], 7))])).await;
    let merge = started.elapsed();
    let started = std::time::Instant::now();
    let all = read_all(&store, &ws, "t", 1000).await;
    let read = started.elapsed();
    assert_eq!(all.len(), 10_000);
    let _ = writeln!(
        std::io::stderr(),
        "TIMING 10k rows: commit (new table) {create:?}; commit of 1 row into it (copy + collect) {merge:?}; \
         read in pages of 1000 {read:?}"
    );
}
