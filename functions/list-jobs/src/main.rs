//! `list-jobs` Lambda, `GET /workspaces/jobs`.
//! Its needs, like its IAM policy: job records, and the bundle store to sign finished exports' links.

use shared::api::jobs;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::ListJobs, Needs::JOBS.and(Needs::BUNDLES), jobs::list).await
}
