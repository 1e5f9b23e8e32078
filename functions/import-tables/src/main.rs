//! `import-tables` Lambda, `POST /workspaces/import-tables`.
//! Its needs, like its IAM policy: the table, rows included, and staged bundles to import from.

use shared::api::import;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::ImportTables, Needs::TABLES.and(Needs::BUNDLES), import::import_tables).await
}
