//! `create-bundle-upload` Lambda, `POST /workspaces/bundles`.
//! Its needs, like its IAM policy: bundles only: it hands out a link to PUT one.

use shared::api::bundles;
use shared::routes::Endpoint;
use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE.with_s3(&adapter_s3::LINK);
    shared::http::run(Endpoint::CreateBundleUpload, Needs::BUNDLES, links, bundles::create_upload).await
}
