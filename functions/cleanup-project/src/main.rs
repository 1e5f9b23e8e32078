//! `cleanup-project` Lambda, `POST /projects/{workspace_id}/cleanup`.
//! Its needs, like its IAM policy: the table, rows included (projects are rows).

use shared::api::projects;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::CleanupProject, Needs::TABLES, projects::cleanup).await
}
