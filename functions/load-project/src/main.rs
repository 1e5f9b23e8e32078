//! `load-project` Lambda, `GET /projects/{workspace_id}/load`.
//! Its needs, like its IAM policy: the table, rows included (projects are rows).

use shared::api::projects;
use shared::routes::Endpoint;
use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE
        .with_embedded(&adapter_sqlite::LINK)
        .with_dynamodb(&adapter_dynamodb::LINK)
        .with_s3(&adapter_s3::LINK);
    shared::http::run(Endpoint::LoadProject, Needs::TABLES, links, projects::load).await
}
