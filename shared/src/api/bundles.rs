//! Staged bundles: where large exports go and large imports come from.
//!
//! A bundle's object key is `bundles/<tenant>/<bundle_id>.json` (one prefix, so a bucket
//! lifecycle rule can expire them), the tenant being a hash of the caller's
//! own (user) owner key: a bundle id is only ever looked up under the caller's tenant, so
//! another tenant's id is simply not found.

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{body, Call, Reply};
use crate::app::App;
use crate::bundles::{bare_etag, part_len, SentPart};
use crate::error::ApiError;
use crate::model::{format_timestamp, new_id, Principal, Scope};

pub const BUNDLE_PREFIX: &str = "bundles/";
/// Largest bundle we take: uploaded in parts, or read back by an import (which streams it, so
/// memory does not grow with it).
pub const MAX_BUNDLE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Largest bundle the local upload route takes in one PUT (it holds the body in memory); larger
/// ones go up in parts (`POST /workspaces/bundles {"size": ...}`), as in AWS.
pub const MAX_WHOLE_UPLOAD_BYTES: u64 = 256 * 1024 * 1024;
/// S3's most parts in one upload: a completion listing more is refused before S3 is asked.
pub const MAX_PARTS: usize = 10_000;

pub fn tenant(principal: &Principal) -> String {
    let digest = Sha256::digest(principal.owner(Scope::User).key().as_bytes());
    format!("t{}", &hex::encode(digest)[..24])
}

pub fn new_bundle_id() -> String {
    new_id("bnd_", 24)
}

pub fn bundle_key(tenant: &str, bundle_id: &str) -> String {
    format!("{BUNDLE_PREFIX}{tenant}/{bundle_id}.json")
}

/// Where a job keeps what it needs between invocations (an import's plan, its copy of an inline
/// bundle): `bundles/jobs/<tenant>/<id>/<name>.json`. Outside every tenant's own folder (tenants
/// are `t<hex>`), so sweeping expired links never takes them from a running job; the job
/// deletes them when it ends, and the bucket's lifecycle rule (8 days) catches what it could not.
pub fn job_artefact_key(tenant: &str, id: &str, name: &str) -> String {
    format!("{BUNDLE_PREFIX}jobs/{tenant}/{id}/{name}.json")
}

/// A job's artefacts outlive none of its runs: the job ends within `MAX_JOB_TTL_SECS` and is
/// kept that long again at most (the lifecycle rule's 8 days, for the folder).
const JOB_ARTEFACT_MAX_AGE_SECS: u64 = 8 * 24 * 3600;

fn valid_bundle_id(id: &str) -> bool {
    id.strip_prefix("bnd_").is_some_and(|h| !h.is_empty() && h.len() <= 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

pub fn expires_at(app: &App) -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + app.config.bundle_ttl_secs as i64
}

pub fn timestamp_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(format_timestamp).unwrap_or_default()
}

/// Where an import's bundle is: in the request, or staged under the caller's tenant.
#[derive(Debug)]
pub enum ExportData {
    Inline(Value),
    Staged { key: String, bundle_id: String },
}

/// `export_data` as sent may be the bundle, the whole export answer (envelope), a staged export
/// answer (`bundle.id`) or `{"bundle_id": ...}`: says where the bundle itself is. A staged one
/// is never loaded here (the import streams it; see `api::import::source`).
pub fn resolve_export_data(principal: &Principal, mut data: Value) -> Result<ExportData, ApiError> {
    // Envelopes are unwrapped as many times as before (a stored object's own envelope is
    // unwrapped by the import's reader).
    for _ in 0..4 {
        if data.get("status").is_some() && data.get("data").is_some_and(Value::is_object) {
            data = data.get_mut("data").map(Value::take).unwrap_or_default();
            continue;
        }
        // A staged answer also has `projects` (their summaries only): its `bundle` wins.
        let staged_id = data
            .get("bundle_id")
            .or_else(|| data.get("bundle").and_then(|b| b.get("id")))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(id) = staged_id {
            if !valid_bundle_id(&id) {
                return Err(ApiError::unprocessable(format!("bundle_id: '{id}' is not a bundle id")));
            }
            return Ok(ExportData::Staged { key: bundle_key(&tenant(principal), &id), bundle_id: id });
        }
        if data.get("projects").is_some() || data.get("tables").is_some() {
            return Ok(ExportData::Inline(data));
        }
        break;
    }
    Err(ApiError::unprocessable("export_data: not a workspace export (no 'projects' or 'tables', no 'bundle_id')"))
}

/// Removes the caller's bundles whose links have expired. Best effort: a failure is logged,
/// never the request's. S3 answers 0 (a bucket lifecycle rule expires bundles there).
pub async fn sweep_expired(app: &App, principal: &Principal) {
    let prefix = format!("{BUNDLE_PREFIX}{}/", tenant(principal));
    let max_age = std::time::Duration::from_secs(app.config.bundle_ttl_secs);
    if let Err(e) = app.bundles.sweep(&prefix, max_age).await {
        tracing::warn!(error = %e, "sweeping expired bundles failed");
    }
    let jobs = format!("{BUNDLE_PREFIX}jobs/{}/", tenant(principal));
    if let Err(e) = app.bundles.sweep(&jobs, std::time::Duration::from_secs(JOB_ARTEFACT_MAX_AGE_SECS)).await {
        tracing::warn!(error = %e, "sweeping abandoned job artefacts failed");
    }
}

/// The body of `POST /workspaces/bundles`; it may be empty.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct UploadRequest {
    /// The bundle's size in bytes: asks for a parted upload (part URLs and a completion URL),
    /// so no one request carries the whole bundle. Without it: one URL to PUT the whole bundle.
    size: Option<u64>,
}

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// `POST /workspaces/bundles`: where to upload a bundle too large for a request body, whole
/// (one PUT) or, given its `size`, in parts (the store's multipart protocol; see
/// [`crate::bundles::PartedUpload`]).
pub async fn create_upload(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let input: UploadRequest = body::parse_or_default(&call.body)?;
    match input.size {
        Some(0) => return Err(ApiError::bad_request("size: a bundle has at least one byte")),
        // A 400 like any other out-of-range field: the document declares the maximum.
        Some(size) if size > MAX_BUNDLE_BYTES => {
            return Err(ApiError::bad_request(format!(
                "size: {size} bytes is more than the {} MiB a bundle may be",
                mib(MAX_BUNDLE_BYTES)
            )))
        }
        _ => {}
    }
    sweep_expired(app, principal).await;
    let bundle_id = new_bundle_id();
    let key = bundle_key(&tenant(principal), &bundle_id);
    let expires = expires_at(app);
    let import_with = format!("then import with {{\"export_data\": {{\"bundle_id\": \"{bundle_id}\"}}}}");
    let Some(size) = input.size else {
        let url = app.bundles.upload_url(&key, expires, &call.public_base).await?;
        return Ok(Reply::ok(
            json!({"bundle_id": bundle_id, "upload_url": url, "method": "PUT", "expires_at": timestamp_of(expires)}),
            format!("PUT the bundle to upload_url before it expires, {import_with}"),
        ));
    };
    let parted = app.bundles.parted_upload(&key, size, expires, &call.public_base).await?;
    record_upload(app, &key, &parted.upload_id).await?;
    let parts: Vec<Value> = (parted.part_urls.into_iter().enumerate())
        .map(|(i, url)| {
            let n = i as u64 + 1;
            json!({"part_number": n, "size": part_len(size, parted.part_size, n), "url": url})
        })
        .collect();
    let count = parts.len();
    Ok(Reply::ok(
        json!({
            "bundle_id": bundle_id,
            "size": size,
            "part_size": parted.part_size,
            "method": "PUT",
            "parts": parts,
            "upload_id": parted.upload_id,
            "complete_path": format!("/workspaces/bundles/{bundle_id}/complete"),
            "expires_at": timestamp_of(expires),
        }),
        format!(
            "PUT each of the {count} parts (exactly its size, in any order) to its url and keep the ETag header \
             of each answer, before the links expire; then POST {{\"upload_id\", \"parts\": [{{\"part_number\", \
             \"etag\"}}]}} to complete_path (below /api/v1, with your token); {import_with}"
        ),
    ))
}

/// Checks a local-only link's signature and expiry; returns the object key it grants. `extra`
/// are the signed query pairs of a part link (`uploadId`, `partNumber`, `size`) or of a
/// completion link (`uploadId`), each of which must be in the query.
pub fn verify_link(app: &App, method: &str, extra: &[&str], call: &Call) -> Result<String, ApiError> {
    let tenant = call.param("tenant")?;
    let bundle = call.param("bundle")?;
    let key = format!("{BUNDLE_PREFIX}{tenant}/{bundle}");
    let unsigned = || ApiError::forbidden("This link is not signed");
    let expires: i64 = call.query("expires").and_then(|e| e.parse().ok()).ok_or_else(unsigned)?;
    let signature = call.query("signature").ok_or_else(unsigned)?;
    let extra = (extra.iter())
        .map(|name| call.query(name).map(|value| (*name, value.to_owned())).ok_or_else(unsigned))
        .collect::<Result<Vec<_>, _>>()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    app.link_signer
        .verify_with(method, &key, &extra, expires, signature, now)
        .map_err(|e| ApiError::forbidden(format!("This link is not valid: {e}")))?;
    Ok(key)
}

/// Whether a local upload request is one part of a parted upload (its link names an
/// `uploadId`) rather than a whole bundle.
fn is_part(call: &Call) -> bool {
    call.query("uploadId").is_some()
}

/// The largest body a local upload request may have (one part, or a whole bundle), and the
/// message refusing a larger one. The edge reads the body only up to it.
pub fn upload_limit(call: &Call) -> (u64, String) {
    if is_part(call) {
        let limit = crate::bundles::folder::LOCAL_PART_SIZE;
        (limit, format!("A part is at most {} MiB", mib(limit)))
    } else {
        let limit = MAX_WHOLE_UPLOAD_BYTES;
        (
            limit,
            format!(
                "Bundle is larger than {} MiB: upload it in parts (POST /workspaces/bundles with its size)",
                mib(limit)
            ),
        )
    }
}

/// Writes `bytes` as the object `key`: whole, or (a failed write) not at all.
async fn put_object(app: &App, key: &str, bytes: &[u8]) -> Result<u64, ApiError> {
    let mut upload = app.bundles.create_upload(key).await?;
    if let Err(e) = upload.write(bytes).await {
        let _ = upload.abort().await;
        return Err(e.into());
    }
    Ok(upload.finish().await?)
}

/// The local-only upload route behind the folder store's signed PUT links (in AWS: presigned
/// S3 URLs): a whole bundle, or one part of a parted upload. Downloads stream: see
/// `http::stream_download`. The edge refuses a body over [`upload_limit`] before it gets here;
/// checked again for callers that bypass it.
pub async fn receive_upload(app: &App, call: &Call) -> Result<Reply, ApiError> {
    if is_part(call) {
        return receive_part(app, call).await;
    }
    let key = verify_link(app, "PUT", &[], call)?;
    let (limit, too_large) = upload_limit(call);
    if call.body.len() as u64 > limit {
        return Err(ApiError::too_large(too_large));
    }
    let size = put_object(app, &key, &call.body).await?;
    Ok(Reply::ok(json!({"size": size}), "Bundle uploaded"))
}

/// `PUT` of a part link: exactly the signed size, answered with the part's `ETag` (header and data).
async fn receive_part(app: &App, call: &Call) -> Result<Reply, ApiError> {
    let key = verify_link(app, "PUT", &["uploadId", "partNumber", "size"], call)?;
    // Signed, so these parse unless we signed nonsense.
    let signed = |name: &str| call.query(name).and_then(|v| v.parse::<u64>().ok());
    let (Some(number), Some(size)) = (signed("partNumber"), signed("size")) else {
        return Err(ApiError::forbidden("This link is not valid: its part number or size is not a number"));
    };
    let sent = call.body.len() as u64;
    if sent != size {
        return Err(ApiError::bad_request(format!("Part {number} must be exactly {size} bytes; {sent} were sent")));
    }
    let upload_id = call.query("uploadId").unwrap_or_default();
    let number = u32::try_from(number).map_err(|_| ApiError::bad_request("partNumber: out of range"))?;
    let etag = app.bundles.upload_part(&key, upload_id, number, &call.body).await?;
    let mut reply =
        Reply::ok(json!({"part_number": number, "size": size, "etag": etag}), format!("Part {number} uploaded"));
    reply.etag = Some(etag);
    Ok(reply)
}

/// Where the upload id of a bundle's parted upload is recorded: beside the bundle, under the
/// same tenant, so a completion joins only an upload this tenant started for this very bundle.
/// (S3 ties an upload id to its key too, but S3-compatible servers need not, and the rule must
/// not rest on them.)
fn upload_record_key(key: &str) -> String {
    format!("{key}.upload")
}

async fn record_upload(app: &App, key: &str, upload_id: &str) -> Result<(), ApiError> {
    let record = serde_json::to_vec(&json!({"upload_id": upload_id})).map_err(ApiError::internal)?;
    put_object(app, &upload_record_key(key), &record).await.map(|_| ())
}

/// The body of `POST /workspaces/bundles/{bundle_id}/complete`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct CompleteRequest {
    /// The `upload_id` of the parted upload's answer.
    upload_id: Option<String>,
    /// Every part sent, by ascending `part_number`, each with the `ETag` header its PUT answered.
    parts: Option<Vec<PartSent>>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct PartSent {
    part_number: Option<u32>,
    etag: Option<String>,
}

/// `POST /workspaces/bundles/{bundle_id}/complete`: joins the parts of a parted upload into the
/// staged bundle (S3's CompleteMultipartUpload, done here because S3 does not presign it; the
/// folder's own join locally). Only under the caller's tenant, like every bundle id: another
/// tenant's bundle id names nothing here. The bundle appears whole, or (a part missing or not
/// matching its ETag: 400) not at all.
pub async fn complete_upload(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let bundle_id = call.param("bundle_id")?;
    if !valid_bundle_id(bundle_id) {
        return Err(ApiError::not_found(format!("Bundle '{bundle_id}' not found")));
    }
    let input: CompleteRequest = body::parse(&call.body)?;
    let upload_id = body::required_text("upload_id", input.upload_id, 1024)?;
    let sent = input.parts.ok_or_else(|| ApiError::bad_request("parts: required, a list of {part_number, etag}"))?;
    if sent.is_empty() || sent.len() > MAX_PARTS {
        return Err(ApiError::bad_request(format!("parts: between 1 and {MAX_PARTS} parts, not {}", sent.len())));
    }
    let mut parts: Vec<SentPart> = Vec::with_capacity(sent.len());
    for (i, part) in sent.into_iter().enumerate() {
        let number = (part.part_number.filter(|n| *n >= 1))
            .ok_or_else(|| ApiError::bad_request(format!("parts[{i}].part_number: required, a whole number from 1")))?;
        let etag = body::required_text(&format!("parts[{i}].etag"), part.etag, 256)?;
        parts.push(SentPart { number, etag });
    }
    let key = bundle_key(&tenant(principal), bundle_id);
    let record_key = upload_record_key(&key);
    let recorded = app.bundles.get(&record_key, 64 * 1024).await?;
    let started = recorded
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|record| record["upload_id"].as_str() == Some(upload_id.as_str()));
    if !started {
        return Err(ApiError::not_found(format!(
            "No upload '{upload_id}' of bundle '{bundle_id}' (never started, already completed, or expired)"
        )));
    }
    // What the document cannot say is checked once the upload is known to be the caller's.
    if let Some(i) = parts.iter().position(|p| bare_etag(&p.etag).is_empty()) {
        return Err(ApiError::bad_request(format!("parts[{i}].etag: the ETag the part's PUT answered, not quotes")));
    }
    // S3 wants them ascending, each once.
    if let Some(i) = parts.windows(2).position(|w| w[0].number >= w[1].number) {
        return Err(ApiError::bad_request(format!(
            "parts[{}].part_number: parts must ascend, each once ({} after {})",
            i + 1,
            parts[i + 1].number,
            parts[i].number
        )));
    }
    app.bundles.complete_parts(&key, &upload_id, &parts).await?;
    // Done: a second completion finds nothing to join (the record would expire with the bundle).
    if let Err(e) = app.bundles.delete(&record_key).await {
        tracing::warn!(error = %e, "deleting a completed upload's record failed");
    }
    Ok(Reply::ok(
        json!({"bundle_id": bundle_id, "parts": parts.len()}),
        format!("Bundle uploaded: import it with {{\"export_data\": {{\"bundle_id\": \"{bundle_id}\"}}}}"),
    ))
}
