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

/// Where export bundles (and rows too large for DynamoDB) go: `WORKSPACES_BUNDLES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundlesUrl {
    /// `file://<path>`: a local folder (the local default); links are signed by us.
    Folder(PathBuf),
    /// `s3://<bucket>[/<prefix>]`: an S3 bucket; links are presigned by S3.
    S3 { bucket: String, prefix: String },
}

/// Where job messages go: `WORKSPACES_JOBS_QUEUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueUrl {
    /// `sqlite://<path>`: a queue in a local SQLite file (the local default), drained by the
    /// local dispatcher.
    Sqlite(PathBuf),
    /// An SQS queue URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`, what `!Ref` of a
    /// queue gives; `http://` for a local compatible server).
    Sqs(String),
}

/// A secret's text: usable as a `str`, never printed (`Debug` shows `***`), so a config dump or
/// an error built from one cannot leak it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Redacted(String);

impl std::ops::Deref for Redacted {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Redacted {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Redacted {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// One entry of `WORKSPACES_JWT_KEYS`: a key a token names by its `kid` header. `alg` is the one
/// algorithm it verifies (HS256 with `secret`, RS256/ES256 with a public `pem`); the key itself
/// is checked when the verifier is built (`auth::Verifier::from_config`), still at init.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    pub kid: String,
    pub alg: String,
    #[serde(default)]
    pub pem: Option<String>,
    #[serde(default)]
    pub secret: Option<Redacted>,
}

#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// HS256 shared secret (`WORKSPACES_JWT_SECRET`): a key without a `kid`.
    pub secret: Option<Redacted>,
    /// RS256 or ES256 public key, PEM (`WORKSPACES_JWT_PUBLIC_KEY`; a path to a PEM file works
    /// too): a key without a `kid`.
    pub public_key_pem: Option<String>,
    /// Keys chosen by the token's `kid` (`WORKSPACES_JWT_KEYS`), several at once for rotation.
    pub keys: Vec<JwtKey>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreUrl,
    pub jwt: JwtConfig,
    /// Largest response body we build before paging (Lambda stops at 6 MB).
    pub max_response_bytes: usize,
    pub bundles: BundlesUrl,
    /// Exports whose encoded response would pass this are staged as a bundle and linked.
    pub inline_limit_bytes: usize,
    /// How long a bundle link lives, in seconds (at most S3's 7 days).
    pub bundle_ttl_secs: u64,
    /// Signs local bundle links (`WORKSPACES_LINK_SECRET`, else derived from the JWT secret).
    /// `None` only with S3 bundles and no JWT secret, where S3 presigns every link.
    pub link_secret: Option<Redacted>,
    /// Rows one synchronous import may write (see `api::import`); more is refused with 413.
    pub sync_import_max_rows: u64,
    /// Rows of a workspace the synchronous export streams; more is refused with 413 naming jobs.
    pub sync_export_max_rows: u64,
    pub jobs_queue: QueueUrl,
    /// How long a finished job (and an export job's bundle) stays visible, in seconds.
    pub job_ttl_secs: u64,
    /// How long one worker invocation works on a job before handing it to a fresh one.
    pub job_budget_secs: u64,
    /// Rows of one import chunk (one `stage_rows`, one checkpoint of an import job).
    pub import_chunk_rows: u32,
    /// Chunks one part of an import job takes: a job of more chunks fans out to parts, one queue
    /// message (one worker invocation at a time) each.
    pub import_part_chunks: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

pub const DEFAULT_STORE: &str = "sqlite://.local/workspaces.db";
/// Lambda's response limit is 6 MB for the whole API Gateway response document, in which the
/// body travels as an escaped JSON string beside the headers: leave room for both.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 5_000_000;
pub const DEFAULT_BUNDLES: &str = "file://.local/bundles";
/// Rows the synchronous import finishes well inside the HTTP API's 30 s (measured: docs/benchmarks.md).
pub const DEFAULT_SYNC_IMPORT_MAX_ROWS: usize = 150_000;
/// Rows the synchronous export streams well inside 30 s on DynamoDB (one parallel Query per
/// shard per 2,000-row page): more is a job.
pub const DEFAULT_SYNC_EXPORT_MAX_ROWS: usize = 300_000;
/// Same reasoning as the response limit: above it an export could not go back inline.
pub const DEFAULT_INLINE_LIMIT_BYTES: usize = 5_000_000;
pub const DEFAULT_BUNDLE_TTL_SECS: u64 = 3600;
/// S3's longest presigned URL lifetime; local links keep to it too, so both behave alike.
pub const MAX_BUNDLE_TTL_SECS: u64 = 7 * 24 * 3600;
pub const DEFAULT_JOBS_QUEUE: &str = "sqlite://.local/jobs-queue.db";
/// A finished job (and an export job's bundle, whose link is signed anew whenever the job is read)
/// stays a day unless configured otherwise.
pub const DEFAULT_JOB_TTL_SECS: u64 = 24 * 3600;
/// A finished job stays at least a minute (a client polling it must get to see the end) and at
/// most 7 days: S3's lifecycle rule removes bundles after 8, and an export job's result links one.
pub const MIN_JOB_TTL_SECS: u64 = 60;
pub const MAX_JOB_TTL_SECS: u64 = 7 * 24 * 3600;
/// 5,000 rows: one `stage_rows` of about 200 DynamoDB batch writes, a few MB of memory.
pub const DEFAULT_IMPORT_CHUNK_ROWS: usize = 5_000;
/// 20 chunks (100,000 rows) a part: a part is a few minutes of one worker, well inside one
/// invocation, and a 1M-row import fans out to 10 parts (the event source mapping's concurrency).
pub const DEFAULT_IMPORT_PART_CHUNKS: usize = 20;
/// Label of the link secret derived from the JWT secret, so one secret leaks nothing of the other.
const LINK_SECRET_LABEL: &[u8] = b"workspaces/bundle-links/v1";

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
            secret: get("WORKSPACES_JWT_SECRET").map(Redacted::from),
            public_key_pem,
            keys: get("WORKSPACES_JWT_KEYS").as_deref().map(parse_jwt_keys).transpose()?.unwrap_or_default(),
            issuer: get("WORKSPACES_JWT_ISSUER"),
            audience: get("WORKSPACES_JWT_AUDIENCE"),
        };
        if jwt.secret.is_none() && jwt.public_key_pem.is_none() && jwt.keys.is_empty() {
            return Err(ConfigError {
                var: "WORKSPACES_JWT_SECRET",
                message: "set it (HS256), WORKSPACES_JWT_PUBLIC_KEY (RS256/ES256 PEM) or WORKSPACES_JWT_KEYS; no token could be verified otherwise"
                    .into(),
            });
        }
        let max_response_bytes =
            parse_usize(&get, "WORKSPACES_MAX_RESPONSE_BYTES", "bytes", DEFAULT_MAX_RESPONSE_BYTES)?;
        let bundles = parse_bundles_url(get("WORKSPACES_BUNDLES").as_deref().unwrap_or(DEFAULT_BUNDLES))?;
        let inline_limit_bytes =
            parse_usize(&get, "WORKSPACES_INLINE_LIMIT_BYTES", "bytes", DEFAULT_INLINE_LIMIT_BYTES)?;
        let bundle_ttl_secs = parse_ttl(&get, "WORKSPACES_BUNDLE_TTL_SECS", DEFAULT_BUNDLE_TTL_SECS)?;
        let link_secret =
            get("WORKSPACES_LINK_SECRET").or_else(|| jwt.secret.as_deref().map(derive_link_secret)).map(Redacted::from);
        if link_secret.is_none() && matches!(bundles, BundlesUrl::Folder(_)) {
            return Err(ConfigError {
                var: "WORKSPACES_LINK_SECRET",
                message: "set it (or WORKSPACES_JWT_SECRET) to sign the local bundle folder's links".into(),
            });
        }
        let sync_import_max_rows =
            parse_usize(&get, "WORKSPACES_SYNC_IMPORT_MAX_ROWS", "rows", DEFAULT_SYNC_IMPORT_MAX_ROWS)? as u64;
        let sync_export_max_rows =
            parse_usize(&get, "WORKSPACES_SYNC_EXPORT_MAX_ROWS", "rows", DEFAULT_SYNC_EXPORT_MAX_ROWS)? as u64;
        let jobs_queue = parse_queue_url(get("WORKSPACES_JOBS_QUEUE").as_deref().unwrap_or(DEFAULT_JOBS_QUEUE))?;
        let job_ttl_secs =
            parse_secs(&get, "WORKSPACES_JOB_TTL_SECS", DEFAULT_JOB_TTL_SECS, MIN_JOB_TTL_SECS..=MAX_JOB_TTL_SECS)?;
        // Lambda stops an invocation at 15 minutes; the budget leaves room to checkpoint.
        let job_budget_secs =
            parse_secs(&get, "WORKSPACES_JOB_BUDGET_SECS", crate::jobs::DEFAULT_BUDGET_SECS, 1..=840)?;
        let import_chunk_rows = parse_u32(&get, "WORKSPACES_IMPORT_CHUNK_ROWS", "rows", DEFAULT_IMPORT_CHUNK_ROWS)?;
        let import_part_chunks =
            parse_u32(&get, "WORKSPACES_IMPORT_PART_CHUNKS", "chunks", DEFAULT_IMPORT_PART_CHUNKS)?;
        Ok(Config {
            store,
            jwt,
            max_response_bytes,
            bundles,
            inline_limit_bytes,
            bundle_ttl_secs,
            link_secret,
            sync_import_max_rows,
            sync_export_max_rows,
            jobs_queue,
            job_ttl_secs,
            job_budget_secs,
            import_chunk_rows,
            import_part_chunks,
        })
    }
}

/// `WORKSPACES_JWT_KEYS`: a JSON list of `{"kid", "alg", "pem" | "secret"}`, kids unique and
/// not empty. A parse error names its position only, never the text (it may hold a secret).
fn parse_jwt_keys(raw: &str) -> Result<Vec<JwtKey>, ConfigError> {
    let err = |message: String| ConfigError { var: "WORKSPACES_JWT_KEYS", message };
    let keys: Vec<JwtKey> = serde_json::from_str(raw).map_err(|e| {
        err(format!(
            "not a JSON list of {{\"kid\", \"alg\", \"pem\" or \"secret\"}} objects (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if keys.is_empty() {
        return Err(err("the list is empty; leave the variable unset instead".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for k in &keys {
        if k.kid.trim().is_empty() {
            return Err(err("a key has an empty \"kid\"".into()));
        }
        if !seen.insert(k.kid.as_str()) {
            return Err(err(format!("kid '{}' is listed twice", k.kid)));
        }
    }
    Ok(keys)
}

/// A positive whole number of `unit` (named in the error: bytes, rows, ...).
pub(crate) fn parse_usize(
    get: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    unit: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError { var, message: format!("'{v}' is not a positive whole number of {unit}") }),
    }
}

/// [`parse_usize`], at most `u32::MAX`.
fn parse_u32(
    get: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    unit: &str,
    default: usize,
) -> Result<u32, ConfigError> {
    let n = parse_usize(get, var, unit, default)?;
    u32::try_from(n).map_err(|_| ConfigError { var, message: format!("{n} is more {unit} than {}", u32::MAX) })
}

/// Whole seconds within `range`.
fn parse_secs(
    get: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| ConfigError {
            var,
            message: format!("'{v}' is not a whole number of seconds from {} to {}", range.start(), range.end()),
        }),
    }
}

fn parse_ttl(get: &dyn Fn(&str) -> Option<String>, var: &'static str, default: u64) -> Result<u64, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| (1..=MAX_BUNDLE_TTL_SECS).contains(n)).ok_or_else(|| ConfigError {
            var,
            message: format!("'{v}' is not a whole number of seconds from 1 to {MAX_BUNDLE_TTL_SECS}"),
        }),
    }
}

/// hex(HMAC-SHA256(jwt_secret, label)): stable across cold starts and functions, as links made by
/// one invocation are checked by another.
fn derive_link_secret(jwt_secret: &str) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length, so this never fails; an empty MAC would only mean no links verify.
    match Hmac::<sha2::Sha256>::new_from_slice(jwt_secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(LINK_SECRET_LABEL);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

pub fn parse_bundles_url(raw: &str) -> Result<BundlesUrl, ConfigError> {
    let err = |message: String| ConfigError { var: "WORKSPACES_BUNDLES", message };
    if let Some(path) = raw.strip_prefix("file://") {
        if path.is_empty() {
            return Err(err("file:// needs a folder path, e.g. file://.local/bundles".into()));
        }
        Ok(BundlesUrl::Folder(PathBuf::from(path)))
    } else if let Some(rest) = raw.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'))
            && !bucket.starts_with(['.', '-'])
            && !bucket.ends_with(['.', '-']);
        if !valid_bucket {
            return Err(err(format!("'{bucket}' is not an S3 bucket name")));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() && crate::bundles::check_key(prefix).is_err() {
            return Err(err(format!("'{prefix}' is not a key prefix (letters, digits, _ . @ + - and /)")));
        }
        Ok(BundlesUrl::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    } else {
        Err(err(format!("'{raw}' is not file://<path> or s3://<bucket>[/<prefix>]")))
    }
}

/// `sqlite://<path>`, or an SQS queue URL: http(s), a host, and a path naming the queue.
pub fn parse_queue_url(raw: &str) -> Result<QueueUrl, ConfigError> {
    let err = |message: String| ConfigError { var: "WORKSPACES_JOBS_QUEUE", message };
    if let Some(path) = raw.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(err("sqlite:// needs a file path, e.g. sqlite://.local/jobs-queue.db".into()));
        }
        return Ok(QueueUrl::Sqlite(PathBuf::from(path)));
    }
    let usage = || {
        err(format!(
            "'{raw}' is not sqlite://<path> or an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)"
        ))
    };
    let url = url::Url::parse(raw).map_err(|_| usage())?;
    let queue_named = url.path_segments().and_then(|mut s| s.next_back()).is_some_and(|last| !last.is_empty());
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) || !queue_named {
        return Err(usage());
    }
    Ok(QueueUrl::Sqs(raw.to_owned()))
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
        assert_eq!(c.bundles, BundlesUrl::Folder(".local/bundles".into()));
        assert_eq!(c.inline_limit_bytes, DEFAULT_INLINE_LIMIT_BYTES);
        assert_eq!(c.sync_import_max_rows, DEFAULT_SYNC_IMPORT_MAX_ROWS as u64);
        assert_eq!(c.bundle_ttl_secs, DEFAULT_BUNDLE_TTL_SECS);
        assert_eq!(c.jobs_queue, QueueUrl::Sqlite(".local/jobs-queue.db".into()));
        assert_eq!(c.job_ttl_secs, DEFAULT_JOB_TTL_SECS);
    }

    #[test]
    fn reads_the_jobs_settings() {
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ws-jobs";
        let c = Config::from_map(&env(&[
            ("WORKSPACES_JWT_SECRET", "s"),
            ("WORKSPACES_JOBS_QUEUE", url),
            ("WORKSPACES_JOB_TTL_SECS", "60"),
        ]))
        .unwrap();
        assert_eq!((c.jobs_queue, c.job_ttl_secs), (QueueUrl::Sqs(url.into()), 60));
        let local = "http://127.0.0.1:5101/123456789012/jobs";
        let c = Config::from_map(&env(&[
            ("WORKSPACES_JWT_SECRET", "s"),
            ("WORKSPACES_JOBS_QUEUE", local),
            ("WORKSPACES_JOB_TTL_SECS", "604800"),
        ]))
        .unwrap();
        assert_eq!((c.jobs_queue, c.job_ttl_secs), (QueueUrl::Sqs(local.into()), 604_800));
        let c =
            Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s"), ("WORKSPACES_JOBS_QUEUE", "sqlite:///tmp/q.db")]))
                .unwrap();
        assert_eq!(c.jobs_queue, QueueUrl::Sqlite("/tmp/q.db".into()));
    }

    #[test]
    fn reads_the_bundle_settings() {
        let c = Config::from_map(&env(&[
            ("WORKSPACES_JWT_SECRET", "s"),
            ("WORKSPACES_BUNDLES", "s3://ws-bundles/exports/v1/"),
            ("WORKSPACES_INLINE_LIMIT_BYTES", "1000"),
            ("WORKSPACES_BUNDLE_TTL_SECS", "60"),
            ("WORKSPACES_LINK_SECRET", "links"),
        ]))
        .unwrap();
        assert_eq!(c.bundles, BundlesUrl::S3 { bucket: "ws-bundles".into(), prefix: "exports/v1".into() });
        assert_eq!((c.inline_limit_bytes, c.bundle_ttl_secs), (1000, 60));
        assert_eq!(c.link_secret.as_deref(), Some("links"));
        let c = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s"), ("WORKSPACES_BUNDLES", "s3://ws-bundles")]))
            .unwrap();
        assert_eq!(c.bundles, BundlesUrl::S3 { bucket: "ws-bundles".into(), prefix: String::new() });
        let c =
            Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s"), ("WORKSPACES_BUNDLES", "file:///tmp/b")])).unwrap();
        assert_eq!(c.bundles, BundlesUrl::Folder("/tmp/b".into()));
    }

    #[test]
    fn the_link_secret_derives_from_the_jwt_secret_without_being_it() {
        let a = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s")])).unwrap().link_secret.unwrap();
        let b = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s")])).unwrap().link_secret.unwrap();
        let other = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "t")])).unwrap().link_secret.unwrap();
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.len(), 64);
        assert_ne!(&*a, "s");
    }

    #[test]
    fn a_folder_needs_some_link_secret() {
        let pem = "-----BEGIN PUBLIC KEY-----";
        let e = Config::from_map(&env(&[("WORKSPACES_JWT_PUBLIC_KEY", pem)])).unwrap_err();
        assert_eq!(e.var, "WORKSPACES_LINK_SECRET");
        let c =
            Config::from_map(&env(&[("WORKSPACES_JWT_PUBLIC_KEY", pem), ("WORKSPACES_BUNDLES", "s3://ws-b")])).unwrap();
        assert_eq!(c.link_secret, None);
        let c = Config::from_map(&env(&[("WORKSPACES_JWT_PUBLIC_KEY", pem), ("WORKSPACES_LINK_SECRET", "l")])).unwrap();
        assert_eq!(c.link_secret.as_deref(), Some("l"));
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
        assert!(e.message.contains("bytes"), "{}", e.message);
        let e = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s"), ("WORKSPACES_SYNC_IMPORT_MAX_ROWS", "0")]))
            .unwrap_err();
        assert_eq!(e.var, "WORKSPACES_SYNC_IMPORT_MAX_ROWS");
        assert!(e.message.contains("whole number of rows"), "{}", e.message);
        for (var, value) in [
            ("WORKSPACES_BUNDLES", "ftp://x"),
            ("WORKSPACES_BUNDLES", "file://"),
            ("WORKSPACES_BUNDLES", "s3://No_Such"),
            ("WORKSPACES_BUNDLES", "s3://bucket/../up"),
            ("WORKSPACES_INLINE_LIMIT_BYTES", "0"),
            ("WORKSPACES_BUNDLE_TTL_SECS", "-5"),
            ("WORKSPACES_BUNDLE_TTL_SECS", "604801"),
            ("WORKSPACES_JOBS_QUEUE", "sqlite://"),
            ("WORKSPACES_JOBS_QUEUE", "sqs://ws-jobs"),
            ("WORKSPACES_JOBS_QUEUE", "ws-jobs"),
            ("WORKSPACES_JOBS_QUEUE", "https://"),
            ("WORKSPACES_JOBS_QUEUE", "https://sqs.eu-west-1.amazonaws.com"),
            ("WORKSPACES_JOBS_QUEUE", "https://sqs.eu-west-1.amazonaws.com/"),
            ("WORKSPACES_JOBS_QUEUE", "ftp://sqs.eu-west-1.amazonaws.com/1/q"),
            ("WORKSPACES_JOB_TTL_SECS", "59"),
            ("WORKSPACES_JOB_TTL_SECS", "604801"),
            ("WORKSPACES_JOB_TTL_SECS", "a week"),
        ] {
            let e = Config::from_map(&env(&[("WORKSPACES_JWT_SECRET", "s"), (var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{value}");
        }
    }
}
