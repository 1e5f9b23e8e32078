//! Bearer JWT verification. Each configured key accepts exactly one algorithm: a secret HS256,
//! a public key RS256 or ES256 according to its type. Anything else (including `alg: none`,
//! which the JWT crate refuses to parse) is a 401.
//!
//! Keys rotate without downtime through `WORKSPACES_JWT_KEYS`: several keys at once, each named
//! by a `kid`, and a token is checked against the one its `kid` header names (old and new both
//! verify while both are listed; an unknown `kid` is a 401 saying so). A token without a `kid`
//! is checked against the keys without one (`WORKSPACES_JWT_SECRET` / `_PUBLIC_KEY`), or, when
//! there are none, against the only key if exactly one is configured: trying every listed key
//! would make the choice of key implicit, and a retired key's tokens could keep working through
//! a newer entry of the same algorithm. When no configured key has a `kid`, a token's `kid` is
//! ignored, as it always was. Keys are all in the configuration: nothing is fetched at init.

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{ConfigError, JwtConfig, JwtKey};
use crate::error::ApiError;
use crate::model::Principal;

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

#[derive(Clone)]
pub struct Verifier {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Names the keys, never their material.
impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<_> = self.keys.iter().map(|k| (k.kid.as_deref().unwrap_or("-"), k.alg)).collect();
        f.debug_struct("Verifier")
            .field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    username: Option<String>,
    organization: Option<String>,
    role: Option<String>,
    jti: Option<String>,
}

/// A public PEM key: RS256 for RSA, ES256 for EC (P-256), the algorithm following the key.
fn public_key(pem: &str) -> Option<(Algorithm, DecodingKey)> {
    let bytes = pem.as_bytes();
    DecodingKey::from_rsa_pem(bytes)
        .map(|k| (Algorithm::RS256, k))
        .or_else(|_| DecodingKey::from_ec_pem(bytes).map(|k| (Algorithm::ES256, k)))
        .ok()
}

/// One `WORKSPACES_JWT_KEYS` entry: its material must be what its `alg` verifies with, so an
/// HS256 entry never holds a public key (whose text an attacker knows) and a PEM entry is never
/// used as an HMAC secret.
fn listed_key(k: &JwtKey) -> Result<Key, ConfigError> {
    let err = |message: String| ConfigError { var: "WORKSPACES_JWT_KEYS", message };
    let kid = &k.kid;
    let (alg, key) = match (k.alg.as_str(), &k.pem, &k.secret) {
        ("HS256", None, Some(secret)) if !secret.is_empty() => {
            (Algorithm::HS256, DecodingKey::from_secret(secret.as_bytes()))
        }
        ("HS256", _, _) => return Err(err(format!("key '{kid}': HS256 takes a non-empty \"secret\" and no \"pem\""))),
        (alg @ ("RS256" | "ES256"), Some(pem), None) => {
            let pem = pem.replace("\\n", "\n");
            match public_key(&pem) {
                Some((found, key)) if format!("{found:?}") == alg => (found, key),
                Some((found, _)) => return Err(err(format!("key '{kid}': alg {alg}, but its pem is a {found:?} key"))),
                None => return Err(err(format!("key '{kid}': \"pem\" is not an RSA or EC (P-256) public key"))),
            }
        }
        ("RS256" | "ES256", _, _) => {
            return Err(err(format!("key '{kid}': {} takes a public \"pem\" and no \"secret\"", k.alg)))
        }
        (other, _, _) => return Err(err(format!("key '{kid}': alg '{other}' is not one of HS256, RS256, ES256"))),
    };
    Ok(Key { kid: Some(kid.clone()), alg, key })
}

/// A `kid` fit to repeat in an error message (it comes from the caller).
fn shown(kid: &str) -> String {
    if kid.len() <= 64 && kid.chars().all(|c| c.is_ascii_graphic()) {
        format!(" '{kid}'")
    } else {
        String::new()
    }
}

impl Verifier {
    pub fn from_config(cfg: &JwtConfig) -> Result<Self, ConfigError> {
        let mut keys = Vec::new();
        if let Some(secret) = &cfg.secret {
            keys.push(Key { kid: None, alg: Algorithm::HS256, key: DecodingKey::from_secret(secret.as_bytes()) });
        }
        if let Some(pem) = &cfg.public_key_pem {
            let (alg, key) = public_key(pem).ok_or_else(|| ConfigError {
                var: "WORKSPACES_JWT_PUBLIC_KEY",
                message: "not an RSA or EC (P-256) public key in PEM form".into(),
            })?;
            keys.push(Key { kid: None, alg, key });
        }
        for k in &cfg.keys {
            keys.push(listed_key(k)?);
        }
        Ok(Self { keys, issuer: cfg.issuer.clone(), audience: cfg.audience.clone() })
    }

    /// The key a token with this header is checked against (see the module's doc).
    fn key_for(&self, header: &jsonwebtoken::Header) -> Result<&Key, ApiError> {
        let any_named = self.keys.iter().any(|k| k.kid.is_some());
        let candidates: Vec<&Key> = match (&header.kid, any_named) {
            (_, false) => self.keys.iter().collect(),
            (Some(kid), true) => {
                let named: Vec<&Key> = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid.as_str())).collect();
                if named.is_empty() {
                    return Err(ApiError::unauthorized(format!(
                        "Token key id{} is not one of the configured keys",
                        shown(kid)
                    )));
                }
                named
            }
            (None, true) => {
                let unnamed: Vec<&Key> = self.keys.iter().filter(|k| k.kid.is_none()).collect();
                match (unnamed.is_empty(), self.keys.as_slice()) {
                    (false, _) => unnamed,
                    (true, [only]) => vec![only],
                    (true, _) => {
                        return Err(ApiError::unauthorized(
                            "Token has no 'kid' header, and several keys are configured: it must name one",
                        ))
                    }
                }
            }
        };
        candidates
            .into_iter()
            .find(|k| k.alg == header.alg)
            .ok_or_else(|| ApiError::unauthorized(format!("Token algorithm {:?} is not accepted", header.alg)))
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
        let Key { alg, key, .. } = self.key_for(&header)?;
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
