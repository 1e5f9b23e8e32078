//! The bundle store's contract, run against both adapters: a folder on a fresh temp dir, and
//! S3 on a fresh bucket (moto locally; set `AWS_ENDPOINT_URL_S3`). Each case in `cases` takes a
//! `&Fixture`; `conformance!` turns every case into one `#[tokio::test]` per adapter.
//!
//! Links are followed the way a client would: S3's presigned URLs with a plain HTTP request and
//! no credentials; the folder's signed links by checking them with `LinkSigner::verify` and
//! then doing what the local bundle route does (the route itself is tested with the API).
//! Adapter-only checks (tampered links, sweeping, S3 URL shape) live in `folder_only`/`s3_only`.

use std::sync::atomic::{AtomicU32, Ordering};

use adapter_s3::S3Bundles;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::Credentials;
use shared::bundles::folder::FolderBundles;
use shared::bundles::links::LOCAL_BUNDLE_PATH;
use shared::bundles::{now_unix, BundleStore, LinkSigner};

const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_S3";
const S3_PREFIX: &str = "conf/v1";
const BASE: &str = "http://127.0.0.1:9000";

/// A store, how its links are followed, and whatever must outlive it.
pub struct Fixture {
    store: Box<dyn BundleStore>,
    /// `Some` for the folder: links are verified with it, then served from the store.
    signer: Option<LinkSigner>,
    dir: Option<tempfile::TempDir>,
    s3: Option<(aws_sdk_s3::Client, String)>,
}

async fn fresh_folder(_case: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let signer = LinkSigner::new("conformance-link-secret");
    let store = FolderBundles::open(&dir.path().join("bundles"), signer.clone()).expect("opening the folder");
    Some(Fixture { store: Box::new(store), signer: Some(signer), dir: Some(dir), s3: None })
}

async fn fresh_s3(case: &str) -> Option<Fixture> {
    let endpoint = s3_endpoint(case)?;
    let client = s3_client(&endpoint).await;
    let bucket = bucket_name(case);
    let store = S3Bundles::new(client.clone(), bucket.clone(), S3_PREFIX);
    store.create_bucket_if_missing().await.unwrap_or_else(|e| panic!("creating bucket {bucket} at {endpoint}: {e}"));
    Some(Fixture { store: Box::new(store), signer: None, dir: None, s3: Some((client, bucket)) })
}

fn s3_endpoint(case: &str) -> Option<String> {
    blackbox_tests::aws_endpoint(ENDPOINT_VAR, case, "s3")
}

/// Static dummy credentials, a fixed region and path-style requests (as `from_env` does when
/// `AWS_ENDPOINT_URL_S3` is set), so the suite never touches real AWS configuration.
async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(Credentials::new("test", "test", None, None, "bundle-conformance"))
        .endpoint_url(endpoint)
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build())
}

/// A unique, valid bucket name (lowercase, at most 63 characters) per case and run.
fn bucket_name(case: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let case: String = case.chars().take(24).map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("bc-{case}-{:x}-{:x}", std::process::id() ^ seq, nanos % 0xffff_ffff).to_lowercase()
}

/// A blocking HTTP agent that reports 4xx/5xx as statuses rather than errors.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// Parses a folder link into (key, expires, signature); panics on a malformed one.
fn parse_local_link(url: &str) -> (String, i64, String) {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("link {url}: {e}"));
    let key = parsed.path().strip_prefix(LOCAL_BUNDLE_PATH).unwrap_or_else(|| panic!("link path {url}")).to_owned();
    let query = |name: &str| parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let expires = query("expires").and_then(|e| e.parse().ok()).unwrap_or_else(|| panic!("expires in {url}"));
    (key, expires, query("signature").unwrap_or_else(|| panic!("signature in {url}")))
}

impl Fixture {
    /// GETs a download link with no credentials; `Err` carries the refusal.
    async fn follow_get(&self, url: &str) -> Result<Vec<u8>, String> {
        if let Some(signer) = &self.signer {
            let (key, expires, signature) = parse_local_link(url);
            signer.verify("GET", &key, expires, &signature, now_unix()).map_err(|e| e.to_string())?;
            return self.store.get(&key, u64::MAX).await.map_err(|e| e.to_string())?.ok_or("not found".into());
        }
        let url = url.to_owned();
        let got = tokio::task::spawn_blocking(move || {
            let mut resp = agent().get(&url).call().map_err(|e| e.to_string())?;
            let body = resp.body_mut().with_config().limit(1 << 30).read_to_vec().map_err(|e| e.to_string())?;
            match resp.status().as_u16() {
                200 => Ok(body),
                status => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
            }
        });
        got.await.expect("GET task")
    }

    /// PUTs `bytes` to an upload link with no credentials.
    async fn follow_put(&self, url: &str, bytes: Vec<u8>) -> Result<(), String> {
        if let Some(signer) = &self.signer {
            let (key, expires, signature) = parse_local_link(url);
            signer.verify("PUT", &key, expires, &signature, now_unix()).map_err(|e| e.to_string())?;
            let mut upload = self.store.create_upload(&key).await.map_err(|e| e.to_string())?;
            upload.write(&bytes).await.map_err(|e| e.to_string())?;
            return upload.finish().await.map(|_| ()).map_err(|e| e.to_string());
        }
        let url = url.to_owned();
        let put = tokio::task::spawn_blocking(move || {
            let mut resp = agent().put(&url).send(&bytes[..]).map_err(|e| e.to_string())?;
            match resp.status().as_u16() {
                200 => Ok(()),
                status => Err(format!("{status}: {}", resp.body_mut().read_to_string().unwrap_or_default())),
            }
        });
        put.await.expect("PUT task")
    }
}

impl Fixture {
    /// PUTs one part to its link with no credentials and answers the ETag header. The folder's
    /// link is checked as the local route checks it (signature over its query, exact size),
    /// then stored with `upload_part`, as the route does.
    async fn follow_part(&self, url: &str, bytes: Vec<u8>) -> Result<String, String> {
        if let Some(signer) = &self.signer {
            let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
            let query = |name: &str| parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
            let (key, expires, signature) = parse_local_link(url);
            let extra: Vec<(&str, String)> = ["uploadId", "partNumber", "size"]
                .into_iter()
                .map(|name| (name, query(name).unwrap_or_default()))
                .collect();
            signer.verify_with("PUT", &key, &extra, expires, &signature, now_unix()).map_err(|e| e.to_string())?;
            if extra[2].1 != bytes.len().to_string() {
                return Err(format!("signed for {} bytes, sent {}", extra[2].1, bytes.len()));
            }
            let number: u32 = extra[1].1.parse().map_err(|_| "part number".to_owned())?;
            return self.store.upload_part(&key, &extra[0].1, number, &bytes).await.map_err(|e| e.to_string());
        }
        let url = url.to_owned();
        let put = tokio::task::spawn_blocking(move || {
            let mut resp = agent().put(&url).send(&bytes[..]).map_err(|e| e.to_string())?;
            match resp.status().as_u16() {
                200 => resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| "no ETag header".to_owned()),
                status => Err(format!("{status}: {}", resp.body_mut().read_to_string().unwrap_or_default())),
            }
        });
        put.await.expect("PUT task")
    }
}

/// Instantiates every case for one adapter: `conformance!(module, fresh_fn)` where
/// `fresh_fn(case_name).await` gives `Option<Fixture>` (`None` = skipped).
macro_rules! conformance {
    ($adapter:ident, $fresh:path) => {
        conformance!(@cases $adapter, $fresh;
            streamed_upload_round_trips_and_stays_invisible_until_finished,
            sizes_around_the_part_boundary_round_trip,
            abort_leaves_nothing,
            a_dropped_upload_leaves_nothing,
            get_refuses_objects_over_the_limit,
            absent_keys_are_none_and_delete_is_idempotent,
            a_second_upload_replaces_the_first,
            upload_link_takes_a_plain_put,
            download_link_serves_a_plain_get,
            links_must_expire_in_the_future,
            blobs_round_trip,
            unsafe_keys_are_refused,
            ranges_read_exactly_their_bytes,
            a_parted_upload_through_its_links_round_trips,
            a_completion_with_a_wrong_etag_or_a_missing_part_shows_nothing,
        );
    };
    (@cases $adapter:ident, $fresh:path; $($case:ident),+ $(,)?) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = $fresh(stringify!($case)).await else { return };
                    crate::cases::$case(&fixture).await;
                }
            )+
        }
    };
}

conformance!(folder, crate::fresh_folder);
conformance!(s3, crate::fresh_s3);

#[path = "bundle_conformance/cases.rs"]
mod cases;
#[path = "bundle_conformance/folder_only.rs"]
mod folder_only;
#[path = "bundle_conformance/s3_only.rs"]
mod s3_only;
#[path = "bundle_conformance/support.rs"]
mod support;
