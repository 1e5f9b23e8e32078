//! Staged bundles: where large exports go and large imports come from.
//!
//! A bundle's object key is `bundles/<tenant>/<bundle_id>.json` (one prefix, so a bucket
//! lifecycle rule can expire them), the tenant being a hash of the caller's
//! own (user) owner key: a bundle id is only ever looked up under the caller's tenant, so
//! another tenant's id is simply not found.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Call, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::model::{format_timestamp, new_id, Principal, Scope};
use crate::routes::Endpoint;

pub const BUNDLE_PREFIX: &str = "bundles/";
/// Largest bundle we take: uploaded through a local link, or read back by an import.
pub const MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;

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

/// `POST /workspaces/bundles`: a place to PUT a bundle too large for a request body.
pub async fn create_upload(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    sweep_expired(app, principal).await;
    let bundle_id = new_bundle_id();
    let key = bundle_key(&tenant(principal), &bundle_id);
    let expires = expires_at(app);
    let url = app.bundles.upload_url(&key, expires, &call.public_base).await?;
    Ok(Reply::ok(
        json!({"bundle_id": bundle_id, "upload_url": url, "method": "PUT", "expires_at": timestamp_of(expires)}),
        format!("PUT the bundle to upload_url before it expires, then import with {{\"export_data\": {{\"bundle_id\": \"{bundle_id}\"}}}}"),
    ))
}

/// Checks a local-only link's signature and expiry; returns the object key it grants.
pub fn verify_link(app: &App, endpoint: Endpoint, call: &Call) -> Result<String, ApiError> {
    let tenant = call.param("tenant")?;
    let bundle = call.param("bundle")?;
    let key = format!("{BUNDLE_PREFIX}{tenant}/{bundle}");
    let method = if endpoint == Endpoint::UploadBundle { "PUT" } else { "GET" };
    let unsigned = || ApiError::forbidden("This link is not signed");
    let expires: i64 = call.query("expires").and_then(|e| e.parse().ok()).ok_or_else(unsigned)?;
    let signature = call.query("signature").ok_or_else(unsigned)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    app.link_signer
        .verify(method, &key, expires, signature, now)
        .map_err(|e| ApiError::forbidden(format!("This link is not valid: {e}")))?;
    Ok(key)
}

/// The local-only upload route behind the folder store's signed PUT links (in AWS: presigned
/// S3 URLs). Downloads stream: see `http::stream_download`. The edge refuses a body over
/// [`MAX_BUNDLE_BYTES`] before it gets here; checked again for callers that bypass it.
pub async fn receive_upload(app: &App, call: &Call) -> Result<Reply, ApiError> {
    let key = verify_link(app, Endpoint::UploadBundle, call)?;
    if call.body.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(ApiError::too_large(format!("Bundle is larger than {} MiB", MAX_BUNDLE_BYTES / (1024 * 1024))));
    }
    let mut upload = app.bundles.create_upload(&key).await?;
    if let Err(e) = upload.write(&call.body).await {
        let _ = upload.abort().await;
        return Err(e.into());
    }
    let size = upload.finish().await?;
    Ok(Reply::ok(json!({"size": size}), "Bundle uploaded"))
}
