//! `cancel-job` Lambda, `POST /workspaces/jobs/{job_id}/cancel`.
//! Its needs, like its IAM policy: job records (the worker does the stopping), and the bundle
//! store to sign a finished export's link in the answer.

use shared::api::jobs;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::CancelJob, Needs::JOBS.and(Needs::BUNDLES), jobs::cancel).await
}
