//! `compact-tables` Lambda: no route; a schedule invokes it.
//! Its needs, like its IAM policy: the tables' items (read, fold, delete) and oversized rows'
//! blobs; nothing of bundles or workspace records.

use shared::Links;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    adapter_dynamodb::compaction::run(Links::NONE.with_s3(&adapter_s3::LINK)).await
}
