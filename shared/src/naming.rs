//! Table naming, as on the platform: `<kind>_<suffix>`, where the suffix is a project id (the
//! table belongs to that project) or the workspace id. Names are matched against whole known
//! ids, never split on `_`, because ids may contain `_` themselves.

use crate::error::ApiError;

/// A table name's parts once its owner is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOwner {
    Project { kind: String, project_id: String },
    Workspace { kind: String },
}

pub fn projects_table(workspace_id: &str) -> String {
    format!("projects_{workspace_id}")
}

/// Which project (longest matching id first) or the workspace a table belongs to.
pub fn classify(name: &str, project_ids: &[String], workspace_id: &str) -> Option<TableOwner> {
    let mut by_length: Vec<&String> = project_ids.iter().collect();
    by_length.sort_by_key(|id| std::cmp::Reverse(id.len()));
    for pid in by_length {
        if let Some(kind) = kind_before(name, pid) {
            // `projects_<ws>` is never a project's table even if a project id equals the ws id.
            if !(kind == "projects" && pid == workspace_id) {
                return Some(TableOwner::Project { kind, project_id: pid.clone() });
            }
        }
    }
    kind_before(name, workspace_id).map(|kind| TableOwner::Workspace { kind })
}

fn kind_before(name: &str, suffix: &str) -> Option<String> {
    let kind = name.strip_suffix(suffix)?.strip_suffix('_')?;
    (!kind.is_empty()).then(|| kind.to_owned())
}

/// Table names become parts of storage keys: keep them to a safe alphabet.
pub fn validate_table_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '+'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "table '{}': names are 1-255 letters, digits and _ - . @ +",
            name.chars().take(64).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matches_whole_ids_not_underscores() {
        let pids = ids(&["1e0e4e01aa8", "p_1", "p"]);
        assert_eq!(
            classify("concepts_1e0e4e01aa8", &pids, "workspace_id"),
            Some(TableOwner::Project { kind: "concepts".into(), project_id: "1e0e4e01aa8".into() })
        );
        assert_eq!(
            classify("cells_p_1", &pids, "ws"),
            Some(TableOwner::Project { kind: "cells".into(), project_id: "p_1".into() })
        );
        assert_eq!(
            classify("my_table_p", &pids, "ws"),
            Some(TableOwner::Project { kind: "my_table".into(), project_id: "p".into() })
        );
        assert_eq!(
            classify("datasources_workspace_id", &pids, "workspace_id"),
            Some(TableOwner::Workspace { kind: "datasources".into() })
        );
        assert_eq!(
            classify("projects_ws_1", &ids(&["ws_1"]), "ws_1"),
            Some(TableOwner::Workspace { kind: "projects".into() })
        );
        assert_eq!(classify("concepts_other", &pids, "ws"), None);
        assert_eq!(classify("_ws", &pids, "ws"), None);
    }
}
