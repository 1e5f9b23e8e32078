//! The storage port's contract, pinned once and run against every adapter: SQLite on a fresh
//! temp file, DynamoDB on a fresh table (moto locally; `make test` starts it and sets
//! `AWS_ENDPOINT_URL_DYNAMODB`). Each case in `cases` takes a `&dyn Store`; `conformance!`
//! turns every case into one `#[tokio::test]` per adapter, so the adapters cannot drift apart.
//! DynamoDB-only checks (item layout, error mapping, table setup) live in `dynamodb_only`, and
//! those of the tables' item layout (layers, compaction, blobs) in `dynamodb_layout.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter_dynamodb::DynamoStore;
use adapter_sqlite::SqliteStore;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Map, Value};
use shared::model::{now_timestamp, Owner, Scope, Workspace, WorkspaceDraft};
use shared::store::job_tables::JobTables;
use shared::store::{Blobs, Snapshot, Store, StoreError, StoreResult, Workspaces};
use shared::tables::{Column, Commit, Row, TableMeta, TableOwner, TableWrite, WsKey};

const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_DYNAMODB";

/// Both ports an adapter implements for the cases: the store and what jobs need of it.
pub trait JobStore: Store + JobTables {}
impl<T: Store + JobTables> JobStore for T {}

/// A store plus whatever must outlive it (the SQLite file's directory).
struct Fixture {
    store: Box<dyn JobStore>,
    _dir: Option<tempfile::TempDir>,
}

async fn fresh_sqlite(_case: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let store = SqliteStore::open(&dir.path().join("workspaces.db")).expect("opening a fresh SQLite store");
    Some(Fixture { store: Box::new(store), _dir: Some(dir) })
}

async fn fresh_dynamo(case: &str) -> Option<Fixture> {
    let (store, _) = fresh_dynamo_store(case).await?;
    let store = store.with_blobs(Arc::new(MemBlobs::default()));
    Some(Fixture { store: Box::new(store), _dir: None })
}

/// An in-memory `Blobs`, standing in for the bundle store that holds rows too large for an item.
#[derive(Default)]
pub struct MemBlobs {
    objects: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemBlobs {
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.objects.lock().expect("blobs lock").keys().cloned().collect();
        keys.sort();
        keys
    }
}

#[async_trait::async_trait]
impl Blobs for MemBlobs {
    async fn put_blob(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        shared::bundles::check_key(key)?;
        self.objects.lock().expect("blobs lock").insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.objects.lock().expect("blobs lock").get(key).cloned())
    }

    async fn delete_blob(&self, key: &str) -> StoreResult<()> {
        self.objects.lock().expect("blobs lock").remove(key);
        Ok(())
    }
}

fn dynamo_endpoint(case: &str) -> Option<String> {
    blackbox_tests::aws_endpoint(ENDPOINT_VAR, case, "dynamodb")
}

/// A store on a new table, plus the raw client for the DynamoDB-only checks.
async fn fresh_dynamo_store(case: &str) -> Option<(DynamoStore, (aws_sdk_dynamodb::Client, String))> {
    let endpoint = dynamo_endpoint(case)?;
    let client = blackbox_tests::dynamodb_client(&endpoint).await;
    let table = blackbox_tests::unique_table("conf", case);
    let store = DynamoStore::new(client.clone(), table.clone());
    store.create_table_if_missing().await.unwrap_or_else(|e| panic!("creating table {table} at {endpoint}: {e}"));
    Some((store, (client, table)))
}

/// Instantiates every case for one adapter: `conformance!(module, fresh_fn)` where
/// `fresh_fn(case_name).await` gives `Option<Fixture>` (`None` = skipped).
macro_rules! conformance {
    ($adapter:ident, $fresh:path) => {
        conformance!(@cases $adapter, $fresh;
            create_then_get,
            update_in_place_keeps_created_and_author,
            get_unknown_is_none,
            tenancy_isolation,
            list_newest_updated_first,
            list_pages_with_cursor,
            list_ties_break_by_id,
            list_edge_limits_and_cursors,
            metadata_round_trips_exactly,
            description_none_and_some,
            ids_with_punctuation,
            tables_commit_creates_and_lists,
            tables_read_rows_in_byte_order,
            tables_paging_across_shards,
            tables_get_rows_returns_only_present_keys,
            tables_merge_replaces_and_keeps,
            tables_delete_rows,
            tables_drop_tables,
            tables_commit_creates_the_workspace,
            tables_delete_workspace,
            tables_tenancy,
            tables_fault_injection_is_all_or_nothing,
            tables_large_row_round_trips,
            tables_many_rows_are_batched,
            tables_concurrent_commits_never_lose_writes,
            tables_stale_base_is_a_conflict_and_writes_nothing,
            tables_snapshot_keeps_its_revision,
            tables_delete_racing_a_commit_is_a_conflict,
            tables_snapshot_reads_replaced_rows,
            staging_is_invisible_until_its_finish,
            staging_merges_on_top_of_later_commits,
            staging_after_a_delete_is_a_conflict_even_once_recreated,
            staging_the_same_rows_twice_keeps_exact_counts,
            staging_aborted_leaves_nothing,
            staging_finished_twice_answers_one_revision,
            staging_finish_creates_the_workspace,
            staging_finished_concurrently_answers_one_revision,
            staging_onto_a_table_of_another_owner_is_a_conflict,
            staging_five_thousand_rows_in_ten_pieces,
            staging_held_revision_reads_exactly_or_not_at_all,
        );
    };
    (@cases $adapter:ident, $fresh:path; $($case:ident),+ $(,)?) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = $fresh(stringify!($case)).await else { return };
                    crate::cases::$case(fixture.store.as_ref()).await;
                }
            )+
        }
    };
}

conformance!(sqlite, crate::fresh_sqlite);
conformance!(dynamodb, crate::fresh_dynamo);

/// Shared helpers for the cases.
mod support {
    use super::*;

    pub fn ann() -> Owner {
        Owner::user("acme", "ann")
    }

    pub fn acme() -> Owner {
        Owner::organization("acme")
    }

    pub fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("test metadata must be an object, got {other}"),
        }
    }

    /// A timestamp strictly after every earlier one (they have microseconds; we wait a few ms).
    pub async fn tick() -> String {
        tokio::time::sleep(Duration::from_millis(3)).await;
        now_timestamp()
    }

    pub fn draft(owner: &Owner, id: &str, name: &str, writer: &str, now: &str) -> WorkspaceDraft {
        WorkspaceDraft {
            id: id.into(),
            name: name.into(),
            description: None,
            metadata: Map::new(),
            scope: owner.scope(),
            writer: writer.into(),
            now: now.into(),
            expected_version: None,
        }
    }

    /// What a first save of `d` must store.
    pub fn created(d: &WorkspaceDraft) -> Workspace {
        Workspace {
            id: d.id.clone(),
            name: d.name.clone(),
            description: d.description.clone(),
            metadata: d.metadata.clone(),
            scope: d.scope,
            author: d.writer.clone(),
            updated_by: d.writer.clone(),
            created_at: d.now.clone(),
            updated_at: d.now.clone(),
            version: 1,
        }
    }

    pub async fn save(store: &dyn Store, owner: &Owner, d: WorkspaceDraft) -> Workspace {
        let id = d.id.clone();
        store.save_workspace(owner, d).await.unwrap_or_else(|e| panic!("save {id} for {}: {e}", owner.key()))
    }

    pub async fn get(store: &dyn Store, owner: &Owner, id: &str) -> Option<Workspace> {
        store.get_workspace(owner, id).await.unwrap_or_else(|e| panic!("get {id} for {}: {e}", owner.key()))
    }

    pub async fn list(store: &dyn Store, owner: &Owner, after: Option<&str>, limit: usize) -> Vec<Workspace> {
        store
            .list_workspaces(owner, after, limit)
            .await
            .unwrap_or_else(|e| panic!("list for {} after {after:?} limit {limit}: {e}", owner.key()))
            .items
    }

    pub async fn list_all(store: &dyn Store, owner: &Owner) -> Vec<Workspace> {
        list(store, owner, None, 1000).await
    }

    pub fn ids(list: &[Workspace]) -> Vec<&str> {
        list.iter().map(|w| w.id.as_str()).collect()
    }
}

#[path = "store_conformance/revision_cases.rs"]
mod revision_cases;
#[path = "store_conformance/staging_cases.rs"]
mod staging_cases;
#[path = "store_conformance/table_cases.rs"]
mod table_cases;

/// The contract. Every function here runs once per adapter.
mod cases {
    pub use super::revision_cases::*;
    pub use super::staging_cases::*;
    use super::support::*;
    pub use super::table_cases::*;
    use super::*;

    pub async fn create_then_get(store: &dyn Store) {
        let mut d = draft(&ann(), "ws_1", "First", "ann", &now_timestamp());
        d.description = Some("about it".into());
        d.metadata = obj(json!({"theme": "dark", "panes": 2}));
        let expected = created(&d);

        assert_eq!(save(store, &ann(), d).await, expected, "save returns what it stored");
        assert_eq!(get(store, &ann(), "ws_1").await, Some(expected.clone()));
        assert_eq!(list_all(store, &ann()).await, vec![expected]);
    }

    pub async fn update_in_place_keeps_created_and_author(store: &dyn Store) {
        let mut first = draft(&acme(), "ws_1", "Old name", "ann", &tick().await);
        first.description = Some("old".into());
        first.metadata = obj(json!({"a": 1, "b": {"c": 2}}));
        let original = save(store, &acme(), first.clone()).await;

        let mut second = draft(&acme(), "ws_1", "New name", "bob", &tick().await);
        second.metadata = obj(json!({"z": true}));
        let updated = save(store, &acme(), second.clone()).await;

        let expected = Workspace {
            id: "ws_1".into(),
            name: "New name".into(),
            description: None,
            // Replaced, not merged.
            metadata: obj(json!({"z": true})),
            scope: Scope::Organization,
            author: "ann".into(),
            updated_by: "bob".into(),
            created_at: original.created_at.clone(),
            updated_at: second.now.clone(),
            // Created at 1, one more per save.
            version: 2,
        };
        assert_eq!(updated, expected);
        assert!(updated.updated_at > original.updated_at, "updated_at moves forward");
        assert_eq!(get(store, &acme(), "ws_1").await, Some(expected.clone()));
        assert_eq!(list_all(store, &acme()).await, vec![expected], "an update does not add a second entry");
    }

    pub async fn get_unknown_is_none(store: &dyn Store) {
        assert_eq!(get(store, &ann(), "ws_1").await, None, "empty store");
        save(store, &ann(), draft(&ann(), "ws_1", "One", "ann", &now_timestamp())).await;
        for unknown in ["ws_2", "ws_", "ws_10", "WS_1"] {
            assert_eq!(get(store, &ann(), unknown).await, None, "{unknown}");
        }
    }

    pub async fn tenancy_isolation(store: &dyn Store) {
        let owners = [
            (Owner::user("acme", "ann"), "ann"),
            (Owner::user("acme", "bob"), "bob"),
            (Owner::organization("acme"), "ann"),
            (Owner::user("other", "ann"), "ann"),
        ];
        let mut saved = Vec::new();
        for (owner, writer) in &owners {
            let d = draft(owner, "ws_1", &format!("of {}", owner.key()), writer, &tick().await);
            saved.push(save(store, owner, d).await);
        }
        // Updating one owner's ws_1 must not touch the others'.
        let bump = draft(&owners[2].0, "ws_1", "org renamed", "bob", &tick().await);
        saved[2] = save(store, &owners[2].0, bump).await;
        assert_eq!(saved[2].author, "ann");

        for ((owner, _), mine) in owners.iter().zip(&saved) {
            assert_eq!(mine.scope, owner.scope());
            assert_eq!(get(store, owner, "ws_1").await.as_ref(), Some(mine), "{} sees its own", owner.key());
            assert_eq!(list_all(store, owner).await, vec![mine.clone()], "{} lists only its own", owner.key());
        }
        // An owner nobody wrote for sees nothing, even if its key is a prefix of others'.
        assert_eq!(get(store, &Owner::organization("acm"), "ws_1").await, None);
        assert!(list_all(store, &Owner::organization("acm")).await.is_empty());
        assert!(list_all(store, &Owner::user("acme", "an")).await.is_empty());
    }

    pub async fn list_newest_updated_first(store: &dyn Store) {
        for (id, name) in [("ws_a", "A"), ("ws_b", "B"), ("ws_c", "C")] {
            save(store, &ann(), draft(&ann(), id, name, "ann", &tick().await)).await;
        }
        assert_eq!(ids(&list_all(store, &ann()).await), ["ws_c", "ws_b", "ws_a"]);

        save(store, &ann(), draft(&ann(), "ws_a", "A again", "ann", &tick().await)).await;
        let listed = list_all(store, &ann()).await;
        assert_eq!(ids(&listed), ["ws_a", "ws_c", "ws_b"], "an update moves a workspace to the top");
        for w in &listed {
            assert_eq!(get(store, &ann(), &w.id).await.as_ref(), Some(w), "listed entries are whole workspaces");
        }
        assert!(listed.windows(2).all(|p| p[0].list_key() > p[1].list_key()), "strictly descending list keys");
    }

    pub async fn list_pages_with_cursor(store: &dyn Store) {
        for i in 0..7 {
            save(store, &acme(), draft(&acme(), &format!("ws_{i}"), "n", "ann", &tick().await)).await;
        }
        let all = list_all(store, &acme()).await;
        assert_eq!(ids(&all), ["ws_6", "ws_5", "ws_4", "ws_3", "ws_2", "ws_1", "ws_0"]);

        let mut paged = Vec::new();
        let mut sizes = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list(store, &acme(), after.as_deref(), 3).await;
            sizes.push(page.len());
            let Some(last) = page.last() else { break };
            after = Some(last.list_key());
            paged.extend(page);
        }
        assert_eq!(sizes, [3, 3, 1, 0]);
        assert_eq!(paged, all, "pages give every workspace exactly once, in order");

        // A page that ends exactly at the last item is followed by an empty one.
        let seven = list(store, &acme(), None, 7).await;
        assert_eq!(seven, all);
        assert!(list(store, &acme(), Some(&all[6].list_key()), 7).await.is_empty());
        // The cursor is exclusive.
        assert_eq!(list(store, &acme(), Some(&all[2].list_key()), 2).await, all[3..5].to_vec());

        // `more` is known, so a list that fits its page needs no second request to end.
        let more = |after: Option<usize>, limit: usize| {
            let after = after.map(|i| all[i].list_key());
            async move { store.list_workspaces(&acme(), after.as_deref(), limit).await.expect("list").more }
        };
        assert!(!more(None, 7).await, "exactly every workspace: nothing follows");
        assert!(!more(None, 100).await);
        assert!(more(None, 6).await, "one left");
        assert!(more(None, 0).await, "an empty page before seven");
        assert!(!more(Some(4), 2).await, "the last two");
        assert!(more(Some(3), 2).await);
        assert!(!more(Some(6), 5).await, "after the last");
    }

    pub async fn list_ties_break_by_id(store: &dyn Store) {
        let now = now_timestamp();
        for id in ["ws_b", "ws_a", "ws_c"] {
            save(store, &ann(), draft(&ann(), id, "same instant", "ann", &now)).await;
        }
        let all = list_all(store, &ann()).await;
        assert_eq!(ids(&all), ["ws_c", "ws_b", "ws_a"], "same updated_at: list key (then id) descending");
        let first = list(store, &ann(), None, 1).await;
        let second = list(store, &ann(), Some(&first[0].list_key()), 1).await;
        let third = list(store, &ann(), Some(&second[0].list_key()), 5).await;
        assert_eq!(ids(&[first, second, third].concat()), ["ws_c", "ws_b", "ws_a"]);
    }

    pub async fn list_edge_limits_and_cursors(store: &dyn Store) {
        assert!(list_all(store, &ann()).await.is_empty(), "empty store lists nothing");
        for id in ["ws_1", "ws_2"] {
            save(store, &ann(), draft(&ann(), id, "n", "ann", &tick().await)).await;
        }
        assert!(list(store, &ann(), None, 0).await.is_empty(), "limit 0");
        assert_eq!(list(store, &ann(), None, 1).await.len(), 1);
        assert_eq!(ids(&list(store, &ann(), None, usize::MAX).await), ["ws_2", "ws_1"], "huge limit");
        assert!(list(store, &ann(), Some(""), 10).await.is_empty(), "nothing sorts before the empty key");
        assert!(list(store, &ann(), Some("0"), 10).await.is_empty(), "cursor before every key");
        assert_eq!(list(store, &ann(), Some("9"), 10).await.len(), 2, "cursor after every key");
    }

    pub async fn metadata_round_trips_exactly(store: &dyn Store) {
        let metadata = obj(json!({
            "zeta": "first key stays first",
            "unicode": "naïve 日本語 🚀 \u{1F600} Ω",
            "escapes": "quote \" backslash \\ newline \n tab \t nul \u{0} hash # colon :",
            "numbers": [0, -1, 1.5, -0.25, 1e300, 9007199254740993_u64, 18446744073709551615_u64, -9223372036854775808_i64],
            "nested": {"deeper": {"list": [true, false, null, {}, [], ""]}, "empty": {}},
            "alpha": null,
            "": "empty key"
        }));
        let mut d = draft(&ann(), "ws_meta", "Ünïcødé ✓ name", "ann", &now_timestamp());
        d.description = Some("Beschreibung — 説明 🚀".into());
        d.metadata = metadata.clone();
        let text = serde_json::to_string(&metadata).expect("serialize");

        let saved = save(store, &ann(), d.clone()).await;
        let got = get(store, &ann(), "ws_meta").await.expect("stored");
        let listed = list_all(store, &ann()).await;
        for (what, w) in [("save", &saved), ("get", &got), ("list", &listed[0])] {
            assert_eq!(w, &created(&d), "{what}");
            // Equality of maps ignores key order; the text does not.
            assert_eq!(serde_json::to_string(&w.metadata).expect("serialize"), text, "{what}: exact text");
        }
    }

    pub async fn description_none_and_some(store: &dyn Store) {
        let d = draft(&ann(), "ws_d", "n", "ann", &tick().await);
        assert_eq!(save(store, &ann(), d).await.description, None, "created without");
        assert_eq!(get(store, &ann(), "ws_d").await.and_then(|w| w.description), None);

        let mut d = draft(&ann(), "ws_d", "n", "ann", &tick().await);
        d.description = Some("now described".into());
        assert_eq!(save(store, &ann(), d).await.description.as_deref(), Some("now described"));
        assert_eq!(get(store, &ann(), "ws_d").await.and_then(|w| w.description).as_deref(), Some("now described"));

        let d = draft(&ann(), "ws_d", "n", "ann", &tick().await);
        assert_eq!(save(store, &ann(), d).await.description, None, "saving None clears it");
        assert_eq!(get(store, &ann(), "ws_d").await.and_then(|w| w.description), None);
        assert_eq!(list_all(store, &ann()).await[0].description, None);

        let mut d = draft(&ann(), "ws_d", "n", "ann", &tick().await);
        d.description = Some(String::new());
        assert_eq!(save(store, &ann(), d).await.description.as_deref(), Some(""), "empty is not absent");
        assert_eq!(get(store, &ann(), "ws_d").await.and_then(|w| w.description).as_deref(), Some(""));
    }

    pub async fn ids_with_punctuation(store: &dyn Store) {
        let ids_in = ["a.b-c_d@e+f", "ws-1", "ws_1", "WS_1"];
        for id in ids_in {
            save(store, &ann(), draft(&ann(), id, id, "ann", &tick().await)).await;
        }
        for id in ids_in {
            assert_eq!(get(store, &ann(), id).await.map(|w| w.name).as_deref(), Some(id));
        }
        assert_eq!(ids(&list_all(store, &ann()).await), ["WS_1", "ws_1", "ws-1", "a.b-c_d@e+f"]);
    }
}

/// What only the DynamoDB adapter has: the item layout the template's table and GSI rely on,
/// error mapping, and table setup.
mod dynamodb_only {
    use super::support::*;
    use super::*;

    type RawItem = HashMap<String, AttributeValue>;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    /// A commit takes the head, catalog and looked-up keys its snapshot read from the store's
    /// memory of that snapshot instead of reading them again. Another process (a second store
    /// on the same table) moving the workspace in between must still make it a conflict that
    /// writes nothing, and the retry must count rows from what is really stored.
    #[tokio::test]
    async fn a_commit_on_what_its_snapshot_read_still_conflicts_when_another_process_moved_on() {
        use super::table_cases::{rows, upserts, write};
        use shared::store::Tables;
        let Some((a, (client, table))) = fresh_dynamo_store("remembered").await else { return };
        let b = DynamoStore::new(client, table);
        let ws = WsKey::new(ann(), "ws_1");
        let first = a.commit(&ws, 0, upserts("c1", vec![write("t", rows(&["a"], 1))])).await.expect("c1");

        let stale = a.snapshot(&ws).await.expect("snapshot");
        assert!(stale.get_rows("t", &["b".into()]).await.expect("get").is_empty(), "b is new at this revision");
        let theirs = b.snapshot(&ws).await.expect("their snapshot").revision();
        b.commit(&ws, theirs, upserts("c2", vec![write("t", rows(&["b"], 2))])).await.expect("their commit");

        let mine = a.commit(&ws, stale.revision(), upserts("c3", vec![write("t", rows(&["b"], 3))])).await;
        assert!(matches!(mine, Err(StoreError::Conflict(_))), "decided on revision {first}, which moved: {mine:?}");
        let fresh = a.snapshot(&ws).await.expect("snapshot");
        assert_eq!(fresh.table("t").map(|t| t.row_count), Some(2), "nothing of the stale commit landed");
        assert_eq!(fresh.get_rows("t", &["b".into()]).await.expect("get"), rows(&["b"], 2));
        a.commit(&ws, fresh.revision(), upserts("c3", vec![write("t", rows(&["b"], 3))])).await.expect("the retry");
        let after = a.snapshot(&ws).await.expect("snapshot");
        assert_eq!(after.table("t").map(|t| t.row_count), Some(2), "b existed: replaced, not counted twice");
    }

    #[tokio::test]
    async fn items_have_the_documented_layout() {
        let Some((store, (client, table))) = fresh_dynamo_store("layout").await else { return };
        let mut d = draft(&ann(), "ws_1", "Layout", "ann", &now_timestamp());
        d.metadata = obj(json!({"k": [1, "two"]}));
        let saved = save(&store, &ann(), d).await;

        let item = client
            .get_item()
            .table_name(&table)
            .key("PK", s("org#acme#user#ann"))
            .key("SK", s("ws#ws_1"))
            .consistent_read(true)
            .send()
            .await
            .expect("raw get")
            .item
            .expect("item under the owner's key");
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        assert_eq!(text("GSI1PK").as_deref(), Some("org#acme#user#ann#ws"));
        assert_eq!(text("GSI1SK"), Some(saved.list_key()));
        assert_eq!(text("metadata").as_deref(), Some(r#"{"k":[1,"two"]}"#), "metadata is JSON text");
        assert_eq!(text("scope").as_deref(), Some("user"));
        for k in ["id", "name", "author", "updated_by", "created_at", "updated_at"] {
            assert!(text(k).is_some(), "{k} is a string attribute");
        }
        assert!(!item.contains_key("description"), "None is an absent attribute, not an empty one");
        assert!(!item.contains_key("expires_at"), "workspaces do not expire");
    }

    #[tokio::test]
    async fn table_setup_is_idempotent_and_complete() {
        let Some((store, (client, table))) = fresh_dynamo_store("setup").await else { return };
        store.create_table_if_missing().await.expect("second call on an existing table");

        let desc = client.describe_table().table_name(&table).send().await.expect("describe").table.expect("table");
        let index = desc.global_secondary_indexes().iter().find(|i| i.index_name() == Some("by_updated")).expect("GSI");
        let keys: Vec<_> = index.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().as_str())).collect();
        assert_eq!(keys, [("GSI1PK", "HASH"), ("GSI1SK", "RANGE")]);
        assert_eq!(index.projection().and_then(|p| p.projection_type()).map(|p| p.as_str()), Some("ALL"));
        let billing = desc.billing_mode_summary().and_then(|b| b.billing_mode()).map(|b| b.as_str());
        assert_eq!(billing, Some("PAY_PER_REQUEST"));
        let ttl = client.describe_time_to_live().table_name(&table).send().await.expect("describe ttl");
        let ttl = ttl.time_to_live_description().expect("ttl description");
        assert_eq!(ttl.attribute_name(), Some("expires_at"));
    }

    #[tokio::test]
    async fn a_table_with_another_layout_is_refused() {
        let Some(endpoint) = dynamo_endpoint("foreign_layout") else { return };
        let client = blackbox_tests::dynamodb_client(&endpoint).await;
        let table = blackbox_tests::unique_table("conf", "foreign");
        let key = aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name("id")
            .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
            .build()
            .expect("key");
        let attr = aws_sdk_dynamodb::types::AttributeDefinition::builder()
            .attribute_name("id")
            .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
            .build()
            .expect("attr");
        client
            .create_table()
            .table_name(&table)
            .key_schema(key)
            .attribute_definitions(attr)
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create foreign table");
        let err = DynamoStore::new(client, table).create_table_if_missing().await.expect_err("refused");
        assert!(matches!(err, StoreError::Internal(ref m) if m.contains("layout")), "{err:?}");
    }

    #[tokio::test]
    async fn malformed_items_are_internal_errors_not_panics() {
        let Some((store, (client, table))) = fresh_dynamo_store("malformed").await else { return };
        let good = |id: &str, owner: &str| -> RawItem {
            HashMap::from([
                ("PK".into(), s(owner)),
                ("SK".into(), s(&format!("ws#{id}"))),
                ("GSI1PK".into(), s(&format!("{owner}#ws"))),
                ("GSI1SK".into(), s(&format!("2024-01-01T00:00:00.000000+00:00#user#{id}"))),
                ("id".into(), s(id)),
                ("name".into(), s("n")),
                ("metadata".into(), s("{}")),
                ("scope".into(), s("user")),
                ("author".into(), s("ann")),
                ("updated_by".into(), s("ann")),
                ("created_at".into(), s("2024-01-01T00:00:00.000000+00:00")),
                ("updated_at".into(), s("2024-01-01T00:00:00.000000+00:00")),
            ])
        };
        // (id, attribute, replacement; None removes it)
        let breakages = [
            ("no_name", "name", None),
            ("bad_scope", "scope", Some(s("admin"))),
            ("array_metadata", "metadata", Some(s("[1,2]"))),
            ("number_metadata", "metadata", Some(AttributeValue::N("1".into()))),
            ("number_description", "description", Some(AttributeValue::N("1".into()))),
        ];
        for (id, attr, replacement) in breakages {
            let user = format!("u_{id}");
            let owner_key = format!("org#acme#user#{user}");
            let mut item = good(id, &owner_key);
            match replacement {
                Some(value) => item.insert(attr.into(), value),
                None => item.remove(attr),
            };
            client.put_item().table_name(&table).set_item(Some(item)).send().await.expect("raw put");

            let owner = Owner::user("acme", &user);
            let got = store.get_workspace(&owner, id).await;
            assert!(matches!(got, Err(StoreError::Internal(_))), "get {id}: {got:?}");
            let listed = store.list_workspaces(&owner, None, 10).await;
            assert!(matches!(listed, Err(StoreError::Internal(_))), "list {id}: {listed:?}");
        }
        // The untouched shape reads fine, so the failures above are about the breakage.
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(good("ok", "org#acme#user#u_ok")))
            .send()
            .await
            .expect("put");
        assert!(get(&store, &Owner::user("acme", "u_ok"), "ok").await.is_some());
    }

    #[tokio::test]
    async fn a_missing_table_is_an_internal_error() {
        let Some(endpoint) = dynamo_endpoint("missing_table") else { return };
        let store = DynamoStore::new(
            blackbox_tests::dynamodb_client(&endpoint).await,
            blackbox_tests::unique_table("conf", "never-created"),
        );
        let got = store.get_workspace(&ann(), "ws_1").await;
        assert!(matches!(got, Err(StoreError::Internal(ref m)) if m.contains("ResourceNotFound")), "{got:?}");
    }

    /// Needs no server: nothing listens on port 9 locally, so the connection is refused.
    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable() {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region("us-east-1")
            .credentials_provider(Credentials::new("test", "test", None, None, "store-conformance"))
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), "any");
        let got = store.get_workspace(&ann(), "ws_1").await;
        assert!(matches!(got, Err(StoreError::Unavailable(_))), "get: {got:?}");
        let saved = store.save_workspace(&ann(), draft(&ann(), "ws_1", "n", "ann", &now_timestamp())).await;
        assert!(matches!(saved, Err(StoreError::Unavailable(_))), "save: {saved:?}");
        let listed = store.list_workspaces(&ann(), None, 5).await;
        assert!(matches!(listed, Err(StoreError::Unavailable(_))), "list: {listed:?}");
    }
}

/// `cargo lambda watch` runs every function in a process of its own over one SQLite file:
/// separate connections (SQLite's locks are the file's, as between processes) must each get
/// every write in, none failing with "database is locked".
mod sqlite_only {
    use std::sync::Arc;

    use adapter_sqlite::{SqliteStore, LAYOUT_VERSION};
    use serde_json::{json, Map};
    use shared::model::{now_timestamp, Owner};
    use shared::store::{StoreError, Tables, Workspaces};
    use shared::tables::{Column, Commit, TableOwner, TableWrite, WsKey};

    use super::support::draft;

    /// Disk follows the data: 2,000 rows of 1 KB take about 2 MB in a new file, not the 4.7x a
    /// 4 KiB page made of them (each row spilled into an overflow page of its own).
    #[tokio::test]
    async fn rows_take_about_their_size_on_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rows.db");
        let store = SqliteStore::open(&path).expect("open");
        let ws = WsKey::new(Owner::user("acme", "ann"), "ws_1");
        let pad = "x".repeat(940);
        let rows: Vec<_> = (0..2000)
            .map(|i| {
                let mut row = Map::new();
                row.insert("id".into(), json!(format!("r{i:07}")));
                row.insert("pad".into(), json!(pad));
                (format!("r{i:07}"), row)
            })
            .collect();
        let write = TableWrite {
            name: "facts_ws_1".into(),
            owner: TableOwner::Workspace { kind: "facts".into() },
            columns: vec![Column::new("id", "text", false), Column::new("pad", "text", true)],
            key_column: "id".into(),
            rows,
        };
        let c = Commit { id: "c1".into(), upserts: vec![write], ..Commit::default() };
        store.commit(&ws, 0, c).await.expect("commit");
        drop(store);
        // Everything in the main file: checkpoint the WAL into it.
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
        let pages: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).expect("page_count");
        let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).expect("page_size");
        let per_row = pages * page_size / 2000;
        assert!(per_row < 1600, "{per_row} bytes on disk per row of about 1,000 bytes");
    }

    /// A file written before table owners were recorded still opens; its tables read as the
    /// workspace's (so no project cleanup can drop them) until a write records their owner.
    #[tokio::test]
    async fn a_file_from_before_owners_were_recorded_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE ws_tables (ws TEXT NOT NULL, name TEXT NOT NULL, columns TEXT NOT NULL,
                     key_column TEXT NOT NULL, row_count INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (ws, name)) WITHOUT ROWID;
                 INSERT INTO ws_tables VALUES ('org#acme#user#ann#ws#ws_1', 'concepts_p1', '[]', 'id', 0);",
            )
            .expect("old schema");
        }
        let store = SqliteStore::open(&path).expect("the old file opens");
        let ws = WsKey::new(Owner::user("acme", "ann"), "ws_1");
        let tables = store.snapshot(&ws).await.expect("snapshot").tables().to_vec();
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].owner, TableOwner::unrecorded("concepts_p1"));
        assert_eq!(tables[0].owner.project_id(), None, "never taken for a project's table");
        let owner = TableOwner::Project { kind: "concepts".into(), project_id: "p1".into() };
        let write = TableWrite {
            name: "concepts_p1".into(),
            owner: owner.clone(),
            columns: vec![Column::new("id", "text", false)],
            key_column: "id".into(),
            rows: vec![],
        };
        let c = Commit { id: "c1".into(), upserts: vec![write], ..Commit::default() };
        assert_eq!(store.commit(&ws, 0, c).await.expect("commit"), 1, "the first revision");
        assert_eq!(store.snapshot(&ws).await.expect("snapshot").tables()[0].owner, owner, "recorded by the write");
    }

    /// A file of layout 1 (before `PRAGMA user_version` recorded it, and before workspace
    /// revisions): the tables as that layout made them, with a workspace, a table and a row.
    fn layout_1_file(path: &std::path::Path) {
        let conn = rusqlite::Connection::open(path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE workspaces (owner TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
                 metadata TEXT NOT NULL, scope TEXT NOT NULL, author TEXT NOT NULL, updated_by TEXT NOT NULL,
                 created_at TEXT NOT NULL, updated_at TEXT NOT NULL, list_key TEXT NOT NULL,
                 PRIMARY KEY (owner, id)) WITHOUT ROWID;
             CREATE INDEX workspaces_by_updated ON workspaces (owner, list_key);
             CREATE TABLE ws_tables (ws TEXT NOT NULL, name TEXT NOT NULL, columns TEXT NOT NULL,
                 key_column TEXT NOT NULL, row_count INTEGER NOT NULL DEFAULT 0, owner TEXT,
                 PRIMARY KEY (ws, name)) WITHOUT ROWID;
             CREATE TABLE ws_rows (ws TEXT NOT NULL, tbl TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
                 PRIMARY KEY (ws, tbl, key)) WITHOUT ROWID;
             INSERT INTO workspaces VALUES ('org#acme#user#ann', 'ws_1', 'Old', NULL, '{}', 'user', 'ann', 'ann',
                 '2024-01-01T00:00:00.000000+00:00', '2024-01-01T00:00:00.000000+00:00',
                 '2024-01-01T00:00:00.000000+00:00#user#ws_1');
             INSERT INTO ws_tables VALUES ('org#acme#user#ann#ws#ws_1', 'cells_ws_1',
                 '[{\"name\":\"id\",\"type\":\"text\",\"nullable\":\"NO\",\"default\":null}]', 'id', 1,
                 '{\"owner\":\"workspace\",\"kind\":\"cells\"}');
             INSERT INTO ws_rows VALUES ('org#acme#user#ann#ws#ws_1', 'cells_ws_1', 'a', '{\"id\":\"a\"}');",
        )
        .expect("layout 1");
    }

    fn user_version(path: &std::path::Path) -> u32 {
        let conn = rusqlite::Connection::open(path).expect("open");
        conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("user_version")
    }

    /// Layout 1 is migrated in place: everything in it reads as before, at revision 0, and
    /// commits are conditioned on revisions from then on.
    #[tokio::test]
    async fn a_layout_1_file_is_migrated_in_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        layout_1_file(&path);
        assert_eq!(user_version(&path), 0, "layout 1 records no version");

        let store = SqliteStore::open(&path).expect("a layout-1 file opens");
        assert_eq!(user_version(&path), LAYOUT_VERSION, "and now records this layout");
        assert_eq!(LAYOUT_VERSION, 2);
        let owner = Owner::user("acme", "ann");
        assert_eq!(store.get_workspace(&owner, "ws_1").await.expect("get").map(|w| w.name).as_deref(), Some("Old"));
        let ws = WsKey::new(owner.clone(), "ws_1");
        let old = store.snapshot(&ws).await.expect("snapshot");
        assert_eq!(old.revision(), 0, "no revision was recorded before");
        assert_eq!(old.tables().len(), 1);
        assert_eq!(old.tables()[0].owner, TableOwner::Workspace { kind: "cells".into() });
        assert_eq!(old.read_rows("cells_ws_1", None, 10).await.expect("rows").len(), 1);

        let mut row = Map::new();
        row.insert("id".into(), json!("b"));
        let write = TableWrite {
            name: "cells_ws_1".into(),
            owner: TableOwner::Workspace { kind: "cells".into() },
            columns: vec![Column::new("id", "text", false)],
            key_column: "id".into(),
            rows: vec![("b".into(), row)],
        };
        let c = Commit { id: "c1".into(), upserts: vec![write], ..Commit::default() };
        assert_eq!(store.commit(&ws, 0, c.clone()).await.expect("commit"), 1);
        assert!(matches!(store.commit(&ws, 0, c).await, Err(StoreError::Conflict(_))), "revision 0 is gone now");
        drop((old, store));

        // Opened again (as another function process would): nothing to migrate, all kept.
        let again = SqliteStore::open(&path).expect("reopen");
        let now = again.snapshot(&ws).await.expect("snapshot");
        assert_eq!((now.revision(), now.tables()[0].row_count), (1, 2));
    }

    /// A layout this build does not know (a newer build's, say) is never read or changed.
    #[tokio::test]
    async fn an_unknown_layout_is_refused_naming_the_file_and_both_layouts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("future.db");
        layout_1_file(&path);
        rusqlite::Connection::open(&path).expect("open").pragma_update(None, "user_version", 7).expect("set 7");

        let err = SqliteStore::open(&path).err().expect("refused");
        let text = err.to_string();
        let expected = format!("{} has storage layout 7; this build reads layout 2", path.display());
        assert!(text.contains(&expected), "{text}");
        assert_eq!(user_version(&path), 7, "left as it was");

        // A function's start fails with it, as with any other WORKSPACES_STORE problem.
        let env = std::collections::HashMap::from([
            ("WORKSPACES_JWT_SECRET".to_owned(), "a-test-secret-of-some-length".to_owned()),
            ("WORKSPACES_STORE".to_owned(), format!("sqlite://{}", path.display())),
            ("WORKSPACES_BUNDLES".to_owned(), format!("file://{}", dir.path().join("bundles").display())),
        ]);
        let config = shared::config::Config::from_map(&env).expect("config");
        let err = shared::App::wire(config, shared::app::Needs::STORE, blackbox_tests::LINKS)
            .await
            .err()
            .expect("wiring fails");
        let text = err.to_string();
        assert!(text.starts_with("WORKSPACES_STORE: ") && text.contains(&expected), "{text}");
    }

    /// Rows change in place, so a revision opens again only while it is the head.
    #[tokio::test]
    async fn a_held_revision_opens_only_while_it_is_the_head() {
        use shared::store::job_tables::JobTables;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("ws.db")).expect("open");
        let ws = WsKey::new(Owner::user("acme", "ann"), "ws_1");
        let write = |key: &str| TableWrite {
            name: "t".into(),
            owner: TableOwner::Workspace { kind: "t".into() },
            columns: vec![Column::new("id", "text", false)],
            key_column: "id".into(),
            rows: vec![(key.into(), json!({"id": key}).as_object().cloned().unwrap_or_default())],
        };
        let r1 = store.commit(&ws, 0, Commit { id: "c1".into(), upserts: vec![write("a")], ..Commit::default() }).await;
        let r1 = r1.expect("commit");
        store.hold_revision(&ws, "lease", r1, u64::MAX).await.expect("hold is a no-op");
        assert!(store.snapshot_at(&ws, r1).await.expect("snapshot_at").is_some());
        store
            .commit(&ws, r1, Commit { id: "c2".into(), upserts: vec![write("b")], ..Commit::default() })
            .await
            .expect("c2");
        assert!(store.snapshot_at(&ws, r1).await.expect("snapshot_at").is_none(), "held or not, it is gone");
    }

    #[tokio::test]
    async fn an_in_memory_database_is_refused() {
        let err = SqliteStore::open(std::path::Path::new(":memory:")).err().expect("refused");
        assert!(err.to_string().contains("in-memory"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn several_connections_write_one_file_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("shared.db");
        let stores: Vec<Arc<SqliteStore>> = (0..4).map(|_| Arc::new(SqliteStore::open(&path).expect("open"))).collect();
        let owner = Owner::user("acme", "ann");
        let mut tasks = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            for j in 0..25 {
                let (store, owner) = (Arc::clone(store), owner.clone());
                tasks.push(tokio::spawn(async move {
                    let id = format!("ws_{i}_{j}");
                    store.save_workspace(&owner, draft(&owner, &id, "n", "ann", &now_timestamp())).await?;
                    let mut row = Map::new();
                    row.insert("id".into(), json!(id));
                    let table = TableWrite {
                        name: "cells_shared".into(),
                        owner: TableOwner::Workspace { kind: "cells".into() },
                        columns: vec![Column::new("id", "text", false)],
                        key_column: "id".into(),
                        rows: vec![(id.clone(), row)],
                    };
                    let commit = Commit { id: id.clone(), upserts: vec![table], ..Commit::default() };
                    // Read, then commit on top of what was read; another connection's commit in
                    // between is a conflict, and the writer reads again (each conflict means
                    // some other write got in, so this ends).
                    let ws = WsKey::new(owner.clone(), "ws_common");
                    for _ in 0..1000 {
                        let base = store.snapshot(&ws).await?.revision();
                        match store.commit(&ws, base, commit.clone()).await {
                            Err(StoreError::Conflict(_)) => tokio::task::yield_now().await,
                            other => return other,
                        }
                    }
                    Err(StoreError::Internal(format!("{id}: lost every race")))
                }));
            }
        }
        for task in tasks {
            task.await.expect("task").expect("every write succeeds");
        }
        let listed = stores[3].list_workspaces(&owner, None, 1000).await.expect("list");
        assert_eq!(listed.items.len(), 100);
        let common = stores[1].snapshot(&WsKey::new(owner, "ws_common")).await.expect("snapshot");
        assert_eq!(common.tables().iter().map(|t| t.row_count).sum::<u64>(), 100);
        assert_eq!(common.revision(), 100, "one revision per commit, none lost or doubled");
    }
}
