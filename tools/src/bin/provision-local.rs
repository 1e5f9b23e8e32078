//! `provision-local`: creates the DynamoDB table and S3 bucket that `WORKSPACES_STORE` and
//! `WORKSPACES_BUNDLES` name, if missing, on the compatible server the AWS SDK's endpoint
//! variables point at (`make run STORE=dynamodb` runs it before serving). Nothing to do for
//! SQLite and a folder.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match shared::config::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("provision-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    match shared::app::provision_local(&config, blackbox_tests::LINKS).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("provision-local: {e}");
            ExitCode::FAILURE
        }
    }
}
