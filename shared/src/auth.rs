//! Bearer JWT verification. Each configured key accepts exactly one algorithm: the secret HS256,
//! the public key RS256 or ES256 according to its type. Anything else (including `alg: none`,
//! which the JWT crate refuses to parse) is a 401.

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{ConfigError, JwtConfig};
use crate::error::ApiError;
use crate::model::Principal;

#[derive(Clone)]
pub struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    username: Option<String>,
    organization: Option<String>,
    role: Option<String>,
    jti: Option<String>,
}

impl Verifier {
    pub fn from_config(cfg: &JwtConfig) -> Result<Self, ConfigError> {
        let mut keys = Vec::new();
        if let Some(secret) = &cfg.secret {
            keys.push((Algorithm::HS256, DecodingKey::from_secret(secret.as_bytes())));
        }
        if let Some(pem) = &cfg.public_key_pem {
            let bytes = pem.as_bytes();
            let key = if let Ok(k) = DecodingKey::from_rsa_pem(bytes) {
                (Algorithm::RS256, k)
            } else if let Ok(k) = DecodingKey::from_ec_pem(bytes) {
                (Algorithm::ES256, k)
            } else {
                return Err(ConfigError {
                    var: "WORKSPACES_JWT_PUBLIC_KEY",
                    message: "not an RSA or EC (P-256) public key in PEM form".into(),
                });
            };
            keys.push(key);
        }
        Ok(Self { keys, issuer: cfg.issuer.clone(), audience: cfg.audience.clone() })
    }

    /// Verifies `Authorization: Bearer <jwt>` and returns the caller.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let header = header.ok_or_else(|| ApiError::unauthorized("Missing Authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer <token>'"))?;
        self.verify(token)
    }

    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let header = decode_header(token).map_err(|_| ApiError::unauthorized("Malformed token"))?;
        let (alg, key) = self
            .keys
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or_else(|| ApiError::unauthorized(format!("Token algorithm {:?} is not accepted", header.alg)))?;
        let mut validation = Validation::new(*alg);
        // The same leeway covers clock skew at both ends: `exp` just passed, `nbf` not quite reached.
        validation.leeway = 30;
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not merely valid when present.
        let mut required = vec!["exp"];
        required.extend(self.issuer.as_ref().map(|_| "iss"));
        required.extend(self.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        match &self.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = decode::<Claims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            let message = match e.kind() {
                K::ExpiredSignature => "Token has expired".to_owned(),
                K::InvalidSignature => "Token signature is invalid".to_owned(),
                K::InvalidIssuer => "Token issuer is not accepted".to_owned(),
                K::InvalidAudience => "Token audience is not accepted".to_owned(),
                K::MissingRequiredClaim(c) => format!("Token lacks required claim '{c}'"),
                K::ImmatureSignature => "Token is not valid yet (its 'nbf' is in the future)".to_owned(),
                K::InvalidClaimFormat(c) => format!("Token claim '{c}' is not a number of seconds"),
                _ => "Token is invalid".to_owned(),
            };
            ApiError::unauthorized(message)
        })?;
        let c = data.claims;
        let need = |v: Option<String>, name: &str| {
            v.filter(|s| !s.is_empty())
                .ok_or_else(|| ApiError::unauthorized(format!("Token lacks required claim '{name}'")))
        };
        let username = need(c.username, "username")?;
        let organization = need(c.organization, "organization")?;
        Ok(Principal {
            sub: c.sub.unwrap_or_else(|| username.clone()),
            username,
            organization,
            role: c.role,
            jti: c.jti,
        })
    }
}

/// The path's `{org}`/`{user}` must be the token's own.
pub fn check_path(principal: &Principal, org: &str, user: &str) -> Result<(), ApiError> {
    if principal.organization == org && principal.username == user {
        Ok(())
    } else {
        Err(ApiError::forbidden("The path's organization and user do not match the token"))
    }
}

/// Mints HS256 tokens the way the platform shapes them: for `make token`, tests and benchmarks.
pub fn mint_hs256(secret: &str, org: &str, user: &str, role: &str, ttl_secs: i64) -> Result<String, String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "sub": format!("{org}:{user}"),
        "username": user,
        "organization": org,
        "role": role,
        "jti": crate::model::new_id("", 16),
        "iat": now,
        "exp": now + ttl_secs,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}
