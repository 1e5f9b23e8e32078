//! Configuration, read once from the environment at start and validated there: a bad value
//! stops the function at init with a message naming the variable.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://<path>`: an embedded SQLite file (the local default).
    Sqlite(PathBuf),
    /// `dynamodb://<table>`: a DynamoDB table; the endpoint comes from the SDK's own variables.
    DynamoDb { table: String },
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// HS256 shared secret (`WORKSPACES_JWT_SECRET`).
    pub secret: Option<String>,
    /// RS256 or ES256 public key, PEM (`WORKSPACES_JWT_PUBLIC_KEY`; a path to a PEM file works too).
    pub public_key_pem: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreUrl,
    pub jwt: JwtConfig,
    /// Largest response body we build before paging (Lambda stops at 6 MB).
    pub max_response_bytes: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

pub const DEFAULT_STORE: &str = "sqlite://.local/workspaces.db";
/// Lambda's response limit is 6 MB; leave room for headers and base64 in the runtime's framing.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 5_000_000;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let store = parse_store_url(get("WORKSPACES_STORE").as_deref().unwrap_or(DEFAULT_STORE))?;
        let public_key_pem = match get("WORKSPACES_JWT_PUBLIC_KEY") {
            Some(v) if v.starts_with("-----BEGIN") => Some(v.replace("\\n", "\n")),
            Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| ConfigError {
                var: "WORKSPACES_JWT_PUBLIC_KEY",
                message: format!("neither a PEM key nor a readable PEM file ({path}: {e})"),
            })?),
            None => None,
        };
        let jwt = JwtConfig {
            secret: get("WORKSPACES_JWT_SECRET"),
            public_key_pem,
            issuer: get("WORKSPACES_JWT_ISSUER"),
            audience: get("WORKSPACES_JWT_AUDIENCE"),
        };
        if jwt.secret.is_none() && jwt.public_key_pem.is_none() {
            return Err(ConfigError {
                var: "WORKSPACES_JWT_SECRET",
                message: "set it (HS256) or WORKSPACES_JWT_PUBLIC_KEY (RS256/ES256 PEM); no token could be verified otherwise"
                    .into(),
            });
        }
        let max_response_bytes = parse_usize(&get, "WORKSPACES_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES)?;
        Ok(Config { store, jwt, max_response_bytes })
    }
}

pub(crate) fn parse_usize(
    get: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: usize,
) -> Result<usize, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError { var, message: format!("'{v}' is not a positive whole number of bytes") }),
    }
}

pub fn parse_store_url(raw: &str) -> Result<StoreUrl, ConfigError> {
    let err = |message: String| ConfigError { var: "WORKSPACES_STORE", message };
    if let Some(path) = raw.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(err("sqlite:// needs a file path, e.g. sqlite://.local/workspaces.db".into()));
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(path)))
    } else if let Some(table) = raw.strip_prefix("dynamodb://") {
        let valid = (3..=255).contains(&table.len())
            && table.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(err(format!("'{table}' is not a DynamoDB table name")));
        }
        Ok(StoreUrl::DynamoDb { table: table.to_owned() })
    } else {
        Err(err(format!("'{raw}' is not sqlite://<path> or dynamodb://<table>")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_to_the_embedded_store() {
        let c = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s")])).unwrap();
        assert_eq!(c.store, StoreUrl::Sqlite(".local/workspaces.db".into()));
        assert_eq!(c.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
    }

    #[test]
    fn reads_a_dynamodb_table() {
        let c = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s"), ("WORKSPACES_STORE", "dynamodb://ws-table")]))
            .unwrap();
        assert_eq!(c.store, StoreUrl::DynamoDb { table: "ws-table".into() });
    }

    #[test]
    fn bad_values_name_their_variable() {
        let e = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s"), ("WORKSPACES_STORE", "postgres://x")]))
            .unwrap_err();
        assert_eq!(e.var, "WORKSPACES_STORE");
        let e = Config::from_map(&env(&[])).unwrap_err();
        assert_eq!(e.var, "WORKSPACES_JWT_SECRET");
        let e = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s"), ("WORKSPACES_MAX_RESPONSE_BYTES", "lots")]))
            .unwrap_err();
        assert_eq!(e.var, "WORKSPACES_MAX_RESPONSE_BYTES");
    }
}
