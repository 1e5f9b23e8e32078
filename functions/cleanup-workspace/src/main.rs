//! `cleanup-workspace` Lambda, `POST /workspaces/{workspace_id}/cleanup`.
//! Its needs, like its IAM policy: the table, rows included (large ones in the bucket's rows/).

use shared::api::workspaces;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::CleanupWorkspace, Needs::TABLES, workspaces::cleanup).await
}
