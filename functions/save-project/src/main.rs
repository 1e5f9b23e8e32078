//! `save-project` Lambda, `POST /projects/{workspace_id}/save`.
//! Its needs, like its IAM policy: the table, rows included (projects are rows).

use shared::api::projects;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::SaveProject, Needs::TABLES, projects::save).await
}
