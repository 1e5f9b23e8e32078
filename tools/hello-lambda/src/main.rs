//! `hello-lambda`: answers every request with 200 and the text "hello", on exactly the
//! workspace's `lambda_http` (same features, same runtime). The bench's cold-start section
//! compares each function's init with this one's: what a function adds over the runtime itself.
//! It lives under `tools/`, not `functions/`, so it is never deployed.

use lambda_http::{service_fn, Body, Error, Request, Response};

async fn hello(_req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder().status(200).header("content-type", "text/plain").body(Body::Text("hello".into()))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(hello)).await
}
