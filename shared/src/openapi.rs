//! The request bodies of `openapi.yaml`, derived from the types the handlers deserialize
//! (`utoipa::ToSchema` on them, feature `openapi`). `tests/tests/openapi_generated.rs` holds the
//! hand-written document to these, so a field added to, removed from or retyped in a body
//! struct fails the tests until the document says the same; `gen-openapi` prints them.
//!
//! A type says which fields exist, their JSON types and that they may be `null` (every field is
//! an `Option`, so the handler can answer a missing field with a 400 naming it). What a handler
//! demands beyond its type (a field that must be present and not `null`) is declared per route
//! below, beside the type.

use serde_json::{json, Value};
use utoipa::PartialSchema;

use crate::api::{bundles, export, import, projects, workspaces};
use crate::routes::{Endpoint, Route, ROUTES};

/// The JSON body of one route, as its handler reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody {
    pub route: &'static Route,
    /// False when a missing or blank body is read as `{}` (`body::parse_or_default`).
    pub required: bool,
    /// JSON Schema in utoipa's dialect (OpenAPI 3.1: `"type": ["string", "null"]`), inline.
    pub schema: Value,
}

/// Every route of [`ROUTES`] that reads a JSON body, in table order.
pub fn request_bodies() -> Vec<RequestBody> {
    ROUTES
        .iter()
        .filter_map(|route| body_of(route.endpoint).map(|(required, schema)| RequestBody { route, required, schema }))
        .collect()
}

/// The match is exhaustive so that a new endpoint has to say whether it reads a body.
fn body_of(endpoint: Endpoint) -> Option<(bool, Value)> {
    Some(match endpoint {
        Endpoint::SaveWorkspace => (true, demand(schema::<workspaces::SaveRequest>(), &["name"])),
        Endpoint::CleanupWorkspace => (false, schema::<workspaces::CleanupRequest>()),
        Endpoint::ExportTables => (false, schema::<export::ExportRequest>()),
        Endpoint::ImportTables => (true, demand(schema::<import::ImportBody>(), &["export_data", "workspace_id"])),
        Endpoint::SaveProject => (true, demand(schema::<projects::ProjectRequest>(), &["project", "project.name"])),
        // No body means every own project; a body must name `project` (`{}` inside it: every own
        // project; `null` is a 400, never "everything"). Reads `project.id` and `project.scope`;
        // the other fields are still parsed (a wrongly typed one is a 400), so they stay documented.
        Endpoint::CleanupProject => (false, demand(schema::<projects::ProjectRequest>(), &["project"])),
        Endpoint::CreateBundleUpload => (false, schema::<bundles::UploadRequest>()),
        Endpoint::CompleteBundleUpload => (true, demand(schema::<bundles::CompleteRequest>(), &["upload_id", "parts"])),
        // Takes no body (one sent is ignored).
        Endpoint::CancelJob => return None,
        // Raw bundle bytes, not JSON; a local-only route outside the document.
        Endpoint::UploadBundle => return None,
        Endpoint::ListWorkspaces
        | Endpoint::LoadWorkspace
        | Endpoint::ListProjects
        | Endpoint::LoadProject
        | Endpoint::GetJob
        | Endpoint::ListJobs
        | Endpoint::DownloadBundle => return None,
    })
}

fn schema<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).expect("a schema serializes")
}

/// The object schema at a path of properties (empty: the root), inside a nullable `oneOf`.
fn object_at<'a>(schema: &'a mut Value, path: &[&str]) -> &'a mut Value {
    let mut at = schema;
    for key in path {
        at = at
            .get_mut("properties")
            .and_then(|p| p.get_mut(*key))
            .unwrap_or_else(|| panic!("no property {key} in {path:?}"));
        if at.get("properties").is_none() {
            at = at
                .get_mut("oneOf")
                .and_then(Value::as_array_mut)
                .and_then(|members| members.iter_mut().find(|m| m.get("properties").is_some()))
                .unwrap_or_else(|| panic!("property {key} is not an object"));
        }
    }
    at
}

/// An `Option` field renders as `type: [T, "null"]` or `oneOf: [{type: null}, S]`; the
/// non-null part, in place.
fn non_null(s: &mut Value) -> &mut Value {
    if let Some(one_of) = s.get("oneOf").and_then(Value::as_array) {
        let rest: Vec<Value> = one_of.iter().filter(|v| v.get("type") != Some(&json!("null"))).cloned().collect();
        if rest.len() == 1 {
            let description = s.get("description").cloned();
            *s = rest.into_iter().next().expect("one left");
            if let (Some(d), Some(obj)) = (description, s.as_object_mut()) {
                obj.entry("description").or_insert(d);
            }
        }
    }
    if let Some(types) = s.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let t = types.remove(0);
            s["type"] = t;
        }
    }
    s
}

/// Fields (dotted paths) the handler answers with a 400 when missing or `null`.
fn demand(mut schema: Value, fields: &[&str]) -> Value {
    for field in fields {
        let path: Vec<&str> = field.split('.').collect();
        let (name, parent) = path.split_last().expect("a field name");
        let obj = object_at(&mut schema, parent);
        non_null(&mut obj["properties"][*name]);
        let required = obj.as_object_mut().expect("an object schema").entry("required").or_insert_with(|| json!([]));
        let list = required.as_array_mut().expect("required is a list");
        if !list.iter().any(|r| r == name) {
            list.push(json!(name));
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demanded_fields_are_required_and_not_null() {
        let body = request_bodies().into_iter().find(|b| b.route.endpoint == Endpoint::SaveProject).unwrap();
        let project = &body.schema["properties"]["project"];
        assert_eq!(body.schema["required"], json!(["project"]));
        assert_eq!(project["type"], json!("object"), "{project}");
        assert_eq!(project["required"], json!(["name"]));
        assert_eq!(project["properties"]["name"]["type"], json!("string"));
        assert_eq!(project["properties"]["id"]["type"], json!(["string", "null"]));
    }
}
