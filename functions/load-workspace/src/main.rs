//! `load-workspace` Lambda, `GET /workspaces/{workspace_id}/load`.
//! Its needs, like its IAM policy: workspace records in the table.

use shared::api::workspaces;
use shared::routes::Endpoint;
use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE.with_embedded(&adapter_sqlite::LINK).with_dynamodb(&adapter_dynamodb::LINK);
    shared::http::run(Endpoint::LoadWorkspace, Needs::STORE, links, workspaces::load).await
}
