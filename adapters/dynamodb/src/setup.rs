//! Table setup for tests and local runs (AWS gets the table from `template.yaml`).

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::{build_error, key_element, store_error, DynamoStore, GSI_BY_UPDATED, TTL_ATTRIBUTE};
use shared::store::{StoreError, StoreResult};

/// How long `create_table_if_missing` waits for a new table (real DynamoDB takes seconds).
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
const TABLE_POLL_INTERVAL: Duration = Duration::from_millis(500);

impl DynamoStore {
    /// Creates the table with the layout above (on-demand billing) unless it exists, waits until
    /// it and its index are ACTIVE and turns TTL on. An existing table with another key layout is
    /// an error rather than a silent mismatch. For tests and local runs; AWS gets it from the
    /// template. A table it creates records this build's storage layout; an existing one keeps
    /// whatever it records.
    pub async fn create_table_if_missing(&self) -> StoreResult<()> {
        let created = match self.client.describe_table().table_name(&self.table).send().await {
            Ok(out) => {
                if let Some(table) = out.table() {
                    check_key_schema(&self.table, table)?;
                }
                false
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                self.create_table().await?;
                true
            }
            Err(e) => return Err(store_error("DescribeTable", e)),
        };
        self.wait_until_active().await?;
        self.enable_ttl().await?;
        if created {
            self.record_layout().await?;
        }
        Ok(())
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

/// Refuses to run against a table whose keys are not ours: writes would fail anyway, later
/// and less clearly.
fn check_key_schema(name: &str, table: &TableDescription) -> StoreResult<()> {
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
