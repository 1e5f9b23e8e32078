//! DynamoDB adapter over one table (the layout `template.yaml` declares):
//!
//! - table key `PK` (HASH) / `SK` (RANGE); a workspace is `PK = <owner key>`, `SK = ws#<id>`;
//! - GSI `by_updated`: `GSI1PK = <owner key>#ws`, `GSI1SK = Workspace::list_key()`, projection ALL;
//! - TTL attribute `expires_at` (epoch seconds), not written yet.
//!
//! Every key starts with the owner's tenancy key, so no request can reach another owner's items,
//! and listing is a Query on the GSI, never a Scan.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ReturnValue, ScalarAttributeType, TableDescription, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use serde_json::{Map, Value};

use super::{Store, StoreError, StoreResult};
use crate::model::{list_key, Owner, Scope, Workspace, WorkspaceDraft};

pub const GSI_BY_UPDATED: &str = "by_updated";
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// How long `create_table_if_missing` waits for a new table (real DynamoDB takes seconds).
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
const TABLE_POLL_INTERVAL: Duration = Duration::from_millis(500);

type Item = HashMap<String, AttributeValue>;

/// Every attribute goes through a `#name` placeholder: `name` is a DynamoDB reserved word, and
/// aliasing them all means no attribute we add later can hit another one.
const SAVE_SET: &str = "SET #id = :id, #name = :name, #metadata = :metadata, #scope = :scope, \
     #updated_by = :writer, #updated_at = :now, #gsi1pk = :gsi1pk, #gsi1sk = :gsi1sk, \
     #author = if_not_exists(#author, :writer), #created_at = if_not_exists(#created_at, :now)";

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store over `table` with the SDK's default configuration chain (region, credentials and
    /// `AWS_ENDPOINT_URL_DYNAMODB` all come from the environment).
    pub async fn from_env(table: &str) -> DynamoStore {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::new(Client::new(&config), table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Creates the table with the layout above (on-demand billing) unless it exists, waits until
    /// it and its index are ACTIVE and turns TTL on. An existing table with another key layout is
    /// an error rather than a silent mismatch. For tests and local runs; AWS gets it from the
    /// template.
    pub async fn create_table_if_missing(&self) -> StoreResult<()> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(out) => {
                if let Some(table) = out.table() {
                    check_layout(&self.table, table)?;
                }
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                self.create_table().await?;
            }
            Err(e) => return Err(store_error("DescribeTable", e)),
        }
        self.wait_until_active().await?;
        self.enable_ttl().await
    }

    async fn create_table(&self) -> StoreResult<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(GSI_BY_UPDATED)
            .key_schema(key_element("GSI1PK", KeyType::Hash)?)
            .key_schema(key_element("GSI1SK", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build_error)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("PK")?)
            .attribute_definitions(attr("SK")?)
            .attribute_definitions(attr("GSI1PK")?)
            .attribute_definitions(attr("GSI1SK")?)
            .key_schema(key_element("PK", KeyType::Hash)?)
            .key_schema(key_element("SK", KeyType::Range)?)
            .global_secondary_indexes(index)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Someone else created it between our DescribeTable and CreateTable: fine.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Ok(()),
            Err(e) => Err(store_error("CreateTable", e)),
        }
    }

    async fn wait_until_active(&self) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
        loop {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| store_error("DescribeTable", e))?;
            if let Some(table) = out.table() {
                let indexes_ready = table
                    .global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
                if table.table_status() == Some(&TableStatus::Active) && indexes_ready {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB table {} is not ACTIVE after {}s",
                    self.table,
                    TABLE_ACTIVE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(TABLE_POLL_INTERVAL).await;
        }
    }

    /// Checked rather than remembered from creation, so a run that died between CreateTable
    /// and here still ends with TTL on.
    async fn enable_ttl(&self) -> StoreResult<()> {
        let out = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| store_error("DescribeTimeToLive", e))?;
        let status = out.time_to_live_description().and_then(|d| d.time_to_live_status());
        if !matches!(status, None | Some(TimeToLiveStatus::Disabled)) {
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(build_error)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| store_error("UpdateTimeToLive", e))?;
        Ok(())
    }
}

#[async_trait]
impl Store for DynamoStore {
    /// One UpdateItem: creates or updates in place; `if_not_exists` keeps `author` and
    /// `created_at` of an existing item without a read first.
    async fn save_workspace(&self, owner: &Owner, draft: WorkspaceDraft) -> StoreResult<Workspace> {
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
            .return_values(ReturnValue::AllNew);
        for (placeholder, name) in names {
            request = request.expression_attribute_names(placeholder, name);
        }
        let update = match draft.description {
            Some(description) => {
                request = request.expression_attribute_values(":description", s(description));
                format!("{SAVE_SET}, #description = :description")
            }
            None => format!("{SAVE_SET} REMOVE #description"),
        };
        let out = request.update_expression(update).send().await.map_err(|e| store_error("UpdateItem", e))?;
        let item = out
            .attributes()
            .ok_or_else(|| StoreError::Internal(format!("UpdateItem of {} returned no attributes", draft.id)))?;
        workspace_from_item(item)
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
}

fn workspace_sk(id: &str) -> String {
    format!("ws#{id}")
}

fn workspace_gsi1pk(owner: &Owner) -> String {
    format!("{}#ws", owner.key())
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

/// Refuses to run against a table whose keys are not ours: writes would fail anyway, later
/// and less clearly.
fn check_layout(name: &str, table: &TableDescription) -> StoreResult<()> {
    let keys = |schema: &[KeySchemaElement]| -> Vec<(String, KeyType)> {
        schema.iter().map(|k| (k.attribute_name().to_owned(), k.key_type().clone())).collect()
    };
    let want = |hash: &str, range: &str| vec![(hash.to_owned(), KeyType::Hash), (range.to_owned(), KeyType::Range)];
    let table_ok = keys(table.key_schema()) == want("PK", "SK");
    let index_ok = table
        .global_secondary_indexes()
        .iter()
        .any(|i| i.index_name() == Some(GSI_BY_UPDATED) && keys(i.key_schema()) == want("GSI1PK", "GSI1SK"));
    if table_ok && index_ok {
        Ok(())
    } else {
        Err(StoreError::Internal(format!(
            "DynamoDB table {name} exists without the expected layout (PK/SK keys and GSI {GSI_BY_UPDATED} on GSI1PK/GSI1SK)"
        )))
    }
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
    })
}

/// Maps an SDK failure onto the port's three outcomes. The SDK has already retried the
/// retryable ones, so `Unavailable` here means "still failing, tell the caller to retry later".
fn store_error<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: Debug,
{
    let unavailable = match &err {
        SdkError::TimeoutError(_) => true,
        // `is_user` means we built a bad request: not something a retry fixes.
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(_) => matches!(
            err.code(),
            Some(
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "ServiceUnavailable"
            )
        ),
        _ => false,
    };
    if err.code() == Some("ConditionalCheckFailedException") {
        // This message reaches the client (409), so it carries no internals.
        return StoreError::Conflict("the workspace was changed concurrently; reload it and retry".into());
    }
    let detail = format!("DynamoDB {op}: {}", DisplayErrorContext(&err));
    if unavailable {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Internal(detail)
    }
}
