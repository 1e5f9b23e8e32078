//! `create-bundle-upload` Lambda, `POST /workspaces/bundles`.
//! Its needs, like its IAM policy: bundles only: it hands out a link to PUT one.

use shared::api::bundles;
use shared::routes::Endpoint;
use shared::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(Endpoint::CreateBundleUpload, Needs::BUNDLES, bundles::create_upload).await
}
