//! `import-tables` Lambda, `POST /workspaces/import-tables`.
//! Its needs, like its IAM policy: the table, rows included, staged bundles to import from, and
//! job records and the jobs queue to start an import job (`"async": true`).

use shared::api::import;
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
    shared::http::run(Endpoint::ImportTables, needs, links, import::import_tables).await
}
