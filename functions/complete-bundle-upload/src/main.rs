//! `complete-bundle-upload` Lambda, `POST /workspaces/bundles/{bundle_id}/complete`.
//! Its needs, like its IAM policy: bundles only: it joins the parts of a parted upload.

use shared::api::bundles;
use shared::routes::Endpoint;
use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE.with_s3(&adapter_s3::LINK);
    shared::http::run(Endpoint::CompleteBundleUpload, Needs::BUNDLES, links, bundles::complete_upload).await
}
