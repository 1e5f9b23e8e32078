//! The Lambda edge: turns a `lambda_http::Request` into a typed call (path parameters, query,
//! verified principal, body bytes), runs the endpoint's handler, and renders the envelope.
//! Handlers in `api` never see Lambda types, so tests call them directly.

use std::collections::HashMap;

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

use crate::api::{self, Reply};
use crate::app::App;
use crate::auth::check_path;
use crate::error::ApiError;
use crate::model::{validate_id, Principal};
use crate::routes::{route, Endpoint};
use crate::store::StoreError;

/// Lambda refuses request bodies over 6 MB; say so clearly instead of failing obscurely.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// What a handler gets from the edge: all of it already checked for shape, none of it Lambda's.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Vec<u8>,
    /// `scheme://host` the caller reached us at: local signed links point back to it.
    pub public_base: String,
}

impl Call {
    pub fn param(&self, name: &str) -> Result<&str, ApiError> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::bad_request(format!("{name}: missing from the path")))
    }
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Entry point of every function: never panics, always answers with the envelope.
pub async fn serve(app: &App, endpoint: Endpoint, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    if route(endpoint).local_only {
        return Ok(serve_local(app, endpoint, req).await.unwrap_or_else(|e| json_response(e.status, &e.envelope())));
    }
    let result = handle(app, endpoint, req).await;
    let (status, body) = match result {
        Ok(reply) => (reply.status, reply.into_envelope()),
        Err(err) => {
            if err.status >= 500 {
                tracing::error!(status = err.status, message = %err.message, ?endpoint, "request failed");
            } else {
                tracing::info!(status = err.status, message = %err.message, ?endpoint, "request rejected");
            }
            (err.status, err.envelope())
        }
    };
    Ok(json_response(status, &body))
}

pub fn json_response(status: u16, body: &Value) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut resp = Response::new(Body::Text(text));
    *resp.status_mut() =
        lambda_http::http::StatusCode::from_u16(status).unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(app: &App, endpoint: Endpoint, req: Request) -> Result<Reply, ApiError> {
    let route = route(endpoint);
    if !req.method().as_str().eq_ignore_ascii_case(route.method) {
        return Err(ApiError::method_not_allowed(format!("Use {} for this path", route.method)));
    }
    let call = call_from_request(route, &req)?;
    let principal = authenticate(app, &req, &call)?;
    api::dispatch(app, endpoint, &principal, call).await
}

/// Local-only routes (signed links to the bundle folder) carry their own authority: an HMAC over
/// method, key and expiry instead of a token.
async fn serve_local(app: &App, endpoint: Endpoint, req: Request) -> Result<Response<Body>, ApiError> {
    let route = route(endpoint);
    if !req.method().as_str().eq_ignore_ascii_case(route.method) {
        return Err(ApiError::method_not_allowed(format!("Use {} for this path", route.method)));
    }
    if endpoint == Endpoint::DownloadBundle {
        // Same code as the streaming function, gathered for callers that want one body.
        let resp = stream_download(app, req).await.map_err(ApiError::internal)?;
        let (parts, body) = resp.into_parts();
        let bytes = http_body_util::BodyExt::collect(body).await.map_err(ApiError::internal)?.to_bytes();
        return Ok(Response::from_parts(parts, Body::Binary(bytes.to_vec())));
    }
    let call = call_from_request(route, &req)?;
    api::bundles::receive_upload(app, &call).await
}

/// A response body sent as it is read: the local download streams bundles from disk.
pub type StreamingBody =
    http_body_util::StreamBody<futures::stream::BoxStream<'static, Result<http_body::Frame<bytes::Bytes>, StoreError>>>;

fn streaming_json(status: u16, body: &Value) -> Response<StreamingBody> {
    use futures::StreamExt;
    let bytes = bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let stream = futures::stream::once(async move { Ok(http_body::Frame::data(bytes)) }).boxed();
    let mut resp = Response::new(http_body_util::StreamBody::new(stream));
    *resp.status_mut() =
        lambda_http::http::StatusCode::from_u16(status).unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// `GET` of a signed local bundle link: the file goes out chunk by chunk as it is read, so
/// memory does not grow with the bundle.
pub async fn stream_download(app: &App, req: Request) -> Result<Response<StreamingBody>, lambda_http::Error> {
    use futures::StreamExt;
    let opened = async {
        let route = route(Endpoint::DownloadBundle);
        if !req.method().as_str().eq_ignore_ascii_case(route.method) {
            return Err(ApiError::method_not_allowed(format!("Use {} for this path", route.method)));
        }
        let call = call_from_request(route, &req)?;
        let key = api::bundles::verify_link(app, Endpoint::DownloadBundle, &call)?;
        app.bundles.open_stream(&key).await?.ok_or_else(|| ApiError::not_found("Bundle not found (or expired)"))
    }
    .await;
    Ok(match opened {
        Ok((size, chunks)) => {
            let frames = chunks.map(|chunk| chunk.map(http_body::Frame::data)).boxed();
            let mut resp = Response::new(http_body_util::StreamBody::new(frames));
            let headers = resp.headers_mut();
            headers.insert(
                lambda_http::http::header::CONTENT_TYPE,
                lambda_http::http::HeaderValue::from_static("application/json"),
            );
            headers.insert(lambda_http::http::header::CONTENT_LENGTH, lambda_http::http::HeaderValue::from(size));
            resp
        }
        Err(e) => streaming_json(e.status, &e.envelope()),
    })
}

/// The body of the local download function's `main`: the streaming runtime.
pub async fn run_download_function() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let app: &'static App = Box::leak(Box::new(App::from_env().await?));
    lambda_http::run_with_streaming_response(lambda_http::service_fn(move |req| stream_download(app, req))).await
}

/// Path parameters come from API Gateway or the watch router; when a caller bypasses both
/// (e.g. `cargo lambda invoke` with a bare event) they are matched from the raw path.
fn call_from_request(route: &crate::routes::Route, req: &Request) -> Result<Call, ApiError> {
    let mut params: HashMap<String, String> =
        req.path_parameters().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    if !params.contains_key("org") || !params.contains_key("user") {
        let raw = req.raw_http_path();
        let path = if raw.is_empty() { req.uri().path() } else { raw };
        if let Some(found) = crate::routes::match_path(&route.full_path(), path) {
            params.extend(found);
        }
    }
    if !route.local_only {
        for name in ["org", "user"] {
            let value = params.get(name).ok_or_else(|| ApiError::not_found("No such route"))?;
            validate_id(name, value)?;
        }
    }
    let mut query: HashMap<String, String> =
        req.query_string_parameters().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    if query.is_empty() {
        if let Some(q) = req.uri().query() {
            query.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
        }
    }
    let body = match req.body() {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    // Local uploads are not Lambda-bound; in AWS large bundles go straight to S3.
    if body.len() > MAX_REQUEST_BYTES && !route.local_only {
        return Err(ApiError::too_large("Request body is larger than 6 MB"));
    }
    Ok(Call { params, query, body, public_base: public_base(req) })
}

fn public_base(req: &Request) -> String {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = header("host").unwrap_or_else(|| "127.0.0.1".into());
    let local = host.starts_with("127.0.0.1") || host.starts_with("localhost") || host.starts_with("[::1]");
    let scheme = header("x-forwarded-proto").unwrap_or_else(|| if local { "http" } else { "https" }.into());
    format!("{scheme}://{host}")
}

fn authenticate(app: &App, req: &Request, call: &Call) -> Result<Principal, ApiError> {
    let header = req.headers().get(lambda_http::http::header::AUTHORIZATION).map(|v| v.to_str());
    let header = match header {
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => return Err(ApiError::unauthorized("Authorization header is not valid text")),
        None => None,
    };
    let principal = app.verifier.verify_header(header)?;
    check_path(&principal, call.param("org")?, call.param("user")?)?;
    Ok(principal)
}

/// The body of every function's `main`: config and clients once, then the runtime loop.
pub async fn run_function(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let app: &'static App = match App::from_env().await {
        Ok(app) => Box::leak(Box::new(app)),
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            return Err(e);
        }
    };
    lambda_http::run(lambda_http::service_fn(move |req| serve(app, endpoint, req))).await
}
