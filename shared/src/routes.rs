//! The one route table. `template.yaml`, the `cargo lambda watch` router in `Cargo.toml` and
//! `openapi.yaml` are checked against it by `tests/tests/routes_agree.rs`.

/// Every public path starts with this; `{org}` and `{user}` must match the token.
pub const PREFIX: &str = "/jarvispy/{org}/{user}/api/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    SaveWorkspace,
    ListWorkspaces,
    LoadWorkspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub method: &'static str,
    /// Path pattern below [`PREFIX`], with `{name}` parameters.
    pub path: &'static str,
    /// The Lambda binary (and `functions/<function>` folder) that serves it.
    pub function: &'static str,
    /// Served only by the local router (e.g. signed bundle downloads), never deployed.
    pub local_only: bool,
}

pub const ROUTES: &[Route] = &[
    Route {
        endpoint: Endpoint::SaveWorkspace,
        method: "POST",
        path: "/workspaces/save",
        function: "save-workspace",
        local_only: false,
    },
    Route {
        endpoint: Endpoint::ListWorkspaces,
        method: "GET",
        path: "/workspaces/list",
        function: "list-workspaces",
        local_only: false,
    },
    Route {
        endpoint: Endpoint::LoadWorkspace,
        method: "GET",
        path: "/workspaces/{workspace_id}/load",
        function: "load-workspace",
        local_only: false,
    },
];

impl Route {
    pub fn full_path(&self) -> String {
        format!("{PREFIX}{}", self.path)
    }
}

pub fn route(endpoint: Endpoint) -> &'static Route {
    ROUTES.iter().find(|r| r.endpoint == endpoint).expect("every endpoint has a route")
}

/// Matches a concrete path against a `{param}` pattern, returning the parameters.
pub fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let pat: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let got: Vec<&str> = path.trim_end_matches('/').trim_start_matches('/').split('/').collect();
    if pat.len() != got.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, g) in pat.iter().zip(got) {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if g.is_empty() {
                return None;
            }
            let value = percent_decode(g)?;
            params.push((name.to_owned(), value));
        } else if *p != g {
            return None;
        }
    }
    Some(params)
}

fn percent_decode(s: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes()).next().map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_parameters_and_rejects_other_paths() {
        let p = route(Endpoint::LoadWorkspace).full_path();
        let got = match_path(&p, "/jarvispy/acme/ann/api/v1/workspaces/ws_1/load").unwrap();
        assert_eq!(got, vec![("org".into(), "acme".into()), ("user".into(), "ann".into()), ("workspace_id".into(), "ws_1".into())]);
        assert!(match_path(&p, "/jarvispy/acme/ann/api/v1/workspaces/load").is_none());
        assert!(match_path(&p, "/jarvispy/acme/ann/api/v2/workspaces/ws_1/load").is_none());
    }

    #[test]
    fn every_function_serves_one_endpoint() {
        let mut names: Vec<_> = ROUTES.iter().map(|r| r.function).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ROUTES.len());
    }
}
