//! Table naming, as on the platform: `<kind>_<suffix>`, where the suffix is a project id (the
//! table belongs to that project) or the workspace id. Names are matched against whole known
//! ids, never split on `_`, because ids may contain `_` themselves.

use crate::error::ApiError;

pub use crate::tables::TableOwner;

pub fn projects_table(workspace_id: &str) -> String {
    format!("projects_{workspace_id}")
}

/// Which project or the workspace a bundle's table belongs to, by its name: every known id
/// (the projects' and the workspace's) is tried as a whole `_<id>` suffix and the longest match
/// wins, so in workspace `ws_abc` with project `abc`, `concepts_ws_abc` is the workspace's and
/// `concepts_abc` the project's. Used once, at import; what it decides is recorded with the table.
/// A project id equal to the workspace id is refused before this (it would make names ambiguous).
pub fn classify(name: &str, project_ids: &[String], workspace_id: &str) -> Option<TableOwner> {
    let mut best: Option<TableOwner> = kind_before(name, workspace_id).map(|kind| TableOwner::Workspace { kind });
    let mut best_len = if best.is_some() { workspace_id.len() } else { 0 };
    for pid in project_ids {
        if pid.len() <= best_len {
            continue;
        }
        if let Some(kind) = kind_before(name, pid) {
            best = Some(TableOwner::Project { kind, project_id: pid.clone() });
            best_len = pid.len();
        }
    }
    best
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
        // The defect that let one project's cleanup drop the whole workspace.
        assert_eq!(
            classify("projects_ws_abc", &ids(&["abc"]), "ws_abc"),
            Some(TableOwner::Workspace { kind: "projects".into() })
        );
        assert_eq!(
            classify("concepts_ws_abc", &ids(&["abc"]), "ws_abc"),
            Some(TableOwner::Workspace { kind: "concepts".into() })
        );
        assert_eq!(
            classify("concepts_abc", &ids(&["abc"]), "ws_abc"),
            Some(TableOwner::Project { kind: "concepts".into(), project_id: "abc".into() })
        );
        assert_eq!(classify("_ws", &pids, "ws"), None);
    }

    /// Property: over generated ids full of `_` and shared tails, a table named for an owner is
    /// classified back to exactly that owner whenever no longer known id also ends its name, and
    /// otherwise to the longest such id.
    #[test]
    fn longest_whole_id_wins_over_generated_ids() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let parts = ["a", "b", "ab", "x_a", "ws", "p", "1", "a_b", "_"];
        let gen = |rng: &mut rand::rngs::StdRng| -> String {
            let n = rng.gen_range(1..4);
            let mut id: String = (0..n).map(|_| parts[rng.gen_range(0..parts.len())]).collect::<Vec<_>>().join("_");
            id = id.trim_matches('_').to_owned();
            if id.is_empty() {
                id.push('q');
            }
            id
        };
        for _ in 0..3000 {
            let ws = gen(&mut rng);
            let mut pids: Vec<String> = (0..rng.gen_range(0..5)).map(|_| gen(&mut rng)).collect();
            pids.retain(|p| *p != ws);
            pids.sort();
            pids.dedup();
            let kind = ["concepts", "cells", "my_kind", "projects", "x"][rng.gen_range(0..5)].to_owned();
            let owner = if !pids.is_empty() && rng.gen_bool(0.6) {
                TableOwner::Project { kind: kind.clone(), project_id: pids[rng.gen_range(0..pids.len())].clone() }
            } else {
                TableOwner::Workspace { kind: kind.clone() }
            };
            let name = owner.table_name(&ws);
            let got = classify(&name, &pids, &ws).unwrap_or_else(|| panic!("{name} not classified"));
            // Whatever was chosen names the table and is the longest id that could.
            assert_eq!(got.table_name(&ws), name, "{got:?} does not name {name}");
            let chosen = got.project_id().unwrap_or(&ws).len();
            let longest =
                pids.iter().chain([&ws]).filter(|id| kind_before(&name, id).is_some()).map(|id| id.len()).max();
            assert_eq!(Some(chosen), longest, "{name} with ids {pids:?} and workspace {ws}: chose {got:?}");
            if pids
                .iter()
                .chain([&ws])
                .all(|id| id.len() <= owner.project_id().unwrap_or(&ws).len() || kind_before(&name, id).is_none())
            {
                assert_eq!(got, owner);
            }
        }
    }
}
