//! `list-jobs` Lambda, `GET /workspaces/jobs`.
//! Its needs, like its IAM policy: job records, and the bundle store to sign finished exports' links.

use shared::api::jobs;
use shared::routes::Endpoint;
use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE
        .with_embedded(&adapter_sqlite::LINK)
        .with_dynamodb(&adapter_dynamodb::LINK)
        .with_s3(&adapter_s3::LINK);
    shared::http::run(Endpoint::ListJobs, Needs::JOBS.and(Needs::BUNDLES), links, jobs::list).await
}
