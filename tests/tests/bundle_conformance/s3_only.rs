//! S3-only checks: URL shape, the prefix, multipart bookkeeping, error mapping.

use std::time::Duration;

use adapter_s3::{S3Bundles, ENDPOINT_VAR, PART_SIZE};
use shared::bundles::{now_unix, BundleStore};
use shared::store::StoreError;

use super::support::{put, soon, stream};
use super::{fresh_s3, Fixture, BASE, S3_PREFIX};

async fn pending_uploads(f: &Fixture) -> usize {
    let (client, bucket) = f.s3.as_ref().expect("s3 fixture");
    let out = client.list_multipart_uploads().bucket(bucket).send().await.expect("ListMultipartUploads");
    out.uploads().len()
}

#[tokio::test]
async fn objects_live_under_the_prefix_and_big_ones_are_multipart() {
    let Some(f) = fresh_s3("prefix_multipart").await else { return };
    let (client, bucket) = f.s3.as_ref().expect("s3 fixture");
    let (upload, _) = stream(f.store.as_ref(), "t1/big.json", 2 * PART_SIZE + 1, 65_537).await;
    assert_eq!(pending_uploads(&f).await, 1, "multipart upload under way");
    upload.finish().await.expect("finish");
    put(f.store.as_ref(), "t1/small.json", b"{}").await;
    let head = |key: String| client.head_object().bucket(bucket).key(key).send();
    let big = head(format!("{S3_PREFIX}/t1/big.json")).await.expect("big object under the prefix");
    assert!(big.e_tag().is_some_and(|e| e.trim_matches('"').ends_with("-3")), "3 parts: {:?}", big.e_tag());
    let small = head(format!("{S3_PREFIX}/t1/small.json")).await.expect("small object under the prefix");
    assert!(small.e_tag().is_some_and(|e| !e.contains('-')), "single PutObject: {:?}", small.e_tag());
    assert_eq!(pending_uploads(&f).await, 0);
}

#[tokio::test]
async fn aborted_and_dropped_uploads_leave_no_multipart_upload() {
    let Some(f) = fresh_s3("abort_multipart").await else { return };
    let (upload, _) = stream(f.store.as_ref(), "t1/a.json", PART_SIZE + 1, 1 << 20).await;
    assert_eq!(pending_uploads(&f).await, 1);
    upload.abort().await.expect("abort");
    assert_eq!(pending_uploads(&f).await, 0);
    let (upload, _) = stream(f.store.as_ref(), "t1/b.json", PART_SIZE + 1, 1 << 20).await;
    drop(upload); // aborted in the background
    for _ in 0..50 {
        if pending_uploads(&f).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the dropped upload was not aborted");
}

#[tokio::test]
async fn presigned_urls_are_path_style_capped_at_a_week_and_carry_no_body_checksum() {
    let Some(f) = fresh_s3("presign_shape").await else { return };
    let (_, bucket) = f.s3.as_ref().expect("s3 fixture");
    let far = now_unix() + 30 * 24 * 3600;
    for url in [
        f.store.download_url("t1/a.json", far, BASE).await.expect("download_url"),
        f.store.upload_url("t1/a.json", far, BASE).await.expect("upload_url"),
    ] {
        let parsed = url::Url::parse(&url).expect("a URL");
        assert_eq!(parsed.path(), format!("/{bucket}/{S3_PREFIX}/t1/a.json"), "{url}");
        let query = |name: &str| parsed.query_pairs().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        assert_eq!(query("X-Amz-Expires").as_deref(), Some("604800"), "{url}");
        assert!(query("X-Amz-Signature").is_some(), "{url}");
        // A checksum signed into the URL would be of an empty body and fail the real upload.
        assert!(!parsed.query_pairs().any(|(k, _)| k.to_ascii_lowercase().contains("checksum")), "{url}");
    }
    let url = f.store.download_url("t1/a.json", soon(), BASE).await.expect("download_url");
    assert!(f.follow_get(&url).await.is_err(), "an absent object is not served");
}

#[tokio::test]
async fn sweep_is_left_to_the_lifecycle_rule() {
    let Some(f) = fresh_s3("sweep_noop").await else { return };
    put(f.store.as_ref(), "t1/a.json", b"{}").await;
    assert_eq!(f.store.sweep("t1/", Duration::ZERO).await.expect("sweep"), 0);
    assert!(f.store.head("t1/a.json").await.expect("head").is_some());
}

#[tokio::test]
async fn from_env_goes_path_style_to_a_local_endpoint() {
    let Some(_) = super::s3_endpoint("from_env") else { return };
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        eprintln!("SKIP from_env: AWS_ACCESS_KEY_ID is unset (the suite's own client uses static ones)");
        return;
    }
    let bucket = super::bucket_name("from-env");
    let store = S3Bundles::from_env(&bucket, "p").await;
    assert!(std::env::var(ENDPOINT_VAR).is_ok());
    store.create_bucket_if_missing().await.expect("create bucket through from_env's client");
    put(&store, "t1/a.json", b"{\"a\":1}").await;
    assert_eq!(store.get("t1/a.json", 100).await.expect("get"), Some(b"{\"a\":1}".to_vec()));
}

#[tokio::test]
async fn a_missing_bucket_is_an_internal_error() {
    let Some(endpoint) = super::s3_endpoint("missing_bucket") else { return };
    let store = S3Bundles::new(super::s3_client(&endpoint).await, super::bucket_name("never-created"), "");
    let got = store.get("t1/a.json", 10).await;
    assert!(matches!(got, Err(StoreError::Internal(ref m)) if m.contains("NoSuchBucket")), "{got:?}");
}

/// Needs no server: nothing listens on port 9 locally, so the connection is refused.
#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "bundle-conformance"))
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let client = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let store = S3Bundles::new(client, "any-bucket", "");
    assert!(matches!(store.get("t1/a.json", 10).await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.head("t1/a.json").await, Err(StoreError::Unavailable(_))));
    let mut upload = store.create_upload("t1/a.json").await.expect("nothing is sent yet");
    upload.write(b"{}").await.expect("buffered");
    assert!(matches!(upload.finish().await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn part_urls_sign_their_length_number_and_upload() {
    let Some(f) = fresh_s3("part_urls").await else { return };
    let size = adapter_s3::PART_SIZE as u64 * 2 + 5;
    let parted = f.store.parted_upload("t1/p.json", size, soon(), BASE).await.expect("parted upload");
    assert_eq!(parted.part_size, adapter_s3::PART_SIZE as u64);
    assert_eq!(parted.part_urls.len(), 3);
    for (i, url) in parted.part_urls.iter().enumerate() {
        let parsed = url::Url::parse(url).expect("a URL");
        let query = |name: &str| parsed.query_pairs().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        assert_eq!(query("partNumber").as_deref(), Some((i + 1).to_string().as_str()), "{url}");
        assert_eq!(query("uploadId").as_deref(), Some(parted.upload_id.as_str()), "{url}");
        // S3 refuses a body of another length than the signed one (moto does not check).
        let signed = query("X-Amz-SignedHeaders").unwrap_or_default();
        assert!(signed.split(';').any(|h| h == "content-length"), "content-length is not signed: {url}");
        assert!(!parsed.query_pairs().any(|(k, _)| k.to_ascii_lowercase().contains("checksum")), "{url}");
    }
    // Larger objects get larger parts, so no upload needs more than S3's 10,000.
    let huge = f.store.parted_upload("t1/h.json", 200 * 1024 * 1024 * 1024, soon(), BASE).await.expect("parted");
    assert!(huge.part_urls.len() <= adapter_s3::MAX_PARTS, "{} parts", huge.part_urls.len());
    assert!(huge.part_size * huge.part_urls.len() as u64 >= 200 * 1024 * 1024 * 1024);
}
