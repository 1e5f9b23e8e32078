//! Prints the request bodies the handlers' types describe (`shared::openapi`), as JSON: what
//! `openapi.yaml`'s `requestBody` schemas must say (tests/tests/openapi_generated.rs checks it).
//! `make openapi`.

use serde_json::json;

fn main() {
    let bodies: Vec<_> = shared::openapi::request_bodies()
        .into_iter()
        .map(|b| json!({"method": b.route.method, "path": b.route.full_path(), "required": b.required, "schema": b.schema}))
        .collect();
    println!("{}", serde_json::to_string_pretty(&bodies).expect("JSON serializes"));
}
