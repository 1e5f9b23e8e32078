//! `jobs-worker` Lambda: no route; the jobs queue feeds it (SQS in AWS, the local dispatcher on a
//! laptop). Its needs, like its IAM policy: the tables (rows, long reads, staged commits), the
//! bundle store (export bundles, staged imports), job records, and the queue (to go on with a job
//! in a fresh invocation, or to fan out its parts).

use shared::{Links, Needs};

#[tokio::main]
async fn main() -> Result<(), lambda_http::lambda_runtime::Error> {
    let links = Links::NONE
        .with_embedded(&adapter_sqlite::LINK)
        .with_dynamodb(&adapter_dynamodb::LINK)
        .with_s3(&adapter_s3::LINK)
        .with_sqs(&adapter_sqs::LINK);
    shared::jobs::lambda::run(Needs::TABLES.and(Needs::BUNDLES).and(Needs::JOBS).and(Needs::QUEUE), links).await
}
