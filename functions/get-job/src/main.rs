//! `get-job` Lambda, `GET /workspaces/jobs/{job_id}`.
//! Its needs, like its IAM policy: job records, and the bundle store to sign a finished export's link.

use shared::api::jobs;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::GetJob, Needs::JOBS.and(Needs::BUNDLES), jobs::get).await
}
