//! Folder-only checks: link tampering, temp files, sweeping by age.

use std::path::Path;
use std::time::{Duration, SystemTime};

use shared::bundles::{now_unix, BundleStore, LinkError, SentPart};
use shared::store::StoreError;

use super::support::{head, put, soon, stream};
use super::{fresh_folder, parse_local_link, Fixture, BASE};

async fn fixture() -> Fixture {
    fresh_folder("folder_only").await.expect("a folder fixture is always available")
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("listing") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

fn root(f: &Fixture) -> std::path::PathBuf {
    f.dir.as_ref().expect("folder fixture").path().join("bundles")
}

fn age(path: &Path, by: Duration) {
    let file = std::fs::File::options().write(true).open(path).expect("opening to age");
    file.set_modified(SystemTime::now() - by).expect("setting mtime");
}

#[tokio::test]
async fn tampered_or_expired_links_are_refused() {
    let f = fixture().await;
    let signer = f.signer.clone().expect("signer");
    put(f.store.as_ref(), "bundles/t1/bnd_1.json", b"{}").await;
    let expires = soon();
    let url = f.store.download_url("bundles/t1/bnd_1.json", expires, BASE).await.expect("download_url");
    assert!(url.starts_with("http://127.0.0.1:9000/jarvispy/_local/bundles/t1/bnd_1.json?expires="), "{url}");
    let (key, exp, sig) = parse_local_link(&url);
    let now = now_unix();
    assert_eq!(signer.verify("GET", &key, exp, &sig, now), Ok(()));
    assert_eq!(
        signer.verify("GET", "bundles/t1/bnd_2.json", exp, &sig, now),
        Err(LinkError::BadSignature),
        "other key"
    );
    assert_eq!(
        signer.verify("GET", "bundles/t2/bnd_1.json", exp, &sig, now),
        Err(LinkError::BadSignature),
        "other tenant"
    );
    assert_eq!(signer.verify("GET", &key, exp + 3600, &sig, now), Err(LinkError::BadSignature), "extended");
    assert_eq!(signer.verify("PUT", &key, exp, &sig, now), Err(LinkError::BadSignature), "GET link used to PUT");
    let mut flipped = sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex");
    assert_eq!(signer.verify("GET", &key, exp, &flipped, now), Err(LinkError::BadSignature), "flipped");
    assert_eq!(signer.verify("GET", &key, exp, "", now), Err(LinkError::BadSignature), "empty");
    assert_eq!(signer.verify("GET", &key, exp, &sig, expires), Err(LinkError::Expired), "at expiry");
    let other = shared::bundles::LinkSigner::new("another-secret");
    assert_eq!(other.verify("GET", &key, exp, &sig, now), Err(LinkError::BadSignature), "other secret");
    let up = f.store.upload_url("bundles/t1/bnd_1.json", expires, BASE).await.expect("upload_url");
    let (_, _, up_sig) = parse_local_link(&up);
    assert_eq!(signer.verify("PUT", &key, exp, &up_sig, now), Ok(()));
    assert_eq!(signer.verify("GET", &key, exp, &up_sig, now), Err(LinkError::BadSignature), "PUT link used to GET");
}

#[tokio::test]
async fn finished_aborted_and_dropped_uploads_leave_no_temp_files() {
    let f = fixture().await;
    let (upload, _) = stream(f.store.as_ref(), "x/a.json", 300_000, 70_001).await;
    assert_eq!(files(&root(&f)).len(), 1, "one temp file while writing");
    upload.finish().await.expect("finish");
    let (upload, _) = stream(f.store.as_ref(), "x/b.json", 300_000, 70_001).await;
    upload.abort().await.expect("abort");
    let (upload, _) = stream(f.store.as_ref(), "x/c.json", 300_000, 70_001).await;
    drop(upload);
    assert_eq!(files(&root(&f)), vec!["x/a.json".to_owned()]);
}

#[tokio::test]
async fn a_key_below_an_existing_object_is_an_error_not_a_panic() {
    let f = fixture().await;
    put(f.store.as_ref(), "a", b"1").await;
    assert!(f.store.create_upload("a/b").await.is_err());
    assert_eq!(f.store.get("a/b", 10).await.expect("get through an object"), None);
    assert_eq!(head(f.store.as_ref(), "a/b").await, None);
    f.store.delete("a/b").await.expect("delete through an object");
    // A key naming a folder is simply absent.
    put(f.store.as_ref(), "d/e", b"1").await;
    assert_eq!(head(f.store.as_ref(), "d").await, None);
    assert_eq!(f.store.get("d", 10).await.expect("get of a folder"), None);
}

#[tokio::test]
async fn sweep_deletes_old_objects_under_the_prefix_only() {
    let f = fixture().await;
    let store: &dyn BundleStore = f.store.as_ref();
    for key in ["exports/acme/old1.json", "exports/acme/deep/old2.json", "exports/acme/new.json"] {
        put(store, key, b"{}").await;
    }
    put(store, "exports/bob/old.json", b"{}").await;
    put(store, "imports/old.json", b"{}").await;
    let (abandoned, _) = stream(store, "exports/acme/crashed.json", 10, 10).await;
    std::mem::forget(abandoned); // a crashed process: its temp file stays behind
    let root = root(&f);
    for rel in files(&root) {
        if !rel.ends_with("new.json") {
            age(&root.join(&rel), Duration::from_secs(7200));
        }
    }
    let swept = store.sweep("exports/ac", Duration::from_secs(3600)).await.expect("sweep");
    assert_eq!(swept, 3, "two old bundles and the stale temp file");
    assert_eq!(files(&root), vec!["exports/acme/new.json", "exports/bob/old.json", "imports/old.json"]);
    assert_eq!(store.sweep("", Duration::from_secs(3600)).await.expect("sweep all"), 2);
    assert_eq!(store.sweep("nothing/here/", Duration::ZERO).await.expect("sweep of an absent folder"), 0);
    assert_eq!(files(&root), vec!["exports/acme/new.json"]);
}

/// Folder only: moto answers a completion of an unknown upload id with a 500 of its own (real
/// S3 answers NoSuchUpload, which the adapter maps to `NotFound` too).
#[tokio::test]
async fn an_unknown_upload_is_not_found() {
    let Some(f) = fresh_folder("unknown_upload").await else { return };
    let key = "bundles/t1/never.json";
    let parts = [SentPart { number: 1, etag: "\"0123456789abcdef0123456789abcdef\"".into() }];
    // An id of the folder's shape (S3 takes any), never started.
    let refused = f.store.complete_parts(key, "0123456789abcdef0123456789abcdef", &parts).await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))), "{refused:?}");
    assert_eq!(head(f.store.as_ref(), key).await, None);
}
