//! `export-tables` Lambda, `POST /workspaces/{workspace_id}/export-tables`.
//! Its needs, like its IAM policy: the table, rows included, and bundles to stage large exports.

use shared::api::export;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::ExportTables, Needs::TABLES.and(Needs::BUNDLES), export::export_tables).await
}
