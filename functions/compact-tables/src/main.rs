//! `compact-tables` Lambda: no route; a schedule invokes it.
//! Its needs, like its IAM policy: the tables' items (read, fold, delete) and oversized rows'
//! blobs; nothing of bundles or workspace records.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::compaction::run().await
}
