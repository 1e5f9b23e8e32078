//! `load-project` Lambda, `GET /projects/{workspace_id}/load`.
//! Its needs, like its IAM policy: the table, rows included (projects are rows).

use shared::api::projects;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::LoadProject, Needs::TABLES, projects::load).await
}
