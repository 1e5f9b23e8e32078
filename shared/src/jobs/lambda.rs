//! The worker function's edge: an SQS batch in (the queue's event source mapping in AWS, the
//! local dispatcher's invoke elsewhere), `batchItemFailures` out, so only the messages that
//! must come again are handed back.

use std::time::{Duration, Instant};

use crate::queue::{QueueReceiver, Received};
use lambda_http::aws_lambda_events::sqs::SqsMessage;

use lambda_http::aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};

use super::worker::{handle_batch, Deadlines, Delivery};
use crate::app::{App, Links, Needs};

/// What the worker's `main` runs: configuration and clients once, then the runtime loop.
pub async fn run(needs: Needs, links: Links) -> Result<(), lambda_runtime::Error> {
    let app = crate::http::start(needs, links).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(handle_event(app, event.payload, left(event.context.deadline)).await)
    }))
    .await
}

/// One batch, given the time the invocation has left.
pub async fn handle_event(app: &App, event: SqsEvent, left: Duration) -> SqsBatchResponse {
    // Stop taking on work a little before the end (a chunk and a checkpoint must still fit).
    let margin = Duration::from_secs(30).min(left / 10);
    let budget = left.saturating_sub(margin).min(Duration::from_secs(app.config.job_budget_secs));
    let deadline = Deadlines { soft: Instant::now() + budget, hard: Instant::now() + left };
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

/// What Lambda's SQS event source mapping does, for where there is none (a laptop's `make run`,
/// the test kit): takes up to `max` messages (each hidden for `visibility`), hands them to
/// `invoke` as one SQS event, and deletes those it did not report as failed. Answers how many
/// messages it took; a failed `invoke` leaves them all to come again.
pub async fn pump<F, Fut>(
    receiver: &dyn QueueReceiver,
    max: usize,
    visibility: Duration,
    wait: Duration,
    invoke: F,
) -> Result<usize, String>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = Result<SqsBatchResponse, String>>,
{
    let received = receiver.receive(max, visibility, wait).await.map_err(|e| e.to_string())?;
    if received.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    event.records = received.iter().map(sqs_message).collect();
    let response = invoke(event).await?;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    for message in received.iter().filter(|m| !failed.contains(&m.message_id.as_str())) {
        receiver.delete(&message.receipt).await.map_err(|e| e.to_string())?;
    }
    Ok(received.len())
}

/// A queue message as Lambda hands it to the function.
fn sqs_message(m: &Received) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(m.message_id.clone());
    message.receipt_handle = Some(m.receipt.clone());
    message.body = Some(m.body.clone());
    message.event_source = Some("aws:sqs".into());
    message.attributes.insert("ApproximateReceiveCount".into(), m.receive_count.to_string());
    message
}
