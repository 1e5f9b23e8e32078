//! Endpoint handlers: typed inputs in, `Result<Reply, ApiError>` out. Nothing here knows Lambda
//! or HTTP framing: the edge (`crate::http`) builds the [`Call`] and renders the [`Reply`].

use std::collections::HashMap;
use std::future::Future;

use serde_json::{Map, Value};

use crate::app::App;
use crate::error::ApiError;
use crate::model::Principal;
use crate::store::{Snapshot, StoreError, Tables};
use crate::tables::{Commit, WsKey};

pub mod body;
pub mod bundles;
pub mod export;
pub mod import;
pub mod jobs;
pub mod paging;
pub mod projects;
pub mod versions;
pub mod workspaces;

/// What a handler gets from the edge: all of it already checked for shape, none of it Lambda's.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Vec<u8>,
    /// `scheme://host` the caller reached us at: local signed links point back to it.
    pub public_base: String,
    /// The `If-Match` header as sent (several joined by `,`), parsed by `versions::expectation`.
    pub if_match: Option<String>,
    /// The `Idempotency-Key` header as sent (job requests: the same key finds the same job).
    pub idempotency_key: Option<String>,
}

impl Call {
    pub fn param(&self, name: &str) -> Result<&str, ApiError> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::bad_request(format!("{name}: missing from the path")))
    }
    pub fn query(&self, name: &str) -> Option<&str> {
        // Empty counts as absent (`?scope=`); anything else is checked as sent, blanks included:
        // `?scope=+` is a space, which is no scope (found by the fuzzer).
        self.query.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// A successful answer: `data` and `message` go into the envelope; `extra` are top-level keys
/// beside it (e.g. `next_token` when a list is paged).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub data: Value,
    pub message: String,
    pub extra: Map<String, Value>,
    /// The `ETag` header of a versioned object (`versions::etag`).
    pub etag: Option<String>,
}

impl Reply {
    pub fn ok(data: Value, message: impl Into<String>) -> Self {
        Self { status: 200, data, message: message.into(), extra: Map::new(), etag: None }
    }
    /// The answer is about the object at `version`: it goes out as a strong `ETag`.
    pub fn with_version(mut self, version: u64) -> Self {
        self.etag = Some(versions::etag(version));
        self
    }
    pub fn into_envelope(self) -> Value {
        let mut env = match crate::error::success(self.data, self.message) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        env.extend(self.extra);
        Value::Object(env)
    }
}

/// The shape of every public endpoint's handler, `async fn(&App, &Principal, &Call) ->
/// Result<Reply, ApiError>`, so a function's `main` can hand its own one to the edge.
///
/// A trait per lifetime rather than an `Fn` bound, because the future borrows the arguments:
/// any such `async fn` implements it.
pub trait Handler<'a>: Copy + Send + Sync + 'static {
    type Future: Future<Output = Result<Reply, ApiError>> + Send + 'a;
    fn handle(self, app: &'a App, principal: &'a Principal, call: &'a Call) -> Self::Future;
}

impl<'a, F, Fut> Handler<'a> for F
where
    F: Fn(&'a App, &'a Principal, &'a Call) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, ApiError>> + Send + 'a,
{
    type Future = Fut;
    fn handle(self, app: &'a App, principal: &'a Principal, call: &'a Call) -> Fut {
        self(app, principal, call)
    }
}

/// How many times a read → decide → commit runs before a lost race is answered 409.
pub const COMMIT_ATTEMPTS: usize = 5;

/// Reads `ws` through a fresh snapshot, lets `decide` work out from it what to commit (`None`:
/// nothing) and what to answer, and commits that on top of the snapshot's revision. When another
/// write got in first (`Conflict`), it all runs again on a new snapshot, so nothing is decided on
/// stale reads; after [`COMMIT_ATTEMPTS`] lost races the conflict is the answer (409).
///
/// `decide` must take everything it reads about the tables from the snapshot it is given, and
/// keep its commit id across attempts (the id names the change, not the attempt). Its own errors
/// end the loop at once.
pub async fn retry_on_conflict<T, F, Fut>(tables: &dyn Tables, ws: &WsKey, mut decide: F) -> Result<T, ApiError>
where
    F: FnMut(Box<dyn Snapshot>) -> Fut,
    Fut: Future<Output = Result<(Option<Commit>, T), ApiError>>,
{
    let mut attempt = 1;
    loop {
        let snapshot = tables.snapshot(ws).await?;
        let base = snapshot.revision();
        // The snapshot goes with `decide`, so it is released before the commit.
        let (commit, answer) = decide(snapshot).await?;
        let Some(commit) = commit else { return Ok(answer) };
        match tables.commit(ws, base, commit).await {
            Ok(_) => return Ok(answer),
            Err(StoreError::Conflict(_)) if attempt < COMMIT_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}
