//! One structured line per request: who (request id, tenant), what (function, route), how it
//! ended (status, latency, the error's public message). Never a header, token or body.

use std::time::Instant;

use lambda_http::http::request::Parts;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

use crate::model::validate_id;
use crate::routes::Route;

pub(super) struct Entry {
    route: &'static Route,
    started: Instant,
    request_id: String,
    org: Option<String>,
    user: Option<String>,
    /// The message the caller got, which never carries internals (see `ApiError`).
    pub error: Option<String>,
}

impl Entry {
    pub fn new(route: &'static Route, parts: &Parts, started: Instant) -> Self {
        Self { route, started, request_id: request_id(parts), org: None, user: None, error: None }
    }

    /// The tenant the path names, once known; only valid ids are kept, so the line never carries
    /// whatever a caller put in the path.
    pub fn tenant(&mut self, org: Option<&String>, user: Option<&String>) {
        let valid = |name: &str, v: Option<&String>| v.filter(|v| validate_id(name, v).is_ok()).cloned();
        self.org = valid("org", org);
        self.user = valid("user", user);
    }

    pub fn emit(self, status: u16) {
        let latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let org = self.org.as_deref().unwrap_or("-");
        let user = self.user.as_deref().unwrap_or("-");
        // `None` leaves the field out.
        let error = self.error.as_deref();
        let (function, method, path) = (self.route.function, self.route.method, self.route.path);
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    request_id = %self.request_id, function, method, route = path, org, user, status, latency_ms,
                    error, "request"
                )
            };
        }
        match status {
            500.. => line!(error),
            _ => line!(info),
        }
    }
}

/// Lambda's invocation id (the one in the platform's own log lines), else API Gateway's.
fn request_id(parts: &Parts) -> String {
    if let Some(ctx) = parts.lambda_context_ref().filter(|c| !c.request_id.is_empty()) {
        return ctx.request_id.clone();
    }
    match parts.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_else(|| "-".into()),
        _ => "-".into(),
    }
}
