//! Planning a commit, without I/O: what it does to each table, what the manifest becomes, and
//! what the item layout cannot hold.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::layout::{shard_count, short, Manifest, TableEntry, VersionRef, MAX_KEY_BYTES};
use crate::store::{StoreError, StoreResult};
use crate::tables::{Column, Commit, Row, TableOwner};

/// What a commit does to one table: the new version's content is the current version's rows
/// minus `upserts`' and `deletes`' keys, plus `upserts` minus `deletes`.
pub(super) struct TablePlan<'c> {
    pub name: &'c str,
    pub old: Option<TableEntry>,
    pub columns: Vec<Column>,
    pub key: String,
    pub owner: Option<TableOwner>,
    pub upserts: HashMap<&'c str, &'c Row>,
    pub deletes: HashSet<&'c str>,
    pub shards: u32,
}

/// Groups the commit by table. Later writes to a key win; deletes win over upserts (as the
/// SQLite adapter applies them: upserts, then deletes, then drops); dropped tables are not
/// written at all; deleting rows of a table that does not exist does nothing.
pub(super) fn plan<'c>(commit: &'c Commit, manifest: &Manifest) -> Vec<TablePlan<'c>> {
    let dropped: HashSet<&str> = commit.drop_tables.iter().map(String::as_str).collect();
    let mut plans: BTreeMap<&str, TablePlan<'c>> = BTreeMap::new();
    for write in commit.upserts.iter().filter(|w| !dropped.contains(w.name.as_str())) {
        let plan = plans.entry(&write.name).or_insert_with(|| TablePlan {
            name: &write.name,
            old: manifest.tables.get(&write.name).cloned(),
            columns: Vec::new(),
            key: String::new(),
            owner: None,
            upserts: HashMap::new(),
            deletes: HashSet::new(),
            shards: 1,
        });
        // The schema after the commit is the last write's.
        plan.columns.clone_from(&write.columns);
        plan.key.clone_from(&write.key_column);
        plan.owner = Some(write.owner.clone());
        plan.upserts.extend(write.rows.iter().map(|(key, row)| (key.as_str(), row)));
    }
    for (table, keys) in commit.delete_rows.iter().filter(|(t, _)| !dropped.contains(t.as_str())) {
        if !plans.contains_key(table.as_str()) {
            let Some(old) = manifest.tables.get(table) else { continue };
            plans.insert(
                table,
                TablePlan {
                    name: table,
                    old: Some(old.clone()),
                    columns: old.columns.clone(),
                    key: old.key.clone(),
                    owner: old.owner.clone(),
                    upserts: HashMap::new(),
                    deletes: HashSet::new(),
                    shards: 1,
                },
            );
        }
        if let Some(plan) = plans.get_mut(table.as_str()) {
            plan.deletes.extend(keys.iter().map(String::as_str));
        }
    }
    let mut plans: Vec<TablePlan<'c>> = plans.into_values().collect();
    for plan in &mut plans {
        // An upper bound of the new row count (deleted and replaced rows are not known yet).
        let bound = plan.old.as_ref().map_or(0, |old| old.rows).saturating_add(plan.upserts.len() as u64);
        plan.shards = shard_count(bound);
    }
    plans
}

/// The manifest's tables after the commit, and the versions it supersedes.
pub(super) fn next_tables(
    manifest: &Manifest,
    commit: &Commit,
    plans: &[TablePlan<'_>],
    counts: Vec<u64>,
    version: &str,
) -> (BTreeMap<String, TableEntry>, Vec<VersionRef>) {
    let mut tables = manifest.tables.clone();
    let mut superseded = Vec::new();
    for name in &commit.drop_tables {
        if let Some(old) = tables.remove(name) {
            superseded.push(VersionRef { table: name.clone(), v: old.v, shards: old.shards });
        }
    }
    for (plan, rows) in plans.iter().zip(counts) {
        if let Some(old) = &plan.old {
            superseded.push(VersionRef { table: plan.name.to_owned(), v: old.v.clone(), shards: old.shards });
        }
        let entry = TableEntry {
            v: version.to_owned(),
            columns: plan.columns.clone(),
            key: plan.key.clone(),
            rows,
            shards: plan.shards,
            owner: plan.owner.clone(),
        };
        tables.insert(plan.name.to_owned(), entry);
    }
    (tables, superseded)
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
    use crate::tables::TableWrite;

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
        let old =
            TableEntry { v: "c0.0".into(), columns: vec![], key: "id".into(), rows: 2500, shards: 3, owner: None };
        let manifest = Manifest { rev: 1, exists: true, tables: BTreeMap::from([("t".to_owned(), old)]) };
        let commit = Commit {
            id: "c1".into(),
            upserts: vec![write("t", &["a", "b"]), write("t", &["c"]), write("gone", &["x"])],
            delete_rows: vec![("t".into(), vec!["b".into()]), ("nope".into(), vec!["x".into()])],
            drop_tables: vec!["gone".into()],
            ..Commit::default()
        };
        let plans = plan(&commit, &manifest);
        assert_eq!(plans.iter().map(|p| p.name).collect::<Vec<_>>(), ["t"]);
        let mut upserts: Vec<&str> = plans[0].upserts.keys().copied().collect();
        upserts.sort();
        assert_eq!(upserts, ["a", "b", "c"]);
        assert!(plans[0].deletes.contains("b"));
        assert_eq!(plans[0].shards, 3, "from the upper bound 2500 + 3");

        let (tables, superseded) = next_tables(&manifest, &commit, &plans, vec![2502], "c1.1");
        assert_eq!(tables["t"].v, "c1.1");
        assert_eq!(tables["t"].rows, 2502);
        assert_eq!(superseded, [VersionRef { table: "t".into(), v: "c0.0".into(), shards: 3 }]);
    }
}
