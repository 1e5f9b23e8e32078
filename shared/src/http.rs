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

/// Lambda refuses request bodies over 6 MB; say so clearly instead of failing obscurely.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// What a handler gets from the edge: all of it already checked for shape, none of it Lambda's.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Vec<u8>,
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
    *resp.status_mut() = lambda_http::http::StatusCode::from_u16(status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
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
    for name in ["org", "user"] {
        let value = params.get(name).ok_or_else(|| ApiError::not_found("No such route"))?;
        validate_id(name, value)?;
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
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::too_large("Request body is larger than 6 MB"));
    }
    Ok(Call { params, query, body })
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
