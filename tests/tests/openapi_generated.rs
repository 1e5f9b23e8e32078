//! `openapi.yaml` describes every request body as the handler's body type does
//! (`shared::openapi::request_bodies`, derived with utoipa): the same properties, each with the
//! same JSON type and nullability, the same required fields, and whether a body may be left out.
//! Descriptions, examples, patterns and bounds stay hand-written. Renaming, adding, dropping or
//! retyping a body field therefore fails here until the document says the same; `make openapi`
//! prints what the types say.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Map, Value};
use shared::openapi::request_bodies;
use shared::routes::ROUTES;
use yaml_rust2::{Yaml, YamlLoader};

fn document() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut docs = YamlLoader::load_from_str(&text).expect("openapi.yaml is YAML");
    to_json(&docs.remove(0))
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().map(str::to_owned).unwrap_or_else(|| format!("{k:?}")), to_json(v)))
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::String(s) => json!(s),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().expect("a YAML real")),
        Yaml::Boolean(b) => json!(b),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML node {other:?}"),
    }
}

/// `{type, nullable, properties?, required?}` of a schema in either dialect: OpenAPI 3.0
/// (`nullable: true`, `allOf: [$ref]` beside it) as written, or 3.1 (`type: [T, "null"]`,
/// `oneOf: [{type: null}, S]`) as utoipa derives it. `$ref`s resolve against `doc`.
fn canon(s: &Value, doc: &Value, at: &str) -> Value {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{at}: unexpected $ref {r}"));
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "{at}: $ref {r} resolves to nothing");
        return canon(target, doc, at);
    }
    let mut nullable = s.get("nullable") == Some(&json!(true));
    let mut out = Map::new();
    let mut ty = Value::Null;
    let mut members: Vec<&Value> = Vec::new();
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            for m in list {
                if m.get("type") == Some(&json!("null")) {
                    nullable = true;
                } else {
                    members.push(m);
                }
            }
        }
    }
    assert!(members.len() <= 1, "{at}: compositions of several schemas are not compared: {s}");
    if let Some(m) = members.first() {
        let inner = canon(m, doc, at);
        nullable |= inner["nullable"] == json!(true);
        ty = inner["type"].clone();
        for key in ["properties", "required"] {
            if let Some(v) = inner.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
    }
    match s.get("type") {
        Some(Value::String(t)) => ty = json!(t),
        Some(Value::Array(ts)) => {
            nullable |= ts.contains(&json!("null"));
            let rest: Vec<_> = ts.iter().filter(|t| *t != "null").collect();
            assert_eq!(rest.len(), 1, "{at}: one type besides null expected: {s}");
            ty = rest[0].clone();
        }
        _ => {}
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        let props: Map<String, Value> =
            props.iter().map(|(k, v)| (k.clone(), canon(v, doc, &format!("{at}.{k}")))).collect();
        out.insert("properties".into(), Value::Object(props));
    }
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        let req: BTreeSet<&str> = req.iter().filter_map(Value::as_str).collect();
        out.insert("required".into(), json!(req));
    }
    out.insert("type".into(), if ty.is_null() { json!("any") } else { ty });
    out.insert("nullable".into(), json!(nullable));
    Value::Object(out)
}

#[test]
fn request_bodies_match_the_handler_types() {
    let doc = document();
    let mut problems = Vec::new();
    let generated = request_bodies();
    for body in &generated {
        let path = body.route.full_path();
        let method = body.route.method.to_ascii_lowercase();
        let op = &doc["paths"][&path][&method];
        let at = format!("{} {path}", body.route.method);
        let rb = &op["requestBody"];
        if rb.is_null() {
            problems.push(format!("{at}: no requestBody, but the handler reads {}", body.schema));
            continue;
        }
        let written_required = rb.get("required") == Some(&json!(true));
        if written_required != body.required {
            problems
                .push(format!("{at}: requestBody.required is {written_required}, the handler says {}", body.required));
        }
        let written = canon(&rb["content"]["application/json"]["schema"], &doc, &at);
        let derived = canon(&body.schema, &json!({}), &at);
        if written != derived {
            problems.push(format!(
                "{at}: the request body schema differs from the handler's type\n  openapi.yaml: {written}\n  \
                 derived:      {derived}"
            ));
        }
    }
    // The other way: no documented body that no handler reads.
    for route in ROUTES.iter().filter(|r| !r.local_only) {
        let op = &doc["paths"][route.full_path()][route.method.to_ascii_lowercase()];
        if !op["requestBody"].is_null() && !generated.iter().any(|b| b.route == route) {
            problems
                .push(format!("{} {}: documents a requestBody its handler does not read", route.method, route.path));
        }
    }
    assert!(problems.is_empty(), "openapi.yaml disagrees with the body types:\n{}", problems.join("\n"));
}

/// The comparison itself: a changed field type or a dropped `nullable` is seen.
#[test]
fn canon_sees_type_and_nullability() {
    let doc = json!({"components": {"schemas": {"Id": {"type": "string"}}}});
    let written = json!({"type": "object", "required": ["a"], "properties": {
        "a": {"$ref": "#/components/schemas/Id"},
        "b": {"allOf": [{"$ref": "#/components/schemas/Id"}], "nullable": true},
    }});
    let derived = json!({"type": "object", "required": ["a"], "properties": {
        "a": {"type": "string"},
        "b": {"type": ["string", "null"]},
    }});
    assert_eq!(canon(&written, &doc, "w"), canon(&derived, &doc, "d"));
    let retyped = json!({"type": "object", "required": ["a"], "properties": {
        "a": {"type": "string"},
        "b": {"type": ["boolean", "null"]},
    }});
    assert_ne!(canon(&written, &doc, "w"), canon(&retyped, &doc, "d"));
    let not_null = json!({"type": "object", "required": ["a"], "properties": {
        "a": {"type": "string"},
        "b": {"type": "string"},
    }});
    assert_ne!(canon(&written, &doc, "w"), canon(&not_null, &doc, "d"));
}
