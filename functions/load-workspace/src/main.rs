//! `load-workspace` Lambda, `GET /workspaces/{workspace_id}/load`.
//! Its needs, like its IAM policy: workspace records in the table.

use shared::api::workspaces;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::LoadWorkspace, Needs::STORE, workspaces::load).await
}
