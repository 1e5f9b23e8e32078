//! `cleanup-workspace` Lambda, `POST /workspaces/{workspace_id}/cleanup`.
//! Its needs, like its IAM policy: the table, rows included (large ones in the bucket's rows/).

use shared::api::workspaces;
use shared::routes::Endpoint;
use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE
        .with_embedded(&adapter_sqlite::LINK)
        .with_dynamodb(&adapter_dynamodb::LINK)
        .with_s3(&adapter_s3::LINK);
    shared::http::run(Endpoint::CleanupWorkspace, Needs::TABLES, links, workspaces::cleanup).await
}
