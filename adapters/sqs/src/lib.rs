//! The jobs queue on SQS (`WORKSPACES_JOBS_QUEUE=https://sqs.<region>.amazonaws.com/<account>/<name>`).
//! In AWS the worker's event source mapping receives and deletes; `QueueReceiver` is here for
//! the test kit and local runs against a compatible server.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_sqs::Client;

use adapter_aws::sdk_error;
use shared::queue::{JobMessage, JobQueue, QueueReceiver, Received};
use shared::store::{StoreError, StoreResult};

/// SQS's limits on one ReceiveMessage.
const MAX_BATCH: usize = 10;
const MAX_WAIT_SECS: u64 = 20;
const MAX_VISIBILITY_SECS: u64 = 12 * 3600;

/// Error codes SQS answers when it is throttling or briefly unavailable.
const RETRYABLE: &[&str] =
    &["ThrottlingException", "RequestThrottled", "ServiceUnavailable", "InternalFailure", "KmsThrottled"];

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    /// A queue at `queue_url` (what `!Ref` of an SQS queue gives) with the shared SDK config.
    pub fn new(config: &adapter_aws::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::with_client(Client::new(config), queue_url)
    }

    /// Same, with a client of the caller's (tests install interceptors on theirs).
    pub fn with_client(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, url: queue_url.into() }
    }

    /// Creates the queue `name` when missing and answers its URL: for local stacks on a
    /// compatible server and the test kit (in AWS the template creates it, with its dead-letter
    /// queue). The visibility timeout is the template's.
    pub async fn create(config: &adapter_aws::SdkConfig, name: &str) -> StoreResult<Self> {
        let client = Client::new(config);
        let out = client
            .create_queue()
            .queue_name(name)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "960")
            .send()
            .await
            .map_err(|e| sdk_error("SQS", "CreateQueue", e, RETRYABLE))?;
        let url = out.queue_url().ok_or_else(|| StoreError::Internal(format!("CreateQueue {name}: no URL")))?;
        Ok(Self::with_client(client, url))
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Whole seconds, rounded up (SQS takes nothing finer), at most `max`.
fn secs(d: Duration, max: u64) -> i32 {
    let up = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(up.min(max)).unwrap_or(i32::MAX)
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send(&self, message: &JobMessage) -> StoreResult<()> {
        let body = serde_json::to_string(message)
            .map_err(|e| StoreError::Internal(format!("job message does not serialize: {e}")))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sdk_error("SQS", "SendMessage", e, RETRYABLE))?;
        Ok(())
    }
}

#[async_trait]
impl QueueReceiver for SqsQueue {
    /// At most 10 messages; `visibility` and `wait` round up to whole seconds (`wait` to at most
    /// 20, SQS's long poll).
    async fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> StoreResult<Vec<Received>> {
        let max = max.min(MAX_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(1))
            .visibility_timeout(secs(visibility, MAX_VISIBILITY_SECS))
            .wait_time_seconds(secs(wait, MAX_WAIT_SECS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_error("SQS", "ReceiveMessage", e, RETRYABLE))?;
        out.messages()
            .iter()
            .map(|m| {
                let missing =
                    |what: &str| StoreError::Internal(format!("SQS ReceiveMessage: a message without {what}"));
                let count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .ok_or_else(|| missing("ApproximateReceiveCount"))?;
                Ok(Received {
                    message_id: m.message_id().ok_or_else(|| missing("an id"))?.to_owned(),
                    receipt: m.receipt_handle().ok_or_else(|| missing("a receipt handle"))?.to_owned(),
                    body: m.body().ok_or_else(|| missing("a body"))?.to_owned(),
                    receive_count: count.parse().map_err(|_| missing("a numeric ApproximateReceiveCount"))?,
                })
            })
            .collect()
    }

    async fn delete(&self, receipt: &str) -> StoreResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| sdk_error("SQS", "DeleteMessage", e, RETRYABLE))?;
        Ok(())
    }
}

/// What a function's `main` links to use SQS job queues (`shared::Links`).
pub static LINK: Link = Link;

pub struct Link;

#[async_trait]
impl shared::app::SqsLink for Link {
    async fn queue(&self, url: &str) -> Result<std::sync::Arc<dyn shared::app::QueueAdapter>, String> {
        Ok(std::sync::Arc::new(SqsQueue::new(adapter_aws::sdk_config().await, url)))
    }

    async fn provision(&self, name: &str) -> Result<String, String> {
        let queue = SqsQueue::create(adapter_aws::sdk_config().await, name).await.map_err(|e| e.to_string())?;
        Ok(queue.url().to_owned())
    }
}
