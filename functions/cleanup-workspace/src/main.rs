//! `cleanup-workspace` Lambda: all logic lives in the shared crate; this only picks the endpoint.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run_function(shared::routes::Endpoint::CleanupWorkspace).await
}
