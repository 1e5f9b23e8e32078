//! `get-job` Lambda, `GET /workspaces/jobs/{job_id}`.
//! Its needs, like its IAM policy: job records, and the bundle store to sign a finished export's link.

use shared::api::jobs;
use shared::routes::Endpoint;
use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE
        .with_embedded(&adapter_sqlite::LINK)
        .with_dynamodb(&adapter_dynamodb::LINK)
        .with_s3(&adapter_s3::LINK);
    shared::http::run(Endpoint::GetJob, Needs::JOBS.and(Needs::BUNDLES), links, jobs::get).await
}
