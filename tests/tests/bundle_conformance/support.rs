//! Helpers for the cases: deterministic data, whole-object uploads, digests.

use sha2::{Digest, Sha256};
use shared::bundles::{now_unix, BundleStore, Upload};

/// Deterministic incompressible bytes (xorshift64), so big objects need no fixture files and
/// a mix-up of parts shows as a digest mismatch.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    Noise::new(seed).fill(&mut bytes);
    bytes
}

pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A link expiry five minutes ahead.
pub fn soon() -> i64 {
    now_unix() + 300
}

/// Writes `total` bytes of noise in `chunk`-sized writes without finishing; returns the open
/// upload and the digest of what was written.
pub async fn stream(store: &dyn BundleStore, key: &str, total: usize, chunk: usize) -> (Box<dyn Upload>, String) {
    let mut upload = store.create_upload(key).await.unwrap_or_else(|e| panic!("create_upload {key}: {e}"));
    let (mut noise, mut digest, mut buf) = (Noise::new(total as u64), Sha256::new(), vec![0; chunk]);
    let mut left = total;
    while left > 0 {
        let n = chunk.min(left);
        noise.fill(&mut buf[..n]);
        digest.update(&buf[..n]);
        upload.write(&buf[..n]).await.unwrap_or_else(|e| panic!("write to {key} ({left} left): {e}"));
        left -= n;
    }
    (upload, hex::encode(digest.finalize()))
}

/// Uploads `bytes` whole under `key`.
pub async fn put(store: &dyn BundleStore, key: &str, bytes: &[u8]) {
    let mut upload = store.create_upload(key).await.unwrap_or_else(|e| panic!("create_upload {key}: {e}"));
    upload.write(bytes).await.unwrap_or_else(|e| panic!("write {key}: {e}"));
    let size = upload.finish().await.unwrap_or_else(|e| panic!("finish {key}: {e}"));
    assert_eq!(size, bytes.len() as u64, "finish reports the size of {key}");
}

pub async fn get(store: &dyn BundleStore, key: &str) -> Option<Vec<u8>> {
    store.get(key, u64::MAX).await.unwrap_or_else(|e| panic!("get {key}: {e}"))
}

pub async fn head(store: &dyn BundleStore, key: &str) -> Option<u64> {
    store.head(key).await.unwrap_or_else(|e| panic!("head {key}: {e}"))
}
