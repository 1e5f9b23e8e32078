//! Planning a commit, without I/O: what it does to each table, and what the item layout
//! cannot hold.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::catalog::Catalog;
use crate::layout::{short, TableState, MAX_KEY_BYTES};
use shared::store::{StoreError, StoreResult};
use shared::tables::{Column, Commit, Row, TableOwner};

/// What a commit does to one table: a new layer with `upserts` and tombstones for `deletes`
/// on top of the table's current state (`old`; `None` for a new table).
pub(super) struct TablePlan<'c> {
    pub name: &'c str,
    pub old: Option<TableState>,
    pub columns: Vec<Column>,
    pub key: String,
    pub owner: TableOwner,
    pub upserts: HashMap<&'c str, &'c Row>,
    pub deletes: HashSet<&'c str>,
}

impl TablePlan<'_> {
    /// Items the commit's layer of this table holds: rows, then tombstones for deleted keys.
    pub fn layer_items(&self) -> usize {
        self.upserts.len() + self.deletes.iter().filter(|k| !self.upserts.contains_key(*k)).count()
    }
}

/// Groups the commit by table. Later writes to a key win; deletes win over upserts (as the
/// SQLite adapter applies them: upserts, then deletes, then drops); dropped tables are not
/// written at all; deleting rows of a table that does not exist does nothing. `catalog` holds
/// the current entries of the tables the commit names (a dropped entry counts as absent).
pub(super) fn plan<'c>(commit: &'c Commit, catalog: &Catalog) -> Vec<TablePlan<'c>> {
    let dropped: HashSet<&str> = commit.drop_tables.iter().map(String::as_str).collect();
    let live = |name: &str| catalog.get(name).filter(|e| !e.state.dropped).map(|e| e.state.clone());
    let mut plans: BTreeMap<&str, TablePlan<'c>> = BTreeMap::new();
    for write in commit.upserts.iter().filter(|w| !dropped.contains(w.name.as_str())) {
        let plan = plans.entry(&write.name).or_insert_with(|| TablePlan {
            name: &write.name,
            old: live(&write.name),
            columns: Vec::new(),
            key: String::new(),
            owner: write.owner.clone(),
            upserts: HashMap::new(),
            deletes: HashSet::new(),
        });
        // The schema after the commit is the last write's.
        plan.columns.clone_from(&write.columns);
        plan.key.clone_from(&write.key_column);
        plan.owner = write.owner.clone();
        plan.upserts.extend(write.rows.iter().map(|(key, row)| (key.as_str(), row)));
    }
    for (table, keys) in commit.delete_rows.iter().filter(|(t, _)| !dropped.contains(t.as_str())) {
        if !plans.contains_key(table.as_str()) {
            let Some(old) = live(table) else { continue };
            plans.insert(
                table,
                TablePlan {
                    name: table,
                    columns: old.columns.clone(),
                    key: old.key.clone(),
                    owner: old.owner.clone(),
                    old: Some(old),
                    upserts: HashMap::new(),
                    deletes: HashSet::new(),
                },
            );
        }
        if let Some(plan) = plans.get_mut(table.as_str()) {
            plan.deletes.extend(keys.iter().map(String::as_str));
        }
    }
    // A key both upserted and deleted is deleted.
    for plan in plans.values_mut() {
        let deletes = &plan.deletes;
        plan.upserts.retain(|k, _| !deletes.contains(k));
    }
    plans.into_values().collect()
}

/// What the item layout cannot hold. The API validates names and keys first, so failing here
/// is a bug upstream: `Internal`, before anything is written.
pub(super) fn validate(commit: &Commit) -> StoreResult<()> {
    let bad = |what: String| Err(StoreError::Internal(what));
    if commit.id.is_empty() || commit.id.contains('#') || commit.id.len() > 200 {
        return bad(format!("commit id {} is empty, has a '#' or is over 200 bytes", short(&commit.id)));
    }
    let names = commit
        .upserts
        .iter()
        .map(|w| &w.name)
        .chain(commit.delete_rows.iter().map(|(t, _)| t))
        .chain(commit.drop_tables.iter());
    for name in names {
        if name.is_empty() || name.contains('#') || name.len() > 255 {
            return bad(format!("table name {} is empty, has a '#' or is over 255 bytes", short(name)));
        }
    }
    for write in &commit.upserts {
        if let Some((key, _)) = write.rows.iter().find(|(k, _)| k.is_empty() || k.len() > MAX_KEY_BYTES) {
            return bad(format!(
                "row key {} of table {} is empty or over {MAX_KEY_BYTES} bytes ({} bytes)",
                short(key),
                write.name,
                key.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Entry, ATOMIC};
    use shared::tables::TableWrite;

    fn write(name: &str, keys: &[&str]) -> TableWrite {
        TableWrite {
            name: name.into(),
            owner: TableOwner::Workspace { kind: name.into() },
            columns: vec![Column::new("id", "TEXT", false)],
            key_column: "id".into(),
            rows: keys.iter().map(|k| ((*k).to_owned(), Row::new())).collect(),
        }
    }

    #[test]
    fn what_the_layout_cannot_hold_is_refused() {
        let ok = Commit { id: "c1".into(), upserts: vec![write("t", &["a", &"k".repeat(1024)])], ..Commit::default() };
        assert!(validate(&ok).is_ok());
        let bad = [
            Commit { id: "a#b".into(), ..ok.clone() },
            Commit { id: String::new(), ..ok.clone() },
            Commit { upserts: vec![write("t", &[""])], ..ok.clone() },
            Commit { upserts: vec![write("t", &[&"k".repeat(1025)])], ..ok.clone() },
            Commit { drop_tables: vec!["a#b".into()], ..ok.clone() },
        ];
        for commit in bad {
            assert!(matches!(validate(&commit), Err(StoreError::Internal(_))), "{commit:?}");
        }
    }

    #[test]
    fn deletes_and_drops_win_and_unknown_tables_are_skipped() {
        let state = TableState {
            dropped: false,
            owner: TableOwner::Workspace { kind: "t".into() },
            key: "id".into(),
            columns: vec![],
            rows: 2500,
            base: None,
            layers: vec![],
        };
        let catalog =
            Catalog::from([("t".to_owned(), Entry { table: "t".into(), rev: 1, txn: ATOMIC.into(), at: 0, state })]);
        let commit = Commit {
            id: "c1".into(),
            upserts: vec![write("t", &["a", "b"]), write("t", &["c"]), write("gone", &["x"])],
            delete_rows: vec![("t".into(), vec!["b".into(), "z".into()]), ("nope".into(), vec!["x".into()])],
            drop_tables: vec!["gone".into()],
            ..Commit::default()
        };
        let plans = plan(&commit, &catalog);
        assert_eq!(plans.iter().map(|p| p.name).collect::<Vec<_>>(), ["t"]);
        let mut upserts: Vec<&str> = plans[0].upserts.keys().copied().collect();
        upserts.sort();
        assert_eq!(upserts, ["a", "c"], "b is deleted in the same commit");
        assert!(plans[0].deletes.contains("b"));
        assert_eq!(plans[0].layer_items(), 4, "a, c and tombstones for b and z");
        assert_eq!(plans[0].old.as_ref().map(|o| o.rows), Some(2500));
    }
}
