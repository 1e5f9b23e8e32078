//! The worker function's edge: an SQS batch in (the queue's event source mapping in AWS, the
//! local dispatcher's invoke elsewhere), `batchItemFailures` out, so only the messages that
//! must come again are handed back.

use std::time::{Duration, Instant};

use lambda_http::aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};

use super::worker::{handle_batch, Delivery};
use crate::app::{App, Needs};

/// What the worker's `main` runs: configuration and clients once, then the runtime loop.
pub async fn run(needs: Needs) -> Result<(), lambda_runtime::Error> {
    let app = crate::http::start(needs).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(handle_event(app, event.payload, left(event.context.deadline)).await)
    }))
    .await
}

/// One batch, given the time the invocation has left.
pub async fn handle_event(app: &App, event: SqsEvent, left: Duration) -> SqsBatchResponse {
    let budget = left.min(Duration::from_secs(app.config.job_budget_secs));
    let deadline = Instant::now() + budget;
    let deliveries = event
        .records
        .into_iter()
        .map(|m| Delivery {
            message_id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    for id in handle_batch(app, deliveries, deadline).await {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Time until `deadline` (Lambda's, in unix milliseconds).
fn left(deadline: u64) -> Duration {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Duration::from_millis(deadline.saturating_sub(u64::try_from(now).unwrap_or(u64::MAX)))
}
