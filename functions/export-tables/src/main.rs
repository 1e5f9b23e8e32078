//! `export-tables` Lambda, `POST /workspaces/{workspace_id}/export-tables`.
//! Its needs, like its IAM policy: the table, rows included, bundles to stage large exports, and
//! job records and the jobs queue to start an export job (`"async": true`).

use shared::api::export;
use shared::routes::Endpoint;
use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE
        .with_embedded(&adapter_sqlite::LINK)
        .with_dynamodb(&adapter_dynamodb::LINK)
        .with_s3(&adapter_s3::LINK)
        .with_sqs(&adapter_sqs::LINK);
    let needs = Needs::TABLES.and(Needs::BUNDLES).and(Needs::JOBS).and(Needs::QUEUE);
    shared::http::run(Endpoint::ExportTables, needs, links, export::export_tables).await
}
