//! Batched I/O: BatchWriteItem (≤ 25 requests a call, many calls in flight) and BatchGetItem
//! (≤ 100 keys a call), both retrying what DynamoDB leaves unprocessed and what it throttles,
//! with exponential backoff and full jitter, a bounded number of times.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;

use crate::{build_error, store_error, DynamoStore, Item};
use shared::store::{StoreError, StoreResult};

/// DynamoDB's limit per BatchWriteItem (moto accepts more; AWS does not).
pub(super) const BATCH_WRITE_MAX: usize = 25;
/// DynamoDB's limit per BatchGetItem.
pub(super) const BATCH_GET_MAX: usize = 100;
/// BatchWriteItem calls in flight per writer.
pub(super) const WRITE_CONCURRENCY: usize = 32;
/// BatchGetItem calls in flight per `get_rows`.
pub(super) const GET_CONCURRENCY: usize = 8;
/// Consecutive attempts without progress before giving up with `Unavailable`.
pub(super) const MAX_ATTEMPTS: u32 = 10;
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// Groups items into batches of at most `max` (at least 1).
pub(super) struct Chunker<T> {
    max: usize,
    buf: Vec<T>,
}

impl<T> Chunker<T> {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self { max, buf: Vec::with_capacity(max) }
    }

    /// Adds `item`; returns a full batch when this one completed it.
    pub fn push(&mut self, item: T) -> Option<Vec<T>> {
        self.buf.push(item);
        (self.buf.len() >= self.max).then(|| std::mem::replace(&mut self.buf, Vec::with_capacity(self.max)))
    }

    /// The last, partial batch, if any.
    pub fn take_rest(&mut self) -> Option<Vec<T>> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

/// Full jitter: a uniform wait in [0, min(cap, base · 2^attempt)].
pub(super) fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_CAP);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
}

pub(super) fn put_request(item: Item) -> StoreResult<WriteRequest> {
    let put = PutRequest::builder().set_item(Some(item)).build().map_err(build_error)?;
    Ok(WriteRequest::builder().put_request(put).build())
}

pub(super) fn delete_request(key: Item) -> StoreResult<WriteRequest> {
    let delete = DeleteRequest::builder().set_key(Some(key)).build().map_err(build_error)?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

type BatchFuture<'a> = Pin<Box<dyn Future<Output = StoreResult<()>> + Send + 'a>>;

/// Streams write requests out in batches of ≤ 25 with up to 32 calls in flight; memory stays at
/// ~32 × 25 items however many go through. `finish` must be awaited for the writes to be done.
pub(super) struct Writer<'a> {
    store: &'a DynamoStore,
    /// Calls this writer keeps in flight.
    concurrency: usize,
    batch: Chunker<WriteRequest>,
    in_flight: FuturesUnordered<BatchFuture<'a>>,
    /// Requests accepted so far.
    pub pushed: usize,
}

impl<'a> Writer<'a> {
    pub fn new(store: &'a DynamoStore) -> Self {
        Self::with_concurrency(store, WRITE_CONCURRENCY)
    }

    /// A writer that keeps at most `concurrency` calls in flight (at least 1).
    pub fn with_concurrency(store: &'a DynamoStore, concurrency: usize) -> Self {
        Self {
            store,
            concurrency: concurrency.max(1),
            batch: Chunker::new(BATCH_WRITE_MAX),
            in_flight: FuturesUnordered::new(),
            pushed: 0,
        }
    }

    pub async fn push(&mut self, request: WriteRequest) -> StoreResult<()> {
        self.pushed += 1;
        match self.batch.push(request) {
            Some(full) => self.launch(full).await,
            None => Ok(()),
        }
    }

    /// Sends the partial batch and waits for every call in flight.
    pub async fn finish(&mut self) -> StoreResult<()> {
        if let Some(rest) = self.batch.take_rest() {
            self.launch(rest).await?;
        }
        while let Some(done) = self.in_flight.next().await {
            done?;
        }
        Ok(())
    }

    async fn launch(&mut self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        while self.in_flight.len() >= self.concurrency {
            if let Some(done) = self.in_flight.next().await {
                done?;
            }
        }
        self.in_flight.push(Box::pin(self.store.batch_write(requests)));
        Ok(())
    }
}

impl DynamoStore {
    /// One batch (≤ 25 requests) until all of it is processed.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        if requests.len() > BATCH_WRITE_MAX {
            return Err(StoreError::Internal(format!("a batch of {} writes (max {BATCH_WRITE_MAX})", requests.len())));
        }
        until_processed("BatchWriteItem", requests, |pending| async move {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| store_error("BatchWriteItem", e))?;
            let left = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
            Ok((Vec::<()>::new(), left))
        })
        .await
        .map(drop)
    }

    /// The items at `keys` (≤ 100, no duplicates), consistently read; absent ones are missing.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        if keys.len() > BATCH_GET_MAX {
            return Err(StoreError::Internal(format!("a batch of {} reads (max {BATCH_GET_MAX})", keys.len())));
        }
        until_processed("BatchGetItem", keys, |pending| async move {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(build_error)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| store_error("BatchGetItem", e))?;
            let found = out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default();
            let left = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
            Ok((found, left))
        })
        .await
    }
}

/// Sends `pending` until DynamoDB has processed all of it, gathering what each call returns.
/// The SDK retries neither what a batch hands back unprocessed nor, beyond its own few
/// attempts, throttling: both are resent here with backoff, and the count of attempts starts
/// over whenever a call makes progress.
async fn until_processed<T, R, F, Fut>(op: &str, mut pending: Vec<T>, mut send: F) -> StoreResult<Vec<R>>
where
    T: Clone,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = StoreResult<(Vec<R>, Vec<T>)>>,
{
    let mut gathered = Vec::new();
    let mut attempt = 0u32;
    while !pending.is_empty() {
        let sent = pending.len();
        let progressed = match send(pending.clone()).await {
            Ok((got, left)) => {
                gathered.extend(got);
                pending = left;
                pending.len() < sent
            }
            Err(StoreError::Unavailable(m)) if attempt + 1 < MAX_ATTEMPTS => {
                tracing::debug!(error = %m, attempt, op, "retrying");
                false
            }
            Err(other) => return Err(other),
        };
        if pending.is_empty() {
            break;
        }
        attempt = if progressed { 1 } else { attempt + 1 };
        if attempt >= MAX_ATTEMPTS {
            return Err(StoreError::Unavailable(format!(
                "DynamoDB {op}: {} still unprocessed after {MAX_ATTEMPTS} attempts",
                pending.len()
            )));
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
    Ok(gathered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(n: usize, max: usize) -> Vec<usize> {
        let mut chunker = Chunker::new(max);
        let mut sizes: Vec<usize> = (0..n).filter_map(|i| chunker.push(i)).map(|b| b.len()).collect();
        sizes.extend(chunker.take_rest().map(|b| b.len()));
        sizes
    }

    #[test]
    fn chunker_never_exceeds_the_limit() {
        assert_eq!(batches(0, BATCH_WRITE_MAX), Vec::<usize>::new());
        assert_eq!(batches(1, BATCH_WRITE_MAX), [1]);
        assert_eq!(batches(25, BATCH_WRITE_MAX), [25]);
        assert_eq!(batches(26, BATCH_WRITE_MAX), [25, 1], "moto accepts 26 in one call; AWS does not");
        assert_eq!(batches(60, BATCH_WRITE_MAX), [25, 25, 10]);
        assert_eq!(batches(250, BATCH_GET_MAX), [100, 100, 50]);
        assert_eq!(batches(3, 0), [1, 1, 1], "a zero limit is treated as one");
    }

    #[test]
    fn chunker_keeps_order_and_loses_nothing() {
        let mut chunker = Chunker::new(BATCH_WRITE_MAX);
        let mut out: Vec<usize> = (0..1234).filter_map(|i| chunker.push(i)).flatten().collect();
        out.extend(chunker.take_rest().into_iter().flatten());
        assert_eq!(out, (0..1234).collect::<Vec<_>>());
        assert!(chunker.take_rest().is_none(), "nothing is handed out twice");
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in 0..40 {
            assert!(backoff(attempt) <= BACKOFF_CAP);
        }
    }
}
