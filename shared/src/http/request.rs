//! From Lambda's request to the handler's input: method, path parameters, query, body within its
//! limit, and the verified principal.

use std::collections::HashMap;

use lambda_http::http::{header, request::Parts};
use lambda_http::{Body, RequestExt};

use super::access_log::Entry;
use crate::api::Call;
use crate::app::App;
use crate::auth::check_path;
use crate::error::ApiError;
use crate::model::{validate_id, Principal};
use crate::routes::{match_path, percent_decode, Route};

/// Everything a public handler needs, checked in the order a caller can fix it: method, path,
/// body size, token.
pub(super) fn prepare(
    app: &App,
    route: &Route,
    parts: &Parts,
    body: Body,
    entry: &mut Entry,
) -> Result<(Principal, Call), ApiError> {
    super::check_method(route, parts)?;
    let params = params(route, parts)?;
    entry.tenant(params.get("org"), params.get("user"));
    let body = read_body(parts, body, super::MAX_REQUEST_BYTES, "Request body is larger than 6 MB")?;
    let call = call(parts, params, body);
    let principal = authenticate(app, parts, &call)?;
    Ok((principal, call))
}

/// Path parameters come from API Gateway or the watch router; when a caller bypasses both
/// (e.g. `cargo lambda invoke` with a bare event) they are matched from the raw path. The
/// tenant (`org`, `user`) of a public route must be valid ids.
pub(super) fn params(route: &Route, parts: &Parts) -> Result<HashMap<String, String>, ApiError> {
    // API Gateway hands parameters over decoded, the local router as sent (`%40` for `@`):
    // decode those with an escape. No id holds `%`, so a decoded one can never be misread.
    let decoded =
        |v: &str| if v.contains('%') { percent_decode(v).unwrap_or_else(|| v.to_owned()) } else { v.to_owned() };
    let mut params: HashMap<String, String> =
        parts.path_parameters().iter().map(|(k, v)| (k.to_owned(), decoded(v))).collect();
    if !params.contains_key("org") || !params.contains_key("user") {
        let raw = parts.raw_http_path();
        let path = if raw.is_empty() { parts.uri.path() } else { raw };
        if let Some(found) = match_path(&route.full_path(), path) {
            params.extend(found);
        }
    }
    if !route.local_only {
        for name in ["org", "user"] {
            let value = params.get(name).ok_or_else(|| ApiError::not_found("No such route"))?;
            validate_id(name, value)?;
        }
    }
    Ok(params)
}

/// The body's bytes, moved rather than copied, refused (413) over `limit`: by the declared
/// length before touching the body, then by its actual length.
pub(super) fn read_body(parts: &Parts, body: Body, limit: u64, too_large: &str) -> Result<Vec<u8>, ApiError> {
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(too_large));
    }
    let bytes = match body {
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    if bytes.len() as u64 > limit {
        return Err(ApiError::too_large(too_large));
    }
    Ok(bytes)
}

pub(super) fn call(parts: &Parts, params: HashMap<String, String>, body: Vec<u8>) -> Call {
    let mut query: HashMap<String, String> =
        parts.query_string_parameters().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    if query.is_empty() {
        if let Some(q) = parts.uri.query() {
            query.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
        }
    }
    let idempotency_key =
        parts.headers.get("idempotency-key").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Call { params, query, body, public_base: public_base(parts), if_match: if_match(parts), idempotency_key }
}

/// Every `If-Match` value, joined as one list; text that is not UTF-8 stays visible (and fails
/// to parse) rather than vanishing into "no precondition".
fn if_match(parts: &Parts) -> Option<String> {
    let values: Vec<String> = parts
        .headers
        .get_all(header::IF_MATCH)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn public_base(parts: &Parts) -> String {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = header("host").unwrap_or_else(|| "127.0.0.1".into());
    let local = host.starts_with("127.0.0.1") || host.starts_with("localhost") || host.starts_with("[::1]");
    let scheme = header("x-forwarded-proto").unwrap_or_else(|| if local { "http" } else { "https" }.into());
    format!("{scheme}://{host}")
}

fn authenticate(app: &App, parts: &Parts, call: &Call) -> Result<Principal, ApiError> {
    let header = match parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => return Err(ApiError::unauthorized("Authorization header is not valid text")),
        None => None,
    };
    let principal = app.verifier.verify_header(header)?;
    check_path(&principal, call.param("org")?, call.param("user")?)?;
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(content_length: Option<&str>) -> Parts {
        let mut b = lambda_http::http::Request::builder();
        if let Some(n) = content_length {
            b = b.header("content-length", n);
        }
        b.body(()).map(|r| r.into_parts().0).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn bodies_over_the_limit_are_413_by_declared_or_actual_length() {
        let read = |p: &Parts, body: &str| read_body(p, Body::Text(body.into()), 4, "too big").map_err(|e| e.status);
        assert_eq!(read(&parts(None), "abcd"), Ok(b"abcd".to_vec()));
        assert_eq!(read(&parts(None), "abcde"), Err(413));
        // The declared length alone refuses, before the body is looked at.
        assert_eq!(read(&parts(Some("5")), ""), Err(413));
        assert_eq!(read(&parts(Some("junk")), "ab"), Ok(b"ab".to_vec()));
        assert_eq!(read_body(&parts(None), Body::Empty, 4, "x").map_err(|e| e.status), Ok(Vec::new()));
    }
}
