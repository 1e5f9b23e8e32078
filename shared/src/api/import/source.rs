//! Where an import reads its bundle from: the bytes of a request, or a bundle staged in the
//! [`BundleStore`]. The first pass reads it once from the start, as a blocking [`Read`] (run it
//! in `spawn_blocking`); the second reads one chunk's byte range at a time, so neither ever
//! holds the whole bundle.

use std::io::Read;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;

use crate::bundles::DynBundles;
use crate::error::ApiError;
use crate::store::StoreError;

pub type BlockingRead = Box<dyn Read + Send>;

#[async_trait]
pub trait BundleSource: Send + Sync {
    /// The bundle from its first byte. Each pass opens it again.
    async fn open(&self) -> Result<BlockingRead, ApiError>;

    /// Bytes `start..end`, as [`BundleSource::open`] would read them there.
    async fn read_range(&self, start: u64, end: u64) -> Result<Bytes, ApiError>;

    /// How messages name it: `export_data`, or `Bundle '<id>'`.
    fn label(&self) -> String;
}

/// A bundle already in memory (an inline `export_data`).
#[derive(Debug, Clone)]
pub struct MemorySource(pub Bytes);

#[async_trait]
impl BundleSource for MemorySource {
    async fn open(&self) -> Result<BlockingRead, ApiError> {
        Ok(Box::new(std::io::Cursor::new(self.0.clone())))
    }

    async fn read_range(&self, start: u64, end: u64) -> Result<Bytes, ApiError> {
        let len = self.0.len();
        let clip = |at: u64| usize::try_from(at).unwrap_or(usize::MAX).min(len);
        let (start, end) = (clip(start), clip(end));
        Ok(self.0.slice(start..end.max(start)))
    }

    fn label(&self) -> String {
        "export_data".into()
    }
}

/// A bundle staged under `key` in the bundle store (uploaded, or an export of ours).
#[derive(Clone)]
pub struct StoredSource {
    pub bundles: DynBundles,
    pub key: String,
    /// The id the caller named it by, for messages.
    pub bundle_id: String,
    /// Larger objects are refused (413) before a byte is read.
    pub max_bytes: u64,
}

impl StoredSource {
    fn missing(&self) -> ApiError {
        ApiError::not_found(format!("Bundle '{}' not found (never uploaded, or expired)", self.bundle_id))
    }

    fn failed(&self, e: StoreError) -> ApiError {
        match e {
            StoreError::TooLarge(m) => ApiError::too_large(format!("Bundle '{}': {m}", self.bundle_id)),
            // Gone between the passes (expired, or replaced by another upload).
            StoreError::Conflict(_) => self.missing(),
            e => e.into(),
        }
    }
}

#[async_trait]
impl BundleSource for StoredSource {
    async fn open(&self) -> Result<BlockingRead, ApiError> {
        let (size, stream) =
            self.bundles.open_stream(&self.key).await.map_err(|e| self.failed(e))?.ok_or_else(|| self.missing())?;
        if size > self.max_bytes {
            let hint = if self.max_bytes < crate::jobs::import::MAX_JOB_BUNDLE_BYTES {
                format!(
                    "; send the same request with \"async\": true: an import job reads up to {} bytes",
                    crate::jobs::import::MAX_JOB_BUNDLE_BYTES
                )
            } else {
                String::new()
            };
            return Err(ApiError::too_large(format!(
                "Bundle '{}' is {size} bytes, more than the {} an import reads{hint}",
                self.bundle_id, self.max_bytes
            )));
        }
        // A failed read of the store surfaces as an IO error of kind `Other`: the first pass
        // answers it as unavailable (503), never as a malformed bundle.
        let reader = tokio_util::io::StreamReader::new(stream.map_err(std::io::Error::other));
        // Captures the runtime here; the blocking pass then drives the stream from its thread.
        Ok(Box::new(tokio_util::io::SyncIoBridge::new(reader)))
    }

    async fn read_range(&self, start: u64, end: u64) -> Result<Bytes, ApiError> {
        let bytes = self.bundles.read_range(&self.key, start, end).await.map_err(|e| self.failed(e))?;
        Ok(Bytes::from(bytes))
    }

    fn label(&self) -> String {
        format!("Bundle '{}'", self.bundle_id)
    }
}
