//! An app served over real HTTP/1.1 on 127.0.0.1, for suites that drive a real client (the
//! `workspaces` CLI): the path is matched against `shared::routes::ROUTES` (the local-only bundle
//! routes included), the Lambda request is built as API Gateway / the watch router would hand it
//! over (path and query parameters), and the response goes back as the function answers it
//! (downloads streamed). Optionally a worker works the jobs queue in process, as the event
//! source mapping would, so `"async": true` jobs finish.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, RequestExt};
use shared::routes::{match_path, Endpoint, ROUTES};

use crate::Harness;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RespBody = UnsyncBoxBody<Bytes, BoxError>;

/// A running server; it stops when dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub harness: Arc<Harness>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API base of a tenant: `http://127.0.0.1:<port>/jarvispy/<org>/<user>/api/v1`.
    pub fn api_url(&self, org: &str, user: &str) -> String {
        format!("{}/jarvispy/{org}/{user}/api/v1", self.origin())
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Serves `harness` on an ephemeral port of 127.0.0.1 (on the current Tokio runtime, which must
/// be multi-threaded when a blocking client runs in it); with `work_jobs`, a worker takes the
/// jobs queue's messages one by one.
pub async fn serve(harness: Harness, work_jobs: bool) -> HttpServer {
    let harness = Arc::new(harness);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding 127.0.0.1");
    let addr = listener.local_addr().expect("the bound address");
    let h = harness.clone();
    let mut tasks = vec![tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let h = h.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(h.clone(), req));
                // A client that goes away mid-request is its own business.
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })];
    if work_jobs {
        let h = harness.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                crate::invoke_once(&h.app, &*h.queue, std::time::Duration::from_secs(60)).await;
            }
        }));
    }
    HttpServer { addr, harness, tasks }
}

/// The route of `method` + `path`: the one of that method, else any of that path (its function
/// answers 405), else none.
pub fn find_route(method: &str, path: &str) -> Option<(Endpoint, HashMap<String, String>)> {
    let mut path_only = None;
    for route in ROUTES {
        if let Some(params) = match_path(&route.full_path(), path) {
            let params: HashMap<String, String> = params.into_iter().collect();
            if route.method.eq_ignore_ascii_case(method) {
                return Some((route.endpoint, params));
            }
            path_only.get_or_insert((route.endpoint, params));
        }
    }
    path_only
}

fn full(status: u16, bytes: Vec<u8>, headers: &lambda_http::http::HeaderMap) -> hyper::Response<RespBody> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(bytes)).map_err(|e| match e {}).boxed_unsync());
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if name != hyper::header::CONTENT_LENGTH {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    resp
}

async fn handle(h: Arc<Harness>, req: hyper::Request<Incoming>) -> Result<hyper::Response<RespBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let Some((endpoint, params)) = find_route(parts.method.as_str(), parts.uri.path()) else {
        let envelope = serde_json::json!({"data": null, "message": "No such route", "status": "error"});
        return Ok(full(404, envelope.to_string().into_bytes(), &Default::default()));
    };
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) => {
            let envelope =
                serde_json::json!({"data": null, "message": format!("reading the body: {e}"), "status": "error"});
            return Ok(full(400, envelope.to_string().into_bytes(), &Default::default()));
        }
    };
    let query: HashMap<String, String> =
        parts.uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let body = if bytes.is_empty() { Body::Empty } else { Body::Binary(bytes) };
    let req =
        lambda_http::Request::from_parts(parts, body).with_query_string_parameters(query).with_path_parameters(params);
    if endpoint == Endpoint::DownloadBundle {
        // The download function's streaming response, as it is.
        return Ok(match shared::http::stream_download(&h.app, req).await {
            Ok(resp) => resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()),
            Err(e) => full(500, format!("download failed: {e}").into_bytes(), &Default::default()),
        });
    }
    let resp = match shared::http::serve(&h.app, endpoint, req).await {
        Ok(resp) => resp,
        Err(e) => return Ok(full(500, format!("serve failed: {e}").into_bytes(), &Default::default())),
    };
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    Ok(full(parts.status.as_u16(), bytes, &parts.headers))
}
