//! The import's answer, counted as the platform counts: per table occurrence in bundle order, a
//! row whose key existed (before the import or earlier in it) is updated, else inserted.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::Group;
use crate::api::Reply;
use crate::model::Scope;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    pub created: bool,
    pub rows_inserted: u64,
    pub rows_updated: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    tables_created: u64,
    tables_merged: u64,
    rows_inserted: u64,
    rows_updated: u64,
}

impl Summary {
    fn add(&mut self, t: Tally) {
        if t.created {
            self.tables_created += 1;
        } else {
            self.tables_merged += 1;
        }
        self.rows_inserted += t.rows_inserted;
        self.rows_updated += t.rows_updated;
    }
    fn json(&self) -> Value {
        json!({
            "tables_created": self.tables_created,
            "tables_merged": self.tables_merged,
            "tables_failed": 0,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
        })
    }
}

#[derive(Default)]
pub(super) struct Counts {
    /// Top-level tables in bundle order: (bundle name, target name, tally).
    top: Vec<(String, String, Tally)>,
    projects: HashMap<String, Summary>,
    total: Summary,
}

impl Counts {
    pub(super) fn add(&mut self, group: &Group, source: &str, target: &str, tally: Tally) {
        self.total.add(tally);
        match group {
            Group::TopLevel => self.top.push((source.to_owned(), target.to_owned(), tally)),
            Group::Project(pid) => self.projects.entry(pid.clone()).or_default().add(tally),
        }
    }

    pub(super) fn into_reply(
        self,
        scope: Scope,
        project_map: &HashMap<String, String>,
        project_ids: &[String],
        now: &str,
        workspace_id: &str,
    ) -> Reply {
        let mut tables = Map::new();
        for (source, target, t) in &self.top {
            tables.insert(
                source.clone(),
                json!({
                    "status": if t.created { "created" } else { "merged" },
                    "target_table_name": target,
                    "rows_inserted": t.rows_inserted,
                    "rows_updated": t.rows_updated,
                }),
            );
        }
        let mut projects = Map::new();
        for pid in project_ids {
            let summary = self.projects.get(pid).copied().unwrap_or_default();
            projects.insert(
                pid.clone(),
                json!({
                    "status": "success",
                    "new_project_id": project_map.get(pid).unwrap_or(pid),
                    "summary": summary.json(),
                }),
            );
        }
        let mut summary = self.total.json();
        if let Value::Object(m) = &mut summary {
            m.insert("projects_imported".into(), json!(project_ids.len()));
            m.insert("projects_failed".into(), json!(0));
        }
        let message = format!(
            "Workspace tables imported successfully. Imported {} projects (0 failed), created {} tables, inserted {} rows.",
            project_ids.len(),
            self.total.tables_created,
            self.total.rows_inserted
        );
        Reply::ok(
            json!({
                "target_scope": scope,
                "injection_timestamp": now,
                "tables_processed": tables,
                "projects_imported": projects,
                "summary": summary,
                "workspace_id": workspace_id,
            }),
            message,
        )
    }
}
