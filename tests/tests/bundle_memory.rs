//! The bundle store's memory promise, measured: a streamed upload holds about one part
//! (8 MiB) however large the object. A counting allocator tracks the heap's high-water mark
//! while 64 MiB go through each adapter in 100_003-byte writes (its own test binary, and one
//! test, so nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter_s3::{S3Bundles, PART_SIZE};
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::Credentials;
use shared::bundles::folder::FolderBundles;
use shared::bundles::{BundleStore, LinkSigner};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TOTAL: usize = 64 * 1024 * 1024;
const CHUNK: usize = 100_003;

/// Streams `TOTAL` bytes into `store`; returns the heap's peak above where it started.
async fn peak_of_streaming(store: &dyn BundleStore, key: &str) -> usize {
    let chunk = vec![0x5a_u8; CHUNK];
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut upload = store.create_upload(key).await.expect("create_upload");
    let mut left = TOTAL;
    while left > 0 {
        let n = CHUNK.min(left);
        upload.write(&chunk[..n]).await.expect("write");
        left -= n;
    }
    assert_eq!(upload.finish().await.expect("finish"), TOTAL as u64);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    assert_eq!(store.head(key).await.expect("head"), Some(TOTAL as u64));
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_upload_holds_about_one_part() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = FolderBundles::open(dir.path(), LinkSigner::new("m")).expect("folder");
    let peak = peak_of_streaming(&folder, "mem/a.bin").await;
    eprintln!("folder: peak heap {peak} bytes while streaming {TOTAL}");
    assert!(peak < 1024 * 1024, "folder upload peaked at {peak} bytes");

    let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL_S3").ok().filter(|v| !v.trim().is_empty()) else {
        assert_ne!(std::env::var("WORKSPACES_TEST_REQUIRE_AWS").as_deref(), Ok("1"), "AWS_ENDPOINT_URL_S3 is unset");
        eprintln!("SKIP a_streamed_upload_holds_about_one_part (s3): AWS_ENDPOINT_URL_S3 is unset");
        return;
    };
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(Credentials::new("test", "test", None, None, "bundle-memory"))
        .endpoint_url(endpoint)
        .load()
        .await;
    let client = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let s3 = S3Bundles::new(client, format!("bundle-memory-{:x}", nanos % 0xffff_ffff_ffff), "");
    s3.create_bucket_if_missing().await.expect("bucket");
    let peak = peak_of_streaming(&s3, "mem/a.bin").await;
    eprintln!("s3: peak heap {peak} bytes while streaming {TOTAL} ({} parts)", TOTAL.div_ceil(PART_SIZE));
    // One part plus the SDK's small change: a copy of a part anywhere would blow this.
    assert!(peak < PART_SIZE + PART_SIZE / 4, "S3 upload peaked at {peak} bytes, more than one part");
}
