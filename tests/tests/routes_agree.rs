//! The route table (`shared::routes::ROUTES`) is the single source of truth. Three other files
//! restate it for tools that cannot read Rust: the SAM template (deployed API + one function per
//! route), the `cargo lambda watch` router in the root `Cargo.toml` (`make run`), and
//! `openapi.yaml`. This test fails when any of them drifts from the table, and when a route's
//! function has no `functions/<function>/` crate building that binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use shared::routes::{LOCAL_PREFIX, PREFIX, ROUTES};
use yaml_rust2::{Yaml, YamlLoader};

/// (METHOD, full path, function binary)
type RouteSet = BTreeSet<(String, String, String)>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn table(include_local_only: bool) -> RouteSet {
    ROUTES
        .iter()
        .filter(|r| include_local_only || !r.local_only)
        .map(|r| (r.method.to_ascii_uppercase(), r.full_path(), r.function.to_owned()))
        .collect()
}

fn assert_same(source: &str, got: &RouteSet, want: &RouteSet) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{source} disagrees with shared::routes::ROUTES\n  missing from {source}: {missing:?}\n  \
         not in the route table: {extra:?}\n(each entry is (method, path, function))"
    );
}

fn load_yaml(rel: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{rel} should hold one YAML document");
    docs.remove(0)
}

fn hash<'a>(y: &'a Yaml, what: &str) -> &'a yaml_rust2::yaml::Hash {
    y.as_hash().unwrap_or_else(|| panic!("{what} should be a mapping, got {y:?}"))
}

fn string(y: &Yaml, what: &str) -> String {
    y.as_str().unwrap_or_else(|| panic!("{what} should be a string, got {y:?}")).to_owned()
}

/// Routes of the SAM template: every `AWS::Serverless::Function`'s `HttpApi` events, named by
/// the function's `Metadata.BuildProperties.Binary`.
fn template_routes() -> RouteSet {
    let doc = load_yaml("template.yaml");
    let mut out = RouteSet::new();
    let mut binaries = Vec::new();
    for (name, res) in hash(&doc["Resources"], "template Resources") {
        let name = string(name, "a resource name");
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        assert_eq!(
            res["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}: Metadata.BuildMethod must be rust-cargolambda"
        );
        let binary =
            string(&res["Metadata"]["BuildProperties"]["Binary"], &format!("{name}.Metadata.BuildProperties.Binary"));
        binaries.push(binary.clone());
        let events = hash(&res["Properties"]["Events"], &format!("{name}.Properties.Events"));
        let mut api_events = 0;
        for (ev_name, ev) in events {
            if ev["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            api_events += 1;
            let what = format!("{name}.Events.{}", ev_name.as_str().unwrap_or("?"));
            let props = &ev["Properties"];
            // `!Ref HttpApi` parses as the plain string "HttpApi" (the tag is dropped).
            assert_eq!(props["ApiId"].as_str(), Some("HttpApi"), "{what}: ApiId must be !Ref HttpApi");
            let method = string(&props["Method"], &format!("{what}.Method")).to_ascii_uppercase();
            let path = string(&props["Path"], &format!("{what}.Path"));
            assert!(out.insert((method, path, binary.clone())), "{what}: duplicate route");
        }
        // A scheduled function (compaction) and the queue-fed worker have no route on purpose.
        let scheduled = events.iter().any(|(_, ev)| matches!(ev["Type"].as_str(), Some("Schedule" | "SQS")));
        assert!(api_events > 0 || scheduled, "{name} ({binary}) has no HttpApi event: a function no route reaches");
    }
    let unique: BTreeSet<_> = binaries.iter().collect();
    assert_eq!(unique.len(), binaries.len(), "two template functions build the same binary: {binaries:?}");
    out
}

/// Routes of `[workspace.metadata.lambda.watch.router]`: `"path" = [{ method, function }, ...]`.
fn router_routes() -> RouteSet {
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    let router = manifest
        .get("workspace")
        .and_then(|w| w.get("metadata"))
        .and_then(|m| m.get("lambda"))
        .and_then(|l| l.get("watch"))
        .and_then(|w| w.get("router"))
        .and_then(|r| r.as_table())
        .expect("Cargo.toml has a [workspace.metadata.lambda.watch.router] table");
    let mut out = RouteSet::new();
    for (path, entries) in router {
        let entries = entries.as_array().unwrap_or_else(|| {
            panic!("router \"{path}\": give [{{ method = .., function = .. }}], not one function for every method")
        });
        for e in entries {
            let field = |k: &str| {
                e.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_else(|| panic!("router \"{path}\": each entry needs a string `{k}`"))
                    .to_owned()
            };
            assert!(
                out.insert((field("method").to_ascii_uppercase(), path.clone(), field("function"))),
                "router \"{path}\": duplicate entry"
            );
        }
    }
    out
}

/// Operations of `openapi.yaml`, named by their `x-function`.
fn openapi_routes() -> RouteSet {
    let doc = load_yaml("openapi.yaml");
    let mut out = RouteSet::new();
    for (path, item) in hash(&doc["paths"], "openapi paths") {
        let path = string(path, "an openapi path");
        for (method, op) in hash(item, &format!("openapi {path}")) {
            let method = string(method, "an openapi path item key");
            if !["get", "put", "post", "delete", "options", "head", "patch", "trace"].contains(&method.as_str()) {
                continue;
            }
            let function = string(&op["x-function"], &format!("openapi {method} {path} x-function"));
            out.insert((method.to_ascii_uppercase(), path.clone(), function));
        }
    }
    out
}

#[test]
fn the_route_table_is_well_formed() {
    assert!(!ROUTES.is_empty());
    for r in ROUTES {
        assert!(r.path.starts_with('/'), "{r:?}: path must start with /");
        let prefix = if r.local_only { LOCAL_PREFIX } else { PREFIX };
        assert!(r.full_path().starts_with(prefix), "{r:?}: full path must start with {prefix}");
        assert_eq!(r.method, r.method.to_ascii_uppercase(), "{r:?}: method in upper case");
    }
    let paths: BTreeSet<_> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(paths.len(), ROUTES.len(), "a (method, path) appears twice in ROUTES");
}

#[test]
fn the_sam_template_deploys_exactly_the_non_local_routes() {
    assert_same("template.yaml", &template_routes(), &table(false));
}

#[test]
fn the_watch_router_serves_every_route() {
    assert_same("the Cargo.toml watch router", &router_routes(), &table(true));
}

#[test]
fn openapi_documents_exactly_the_non_local_routes() {
    assert_same("openapi.yaml", &openapi_routes(), &table(false));
}

#[test]
fn every_route_function_has_its_crate() {
    for r in ROUTES {
        let rel = format!("functions/{}/Cargo.toml", r.function);
        let manifest: toml::Table = read(&rel).parse().unwrap_or_else(|e| panic!("{rel}: {e}"));
        let package = manifest.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
        let bins: Vec<&str> = manifest
            .get("bin")
            .and_then(|b| b.as_array())
            .map(|bins| bins.iter().filter_map(|b| b.get("name").and_then(|n| n.as_str())).collect())
            .unwrap_or_default();
        let builds_it = if bins.is_empty() { package == Some(r.function) } else { bins.contains(&r.function) };
        assert!(builds_it, "{rel} must build a binary named '{}' (package {package:?}, bins {bins:?})", r.function);
        assert!(root().join(format!("functions/{}/src/main.rs", r.function)).exists() || !bins.is_empty());
    }
}
