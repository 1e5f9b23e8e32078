//! `workspaces token`: a dev HS256 token shaped like the platform's (the claims of
//! `shared::auth::mint_hs256`), signed without linking the API's own crate.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Failure, Result};

pub fn mint(secret: &str, org: &str, user: &str, role: &str, ttl_secs: i64) -> Result<String> {
    if org.trim().is_empty() || user.trim().is_empty() {
        return Err(Failure::usage("--org and --user must not be empty"));
    }
    if ttl_secs <= 0 {
        return Err(Failure::usage(format!("--ttl {ttl_secs} is not a positive number of seconds")));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let claims = json!({
        "sub": format!("{org}:{user}"),
        "username": user,
        "organization": org,
        "role": role,
        "jti": jti(now),
        "iat": now.as_secs(),
        "exp": now.as_secs() as i64 + ttl_secs,
    });
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| Failure::local(format!("could not sign the token: {e}")))
}

/// 16 hex digits unique enough for a dev token: the time, the process and a local address.
fn jti(now: std::time::Duration) -> String {
    let marker = 0u8;
    let mut h = Sha256::new();
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update((&marker as *const u8 as usize).to_le_bytes());
    hex::encode(h.finalize())[..16].to_owned()
}
