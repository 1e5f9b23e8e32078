//! The AWS adapter: one S3 object per key under `prefix` in `bucket`.
//!
//! Uploads stream as multipart uploads of [`PART_SIZE`] parts, so a Lambda holds one part in
//! memory however large the bundle; an object that fits in one part is a single PutObject.
//! Links are SigV4-presigned URLs. Expiry of old bundles and of abandoned multipart uploads is
//! left to the bucket's lifecycle rules (`template.yaml`), hence `sweep` does nothing here.

use std::error::Error as StdError;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::Client;

use shared::bundles::{
    bare_etag, check_key, check_prefix, lifetime, part_count, part_len, BundleStore, PartedUpload, SentPart, Upload,
};
use shared::store::{Blobs, StoreError, StoreResult};

mod upload;

/// The size of every part but the last: what one upload holds in memory.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's minimum for every part but the last; real S3 rejects smaller ones only at completion.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's maximum number of parts (so one streamed object stops at 80 GiB).
pub const MAX_PARTS: usize = 10_000;
/// S3's longest presigned URL lifetime.
pub const MAX_LINK_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Setting it means a local S3 server, which needs path-style requests.
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_S3";

const _: () = assert!(PART_SIZE >= MIN_PART_SIZE);

#[derive(Debug, Clone)]
pub struct S3Bundles {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Bundles {
    /// A store with the SDK's default configuration chain; with `AWS_ENDPOINT_URL_S3` set,
    /// requests are path-style (local servers such as moto have no per-bucket host names).
    pub async fn from_env(bucket: &str, prefix: &str) -> S3Bundles {
        let mut config = aws_sdk_s3::config::Builder::from(adapter_aws::sdk_config().await);
        if std::env::var(ENDPOINT_VAR).is_ok_and(|v| !v.trim().is_empty()) {
            config = config.force_path_style(true);
        }
        Self::new(Client::from_conf(config.build()), bucket, prefix)
    }

    /// `prefix` is prepended to every key (`<prefix>/<key>`); empty for none.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: &str) -> Self {
        Self { client, bucket: bucket.into(), prefix: prefix.trim_matches('/').to_owned() }
    }

    /// Creates the bucket unless it exists. For tests and local runs; AWS gets it from the template.
    pub async fn create_bucket_if_missing(&self) -> StoreResult<()> {
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        // us-east-1 is the one region that refuses an explicit location constraint.
        if let Some(region) = self.client.config().region().map(|r| r.as_ref()).filter(|r| *r != "us-east-1") {
            let location = BucketLocationConstraint::from(region);
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder().location_constraint(location).build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()) =>
            {
                Ok(())
            }
            Err(e) => Err(s3_error("CreateBucket", e)),
        }
    }

    fn object_key(&self, key: &str) -> StoreResult<String> {
        check_key(key)?;
        Ok(if self.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.prefix) })
    }

    /// Lifetime capped at S3's week. Links signed with temporary credentials (a Lambda role's)
    /// also die with those credentials, so keep `WORKSPACES_BUNDLE_TTL_SECS` to an hour or so.
    fn presigning(expires_at: i64) -> StoreResult<PresigningConfig> {
        PresigningConfig::expires_in(lifetime(expires_at)?.min(MAX_LINK_LIFETIME))
            .map_err(|e| StoreError::Internal(format!("S3 presigning: {e}")))
    }
}

/// Like the DynamoDB adapter's mapping: throttling, timeouts and network failures are
/// `Unavailable` (retryable), the rest `Internal`.
pub(crate) fn s3_error<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: Debug,
{
    const RETRYABLE: &[&str] =
        &["SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "ThrottlingException"];
    adapter_aws::sdk_error("S3", op, err, RETRYABLE)
}

/// [`PART_SIZE`], or larger (in whole MiB) when the object would need more than [`MAX_PARTS`].
/// Larger than S3 takes (a part at most 5 GiB) is `TooLarge`.
fn parted_part_size(size: u64) -> StoreResult<u64> {
    const MIB: u64 = 1024 * 1024;
    if size == 0 {
        return Err(StoreError::Invalid("a parted upload needs at least one byte".into()));
    }
    let needed = size.div_ceil(MAX_PARTS as u64).div_ceil(MIB) * MIB;
    let part_size = needed.max(PART_SIZE as u64);
    if part_size > 5 * 1024 * MIB {
        return Err(StoreError::TooLarge(format!("{size} bytes is more than S3 takes in one object")));
    }
    Ok(part_size)
}

fn no_such_upload(upload_id: &str) -> StoreError {
    StoreError::NotFound(format!("no upload {upload_id} of this bundle (never started, completed or expired)"))
}

fn too_large(size: u64, max_bytes: u64) -> StoreError {
    StoreError::TooLarge(format!("the object is {size} bytes, more than the {max_bytes} allowed here"))
}

#[async_trait]
impl BundleStore for S3Bundles {
    async fn create_upload(&self, key: &str) -> StoreResult<Box<dyn Upload>> {
        Ok(Box::new(upload::S3Upload::new(self.client.clone(), self.bucket.clone(), self.object_key(key)?)))
    }

    async fn resume_upload(&self, key: &str, state: &serde_json::Value) -> StoreResult<Box<dyn Upload>> {
        let upload = upload::S3Upload::resume(self.client.clone(), self.bucket.clone(), self.object_key(key)?, state)?;
        Ok(Box::new(upload))
    }

    async fn open_stream(&self, key: &str) -> StoreResult<Option<(u64, shared::bundles::ByteStream)>> {
        use futures::StreamExt;
        let key = self.object_key(key)?;
        let out = match self.client.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_error("GetObject", e)),
        };
        let size = out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        // Ends after the first error: a broken body is not retried mid-stream.
        let chunks = futures::stream::unfold(Some(out.body), move |body| {
            let key = key.clone();
            async move {
                let mut body = body?;
                match body.next().await? {
                    Ok(chunk) => Some((Ok(chunk), Some(body))),
                    Err(e) => Some((Err(StoreError::Unavailable(format!("S3 GetObject {key}: body: {e}"))), None)),
                }
            }
        });
        Ok(Some((size, chunks.boxed())))
    }

    async fn get(&self, key: &str, max_bytes: u64) -> StoreResult<Option<Vec<u8>>> {
        let key = self.object_key(key)?;
        let out = match self.client.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_error("GetObject", e)),
        };
        let announced = out.content_length().and_then(|n| u64::try_from(n).ok());
        if let Some(size) = announced.filter(|size| *size > max_bytes) {
            return Err(too_large(size, max_bytes));
        }
        let capacity = announced.unwrap_or(0).min(max_bytes);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut body = out.body;
        while let Some(chunk) =
            body.try_next().await.map_err(|e| StoreError::Unavailable(format!("S3 GetObject {key}: body: {e}")))?
        {
            let size = (bytes.len() + chunk.len()) as u64;
            if size > max_bytes {
                return Err(too_large(size, max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    async fn read_range(&self, key: &str, start: u64, end: u64) -> StoreResult<Vec<u8>> {
        let object = self.object_key(key)?;
        if start >= end {
            return Ok(Vec::new());
        }
        // HTTP ranges are inclusive.
        let range = format!("bytes={start}-{}", end - 1);
        let out = match self.client.get_object().bucket(&self.bucket).key(&object).range(range).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(shared::bundles::gone(key))
            }
            // A range starting past the end (416): nothing there, as the folder answers.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => return Ok(Vec::new()),
            Err(e) => return Err(s3_error("GetObject", e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("S3 GetObject {object}: body: {e}")))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn head(&self, key: &str) -> StoreResult<Option<u64>> {
        let key = self.object_key(key)?;
        match self.client.head_object().bucket(&self.bucket).key(&key).send().await {
            Ok(out) => Ok(Some(out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0))),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error("HeadObject", e)),
        }
    }

    async fn download_url(&self, key: &str, expires_at: i64, _public_base: &str) -> StoreResult<String> {
        let request = self.client.get_object().bucket(&self.bucket).key(self.object_key(key)?);
        let presigned =
            request.presigned(Self::presigning(expires_at)?).await.map_err(|e| s3_error("presigning GetObject", e))?;
        Ok(presigned.uri().to_owned())
    }

    async fn upload_url(&self, key: &str, expires_at: i64, _public_base: &str) -> StoreResult<String> {
        let request = self.client.put_object().bucket(&self.bucket).key(self.object_key(key)?);
        let presigned =
            request.presigned(Self::presigning(expires_at)?).await.map_err(|e| s3_error("presigning PutObject", e))?;
        Ok(presigned.uri().to_owned())
    }

    /// One CreateMultipartUpload; the URLs are presigned here, with no further request. Each
    /// part URL signs its part's `content-length`, so S3 refuses a part of another length.
    async fn parted_upload(
        &self,
        key: &str,
        size: u64,
        expires_at: i64,
        _public_base: &str,
    ) -> StoreResult<PartedUpload> {
        let object = self.object_key(key)?;
        let presigning = Self::presigning(expires_at)?;
        let part_size = parted_part_size(size)?;
        let created = (self.client.create_multipart_upload().bucket(&self.bucket).key(&object))
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StoreError::Internal("S3 CreateMultipartUpload returned no upload id".into()))?
            .to_owned();
        let mut part_urls = Vec::new();
        for n in 1..=part_count(size, part_size) {
            let len = i64::try_from(part_len(size, part_size, n)).unwrap_or(i64::MAX);
            let request = (self.client.upload_part().bucket(&self.bucket).key(&object).upload_id(&upload_id))
                .part_number(i32::try_from(n).unwrap_or(i32::MAX))
                .content_length(len);
            let presigned =
                request.presigned(presigning.clone()).await.map_err(|e| s3_error("presigning UploadPart", e))?;
            part_urls.push(presigned.uri().to_owned());
        }
        Ok(PartedUpload { upload_id, part_size, part_urls })
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part_number: u32, bytes: &[u8]) -> StoreResult<String> {
        let object = self.object_key(key)?;
        let out = (self.client.upload_part().bucket(&self.bucket).key(&object).upload_id(upload_id))
            .part_number(i32::try_from(part_number).unwrap_or(i32::MAX))
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await;
        match out {
            Ok(out) => {
                out.e_tag().map(str::to_owned).ok_or_else(|| StoreError::Internal("S3 UploadPart: no ETag".into()))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.code() == Some("NoSuchUpload")) => {
                Err(no_such_upload(upload_id))
            }
            Err(e) => Err(s3_error("UploadPart", e)),
        }
    }

    async fn complete_parts(&self, key: &str, upload_id: &str, parts: &[SentPart]) -> StoreResult<()> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let object = self.object_key(key)?;
        let completed = parts
            .iter()
            .map(|p| {
                let number = i32::try_from(p.number).unwrap_or(i32::MAX);
                CompletedPart::builder().part_number(number).e_tag(format!("\"{}\"", bare_etag(&p.etag))).build()
            })
            .collect();
        let out = (self.client.complete_multipart_upload().bucket(&self.bucket).key(&object).upload_id(upload_id))
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await;
        let Err(e) = out else { return Ok(()) };
        let code = e.as_service_error().and_then(|e| e.code()).unwrap_or_default().to_owned();
        let said = e.as_service_error().and_then(|e| e.message()).unwrap_or_default().to_owned();
        match code.as_str() {
            "NoSuchUpload" => Err(no_such_upload(upload_id)),
            "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "MalformedXML" => {
                Err(StoreError::Invalid(format!("S3 refused the completion ({code}): {said}")))
            }
            _ => Err(s3_error("CompleteMultipartUpload", e)),
        }
    }

    async fn sweep(&self, prefix: &str, _max_age: Duration) -> StoreResult<usize> {
        check_prefix(prefix)?;
        Ok(0)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let key = self.object_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", e))?;
        Ok(())
    }
}

#[async_trait]
impl Blobs for S3Bundles {
    async fn put_blob(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let key = self.object_key(key)?;
        let body = ByteStream::from(bytes);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(body)
            .send()
            .await
            .map_err(|e| s3_error("PutObject", e))?;
        Ok(())
    }

    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.get(key, u64::MAX).await
    }

    async fn delete_blob(&self, key: &str) -> StoreResult<()> {
        self.delete(key).await
    }
}

/// What a function's `main` links to serve `s3://` bundle stores (`shared::Links`).
pub static LINK: Link = Link;

pub struct Link;

#[async_trait]
impl shared::app::S3Link for Link {
    async fn bundles(&self, bucket: &str, prefix: &str) -> Result<shared::bundles::DynBundles, String> {
        Ok(std::sync::Arc::new(S3Bundles::from_env(bucket, prefix).await))
    }

    async fn provision(&self, bucket: &str) -> Result<(), String> {
        S3Bundles::from_env(bucket, "").await.create_bucket_if_missing().await.map_err(|e| e.to_string())
    }
}
