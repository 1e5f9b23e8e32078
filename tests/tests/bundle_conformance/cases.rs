//! The contract every adapter must meet.

use adapter_s3::PART_SIZE;
use shared::bundles::{part_len, SentPart};
use shared::store::StoreError;

use super::support::{get, head, noise, put, sha, soon, stream};
use super::Fixture;

const MIB: usize = 1024 * 1024;

pub async fn streamed_upload_round_trips_and_stays_invisible_until_finished(f: &Fixture) {
    let (key, total) = ("exports/acme/big.json", 20 * MIB + 12_345);
    // Odd-sized writes, so part boundaries fall mid-write.
    let (upload, digest) = stream(f.store.as_ref(), key, total, 100_003).await;
    assert_eq!(head(f.store.as_ref(), key).await, None, "visible before finish");
    assert_eq!(get(f.store.as_ref(), key).await, None, "readable before finish");
    assert_eq!(upload.finish().await.expect("finish"), total as u64);
    assert_eq!(head(f.store.as_ref(), key).await, Some(total as u64));
    let got = get(f.store.as_ref(), key).await.expect("present after finish");
    assert_eq!(got.len(), total);
    assert_eq!(sha(&got), digest, "content differs");
}

pub async fn sizes_around_the_part_boundary_round_trip(f: &Fixture) {
    for size in [0, 1, PART_SIZE - 1, PART_SIZE, PART_SIZE + 1] {
        let key = format!("sizes/{size}.bin");
        let bytes = noise(size as u64, size);
        put(f.store.as_ref(), &key, &bytes).await;
        assert_eq!(head(f.store.as_ref(), &key).await, Some(size as u64), "{key}");
        assert_eq!(get(f.store.as_ref(), &key).await.map(|b| sha(&b)), Some(sha(&bytes)), "{key}");
    }
}

pub async fn abort_leaves_nothing(f: &Fixture) {
    // Past one part, so S3 has a multipart upload to abort.
    let (upload, _) = stream(f.store.as_ref(), "aborted/a.json", PART_SIZE + 3 * MIB, 1_000_003).await;
    upload.abort().await.expect("abort");
    assert_eq!(head(f.store.as_ref(), "aborted/a.json").await, None);
    let (upload, _) = stream(f.store.as_ref(), "aborted/small.json", 10, 10).await;
    upload.abort().await.expect("abort of a one-part upload");
    assert_eq!(head(f.store.as_ref(), "aborted/small.json").await, None);
}

pub async fn a_dropped_upload_leaves_nothing(f: &Fixture) {
    let (upload, _) = stream(f.store.as_ref(), "dropped/a.json", PART_SIZE + MIB, 1 << 20).await;
    drop(upload);
    assert_eq!(head(f.store.as_ref(), "dropped/a.json").await, None);
}

pub async fn get_refuses_objects_over_the_limit(f: &Fixture) {
    put(f.store.as_ref(), "limit/a.json", &[b'x'; 1000]).await;
    let refused = f.store.get("limit/a.json", 999).await;
    assert!(matches!(refused, Err(StoreError::TooLarge(ref m)) if m.contains("1000")), "{refused:?}");
    let api: shared::ApiError = StoreError::TooLarge("x".into()).into();
    assert_eq!(api.status, 413);
    let fits = f.store.get("limit/a.json", 1000).await.expect("at the limit");
    assert_eq!(fits.map(|b| b.len()), Some(1000));
    assert_eq!(f.store.get("limit/absent.json", 0).await.expect("absent"), None);
}

pub async fn absent_keys_are_none_and_delete_is_idempotent(f: &Fixture) {
    assert_eq!(get(f.store.as_ref(), "nope/a.json").await, None);
    assert_eq!(head(f.store.as_ref(), "nope/a.json").await, None);
    f.store.delete("nope/a.json").await.expect("deleting an absent key");
    put(f.store.as_ref(), "del/a.json", b"{}").await;
    f.store.delete("del/a.json").await.expect("delete");
    assert_eq!(head(f.store.as_ref(), "del/a.json").await, None);
    f.store.delete("del/a.json").await.expect("delete again");
}

pub async fn a_second_upload_replaces_the_first(f: &Fixture) {
    put(f.store.as_ref(), "over/a.json", &noise(1, 3 * MIB)).await;
    put(f.store.as_ref(), "over/a.json", b"short").await;
    assert_eq!(get(f.store.as_ref(), "over/a.json").await.as_deref(), Some(&b"short"[..]));
}

pub async fn upload_link_takes_a_plain_put(f: &Fixture) {
    let bytes = noise(7, 3 * MIB + 17);
    let url = f.store.upload_url("uploads/t1/bnd_1.json", soon(), super::BASE).await.expect("upload_url");
    f.follow_put(&url, bytes.clone()).await.unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    let got = get(f.store.as_ref(), "uploads/t1/bnd_1.json").await.expect("uploaded");
    assert_eq!(sha(&got), sha(&bytes));
}

pub async fn download_link_serves_a_plain_get(f: &Fixture) {
    let bytes = noise(8, 2 * MIB + 5);
    put(f.store.as_ref(), "exports/t1/bnd_2.json", &bytes).await;
    let url = f.store.download_url("exports/t1/bnd_2.json", soon(), super::BASE).await.expect("download_url");
    let got = f.follow_get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(sha(&got), sha(&bytes));
}

pub async fn links_must_expire_in_the_future(f: &Fixture) {
    let past = shared::bundles::now_unix() - 1;
    assert!(f.store.download_url("exports/a.json", past, super::BASE).await.is_err());
    assert!(f.store.upload_url("exports/a.json", past, super::BASE).await.is_err());
}

pub async fn blobs_round_trip(f: &Fixture) {
    let bytes = noise(9, 600_000);
    f.store.put_blob("blobs/ws_1/rows/r1", bytes.clone()).await.expect("put_blob");
    assert_eq!(f.store.get_blob("blobs/ws_1/rows/r1").await.expect("get_blob"), Some(bytes));
    f.store.put_blob("blobs/ws_1/rows/r1", b"v2".to_vec()).await.expect("overwrite");
    assert_eq!(f.store.get_blob("blobs/ws_1/rows/r1").await.expect("get_blob"), Some(b"v2".to_vec()));
    f.store.delete_blob("blobs/ws_1/rows/r1").await.expect("delete_blob");
    assert_eq!(f.store.get_blob("blobs/ws_1/rows/r1").await.expect("get_blob"), None);
    f.store.delete_blob("blobs/ws_1/rows/r1").await.expect("delete_blob again");
}

pub async fn unsafe_keys_are_refused(f: &Fixture) {
    for key in ["../escape.json", "a/../../b", "/abs.json", "a\\b", "a//b", "", "a b", ".hidden", "a?b=c"] {
        assert!(f.store.create_upload(key).await.is_err(), "create_upload {key:?}");
        assert!(f.store.get(key, 10).await.is_err(), "get {key:?}");
        assert!(f.store.head(key).await.is_err(), "head {key:?}");
        assert!(f.store.delete(key).await.is_err(), "delete {key:?}");
        assert!(f.store.download_url(key, soon(), super::BASE).await.is_err(), "download_url {key:?}");
        assert!(f.store.put_blob(key, vec![1]).await.is_err(), "put_blob {key:?}");
    }
    assert!(f.store.sweep("../", std::time::Duration::ZERO).await.is_err());
}

pub async fn ranges_read_exactly_their_bytes(f: &Fixture) {
    // Past one part, so a range may cross an S3 part boundary.
    let bytes = noise(10, PART_SIZE + 3 * MIB);
    put(f.store.as_ref(), "ranges/a.json", &bytes).await;
    let len = bytes.len() as u64;
    let boundary = PART_SIZE as u64;
    for (start, end) in [(0, 1), (0, 1000), (17, 4113), (boundary - 5, boundary + 5), (len - 3, len), (0, len)] {
        let got = f.store.read_range("ranges/a.json", start, end).await.expect("read_range");
        assert_eq!(sha(&got), sha(&bytes[start as usize..end as usize]), "{start}..{end}");
    }
    // Clipped to the object, and empty when it starts at or past the end.
    let tail = f.store.read_range("ranges/a.json", len - 2, len + 100).await.expect("past the end");
    assert_eq!(tail, bytes[bytes.len() - 2..].to_vec());
    assert!(f.store.read_range("ranges/a.json", len, len + 10).await.expect("at the end").is_empty());
    assert!(f.store.read_range("ranges/a.json", 5, 5).await.expect("empty").is_empty());
    // An object that is gone is an error, not an empty answer.
    let absent = f.store.read_range("ranges/absent.json", 0, 10).await;
    assert!(matches!(absent, Err(StoreError::Conflict(_))), "{absent:?}");
    assert!(f.store.read_range("../escape.json", 0, 10).await.is_err(), "unsafe key");
}

/// Sends every part of `bytes` to the links of a parted upload of `key`; answers the upload id
/// and the parts as a completion lists them.
async fn send_parts(f: &Fixture, key: &str, bytes: &[u8]) -> (String, Vec<SentPart>) {
    let size = bytes.len() as u64;
    let parted = f.store.parted_upload(key, size, soon(), super::BASE).await.expect("parted upload");
    assert!(parted.part_urls.len() >= 2, "{size} bytes in parts of {}", parted.part_size);
    let mut parts = Vec::new();
    // Last part first: parts may arrive in any order.
    for (i, url) in parted.part_urls.iter().enumerate().rev() {
        let n = i as u64 + 1;
        let start = usize::try_from((n - 1) * parted.part_size).expect("small");
        let end = start + usize::try_from(part_len(size, parted.part_size, n)).expect("small");
        let etag = f.follow_part(url, bytes[start..end].to_vec()).await.expect("part upload");
        parts.push(SentPart { number: u32::try_from(n).expect("small"), etag });
    }
    parts.reverse();
    (parted.upload_id, parts)
}

pub async fn a_parted_upload_through_its_links_round_trips(f: &Fixture) {
    let key = "bundles/t1/parted.json";
    let probe = f.store.parted_upload(key, 1, soon(), super::BASE).await.expect("parted upload");
    let size = probe.part_size + 12_345;
    let bytes = noise(7, usize::try_from(size).expect("small"));
    let (upload_id, parts) = send_parts(f, key, &bytes).await;
    assert_eq!(parts.len(), 2);
    assert_eq!(head(f.store.as_ref(), key).await, None, "visible before completion");
    // A part sent with a length other than its link's is refused: the folder's route checks the
    // signed size; S3 the signed content-length (moto does not check signatures, so the URL's
    // signed headers are checked in `s3_only`).
    if f.signer.is_some() {
        let parted = f.store.parted_upload(key, size, soon(), super::BASE).await.expect("parted upload");
        assert!(f.follow_part(&parted.part_urls[1], vec![b'x'; 10]).await.is_err(), "a part of the wrong length");
    }
    f.store.complete_parts(key, &upload_id, &parts).await.expect("complete");
    assert_eq!(get(f.store.as_ref(), key).await.map(|b| sha(&b)), Some(sha(&bytes)));
    // Completed: completing it again changes nothing (S3 answers it again for a while; the
    // folder's parts are gone, so it is NotFound there).
    let again = f.store.complete_parts(key, &upload_id, &parts).await;
    assert!(matches!(again, Ok(()) | Err(StoreError::NotFound(_))), "{again:?}");
    assert_eq!(get(f.store.as_ref(), key).await.map(|b| sha(&b)), Some(sha(&bytes)));
}

pub async fn a_completion_with_a_wrong_etag_or_a_missing_part_shows_nothing(f: &Fixture) {
    let key = "bundles/t1/wrong.json";
    let probe = f.store.parted_upload(key, 1, soon(), super::BASE).await.expect("parted upload");
    let bytes = noise(3, usize::try_from(probe.part_size + 99).expect("small"));
    let (upload_id, parts) = send_parts(f, key, &bytes).await;
    let mut forged = parts.clone();
    forged[1].etag = format!("\"{}\"", "0".repeat(32));
    let refused = f.store.complete_parts(key, &upload_id, &forged).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
    assert_eq!(head(f.store.as_ref(), key).await, None, "a refused completion left an object");
    let missing = [parts[0].clone(), SentPart { number: 3, etag: parts[1].etag.clone() }];
    assert!(matches!(f.store.complete_parts(key, &upload_id, &missing).await, Err(StoreError::Invalid(_))));
    assert_eq!(head(f.store.as_ref(), key).await, None);
    // The parts were kept: the right list completes it.
    f.store.complete_parts(key, &upload_id, &parts).await.expect("complete after refusals");
    assert_eq!(get(f.store.as_ref(), key).await.map(|b| sha(&b)), Some(sha(&bytes)));
}
