//! The `compact-tables` function: no route reaches it; a schedule invokes it. It compacts the
//! workspaces whose heads are marked (see the crate's compaction), within the time the
//! invocation has left, and logs what it did. On the embedded store there is nothing to compact
//! (SQLite rewrites rows in place inside its own transactions).

use std::sync::Arc;
use std::time::Duration;

use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde_json::{json, Value};

use crate::DynamoStore;
use shared::config::{parse_bundles_url, parse_store_url, BundlesUrl, StoreUrl};
use shared::store::Blobs;
use shared::Links;

/// Left for logging and returning when the invocation's deadline approaches.
const DEADLINE_MARGIN: Duration = Duration::from_secs(30);
/// The most one run works, whatever the function's timeout.
const MAX_BUDGET: Duration = Duration::from_secs(10 * 60);

/// What the function's `main` runs: configuration once, then the runtime loop.
pub async fn run(links: Links) -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let store = match store_from_env(links).await {
        Ok(store) => store,
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            return Err(e.into());
        }
    };
    let store = &*Box::leak(Box::new(store));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = Duration::from_millis(
            event.context.deadline.saturating_sub(
                u64::try_from(
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()),
                )
                .unwrap_or(u64::MAX),
            ),
        );
        compact(store.as_ref(), left.saturating_sub(DEADLINE_MARGIN).min(MAX_BUDGET)).await
    }))
    .await
}

/// One run: compacts what is marked within `budget`; the answer (and the log line) says what
/// it did.
pub async fn compact(store: Option<&DynamoStore>, budget: Duration) -> Result<Value, lambda_runtime::Error> {
    let Some(store) = store else {
        tracing::info!("the embedded store has nothing to compact");
        return Ok(json!({"compacted": false}));
    };
    let report = store.compact_marked(budget).await.map_err(|e| {
        tracing::error!(error = %e, "compaction failed");
        lambda_runtime::Error::from(e.to_string())
    })?;
    tracing::info!(
        workspaces = report.workspaces,
        tables_folded = report.tables_folded,
        items_folded = report.items_folded,
        rows_deleted = report.rows_deleted,
        entries_deleted = report.entries_deleted,
        commits_aborted = report.commits_aborted,
        generations_swept = report.generations_swept,
        left_marked = report.left_marked,
        not_reached = report.not_reached,
        "compaction run"
    );
    println!("{}", emf_line(&report, &std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(), now_millis()));
    Ok(json!({
        "compacted": true,
        "workspaces": report.workspaces,
        "tables_folded": report.tables_folded,
        "items_folded": report.items_folded,
        "rows_deleted": report.rows_deleted,
        "left_marked": report.left_marked,
        "not_reached": report.not_reached,
    }))
}

/// Namespace of the metrics compaction emits (the template's CompactionLagAlarm reads it).
pub const METRICS_NAMESPACE: &str = "Workspaces/Compaction";

/// One CloudWatch embedded-metric-format line: Lambda ships stdout to the log group, and
/// CloudWatch turns this line into metrics (no API call, no IAM permission). `WorkspacesNotReached`
/// is the lag: marked workspaces a run had no time to start.
pub fn emf_line(report: &crate::compact::CompactionReport, function: &str, timestamp_ms: u64) -> String {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "WorkspacesNotReached", "Unit": "Count"},
                    {"Name": "WorkspacesLeftMarked", "Unit": "Count"},
                    {"Name": "WorkspacesCompacted", "Unit": "Count"},
                ],
            }],
        },
        "FunctionName": function,
        "WorkspacesNotReached": report.not_reached,
        "WorkspacesLeftMarked": report.left_marked,
        "WorkspacesCompacted": report.workspaces,
    })
    .to_string()
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The DynamoDB store `WORKSPACES_STORE` names (with the bundle store for oversized rows), or
/// `None` for the embedded store.
async fn store_from_env(links: Links) -> Result<Option<DynamoStore>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let store = parse_store_url(var("WORKSPACES_STORE").as_deref().unwrap_or(shared::config::DEFAULT_STORE))
        .map_err(|e| e.to_string())?;
    let StoreUrl::DynamoDb { table } = store else { return Ok(None) };
    let dynamo = DynamoStore::from_env(&table).await;
    let bundles = parse_bundles_url(var("WORKSPACES_BUNDLES").as_deref().unwrap_or(shared::config::DEFAULT_BUNDLES))
        .map_err(|e| e.to_string())?;
    Ok(Some(match bundles {
        BundlesUrl::S3 { bucket, prefix } => {
            let s3 = links.s3().map_err(|e| format!("WORKSPACES_BUNDLES: {e}"))?;
            dynamo.with_blobs(s3.bundles(bucket.as_str(), &prefix).await? as Arc<dyn Blobs>)
        }
        // Rows of a DynamoDB store only go to S3 in AWS; a folder here means a local mix.
        BundlesUrl::Folder(_) => dynamo,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emf_line_carries_the_lag_metric_by_function() {
        let report =
            crate::compact::CompactionReport { workspaces: 4, left_marked: 3, not_reached: 2, ..Default::default() };
        let line: Value = serde_json::from_str(&emf_line(&report, "stack-CompactTables-x", 1_700_000_000_000)).unwrap();
        let meta = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], METRICS_NAMESPACE);
        assert_eq!(meta["Dimensions"], json!([["FunctionName"]]));
        // Every metric named in the metadata has its value at the top level, as EMF requires.
        for m in meta["Metrics"].as_array().unwrap() {
            assert!(line[m["Name"].as_str().unwrap()].is_u64(), "{m}");
        }
        assert_eq!(
            (line["WorkspacesNotReached"].as_u64(), line["FunctionName"].as_str()),
            (Some(2), Some("stack-CompactTables-x"))
        );
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }
}
