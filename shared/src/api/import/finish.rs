//! After every chunk: [`finish`] gives what makes the import visible (the tables' schemas, the
//! workspace to create) and the answer, counted from the chunks' tallies.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::chunk::ChunkTally;
use super::counts::{Counts, Tally};
use super::plan::ImportPlan;
use crate::api::Reply;
use crate::error::ApiError;
use crate::store::job_tables::{StagedFinish, StagedTable};

/// The chunks' tallies added up (plain data: a job keeps it between invocations).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tallies {
    /// Per occurrence: rows inserted, rows updated.
    pub rows: Vec<(u64, u64)>,
    /// Per table: keys new relative to the snapshot.
    pub new_keys: Vec<u64>,
    /// Chunks added.
    pub chunks: u64,
}

impl Tallies {
    pub fn new(plan: &ImportPlan) -> Self {
        Self { rows: vec![(0, 0); plan.occurrences.len()], new_keys: vec![0; plan.tables.len()], chunks: 0 }
    }

    /// Adds one chunk's tally; each chunk must be added exactly once.
    pub fn add(&mut self, t: &ChunkTally) {
        if let Some(r) = self.rows.get_mut(t.occurrence as usize) {
            r.0 += t.rows_inserted;
            r.1 += t.rows_updated;
        }
        if let Some(n) = self.new_keys.get_mut(t.table as usize) {
            *n += t.new_keys;
        }
        self.chunks += 1;
    }
}

pub fn finish(plan: &ImportPlan, tallies: &Tallies) -> Result<(StagedFinish, Reply), ApiError> {
    if tallies.chunks != plan.chunks.len() as u64 || tallies.rows.len() != plan.occurrences.len() {
        return Err(ApiError::internal(format!(
            "import finish: {} of {} chunks tallied",
            tallies.chunks,
            plan.chunks.len()
        )));
    }
    let tables = plan
        .tables
        .iter()
        .zip(&tallies.new_keys)
        .map(|(t, new_keys)| StagedTable {
            name: t.name.clone(),
            owner: t.owner.clone(),
            columns: t.columns.clone(),
            key_column: t.key_column.clone(),
            new_keys: *new_keys,
        })
        .collect();
    let staged = StagedFinish {
        base_revision: plan.base_revision,
        create_workspace: plan.create_workspace.as_ref().map(|seed| seed.draft(&plan.request, &plan.now)),
        tables,
    };
    let mut counts = Counts::default();
    for (occ, (inserted, updated)) in plan.occurrences.iter().zip(&tallies.rows) {
        let target = plan.tables.get(occ.table as usize).map_or("", |t| t.name.as_str());
        let tally = Tally { created: occ.created, rows_inserted: *inserted, rows_updated: *updated };
        counts.add(&occ.group, &occ.name, target, tally);
    }
    let map: HashMap<String, String> = plan.project_map.iter().cloned().collect();
    let req = &plan.request;
    let reply = counts.into_reply(req.scope, &map, &plan.project_ids, &plan.now, &req.workspace_id);
    Ok((staged, reply))
}
