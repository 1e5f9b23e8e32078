//! DynamoDB adapter over one table (the layout `template.yaml` declares):
//!
//! - table key `PK` (HASH) / `SK` (RANGE); a workspace is `PK = <owner key>`, `SK = ws#<id>`;
//!   its `version` (N) is checked and bumped by the save's one UpdateItem (see `VersionCheck`);
//! - GSI `by_updated`: `GSI1PK = <owner key>#ws`, `GSI1SK = Workspace::list_key()`, projection ALL;
//! - TTL attribute `expires_at` (epoch seconds), on pending commit records only.
//!
//! Every key starts with the owner's tenancy key, so no request can reach another owner's items,
//! and listing is a Query on the GSI, never a Scan.
//!
//! # Tables: copy-on-write versions and one small commit point
//!
//! A commit may write far more than a DynamoDB transaction holds (100 items), so it is made
//! all-or-nothing differently. Items, for a workspace with key `W = WsKey::key()`:
//!
//! - manifest `PK = W`, `SK = manifest`: `rev` (N) and `tables` (S, JSON: name →
//!   `{"v": version, "columns": [...], "key": key column, "rows": row count, "shards": n}`);
//! - row `PK = W#t#<table>#v#<version>#s#<shard>`, `SK = <row key>`: `row` (S, the row's JSON,
//!   column order kept) or, when that text is over 350,000 bytes, `blob` (S, an object key of
//!   the configured [`Blobs`]; without one such a row is `Internal`, never dropped or cut);
//! - commit record `PK = W`, `SK = commit#<version>`: `state` (`pending` → `committed`, or
//!   `aborting` when a sweep gives up on it), `versions` it writes, `superseded` versions it
//!   replaced, `created`/`committed_at` (epoch s), `expires_at` while pending.
//!
//! A version is `<commit id>.<manifest rev the commit started from>`: a retry after a crash,
//! from the same base, rewrites the same items; a retry after success starts from a new rev.
//! So a commit id must name one change: reused for other content from the same base, rows the
//! first attempt wrote and the second does not would join the version.
//! A version has clamp(⌈rows / 1000⌉, 1, 64) shards (rows bounded above by current + upserted
//! rows); a key's shard is the first 8 bytes of sha256(key) as a big-endian u64, mod shards.
//!
//! Invariants:
//!
//! 1. Readers see only what the manifest names. `list_tables`, `read_rows` and `get_rows` read
//!    the manifest (consistently) first, then only the version it names for the table, so rows of
//!    uncommitted or superseded versions are invisible by construction.
//! 2. A commit becomes visible in exactly one write: a TransactWriteItems that puts the manifest
//!    on condition `rev` is still the one it started from (`attribute_not_exists` when there was
//!    none), creates the workspace when asked (a Put conditional on its absence, or a condition
//!    check that it still exists), and flips its record from `pending` to `committed`. Before it,
//!    nothing of the commit is visible; after it, all of it is. Losing the condition is
//!    `Conflict`, so of two concurrent commits one fails rather than one losing the other's rows.
//! 3. Version items are written only after their pending record exists, so every row item of
//!    a version that is not live is findable from a record (until the record's 1-day TTL: a
//!    workspace with no commit or delete for a day after a crash keeps that garbage).
//! 4. Row items of a version the current manifest names are never deleted, whatever a record
//!    says. Superseded versions are deleted after the commit (best effort; failures stay in the
//!    committed record for the next sweep); versions of a pending record are deleted only once it
//!    is over 20 minutes old (no commit runs that long: Lambda stops at 15) and after marking it
//!    `aborting` on condition it is unchanged, so an abort and a retry of the same commit never
//!    interleave (the retry refreshes the pending record or finds it aborting and gets `Conflict`).
//! 5. A read that raced a commit and its garbage collection is retried: after reading, the
//!    manifest is read again, and only if it still names the version read is the answer returned
//!    (collection of a version starts only after the manifest stops naming it).
//! 6. Every version has its own blobs, so collecting one version never breaks another.
//!
//! Round trips: `list_tables` 1. `read_rows` 1 + one Query per shard (in parallel, each asking
//! for its share of `limit` plus a margin; a shard that runs dry before the page is full is
//! queried again) + 1 manifest re-read. `get_rows`: 1, ⌈keys / 100⌉ BatchGetItem (8 in
//! flight), 1. `commit`: 1 round of 2–3 in parallel (manifest GetItem, commit-record Query, and the
//! workspace GetItem when `create_workspace`), 1 record PutItem, the current versions of the
//! touched tables read (1 Query per 1,000 rows per shard, overlapped with writing), ⌈rows / 25⌉
//! BatchWriteItem (32 in flight), 1 TransactWriteItems, then collection: the superseded
//! versions' keys (1 Query per 1,000) and ⌈rows / 25⌉ BatchWriteItem deletes, and 1 DeleteItem
//! of the record. So a commit of 10,000 new rows is 405 requests, and a commit into a table of
//! 10,000 rows also reads and later deletes those 10,000. `delete_workspace`: 1 round of 3 in
//! parallel, 1 transaction, then collection. The sweep adds work only when it finds some (at
//! most 20,000 row deletes per call).
//!
//! Cost to keep in mind: every commit rewrites each table it touches in full (copy-on-write), so
//! its cost grows with the size of the tables touched, not with the size of the change.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeySchemaElement, KeyType, ReturnValue};
use aws_sdk_dynamodb::Client;
use serde_json::{Map, Value};

use super::{Blobs, Store, StoreError, StoreResult};
use crate::model::{list_key, workspace_version_conflict, Owner, Scope, Workspace, WorkspaceDraft};
use crate::tables::{Commit, Row, TableMeta, WsKey};
use layout::n;

mod batch;
mod commit;
mod delete;
mod expect;
mod gc;
mod layout;
mod plan;
mod read;
mod setup;

pub const GSI_BY_UPDATED: &str = "by_updated";
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
    /// See `Store::inject_commit_fault`.
    fault_after_rows: Arc<Mutex<Option<usize>>>,
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
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::new(Client::new(&config), table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), blobs: None, fault_after_rows: Arc::new(Mutex::new(None)) }
    }

    /// Stores rows too large for an item (JSON over 350,000 bytes) in `blobs`, under `rows/`.
    pub fn with_blobs(self, blobs: Arc<dyn Blobs>) -> Self {
        Self { blobs: Some(blobs), ..self }
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
impl Store for DynamoStore {
    /// One UpdateItem (see `update_workspace`); only the first unnamed save of an item from before
    /// versions takes a second.
    async fn save_workspace(&self, owner: &Owner, draft: WorkspaceDraft) -> StoreResult<Workspace> {
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
    async fn list_workspaces(&self, owner: &Owner, after: Option<&str>, limit: usize) -> StoreResult<Vec<Workspace>> {
        // DynamoDB rejects `Limit = 0` and empty key values; nothing sorts before "" anyway.
        if limit == 0 || after == Some("") {
            return Ok(Vec::new());
        }
        let condition = match after {
            Some(_) => "#gsi1pk = :gsi1pk AND #gsi1sk < :after",
            None => "#gsi1pk = :gsi1pk",
        };
        let mut out = Vec::with_capacity(limit.min(1000));
        let mut start_key: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI_BY_UPDATED)
                .key_condition_expression(condition)
                .expression_attribute_names("#gsi1pk", "GSI1PK")
                .expression_attribute_values(":gsi1pk", s(workspace_gsi1pk(owner)))
                .scan_index_forward(false)
                .limit(i32::try_from(limit - out.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start_key.take());
            if let Some(after) = after {
                request = request
                    .expression_attribute_names("#gsi1sk", "GSI1SK")
                    .expression_attribute_values(":after", s(after));
            }
            let page = request.send().await.map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                out.push(workspace_from_item(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if out.len() < limit => start_key = Some(key.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn list_tables(&self, ws: &WsKey) -> StoreResult<Vec<TableMeta>> {
        self.list_tables_impl(ws).await
    }

    async fn read_rows(
        &self,
        ws: &WsKey,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Row)>> {
        self.read_rows_impl(ws, table, after, limit).await
    }

    async fn get_rows(&self, ws: &WsKey, table: &str, keys: &[String]) -> StoreResult<Vec<(String, Row)>> {
        self.get_rows_impl(ws, table, keys).await
    }

    async fn commit(&self, ws: &WsKey, commit: Commit) -> StoreResult<()> {
        self.commit_impl(ws, commit).await
    }

    async fn delete_workspace(&self, owner: &Owner, id: &str) -> StoreResult<Option<u64>> {
        self.delete_workspace_impl(owner, id).await
    }

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
    super::sdk_error("DynamoDB", op, err, RETRYABLE)
}
