//! The Lambda edge: turns a `lambda_http::Request` into a typed [`Call`](crate::api::Call) (path
//! parameters, query, body bytes) and a verified principal, runs the endpoint's handler, renders
//! the envelope, and logs one line per request. Handlers in `api` never see Lambda types.
//!
//! A function's `main` is one call to [`run`] naming its endpoint, its [`Needs`] and its handler,
//! so each binary holds only its own handler; [`serve`] serves any endpoint, for tests and tools.

use std::time::Instant;

use lambda_http::http::{header, request::Parts, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use crate::api::Handler;
use crate::app::{App, Links, Needs};
use crate::error::ApiError;
use crate::routes::{route, Endpoint, Route};
use crate::store::StoreError;

mod access_log;
mod local;
mod request;

pub use local::{run_download, run_upload, stream_download, StreamingBody};

/// Lambda refuses request bodies over 6 MB; say so clearly instead of failing obscurely.
pub const MAX_REQUEST_BYTES: u64 = 6 * 1024 * 1024;

/// How the storage port's failures reach the caller; the store itself knows nothing of HTTP.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Unavailable(m) => ApiError::unavailable(m),
            StoreError::TooLarge(m) => ApiError::too_large(m),
            StoreError::Invalid(m) => ApiError::bad_request(m),
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// The body of a public function's `main`: logging, config and the clients `needs` names once,
/// then the runtime loop with `handler` on every request.
pub async fn run<H>(endpoint: Endpoint, needs: Needs, links: Links, handler: H) -> Result<(), lambda_http::Error>
where
    H: for<'a> Handler<'a>,
{
    let app = start(needs, links).await?;
    let serve = move |req| async move { Ok::<_, lambda_http::Error>(serve_with(app, endpoint, handler, req).await) };
    lambda_http::run(lambda_http::service_fn(serve)).await
}

/// Telemetry and the app, leaked: a function serves requests until its process ends.
pub(crate) async fn start(needs: Needs, links: Links) -> Result<&'static App, lambda_http::Error> {
    crate::telemetry::init();
    match App::from_env(needs, links).await {
        Ok(app) => Ok(Box::leak(Box::new(app))),
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            Err(e)
        }
    }
}

/// Serves any endpoint, as its function would: for tests, tools and local runs. Never fails;
/// every outcome is an envelope.
pub async fn serve(app: &App, endpoint: Endpoint, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    use crate::api::{bundles, export, import, jobs, projects, workspaces};
    Ok(match endpoint {
        Endpoint::SaveWorkspace => serve_with(app, endpoint, workspaces::save, req).await,
        Endpoint::ListWorkspaces => serve_with(app, endpoint, workspaces::list, req).await,
        Endpoint::LoadWorkspace => serve_with(app, endpoint, workspaces::load, req).await,
        Endpoint::CleanupWorkspace => serve_with(app, endpoint, workspaces::cleanup, req).await,
        Endpoint::ExportTables => serve_with(app, endpoint, export::export_tables, req).await,
        Endpoint::ImportTables => serve_with(app, endpoint, import::import_tables, req).await,
        Endpoint::CreateBundleUpload => serve_with(app, endpoint, bundles::create_upload, req).await,
        Endpoint::CompleteBundleUpload => serve_with(app, endpoint, bundles::complete_upload, req).await,
        Endpoint::SaveProject => serve_with(app, endpoint, projects::save, req).await,
        Endpoint::ListProjects => serve_with(app, endpoint, projects::list, req).await,
        Endpoint::LoadProject => serve_with(app, endpoint, projects::load, req).await,
        Endpoint::CleanupProject => serve_with(app, endpoint, projects::cleanup, req).await,
        Endpoint::GetJob => serve_with(app, endpoint, jobs::get, req).await,
        Endpoint::ListJobs => serve_with(app, endpoint, jobs::list, req).await,
        Endpoint::CancelJob => serve_with(app, endpoint, jobs::cancel, req).await,
        Endpoint::DownloadBundle => local::download_whole(app, req).await,
        Endpoint::UploadBundle => local::upload(app, req).await,
    })
}

/// One public request, start to envelope, with its log line.
pub async fn serve_with<H>(app: &App, endpoint: Endpoint, handler: H, req: Request) -> Response<Body>
where
    H: for<'a> Handler<'a>,
{
    let started = Instant::now();
    let route = route(endpoint);
    let (parts, body) = req.into_parts();
    let mut entry = access_log::Entry::new(route, &parts, started);
    let result = match request::prepare(app, route, &parts, body, &mut entry) {
        Ok((principal, call)) => handler.handle(app, &principal, &call).await,
        Err(e) => Err(e),
    };
    let (status, envelope, etag) = match result {
        Ok(mut reply) => {
            let etag = reply.etag.take();
            (reply.status, reply.into_envelope(), etag)
        }
        Err(err) => {
            let envelope = err.envelope();
            entry.error = Some(err.message);
            (err.status, envelope, None)
        }
    };
    entry.emit(status);
    let mut resp = json_response(status, &envelope);
    if let Some(value) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert(header::ETAG, value);
    }
    resp
}

pub fn json_response(status: u16, body: &Value) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut resp = Response::new(Body::Text(text));
    *resp.status_mut() = status_code(status);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn check_method(route: &Route, parts: &Parts) -> Result<(), ApiError> {
    if parts.method.as_str().eq_ignore_ascii_case(route.method) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(format!("Use {} for this path", route.method)))
    }
}
