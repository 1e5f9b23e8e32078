//! `download-bundle` Lambda (local-only route): streams a signed bundle link's file from disk.
//! In AWS the same links are presigned S3 URLs, so this function is not deployed.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run_download_function().await
}
