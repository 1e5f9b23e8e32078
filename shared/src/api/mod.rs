//! Endpoint handlers: typed inputs in, `Result<Reply, ApiError>` out.

use serde_json::{Map, Value};

use crate::app::App;
use crate::error::ApiError;
use crate::http::Call;
use crate::model::Principal;
use crate::routes::Endpoint;

pub mod body;
pub mod bundles;
pub mod export;
pub mod import;
pub mod paging;
pub mod projects;
pub mod workspaces;

/// A successful answer: `data` and `message` go into the envelope; `extra` are top-level keys
/// beside it (e.g. `next_token` when a list is paged).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub data: Value,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl Reply {
    pub fn ok(data: Value, message: impl Into<String>) -> Self {
        Self { status: 200, data, message: message.into(), extra: Map::new() }
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

pub async fn dispatch(app: &App, endpoint: Endpoint, principal: &Principal, call: Call) -> Result<Reply, ApiError> {
    match endpoint {
        Endpoint::SaveWorkspace => workspaces::save(app, principal, &call).await,
        Endpoint::ListWorkspaces => workspaces::list(app, principal, &call).await,
        Endpoint::LoadWorkspace => workspaces::load(app, principal, &call).await,
        Endpoint::CleanupWorkspace => workspaces::cleanup(app, principal, &call).await,
        Endpoint::ExportTables => export::export_tables(app, principal, &call).await,
        Endpoint::ImportTables => import::import_tables(app, principal, &call).await,
        Endpoint::CreateBundleUpload => bundles::create_upload(app, principal, &call).await,
        Endpoint::SaveProject => projects::save(app, principal, &call).await,
        Endpoint::ListProjects => projects::list(app, principal, &call).await,
        Endpoint::LoadProject => projects::load(app, principal, &call).await,
        Endpoint::CleanupProject => projects::cleanup(app, principal, &call).await,
        Endpoint::DownloadBundle | Endpoint::UploadBundle => {
            Err(ApiError::not_found("This route is served by signed link only"))
        }
    }
}
