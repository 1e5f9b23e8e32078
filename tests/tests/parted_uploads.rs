//! Bundles uploaded in parts (`POST /workspaces/bundles {"size"}`, a PUT per part link, `POST
//! /workspaces/bundles/{id}/complete`), on both backends: the folder's signed part links through
//! the local upload route, and S3's presigned UploadPart URLs on the S3-compatible server. What
//! is completed imports like a bundle sent whole; a completion is only ever the uploader's own,
//! and one that does not match its parts shows nothing.

use blackbox_tests::{harness, put_part, sample_bundle, send_parts, Answer, Backend, Client, Harness};
use serde_json::{json, Value};
use shared::routes::Endpoint;

/// The sample bundle padded with whitespace (still the same JSON) past `min_len` bytes, so it
/// needs several parts while its rows stay few (moto is slow per row, not per byte).
fn padded_bundle(min_len: usize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&sample_bundle()).expect("bundle bytes");
    bytes.resize(min_len + 1, b' ');
    bytes
}

async fn create(c: &Client<'_>, size: usize) -> Value {
    c.post(Endpoint::CreateBundleUpload, "/workspaces/bundles", json!({"size": size})).await.ok().clone()
}

async fn complete(c: &Client<'_>, bundle_id: &str, body: Value) -> Answer {
    c.post(Endpoint::CompleteBundleUpload, &format!("/workspaces/bundles/{bundle_id}/complete"), body).await
}

async fn import(c: &Client<'_>, ws: &str, bundle_id: &str) -> Answer {
    let body = json!({"export_data": {"bundle_id": bundle_id}, "workspace_id": ws});
    c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await
}

/// Two parts and a bit, whatever the store's part size.
async fn sent(h: &Harness, c: &Client<'_>) -> (Value, Value, Vec<u8>) {
    let probe = create(c, 1).await;
    let part_size = probe["part_size"].as_u64().expect("part_size") as usize;
    let bytes = padded_bundle(2 * part_size);
    let slot = create(c, bytes.len()).await;
    assert_eq!(slot["parts"].as_array().map(Vec::len), Some(3), "{}", slot["part_size"]);
    let parts = send_parts(&h.app, &slot, &bytes).await;
    (slot, parts, bytes)
}

async fn a_bundle_sent_in_parts_imports_like_one_sent_whole(backend: Backend) {
    let Some(h) = harness(backend, "parted_import", &[]).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    let (slot, parts, _) = sent(&h, &ann).await;
    let bundle_id = slot["bundle_id"].as_str().expect("bundle_id");
    // Not there before it is completed.
    import(&ann, "ws_parted", bundle_id).await.assert_error(404, "not found");
    let done = complete(&ann, bundle_id, json!({"upload_id": slot["upload_id"], "parts": parts})).await;
    assert_eq!(done.ok()["parts"], 3, "{}", done.body);
    let parted = import(&ann, "ws_parted", bundle_id).await;
    let whole = ann
        .post(
            Endpoint::ImportTables,
            "/workspaces/import-tables",
            json!({"export_data": sample_bundle(), "workspace_id": "ws_whole"}),
        )
        .await;
    assert_eq!(parted.ok()["summary"], whole.ok()["summary"]);
    assert!(parted.ok()["summary"]["rows_inserted"].as_u64().unwrap_or(0) > 0, "{}", parted.body);
}

async fn only_the_uploader_completes_and_a_mismatch_shows_nothing(backend: Backend) {
    let Some(h) = harness(backend, "parted_owner", &[]).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    let (slot, parts, _) = sent(&h, &ann).await;
    let bundle_id = slot["bundle_id"].as_str().expect("bundle_id");
    let body = json!({"upload_id": slot["upload_id"], "parts": parts});
    // A member of the same organization and a stranger, with everything Ann's answer held:
    // the bundle id names nothing under their own tenant.
    for other in [Client::new(&h.app, "acme", "bob"), Client::new(&h.app, "evil", "eve")] {
        complete(&other, bundle_id, body.clone()).await.assert_error(404, "");
        import(&other, "ws_x", bundle_id).await.assert_error(404, "not found");
    }
    // A part's ETag that is not the one its PUT answered, or a part never sent: 400, nothing staged.
    let mut forged = parts.clone();
    forged[1]["etag"] = json!(format!("\"{}\"", "0".repeat(32)));
    let a = complete(&ann, bundle_id, json!({"upload_id": slot["upload_id"], "parts": forged})).await;
    assert_eq!(a.status, 400, "{}", a.body);
    import(&ann, "ws_parted", bundle_id).await.assert_error(404, "not found");
    // The parts stay: the right list completes it.
    complete(&ann, bundle_id, body).await.ok();
    import(&ann, "ws_parted", bundle_id).await.ok();
}

async fn bad_requests_name_what_is_wrong(backend: Backend) {
    let Some(h) = harness(backend, "parted_bad", &[]).await else { return };
    let ann = Client::new(&h.app, "acme", "ann");
    let bundles = |body: Value| ann.post(Endpoint::CreateBundleUpload, "/workspaces/bundles", body);
    bundles(json!({"size": 0})).await.assert_error(400, "size");
    bundles(json!({"size": -5})).await.assert_error(400, "size");
    bundles(json!({"size": "big"})).await.assert_error(400, "size");
    bundles(json!({"size": 3u64 << 30})).await.assert_error(400, "size");
    // No size: one link for the whole bundle, as before.
    assert!(bundles(json!({})).await.ok()["upload_url"].is_string());

    let slot = create(&ann, 10).await;
    let id = slot["bundle_id"].as_str().expect("bundle_id");
    let part = json!([{"part_number": 1, "etag": "\"e\""}]);
    complete(&ann, id, json!({"parts": part})).await.assert_error(400, "upload_id");
    complete(&ann, id, json!({"upload_id": slot["upload_id"]})).await.assert_error(400, "parts");
    complete(&ann, id, json!({"upload_id": slot["upload_id"], "parts": []})).await.assert_error(400, "parts");
    let descending = json!([{"part_number": 2, "etag": "a"}, {"part_number": 1, "etag": "b"}]);
    complete(&ann, id, json!({"upload_id": slot["upload_id"], "parts": descending})).await.assert_error(400, "ascend");
    let no_etag = json!([{"part_number": 1}]);
    complete(&ann, id, json!({"upload_id": slot["upload_id"], "parts": no_etag})).await.assert_error(400, "etag");
    let zero = json!([{"part_number": 0, "etag": "a"}]);
    complete(&ann, id, json!({"upload_id": slot["upload_id"], "parts": zero})).await.assert_error(400, "part_number");
    complete(&ann, "nope", json!({"upload_id": "u", "parts": part})).await.assert_error(404, "nope");
}

macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {
        mod embedded { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
            super::$case(super::Backend::Embedded).await;
        })+ }
        mod aws { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
            super::$case(super::Backend::Aws).await;
        })+ }
    };
}

on_both_backends!(
    a_bundle_sent_in_parts_imports_like_one_sent_whole,
    only_the_uploader_completes_and_a_mismatch_shows_nothing,
    bad_requests_name_what_is_wrong,
);

/// The local upload route checks a part link as S3 checks a presigned one: the signed length,
/// number and upload, before anything is stored.
#[tokio::test]
async fn the_local_route_takes_a_part_only_as_signed() {
    let h = harness(Backend::Embedded, "parted_local", &[]).await.expect("embedded");
    let ann = Client::new(&h.app, "acme", "ann");
    let slot = create(&ann, 100).await;
    let url = slot["parts"][0]["url"].as_str().expect("a part url").to_owned();
    let (status, etag) = put_part(&h.app, &url, vec![b' '; 99]).await;
    assert_eq!((status, etag), (400, None), "a part one byte short");
    let (status, _) = put_part(&h.app, &url.replace("partNumber=1", "partNumber=2"), vec![b' '; 100]).await;
    assert_eq!(status, 403, "another part number than signed");
    let (status, _) = put_part(&h.app, &url.replace("size=100", "size=99"), vec![b' '; 99]).await;
    assert_eq!(status, 403, "another size than signed");
    let (status, _) = put_part(&h.app, &url.replace("uploadId=", "uploadId=0"), vec![b' '; 100]).await;
    assert_eq!(status, 403, "another upload than signed");
    // Over the part size, refused before the body is taken (a Lambda event stops at 6 MB).
    let big = create(&ann, 9 * 1024 * 1024).await;
    let url = big["parts"][0]["url"].as_str().expect("a part url").to_owned();
    let (status, _) = put_part(&h.app, &url, vec![b' '; 5 * 1024 * 1024]).await;
    assert_eq!(status, 413);
    let (status, etag) = put_part(&h.app, slot["parts"][0]["url"].as_str().expect("url"), vec![b' '; 100]).await;
    assert_eq!(status, 200);
    assert!(etag.is_some_and(|e| e.starts_with('"') && e.len() == 34));
}
