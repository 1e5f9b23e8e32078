//! The one route table. `template.yaml`, the `cargo lambda watch` router in `Cargo.toml` and
//! `openapi.yaml` are checked against it by `tests/tests/routes_agree.rs`.

/// Every public path starts with this; `{org}` and `{user}` must match the token.
pub const PREFIX: &str = "/jarvispy/{org}/{user}/api/v1";
/// Local-only routes (signed bundle links of the folder store) live here, outside the API.
pub const LOCAL_PREFIX: &str = "/jarvispy/_local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    SaveWorkspace,
    ListWorkspaces,
    LoadWorkspace,
    CleanupWorkspace,
    ExportTables,
    ImportTables,
    CreateBundleUpload,
    SaveProject,
    ListProjects,
    LoadProject,
    CleanupProject,
    GetJob,
    ListJobs,
    CancelJob,
    DownloadBundle,
    UploadBundle,
    CompleteBundleUpload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub method: &'static str,
    /// Path pattern below [`PREFIX`] (or [`LOCAL_PREFIX`] when `local_only`), `{name}` parameters.
    pub path: &'static str,
    /// The Lambda binary (and `functions/<function>` folder) that serves it.
    pub function: &'static str,
    /// Served only by the local router (signed links to the bundle folder), never deployed:
    /// in AWS the same links are presigned S3 URLs.
    pub local_only: bool,
}

const fn public(endpoint: Endpoint, method: &'static str, path: &'static str, function: &'static str) -> Route {
    Route { endpoint, method, path, function, local_only: false }
}

const fn local(endpoint: Endpoint, method: &'static str, path: &'static str, function: &'static str) -> Route {
    Route { endpoint, method, path, function, local_only: true }
}

pub const ROUTES: &[Route] = &[
    public(Endpoint::SaveWorkspace, "POST", "/workspaces/save", "save-workspace"),
    public(Endpoint::ListWorkspaces, "GET", "/workspaces/list", "list-workspaces"),
    public(Endpoint::LoadWorkspace, "GET", "/workspaces/{workspace_id}/load", "load-workspace"),
    public(Endpoint::CleanupWorkspace, "POST", "/workspaces/{workspace_id}/cleanup", "cleanup-workspace"),
    public(Endpoint::ExportTables, "POST", "/workspaces/{workspace_id}/export-tables", "export-tables"),
    public(Endpoint::ImportTables, "POST", "/workspaces/import-tables", "import-tables"),
    public(Endpoint::CreateBundleUpload, "POST", "/workspaces/bundles", "create-bundle-upload"),
    public(
        Endpoint::CompleteBundleUpload,
        "POST",
        "/workspaces/bundles/{bundle_id}/complete",
        "complete-bundle-upload",
    ),
    public(Endpoint::SaveProject, "POST", "/projects/{workspace_id}/save", "save-project"),
    public(Endpoint::ListProjects, "GET", "/projects/{workspace_id}/list", "list-projects"),
    public(Endpoint::LoadProject, "GET", "/projects/{workspace_id}/load", "load-project"),
    public(Endpoint::CleanupProject, "POST", "/projects/{workspace_id}/cleanup", "cleanup-project"),
    // `jobs` is a reserved word no workspace id may take, so these never meet `/workspaces/{id}/…`.
    public(Endpoint::GetJob, "GET", "/workspaces/jobs/{job_id}", "get-job"),
    public(Endpoint::ListJobs, "GET", "/workspaces/jobs", "list-jobs"),
    public(Endpoint::CancelJob, "POST", "/workspaces/jobs/{job_id}/cancel", "cancel-job"),
    local(Endpoint::DownloadBundle, "GET", "/bundles/{tenant}/{bundle}", "download-bundle"),
    // A whole bundle, or (`?uploadId=…&partNumber=…&size=…`) one part of a parted upload.
    local(Endpoint::UploadBundle, "PUT", "/bundles/{tenant}/{bundle}", "upload-bundle"),
];

impl Route {
    pub fn full_path(&self) -> String {
        let prefix = if self.local_only { LOCAL_PREFIX } else { PREFIX };
        format!("{prefix}{}", self.path)
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

/// `%XX` escapes decoded; `+` stays a plus (it is a path, not a form).
pub fn percent_decode(s: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes()).next().map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_parameters_and_rejects_other_paths() {
        let p = route(Endpoint::LoadWorkspace).full_path();
        let got = match_path(&p, "/jarvispy/acme/ann/api/v1/workspaces/ws_1/load").unwrap();
        assert_eq!(
            got,
            vec![("org".into(), "acme".into()), ("user".into(), "ann".into()), ("workspace_id".into(), "ws_1".into())]
        );
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
