//! `download-bundle` Lambda (local-only route): streams a signed bundle link's file from the
//! bundle folder. In AWS the same links are presigned S3 URLs, so this function is not deployed.

use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let links = Links::NONE;
    shared::http::run_download(Needs::BUNDLES, links).await
}
