//! Domain types: scopes, principals, tenancy keys and workspaces.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    User,
    Organization,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Organization => "organization",
        }
    }
    /// Exactly `user` or `organization`, as the API document says (no blanks around it).
    pub fn parse(raw: &str) -> Result<Scope, ApiError> {
        match raw {
            "user" => Ok(Scope::User),
            "organization" => Ok(Scope::Organization),
            other => {
                Err(ApiError::bad_request(format!("scope: '{other}' is not a scope; use 'user' or 'organization'")))
            }
        }
    }
    /// `scopes=user,organization` (or one `scope`); duplicates collapse, order is kept.
    pub fn parse_list(raw: &str) -> Result<Vec<Scope>, ApiError> {
        let mut out = Vec::new();
        for part in raw.split(',') {
            let scope = Scope::parse(part)?;
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        if out.is_empty() {
            return Err(ApiError::bad_request("scopes: name at least one of 'user', 'organization'"));
        }
        Ok(out)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub username: String,
    pub organization: String,
    pub role: Option<String>,
    pub jti: Option<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }
    /// The tenancy key the caller's data of this scope lives under.
    pub fn owner(&self, scope: Scope) -> Owner {
        match scope {
            Scope::User => Owner::user(&self.organization, &self.username),
            Scope::Organization => Owner::organization(&self.organization),
        }
    }
}

/// Tenancy key. Every stored item's key starts with it, so no query can cross tenants.
/// `org#<org>#user#<user>` for user scope, `org#<org>` for organization scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    pub org: String,
    pub user: Option<String>,
}

impl Owner {
    pub fn user(org: &str, user: &str) -> Self {
        Self { org: org.to_owned(), user: Some(user.to_owned()) }
    }
    pub fn organization(org: &str) -> Self {
        Self { org: org.to_owned(), user: None }
    }
    pub fn scope(&self) -> Scope {
        if self.user.is_some() {
            Scope::User
        } else {
            Scope::Organization
        }
    }
    pub fn key(&self) -> String {
        match &self.user {
            Some(user) => format!("org#{}#user#{}", self.org, user),
            None => format!("org#{}", self.org),
        }
    }
}

/// A stored workspace as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub metadata: Map<String, Value>,
    pub scope: Scope,
    /// Username that created it.
    pub author: String,
    /// Username of the last writer.
    pub updated_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Created at 1, one more on every save (see `api::versions`). A record stored before
    /// versions existed reads as 1.
    pub version: u64,
}

impl Workspace {
    /// Sort key of list order: newest update first; scope and id break ties so that
    /// the order is total across the two scopes (a cursor is one of these keys).
    pub fn list_key(&self) -> String {
        list_key(&self.updated_at, self.scope, &self.id)
    }
}

pub fn list_key(updated_at: &str, scope: Scope, id: &str) -> String {
    format!("{updated_at}#{}#{id}", scope.as_str())
}

/// What a save writes; the store keeps `created_at` and `author` of an existing workspace and
/// bumps its `version`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceDraft {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub metadata: Map<String, Value>,
    pub scope: Scope,
    pub writer: String,
    pub now: String,
    /// When set, the save applies only if the workspace exists and is at this version, checked
    /// in the same write; otherwise it is `StoreError::Conflict` and nothing changes.
    pub expected_version: Option<u64>,
}

/// The client-safe message of a save that named `expected` for workspace `id`, which is at
/// `stored` (`None`: it does not exist). Both stores answer it as `StoreError::Conflict`.
pub fn workspace_version_conflict(id: &str, stored: Option<u64>, expected: u64) -> String {
    match stored {
        Some(stored) => format!("workspace '{id}' is at version {stored}, not {expected}; reload it and retry"),
        None => format!("workspace '{id}' does not exist (the save named version {expected}); reload it and retry"),
    }
}

/// Encoded size of a workspace's or project's `metadata`: a workspace record is one DynamoDB
/// item (400 KB at most), so its metadata is bounded well below that on both stores.
pub const MAX_METADATA_BYTES: usize = 100_000;

pub fn check_metadata(field: &str, metadata: &Map<String, Value>) -> Result<(), ApiError> {
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
    if size > MAX_METADATA_BYTES {
        return Err(ApiError::bad_request(format!("{field}: {size} bytes of JSON, more than {MAX_METADATA_BYTES}")));
    }
    Ok(())
}

/// Ids and path segments become parts of storage keys: keep them to a safe alphabet
/// (`#` is our key separator) and a sane length.
pub fn validate_id(field: &str, raw: &str) -> Result<(), ApiError> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '+'))
        && !raw.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field}: must be 1-128 characters of letters, digits and _ - . @ + (got '{}')",
            raw.chars().take(64).collect::<String>()
        )))
    }
}

/// Words of the route table's literal paths (`/workspaces/jobs/…`, `/workspaces/bundles`): no
/// workspace may take one as its id, so a route with a `{workspace_id}` never meets them.
pub const RESERVED_WORKSPACE_IDS: &[&str] = &["jobs", "bundles"];

/// A workspace id a client names for a new or existing workspace: an id, and not a reserved word.
pub fn validate_workspace_id(field: &str, raw: &str) -> Result<(), ApiError> {
    validate_id(field, raw)?;
    if RESERVED_WORKSPACE_IDS.contains(&raw) {
        return Err(ApiError::bad_request(format!(
            "{field}: '{raw}' is a reserved word of the API's paths and cannot be a workspace id"
        )));
    }
    Ok(())
}

/// Timestamps are UTC with microseconds and a fixed width, so they sort as strings.
pub fn now_timestamp() -> String {
    format_timestamp(time::OffsetDateTime::now_utc())
}

pub fn format_timestamp(t: time::OffsetDateTime) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00");
    t.to_offset(time::UtcOffset::UTC).format(&fmt).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A new random id: `<prefix><hex>`.
pub fn new_id(prefix: &str, hex_len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let hex: String = (0..hex_len).map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0')).collect();
    format!("{prefix}{hex}")
}
