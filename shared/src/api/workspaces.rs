//! save / list / load of workspaces.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::versions::{self, Expect};
use super::{body, paging, Call, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::model::{
    check_metadata, new_id, now_timestamp, validate_id, validate_workspace_id, Principal, Scope, Workspace,
    WorkspaceDraft,
};

pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Items fetched from each scope's index per round trip while merging the scopes.
const LIST_FETCH: usize = 1000;

/// `scope` from the query (load, list), defaulting to `user`. Checked even where something
/// else wins (a body's `scope`, a list's `scopes`): bad input is a 400 whichever is used.
pub fn query_scope(call: &Call) -> Result<Scope, ApiError> {
    call.query("scope").map(Scope::parse).transpose().map(|s| s.unwrap_or(Scope::User))
}

/// The scope a body names, else the query's; the query's is checked either way.
pub fn body_or_query_scope(body: Option<String>, call: &Call) -> Result<Scope, ApiError> {
    let from_query = query_scope(call)?;
    body.map(|s| Scope::parse(&s)).transpose().map(|s| s.unwrap_or(from_query))
}

/// `scopes=user,organization`, else `scope`, else `user`; both checked when both are given.
pub fn list_scopes(call: &Call) -> Result<Vec<Scope>, ApiError> {
    let one = query_scope(call)?;
    match call.query("scopes") {
        Some(list) => Scope::parse_list(list),
        None => Ok(vec![one]),
    }
}

pub fn workspace_json(ws: &Workspace) -> Value {
    json!({
        "id": ws.id,
        "name": ws.name,
        "description": ws.description,
        "metadata": ws.metadata,
        "scope": ws.scope,
        "author": ws.author,
        "updated_by": ws.updated_by,
        "created_at": ws.created_at,
        "updated_at": ws.updated_at,
        "version": ws.version,
    })
}

/// The body of `POST /workspaces/save`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct SaveRequest {
    id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    metadata: Option<Map<String, Value>>,
    scope: Option<String>,
    /// The version the save was decided on (see `api::versions`); `If-Match` may name it instead.
    version: Option<u64>,
}

/// `POST /workspaces/save`. Unknown fields (such as a loaded workspace's read-only ones) are
/// ignored, so what `load` returns can be sent straight back (its `version` makes that save
/// conditional: 409 when someone saved in between).
pub async fn save(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let input: SaveRequest = body::parse(&call.body)?;
    let name = body::required_text("name", input.name, MAX_NAME_CHARS)?;
    let description = body::optional_text("description", input.description, MAX_DESCRIPTION_CHARS)?;
    let metadata = input.metadata.unwrap_or_default();
    check_metadata("metadata", &metadata)?;
    let scope = body_or_query_scope(input.scope, call)?;
    let id = match input.id {
        Some(id) => {
            validate_workspace_id("id", &id)?;
            id
        }
        None => new_id("ws_", 16),
    };
    let expect = versions::expectation(call, input.version)?;
    let owner = principal.owner(scope);
    if expect == Expect::Exists && app.store.get_workspace(&owner, &id).await?.is_none() {
        return Err(versions::workspace_missing(&id));
    }
    let draft = WorkspaceDraft {
        id,
        name,
        description,
        metadata,
        scope,
        writer: principal.username.clone(),
        now: now_timestamp(),
        expected_version: match expect {
            Expect::Version(v) => Some(v),
            Expect::Nothing | Expect::Exists => None,
        },
    };
    let saved = app.store.save_workspace(&owner, draft).await?;
    Ok(Reply::ok(versions::saved_json("workspace_id", &saved.id, saved.version), "Workspace saved successfully")
        .with_version(saved.version))
}

/// `GET /workspaces/{workspace_id}/load`. Another tenant's workspace is indistinguishable from
/// a missing one: the id is only ever looked up under the caller's own owner key.
pub async fn load(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let id = call.param("workspace_id")?;
    validate_id("workspace_id", id)?;
    let scope = query_scope(call)?;
    match app.store.get_workspace(&principal.owner(scope), id).await? {
        Some(ws) => Ok(Reply::ok(workspace_json(&ws), "Workspace loaded successfully").with_version(ws.version)),
        None => Err(ApiError::not_found(format!("Workspace '{id}' not found"))),
    }
}

/// `GET /workspaces/list?scope=user` or `?scopes=user,organization`.
///
/// Complete by default; paged only when the caller asks (`limit`) or when the answer would
/// pass the response size limit, and then `next_token` says where to go on.
pub async fn list(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let scopes = list_scopes(call)?;
    let limit = paging::limit(call)?;
    let after = call.query("next_token").map(|t| paging::decode_token(t, is_list_key)).transpose()?;

    // Merge the scopes' streams, each already in list order, newest first. A source fetches
    // what the page can still use (the limit, else a large batch), so a list of 1,000 is one
    // request per scope and `limit=10` reads ten items, not a batch.
    let fetch = limit.map_or(LIST_FETCH, |l| l.clamp(1, LIST_FETCH));
    let mut sources: Vec<Source> = scopes
        .iter()
        .map(|s| Source { owner: principal.owner(*s), buf: VecDeque::new(), cursor: after.clone(), done: false })
        .collect();
    // Room for the envelope around the items.
    let budget = app.config.max_response_bytes.saturating_sub(1024);
    let mut used = 0usize;
    let mut items: Vec<Value> = Vec::new();
    let mut last_key: Option<String> = None;
    let mut truncated = false;
    loop {
        // Checked before refilling: a full page fetches nothing more to learn that more follow.
        if limit.is_some_and(|l| items.len() >= l) {
            truncated = sources.iter().any(|s| !s.buf.is_empty() || !s.done);
            break;
        }
        // Scopes that ran dry fetch their next page together: one round-trip time, not one each.
        let dry = sources.iter_mut().filter(|s| s.buf.is_empty() && !s.done).map(|s| s.refill(app, fetch));
        futures::future::try_join_all(dry).await?;
        let Some(next) =
            sources.iter_mut().filter(|s| !s.buf.is_empty()).max_by(|a, b| a.head_key().cmp(&b.head_key()))
        else {
            break;
        };
        let Some(ws) = next.buf.pop_front() else { break };
        let value = workspace_json(&ws);
        let size = json_len(&value) + 1;
        if used + size > budget && !items.is_empty() {
            truncated = true;
            break;
        }
        used += size;
        last_key = Some(ws.list_key());
        items.push(value);
    }
    let count = items.len();
    let mut reply = Reply::ok(Value::Array(items), format!("Found {count} workspaces"));
    if truncated {
        if let Some(key) = last_key {
            reply.message = format!("Found {count} workspaces; more follow: pass next_token to continue");
            reply.extra.insert("next_token".into(), Value::String(paging::encode_token(&key)));
        }
    }
    Ok(reply)
}

struct Source {
    owner: crate::model::Owner,
    /// Fetched, not yet emitted; in list order.
    buf: VecDeque<Workspace>,
    cursor: Option<String>,
    done: bool,
}

impl Source {
    async fn refill(&mut self, app: &App, fetch: usize) -> Result<(), ApiError> {
        let page = app.store.list_workspaces(&self.owner, self.cursor.as_deref(), fetch).await?;
        self.done = !page.more;
        self.cursor = page.items.last().map(Workspace::list_key).or(self.cursor.take());
        self.buf = page.items.into();
        Ok(())
    }
    fn head_key(&self) -> Option<String> {
        self.buf.front().map(Workspace::list_key)
    }
}

/// The length `value` serialises to, counted without building the bytes.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// `<updated_at>#<scope>#<id>`, as `Workspace::list_key` makes it.
fn is_list_key(key: &str) -> bool {
    let mut parts = key.splitn(3, '#');
    matches!(
        (parts.next(), parts.next().map(Scope::parse), parts.next()),
        (Some(ts), Some(Ok(_)), Some(id)) if !ts.is_empty() && validate_id("id", id).is_ok()
    )
}

/// The body of `POST /workspaces/{workspace_id}/cleanup`; it may be empty.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct CleanupRequest {
    scope: Option<String>,
}

/// `POST /workspaces/{workspace_id}/cleanup` (`{scope?}`): the workspace with all its projects
/// and tables. An organization workspace needs the `admin` role.
pub async fn cleanup(app: &App, principal: &Principal, call: &Call) -> Result<Reply, ApiError> {
    let id = call.param("workspace_id")?;
    validate_id("workspace_id", id)?;
    let input: CleanupRequest = body::parse_or_default(&call.body)?;
    let scope = body_or_query_scope(input.scope, call)?;
    let owner = principal.owner(scope);
    if app.store.get_workspace(&owner, id).await?.is_none() {
        return Err(ApiError::not_found(format!("Workspace '{id}' not found")));
    }
    if scope == Scope::Organization && !principal.is_admin() {
        return Err(ApiError::forbidden("Deleting an organization workspace needs the admin role"));
    }
    let tables = app.store.snapshot(&crate::tables::WsKey::new(owner.clone(), id)).await?.tables().len();
    let rows = app
        .store
        .delete_workspace(&owner, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Workspace '{id}' not found")))?;
    Ok(Reply::ok(
        json!({"workspace_id": id, "tables_deleted": tables, "rows_deleted": rows}),
        format!("Workspace '{id}' deleted with {tables} tables and {rows} rows"),
    ))
}
