//! What the latest snapshot of each workspace read, kept for a commit on its revision. The head
//! and catalog of a revision never change (a commit makes a new revision), and which of the keys
//! the snapshot looked up exist is a fact of that revision too; a commit whose base is that
//! revision (the snapshot's caller deciding what to write) takes them from here instead of
//! reading them again: saving a project reads the head, the catalog and its row once, not twice.
//!
//! A stale entry cannot do harm: every commit's transaction is conditioned on the head still
//! being at `base`, exactly as when the head moves between a commit's own read and its write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::catalog::Catalog;
use crate::layout::Head;

/// Workspaces remembered at once: a function serves one request at a time; tools and tests
/// with many workspaces in flight simply read again when theirs was forgotten.
const REMEMBERED_MAX: usize = 64;

pub(super) struct Facts {
    pub head: Head,
    /// As the snapshot read it, dropped tables included.
    pub catalog: Catalog,
    /// By table, then key: whether the row exists at this revision.
    pub existing: HashMap<String, HashMap<String, bool>>,
}

#[derive(Clone, Default)]
pub(super) struct Recent(Arc<Mutex<HashMap<String, Facts>>>);

impl Recent {
    pub fn remember(&self, ws_key: &str, head: &Head, catalog: &Catalog) {
        let Ok(mut map) = self.0.lock() else { return };
        if map.len() >= REMEMBERED_MAX && !map.contains_key(ws_key) {
            map.clear();
        }
        let facts = Facts { head: head.clone(), catalog: catalog.clone(), existing: HashMap::new() };
        map.insert(ws_key.to_owned(), facts);
    }

    /// Records what a snapshot of revision `rev` found for `keys` of `table`.
    pub fn note_existing(&self, ws_key: &str, rev: u64, table: &str, keys: impl Iterator<Item = (String, bool)>) {
        let Ok(mut map) = self.0.lock() else { return };
        if let Some(facts) = map.get_mut(ws_key).filter(|f| f.head.rev == rev) {
            facts.existing.entry(table.to_owned()).or_default().extend(keys);
        }
    }

    /// The facts of revision `base`, once: a second commit on the same base reads for itself.
    pub fn take(&self, ws_key: &str, base: u64) -> Option<Facts> {
        let mut map = self.0.lock().ok()?;
        map.remove(ws_key).filter(|f| f.head.rev == base)
    }
}
