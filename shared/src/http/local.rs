//! The local-only routes behind the folder store's signed links (in AWS the same links are
//! presigned S3 URLs). They carry their own authority, an HMAC over method, key and expiry,
//! instead of a token.

use std::time::Instant;

use futures::StreamExt;
use lambda_http::http::{header, HeaderValue};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use super::access_log::Entry;
use super::{check_method, json_response, request, start, status_code};
use crate::api::bundles::{receive_upload, upload_limit, verify_link};
use crate::app::{App, Links, Needs};
use crate::error::ApiError;
use crate::routes::{route, Endpoint};
use crate::store::StoreError;

/// A response body sent as it is read: the local download streams bundles from disk.
pub type StreamingBody =
    http_body_util::StreamBody<futures::stream::BoxStream<'static, Result<http_body::Frame<bytes::Bytes>, StoreError>>>;

/// The body of the upload function's `main`.
pub async fn run_upload(needs: Needs, links: Links) -> Result<(), lambda_http::Error> {
    let app = start(needs, links).await?;
    lambda_http::run(lambda_http::service_fn(
        move |req| async move { Ok::<_, lambda_http::Error>(upload(app, req).await) },
    ))
    .await
}

/// The body of the download function's `main`: the streaming runtime.
pub async fn run_download(needs: Needs, links: Links) -> Result<(), lambda_http::Error> {
    let app = start(needs, links).await?;
    lambda_http::run_with_streaming_response(lambda_http::service_fn(move |req| stream_download(app, req))).await
}

/// `PUT` of a signed local upload link: a whole bundle, or one part of a parted upload. The
/// body's limit is checked before the body is taken.
pub(super) async fn upload(app: &App, req: Request) -> Response<Body> {
    let route = route(Endpoint::UploadBundle);
    let (parts, body) = req.into_parts();
    let mut entry = Entry::new(route, &parts, Instant::now());
    let result = async {
        check_method(route, &parts)?;
        // The query decides the limit (one part or a whole bundle), so the call comes first.
        let mut call = request::call(&parts, request::params(route, &parts)?, Vec::new());
        let (limit, too_large) = upload_limit(&call);
        call.body = request::read_body(&parts, body, limit, &too_large)?;
        receive_upload(app, &call).await
    }
    .await;
    let (status, envelope, etag) = match result {
        Ok(mut reply) => {
            let etag = reply.etag.take();
            (reply.status, reply.into_envelope(), etag)
        }
        Err(e) => {
            entry.error = Some(e.message.clone());
            (e.status, e.envelope(), None)
        }
    };
    entry.emit(status);
    let mut resp = json_response(status, &envelope);
    if let Some(value) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert(header::ETAG, value);
    }
    resp
}

/// The download gathered into one body, for callers that want one (tests, `serve`).
pub(super) async fn download_whole(app: &App, req: Request) -> Response<Body> {
    let (parts, body) = match stream_download(app, req).await {
        Ok(resp) => resp.into_parts(),
        Err(e) => return json_response(500, &ApiError::internal(e).envelope()),
    };
    match http_body_util::BodyExt::collect(body).await {
        Ok(bytes) => Response::from_parts(parts, Body::Binary(bytes.to_bytes().to_vec())),
        Err(e) => json_response(500, &ApiError::internal(e).envelope()),
    }
}

/// `GET` of a signed local bundle link: the file goes out chunk by chunk as it is read, so
/// memory does not grow with the bundle.
pub async fn stream_download(app: &App, req: Request) -> Result<Response<StreamingBody>, lambda_http::Error> {
    let route = route(Endpoint::DownloadBundle);
    let (parts, _) = req.into_parts();
    let mut entry = Entry::new(route, &parts, Instant::now());
    let opened = async {
        check_method(route, &parts)?;
        let call = request::call(&parts, request::params(route, &parts)?, Vec::new());
        let key = verify_link(app, "GET", &[], &call)?;
        app.bundles.open_stream(&key).await?.ok_or_else(|| ApiError::not_found("Bundle not found (or expired)"))
    }
    .await;
    let resp = match opened {
        Ok((size, chunks)) => {
            let frames = chunks.map(|chunk| chunk.map(http_body::Frame::data)).boxed();
            let mut resp = Response::new(http_body_util::StreamBody::new(frames));
            let headers = resp.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            resp
        }
        Err(e) => {
            entry.error = Some(e.message.clone());
            streaming_json(e.status, &e.envelope())
        }
    };
    // Logged when the response starts: latency is time to the first byte.
    entry.emit(resp.status().as_u16());
    Ok(resp)
}

fn streaming_json(status: u16, body: &Value) -> Response<StreamingBody> {
    let bytes = bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let stream = futures::stream::once(async move { Ok(http_body::Frame::data(bytes)) }).boxed();
    let mut resp = Response::new(http_body_util::StreamBody::new(stream));
    *resp.status_mut() = status_code(status);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
