//! The streamed write behind [`S3Bundles::create_upload`](crate::S3Bundles): parts of
//! [`PART_SIZE`] bytes, one in memory at a time; a single PutObject when the object fits in one.

use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::abort_multipart_upload::{AbortMultipartUploadError, AbortMultipartUploadOutput};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use crate::{s3_error, MAX_PARTS, MIN_PART_SIZE, PART_SIZE};
use shared::bundles::Upload;
use shared::store::{StoreError, StoreResult};

pub(super) struct S3Upload {
    client: Client,
    bucket: String,
    key: String,
    /// The part being filled; at most `PART_SIZE` bytes.
    buf: Vec<u8>,
    /// Set once the first full part has gone (before that the object may still be one PutObject).
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    size: u64,
    /// Finished or aborted: `Drop` has nothing to clean up.
    closed: bool,
    /// A part failed to go and its bytes are gone: only `abort` (or `Drop`) is left.
    failed: bool,
    /// A job checkpointed it: `Drop` leaves the multipart upload for a resumed write (the job's
    /// own cleanup, or the bucket's AbortIncompleteMultipartUpload rule, ends it).
    resumable: bool,
}

impl S3Upload {
    pub(super) fn new(client: Client, bucket: String, key: String) -> Self {
        let (buf, parts) = (Vec::new(), Vec::new());
        Self {
            client,
            bucket,
            key,
            buf,
            upload_id: None,
            parts,
            size: 0,
            closed: false,
            failed: false,
            resumable: false,
        }
    }

    /// Sends `body` as the next part, starting the multipart upload on the first one. Parts are
    /// CRC32-checksummed, declared at creation as S3 requires for per-part checksums.
    async fn upload_part(&mut self, body: Vec<u8>, last: bool) -> StoreResult<()> {
        if !last && body.len() < MIN_PART_SIZE {
            return Err(StoreError::Internal(format!("S3 part of {} bytes is under S3's 5 MiB minimum", body.len())));
        }
        if self.parts.len() >= MAX_PARTS {
            return Err(StoreError::TooLarge(format!("the object exceeds S3's {MAX_PARTS} parts")));
        }
        let part_number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = (self.client.create_multipart_upload().bucket(&self.bucket).key(&self.key))
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .send()
                    .await
                    .map_err(|e| s3_error("CreateMultipartUpload", e))?;
                let id = created
                    .upload_id()
                    .ok_or_else(|| StoreError::Internal("S3 CreateMultipartUpload returned no upload id".into()))?;
                self.upload_id = Some(id.to_owned());
                id.to_owned()
            }
        };
        let out = (self.client.upload_part().bucket(&self.bucket).key(&self.key).upload_id(upload_id))
            .part_number(part_number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("UploadPart", e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    async fn complete(&mut self) -> StoreResult<()> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = ByteStream::from(std::mem::take(&mut self.buf));
            (self.client.put_object().bucket(&self.bucket).key(&self.key).body(body))
                .send()
                .await
                .map_err(|e| s3_error("PutObject", e))?;
            return Ok(());
        };
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.upload_part(last, true).await?;
        }
        let parts = CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.parts))).build();
        (self.client.complete_multipart_upload().bucket(&self.bucket).key(&self.key).upload_id(upload_id))
            .multipart_upload(parts)
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(&mut self) -> StoreResult<()> {
        self.closed = true;
        self.buf = Vec::new();
        let Some(upload_id) = self.upload_id.take() else { return Ok(()) };
        match abort_request(&self.client, &self.bucket, &self.key, &upload_id).await {
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_upload()) => Ok(()),
            other => other.map(|_| ()).map_err(|e| s3_error("AbortMultipartUpload", e)),
        }
    }
}

type AbortResult = Result<AbortMultipartUploadOutput, SdkError<AbortMultipartUploadError>>;

/// Shared by `abort` and `Drop` (which has only owned copies to move into a task).
async fn abort_request(client: &Client, bucket: &str, key: &str, upload_id: &str) -> AbortResult {
    client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id).send().await
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, mut bytes: &[u8]) -> StoreResult<()> {
        if self.closed || self.failed {
            return Err(StoreError::Internal("bundle upload already closed or failed".into()));
        }
        while !bytes.is_empty() {
            // A full part is sent only once more data comes, so an object of exactly one part
            // still goes as a single PutObject.
            if self.buf.len() >= PART_SIZE {
                let part = std::mem::take(&mut self.buf);
                if let Err(e) = self.upload_part(part, false).await {
                    self.failed = true;
                    return Err(e);
                }
            }
            if self.buf.capacity() < PART_SIZE {
                self.buf.reserve_exact(PART_SIZE - self.buf.len());
            }
            let n = (PART_SIZE - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            self.size += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> StoreResult<u64> {
        if self.closed || self.failed {
            let _ = self.abort_multipart().await;
            return Err(StoreError::Internal("bundle upload already closed or failed".into()));
        }
        match self.complete().await {
            Ok(()) => {
                self.closed = true;
                Ok(self.size)
            }
            Err(e) => {
                // Parts already sent cost storage until aborted; the error that matters is `e`.
                let _ = self.abort_multipart().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> StoreResult<()> {
        self.abort_multipart().await
    }

    async fn checkpoint(&mut self) -> StoreResult<Option<serde_json::Value>> {
        if self.closed || self.failed {
            return Err(StoreError::Internal("bundle upload already closed or failed".into()));
        }
        if self.buf.len() >= MIN_PART_SIZE {
            let part = std::mem::take(&mut self.buf);
            if let Err(e) = self.upload_part(part, false).await {
                self.failed = true;
                return Err(e);
            }
        }
        let (Some(upload_id), true) = (&self.upload_id, self.buf.is_empty()) else { return Ok(None) };
        let parts: Vec<serde_json::Value> = self
            .parts
            .iter()
            .map(|p| serde_json::json!({"n": p.part_number(), "etag": p.e_tag(), "crc32": p.checksum_crc32()}))
            .collect();
        let state = serde_json::json!({"upload_id": upload_id, "parts": parts, "size": self.size});
        self.resumable = true;
        Ok(Some(state))
    }

    fn suspend(mut self: Box<Self>) {
        // Not aborted by `Drop`: `resume_upload` goes on with the same multipart upload.
        self.closed = true;
    }
}

impl S3Upload {
    /// The upload a [`checkpoint`](Upload::checkpoint) described, going on after its last part.
    pub(super) fn resume(client: Client, bucket: String, key: String, state: &serde_json::Value) -> StoreResult<Self> {
        let bad = || StoreError::Internal(format!("not a resumable upload of {key:?}: {state}"));
        let upload_id = state.get("upload_id").and_then(serde_json::Value::as_str).ok_or_else(bad)?.to_owned();
        let size = state.get("size").and_then(serde_json::Value::as_u64).ok_or_else(bad)?;
        let mut parts = Vec::new();
        for part in state.get("parts").and_then(serde_json::Value::as_array).ok_or_else(bad)? {
            let n = part.get("n").and_then(serde_json::Value::as_i64).and_then(|n| i32::try_from(n).ok());
            let text = |k: &str| part.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
            parts.push(
                CompletedPart::builder()
                    .part_number(n.ok_or_else(bad)?)
                    .set_e_tag(text("etag"))
                    .set_checksum_crc32(text("crc32"))
                    .build(),
            );
        }
        let mut upload = Self::new(client, bucket, key);
        upload.upload_id = Some(upload_id);
        upload.parts = parts;
        upload.size = size;
        upload.resumable = true;
        Ok(upload)
    }
}

impl Drop for S3Upload {
    /// Abandoned mid-way (an error path, a panic): abort in the background when a runtime is
    /// there; otherwise the bucket's AbortIncompleteMultipartUpload rule gets it.
    fn drop(&mut self) {
        let (false, false, Some(upload_id)) = (self.closed, self.resumable, self.upload_id.take()) else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
            runtime.spawn(async move {
                let _ = abort_request(&client, &bucket, &key, &upload_id).await;
            });
        }
    }
}
