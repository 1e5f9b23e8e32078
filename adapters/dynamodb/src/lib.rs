//! DynamoDB adapter over one table (the layout `template.yaml` declares):
//!
//! - table key `PK` (HASH) / `SK` (RANGE); a workspace is `PK = <owner key>`, `SK = ws#<id>`;
//!   its `version` (N) is checked and bumped by the save's one UpdateItem (see `VersionCheck`);
//! - GSI `by_updated`: `GSI1PK = <owner key>#ws`, `GSI1SK = Workspace::list_key()`, projection
//!   ALL; heads marked for compaction are in it too (`GSI1PK = compact#<0..15>`, `GSI1SK = W`);
//! - TTL attribute `expires_at` (epoch seconds), on pending commit records, leases and staging
//!   pointers only;
//! - item `PK = SK = layout` records the storage layout ([`LAYOUT_VERSION`]); a store finding
//!   another refuses every call with a message saying so (checked on first use, not at init).
//!
//! Every key starts with the owner's tenancy key, so no request can reach another owner's items,
//! and listing is a Query on the GSI, never a Scan.
//!
//! # Tables (storage layout 2): a small head, catalog entries, immutable layers
//!
//! Items, for a workspace with key `W = WsKey::key()` and its current generation `G`:
//!
//! - head `PK = W`, `SK = head`: `rev` (the revision; every commit and delete adds one), `gen`
//!   (absent before the first commit and after a delete), `at` (when `rev` became visible),
//!   `gone` (generations of deleted incarnations still to sweep);
//! - catalog entry `PK = W#g#G`, `SK = tbl#<table>#<rev, 20 digits>#<txn>`: the table's whole
//!   state as of `rev` (owner, key column, columns, row count, dropped, and its parts: a base and
//!   layers, oldest first). Entries are never changed, only added and (by compaction) deleted;
//! - row `PK = W#g#G#t#<table>#p#<part>#s#<shard>`, `SK = <row key>`: `row` (JSON text, column
//!   order kept), `blob` (object key of the configured [`Blobs`], for JSON over 350,000 bytes) or
//!   `del` (a tombstone). A part has clamp(⌈items / 1000⌉, 1, 64) shards by sha256 of the key;
//! - log `PK = W#g#G`, `SK = log#<rev>`: which staged commit made `rev` (`txn`, `at`);
//! - commit record `PK = W#g#G`, `SK = txn#<txn>`: a staged commit's `state` (`pending` →
//!   `committed` with its `rev`, or `aborting`), the parts it writes, `created`; a job's staging
//!   (txn `job.<id>`, staging.rs) also has `touched`, its last write;
//! - lease `PK = W`, `SK = lease#<id>`: `rev` held against compaction until `expires`;
//! - staging pointer `PK = W`, `SK = staging#<id>`: the generation a job's staging writes into,
//!   its `state` and, once finished, its `rev`.
//!
//! A commit's `txn` is `<commit id>.<base revision>`: a retry after a crash, from the same base,
//! rewrites the same items; a retry after success has a new base, so new items.
//!
//! Invariants:
//!
//! 1. A revision's catalog is, per table, the entry with the highest `rev` ≤ the revision that
//!    is valid: written in the same transaction as its head move (`txn = -`), or staged by the
//!    commit the log names for its `rev`. A snapshot reads the head once, then the entries, and
//!    from then on only immutable parts: every read of it sees that one revision.
//! 2. A commit is visible in exactly one write, conditional on the head still being at the base
//!    revision (`attribute_not_exists` when there is no head): a small commit (its rows,
//!    tombstones, entries, the head and the workspace check fit one transaction of ≤ 100 items)
//!    is that one TransactWriteItems and leaves nothing pending; a large one first writes a
//!    pending record, then its layers and entries (invisible: no log names it), then moves the
//!    head, puts the log item and marks the record committed in one transaction. Losing the
//!    condition is `Conflict`; nothing of the loser is visible, and it removes what it staged.
//! 3. A commit writes only what it changes: one layer per table with its rows and tombstones,
//!    one entry per table, the head (plus record and log when staged). It reads the head, the
//!    touched tables' entries, and the changed keys (to count rows), never the stored rows.
//! 4. A delete moves the head past every revision a commit could be based on and drops `gen`, in
//!    the same transaction that deletes the workspace item; the generation is swept later.
//! 5. Nothing a reader may use is deleted or changed under it: compaction (compact.rs) folds
//!    only layers visible for [`SNAPSHOT_GRACE_SECS`] (and not held by a lease), publishes the
//!    fold as a commit, and deletes entries and parts only once superseded at that floor.
//! 6. Every part has its own blobs, so deleting one part never breaks another.
//! 7. A job's staging is a staged commit whose rows arrive over many calls: invisible until its
//!    finish flips head, log, record and pointer in one transaction (on top of the head as it is
//!    then: a moved head is read again, never a conflict; another generation is a delete, a
//!    conflict). Compaction aborts it only once idle for `STAGING_IDLE_SECS`.
//!
//! Round trips: `snapshot` 1 GetItem + ⌈catalog / 1 MB⌉ Query (+ 1 BatchGetItem when staged
//! entries need their log). A page of `read_rows` is one Query per shard of every part (in
//! parallel, each asking for its share) and more only where a shard runs dry; `get_rows` reads
//! keys × parts items in batches of 100. A small commit: 1 GetItem (head) ∥ 1 GetItem
//! (workspace) ∥ 1 Query per touched table, BatchGetItem of the changed keys, 1
//! TransactWriteItems. A large one adds 1 PutItem (record), ⌈items / 25⌉ BatchWriteItem, and the
//! flip. `delete_workspace`: 2 GetItem, the catalog Query, 1 TransactWriteItems.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeySchemaElement, KeyType, ReturnValue};
use aws_sdk_dynamodb::Client;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use layout::n;
use shared::model::{list_key, workspace_version_conflict, Owner, Scope, Workspace, WorkspaceDraft};
use shared::store::{Blobs, Snapshot, StoreError, StoreResult, Tables, WorkspacePage, Workspaces, SNAPSHOT_GRACE_SECS};
use shared::tables::{Commit, WsKey};

mod batch;
mod catalog;
mod commit;
mod compact;
pub mod compaction;
mod delete;
mod jobs;
mod layout;
mod plan;
mod read;
mod recent;
mod setup;
mod staging;

pub use compact::CompactionReport;
pub use layout::LAYOUT_VERSION;
pub use read::DynamoSnapshot;

pub use shared::iam::GSI_BY_UPDATED;
pub const TTL_ATTRIBUTE: &str = "expires_at";

type Item = HashMap<String, AttributeValue>;

/// Every attribute goes through a `#name` placeholder: `name` is a DynamoDB reserved word, and
/// aliasing them all means no attribute we add later can hit another one.
const SAVE_SET: &str = "SET #id = :id, #name = :name, #metadata = :metadata, #scope = :scope, \
     #updated_by = :writer, #updated_at = :now, #gsi1pk = :gsi1pk, #gsi1sk = :gsi1sk, \
     #author = if_not_exists(#author, :writer), #created_at = if_not_exists(#created_at, :now)";

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Where rows over `layout::INLINE_ROW_MAX` go; `None`: such rows are refused.
    blobs: Option<Arc<dyn Blobs>>,
    /// See `store::Faults` (only settable with the `faults` feature).
    fault_after_rows: Arc<Mutex<Option<usize>>>,
    /// How long compaction leaves what a reader may still use.
    grace_secs: u64,
    /// Set once the table's layout item was found to be ours.
    layout_checked: Arc<OnceCell<()>>,
    /// What the latest snapshots read, for a commit on their revision (`recent.rs`).
    recent: recent::Recent,
}

impl Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).field("blobs", &self.blobs.is_some()).finish()
    }
}

impl DynamoStore {
    /// A store over `table` with the SDK's default configuration chain (region, credentials and
    /// `AWS_ENDPOINT_URL_DYNAMODB` all come from the environment).
    pub async fn from_env(table: &str) -> DynamoStore {
        Self::new(Client::new(adapter_aws::sdk_config().await), table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            blobs: None,
            fault_after_rows: Arc::new(Mutex::new(None)),
            grace_secs: SNAPSHOT_GRACE_SECS,
            layout_checked: Arc::new(OnceCell::new()),
            recent: recent::Recent::default(),
        }
    }

    /// Stores rows too large for an item (JSON over 350,000 bytes) in `blobs`, under `rows/`.
    pub fn with_blobs(self, blobs: Arc<dyn Blobs>) -> Self {
        Self { blobs: Some(blobs), ..self }
    }

    /// How long compaction waits before reclaiming what a revision may still need (default
    /// [`SNAPSHOT_GRACE_SECS`]); tests shorten it to see compaction's effect at once.
    pub fn with_grace_secs(self, grace_secs: u64) -> Self {
        Self { grace_secs, ..self }
    }

    fn fault(&self) -> StoreResult<Option<usize>> {
        self.fault_after_rows.lock().map(|f| *f).map_err(|_| StoreError::Internal("fault lock poisoned".into()))
    }

    /// The blob store a large row of `table` needs.
    fn blobs(&self, table: &str, key: &str) -> StoreResult<&Arc<dyn Blobs>> {
        self.blobs.as_ref().ok_or_else(|| {
            StoreError::Internal(format!(
                "row {} of table {table} is over {} bytes of JSON and no blob store is configured",
                layout::short(key),
                layout::INLINE_ROW_MAX
            ))
        })
    }

    /// Refuses a table of another storage layout (once per process, on first use: nothing slow
    /// happens at init). A table without the item is of layout 2, the first to record it (the
    /// template cannot write an item; every later layout's migration will).
    pub async fn check_layout(&self) -> StoreResult<()> {
        self.layout_checked
            .get_or_try_init(|| async {
                let found = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(layout::key_item(layout::LAYOUT_KEY, layout::LAYOUT_KEY)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| store_error("GetItem", e))?;
                let version = found.item().map_or(Some(LAYOUT_VERSION), |item| layout::number(item, "version"));
                match version {
                    Some(LAYOUT_VERSION) => Ok(()),
                    other => Err(StoreError::Internal(format!(
                        "DynamoDB table {} has storage layout {}; this build reads layout {LAYOUT_VERSION}",
                        self.table,
                        other.map_or_else(|| "?".to_owned(), |v| v.to_string())
                    ))),
                }
            })
            .await
            .map(|_| ())
    }

    /// Records this build's layout in the table (provisioning, tests).
    pub async fn record_layout(&self) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(layout::LAYOUT_KEY))
            .item("SK", s(layout::LAYOUT_KEY))
            .item("version", layout::n(LAYOUT_VERSION))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }
}

/// How a workspace UpdateItem treats `version`. Items written before versions existed have no
/// `version` attribute and count as version 1 (as SQLite's migration sets them): one save of
/// such an item makes it 2, so a client that loaded it as 1 before that save is stale after it.
#[derive(Debug, Clone, Copy)]
enum VersionCheck {
    /// A new item (`0 + 1`) or one with a version (`+ 1`); an item without the attribute fails
    /// the condition (then it is saved again as `Expect(1)`).
    Unnamed,
    /// The stored version must be this one (an item without the attribute counts as 1); it
    /// becomes one more.
    Expect(u64),
}

impl DynamoStore {
    /// One UpdateItem: creates or updates in place; `if_not_exists` keeps `author` and
    /// `created_at` of an existing item without a read first, and the version is checked and
    /// bumped in the same write. `None` when the version condition failed.
    async fn update_workspace(
        &self,
        owner: &Owner,
        draft: &WorkspaceDraft,
        check: VersionCheck,
    ) -> StoreResult<Option<Workspace>> {
        let metadata = serde_json::to_string(&draft.metadata)
            .map_err(|e| StoreError::Internal(format!("metadata of {} does not serialize: {e}", draft.id)))?;
        // `updated_at` is always `:now`, so the stored list key is known before the write.
        let gsi1sk = list_key(&draft.now, draft.scope, &draft.id);
        let names = [
            ("#id", "id"),
            ("#name", "name"),
            ("#description", "description"),
            ("#metadata", "metadata"),
            ("#scope", "scope"),
            ("#author", "author"),
            ("#updated_by", "updated_by"),
            ("#created_at", "created_at"),
            ("#updated_at", "updated_at"),
            ("#gsi1pk", "GSI1PK"),
            ("#gsi1sk", "GSI1SK"),
            ("#version", "version"),
        ];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(owner.key()))
            .key("SK", s(workspace_sk(&draft.id)))
            .expression_attribute_values(":id", s(&draft.id))
            .expression_attribute_values(":name", s(&draft.name))
            .expression_attribute_values(":metadata", s(metadata))
            .expression_attribute_values(":scope", s(draft.scope.as_str()))
            .expression_attribute_values(":writer", s(&draft.writer))
            .expression_attribute_values(":now", s(&draft.now))
            .expression_attribute_values(":gsi1pk", s(workspace_gsi1pk(owner)))
            .expression_attribute_values(":gsi1sk", s(gsi1sk))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew);
        let version_set = match check {
            VersionCheck::Unnamed => {
                request = request
                    .expression_attribute_names("#pk", "PK")
                    .expression_attribute_values(":zero", n(0))
                    .condition_expression("attribute_not_exists(#pk) OR attribute_exists(#version)");
                "#version = if_not_exists(#version, :zero) + :one"
            }
            VersionCheck::Expect(expected) => {
                // DynamoDB refuses names an expression does not use: `#pk` only where it is.
                let condition = if expected == 1 {
                    request = request.expression_attribute_names("#pk", "PK");
                    "#version = :expected OR (attribute_exists(#pk) AND attribute_not_exists(#version))"
                } else {
                    "#version = :expected"
                };
                request = request.expression_attribute_values(":expected", n(expected)).condition_expression(condition);
                "#version = if_not_exists(#version, :one) + :one"
            }
        };
        for (placeholder, name) in names {
            request = request.expression_attribute_names(placeholder, name);
        }
        let update = match &draft.description {
            Some(description) => {
                request = request.expression_attribute_values(":description", s(description));
                format!("{SAVE_SET}, {version_set}, #description = :description")
            }
            None => format!("{SAVE_SET}, {version_set} REMOVE #description"),
        };
        let out = match request.update_expression(update).send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => return Ok(None),
            Err(e) => return Err(store_error("UpdateItem", e)),
        };
        let item = out
            .attributes()
            .ok_or_else(|| StoreError::Internal(format!("UpdateItem of {} returned no attributes", draft.id)))?;
        workspace_from_item(item).map(Some)
    }
}

#[async_trait]
impl Workspaces for DynamoStore {
    /// One UpdateItem (see `update_workspace`); only the first unnamed save of an item from before
    /// versions takes a second.
    async fn save_workspace(&self, owner: &Owner, draft: WorkspaceDraft) -> StoreResult<Workspace> {
        self.check_layout().await?;
        if let Some(expected) = draft.expected_version {
            if let Some(saved) = self.update_workspace(owner, &draft, VersionCheck::Expect(expected)).await? {
                return Ok(saved);
            }
            // Only for the message: the write has already been refused.
            let stored = self.get_workspace(owner, &draft.id).await?.map(|w| w.version);
            return Err(StoreError::Conflict(workspace_version_conflict(&draft.id, stored, expected)));
        }
        for _ in 0..3 {
            if let Some(saved) = self.update_workspace(owner, &draft, VersionCheck::Unnamed).await? {
                return Ok(saved);
            }
            // The item has no version yet: it is at 1 (and fails this only if another save just
            // gave it one, and then the first form applies on the next round).
            if let Some(saved) = self.update_workspace(owner, &draft, VersionCheck::Expect(1)).await? {
                return Ok(saved);
            }
        }
        Err(StoreError::Conflict("the workspace was changed concurrently; reload it and retry".into()))
    }

    async fn get_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<Workspace>> {
        self.check_layout().await?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(owner.key()))
            .key("SK", s(workspace_sk(id)))
            // A client reading its own save right after must see it.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        out.item().map(workspace_from_item).transpose()
    }

    /// Queries the GSI newest first, following `LastEvaluatedKey` until `limit` items or the end.
    /// `Limit` asks for exactly what is still missing, so it is one round trip unless the 1 MB page
    /// cap cuts a page short. GSIs are eventually consistent: a save may take a moment to show here.
    async fn list_workspaces(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<WorkspacePage> {
        self.check_layout().await?;
        // Nothing sorts before "" (and DynamoDB rejects empty key values).
        if after == Some("") {
            return Ok(WorkspacePage::default());
        }
        // One Query. It asks for one item past the page, which says whether more follow (a
        // Query that stops at its `Limit` returns a LastEvaluatedKey even when nothing is left,
        // so the key alone would cost an empty request at the end of every list of exactly
        // `limit`). A Query that stops at DynamoDB's 1 MB instead returns a short page with
        // `more`: the caller goes on from its last item, and memory stays one page.
        let fetch = limit.saturating_add(1);
        let condition = match after {
            Some(_) => "#gsi1pk = :gsi1pk AND #gsi1sk < :after",
            None => "#gsi1pk = :gsi1pk",
        };
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI_BY_UPDATED)
            .key_condition_expression(condition)
            .expression_attribute_names("#gsi1pk", "GSI1PK")
            .expression_attribute_values(":gsi1pk", s(workspace_gsi1pk(owner)))
            .scan_index_forward(false)
            .limit(i32::try_from(fetch).unwrap_or(i32::MAX));
        if let Some(after) = after {
            request =
                request.expression_attribute_names("#gsi1sk", "GSI1SK").expression_attribute_values(":after", s(after));
        }
        let page = request.send().await.map_err(|e| store_error("Query", e))?;
        let mut items = page.items().iter().map(workspace_from_item).collect::<StoreResult<Vec<_>>>()?;
        let more = items.len() > limit || (items.len() < fetch && page.last_evaluated_key().is_some());
        items.truncate(limit);
        Ok(WorkspacePage { items, more })
    }

    async fn delete_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>> {
        self.delete_workspace_impl(owner, id).await
    }
}

#[async_trait]
impl Tables for DynamoStore {
    /// The head, then the catalog as of its revision.
    async fn snapshot(&self, ws: &WsKey) -> StoreResult<Box<dyn Snapshot>> {
        self.check_layout().await?;
        let ws_key = ws.key();
        let head = self.head(&ws_key).await?;
        let catalog = self.catalog(&ws_key, &head, None).await?;
        self.recent.remember(&ws_key, &head, &catalog);
        Ok(Box::new(DynamoSnapshot::new(self.clone(), &ws_key, head.gen.as_deref(), head.rev, catalog)))
    }

    async fn commit(&self, ws: &WsKey, base: u64, commit: Commit) -> StoreResult<u64> {
        self.commit_impl(ws, base, commit).await
    }
}

#[cfg(feature = "faults")]
impl shared::store::Faults for DynamoStore {
    fn inject_commit_fault(&self, after_rows: Option<usize>) {
        if let Ok(mut f) = self.fault_after_rows.lock() {
            *f = after_rows;
        }
    }
}

fn workspace_sk(id: &str) -> String {
    format!("ws#{id}")
}

fn workspace_gsi1pk(owner: &Owner) -> String {
    format!("{}#ws", owner.key())
}

/// A new workspace item, as a first `save_workspace` of `draft` writes it.
fn new_workspace_item(owner: &Owner, draft: &WorkspaceDraft) -> StoreResult<Item> {
    let metadata = serde_json::to_string(&draft.metadata)
        .map_err(|e| StoreError::Internal(format!("metadata of {} does not serialize: {e}", draft.id)))?;
    let mut item = HashMap::from([
        ("PK".to_owned(), s(owner.key())),
        ("SK".to_owned(), s(workspace_sk(&draft.id))),
        ("GSI1PK".to_owned(), s(workspace_gsi1pk(owner))),
        ("GSI1SK".to_owned(), s(list_key(&draft.now, draft.scope, &draft.id))),
        ("id".to_owned(), s(&draft.id)),
        ("name".to_owned(), s(&draft.name)),
        ("metadata".to_owned(), s(metadata)),
        ("scope".to_owned(), s(draft.scope.as_str())),
        ("author".to_owned(), s(&draft.writer)),
        ("updated_by".to_owned(), s(&draft.writer)),
        ("created_at".to_owned(), s(&draft.now)),
        ("updated_at".to_owned(), s(&draft.now)),
        ("version".to_owned(), n(1)),
    ]);
    if let Some(description) = &draft.description {
        item.insert("description".to_owned(), s(description));
    }
    Ok(item)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn key_element(name: &str, key_type: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(build_error)
}

fn build_error(e: BuildError) -> StoreError {
    StoreError::Internal(format!("DynamoDB request: {e}"))
}

/// Reads a stored item back; anything missing or mistyped is an error, never a panic or a
/// made-up default.
fn workspace_from_item(item: &Item) -> StoreResult<Workspace> {
    let malformed = |attr: &str, problem: &str| {
        let key = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) => v.as_str(),
            _ => "?",
        };
        StoreError::Internal(format!(
            "malformed workspace item {}/{}: attribute '{attr}' {problem}",
            key("PK"),
            key("SK")
        ))
    };
    let text = |attr: &str| match item.get(attr) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        Some(_) => Err(malformed(attr, "is not a string")),
        None => Err(malformed(attr, "is missing")),
    };
    let description = match item.get("description") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::S(v)) => Some(v.clone()),
        Some(_) => return Err(malformed("description", "is not a string")),
    };
    let scope = match text("scope")?.as_str() {
        "user" => Scope::User,
        "organization" => Scope::Organization,
        _ => return Err(malformed("scope", "is neither 'user' nor 'organization'")),
    };
    let metadata = serde_json::from_str::<Map<String, Value>>(&text("metadata")?)
        .map_err(|e| malformed("metadata", &format!("is not a JSON object ({e})")))?;
    // Items from before versions have none: they count as 1 (see `VersionCheck`).
    let version = match item.get("version") {
        None => 1,
        Some(AttributeValue::N(v)) => v.parse::<u64>().map_err(|_| malformed("version", "is not a whole number"))?,
        Some(_) => return Err(malformed("version", "is not a number")),
    };
    Ok(Workspace {
        id: text("id")?,
        name: text("name")?,
        description,
        metadata,
        scope,
        author: text("author")?,
        updated_by: text("updated_by")?,
        created_at: text("created_at")?,
        updated_at: text("updated_at")?,
        version,
    })
}

/// Maps an SDK failure onto the port's three outcomes. The SDK has already retried the
/// retryable ones, so `Unavailable` here means "still failing, tell the caller to retry later".
fn store_error<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: Debug,
{
    if err.code() == Some("ConditionalCheckFailedException") {
        // This message reaches the client (409), so it carries no internals.
        return StoreError::Conflict("the workspace was changed concurrently; reload it and retry".into());
    }
    const RETRYABLE: &[&str] = &[
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
    ];
    adapter_aws::sdk_error("DynamoDB", op, err, RETRYABLE)
}

/// What a function's `main` links to serve `dynamodb://` stores (`shared::Links`).
pub static LINK: Link = Link;

pub struct Link;

#[async_trait]
impl shared::app::DynamoDbLink for Link {
    async fn store(
        &self,
        table: &str,
        blobs: Option<Arc<dyn Blobs>>,
    ) -> Result<Arc<dyn shared::app::StoreAdapter>, String> {
        let store = DynamoStore::from_env(table).await;
        Ok(Arc::new(match blobs {
            Some(blobs) => store.with_blobs(blobs),
            None => store,
        }))
    }

    async fn provision(&self, table: &str) -> Result<(), String> {
        DynamoStore::from_env(table).await.create_table_if_missing().await.map_err(|e| e.to_string())
    }
}
