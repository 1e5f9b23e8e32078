//! `export-tables` Lambda, `POST /workspaces/{workspace_id}/export-tables`.
//! Its needs, like its IAM policy: the table, rows included, bundles to stage large exports, and
//! job records and the jobs queue to start an export job (`"async": true`).

use shared::api::export;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let needs = Needs::TABLES.and(Needs::BUNDLES).and(Needs::JOBS).and(Needs::QUEUE);
    shared::http::run(Endpoint::ExportTables, needs, export::export_tables).await
}
