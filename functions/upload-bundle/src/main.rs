//! `upload-bundle` Lambda (local-only route): takes the PUT of a signed bundle link into the
//! bundle folder. In AWS the same links are presigned S3 URLs, so this function is not deployed.

use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE;
    shared::http::run_upload(Needs::BUNDLES, links).await
}
