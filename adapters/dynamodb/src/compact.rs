//! Compaction: folds a table's committed layers into its base, deletes what no reader can
//! reach any more (superseded entries and their parts, dropped tables, aborted or lost staged
//! commits, deleted generations) and clears the workspace's mark when nothing is left to do.
//!
//! It never touches what a reader may still use: the *floor* is the newest revision that was
//! already visible [`SNAPSHOT_GRACE_SECS`] ago (and no newer than any live lease), every reader
//! is at the floor or later, and only layers at or below the floor are folded (a reader's entry
//! lists them all, so their rows are the same whether read from the layer or the base) and only
//! entries superseded at the floor are deleted. The fold itself becomes visible as a commit (the
//! head moves on condition it did not move meanwhile), so a writer that read the catalog before
//! it fails with `Conflict` and reads again rather than building on layers about to go.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use crate::batch::{delete_request, put_request, Writer};
use crate::catalog::valid;
use crate::commit::{transaction_error, ABORTING, CHANGED, COMMITTED, PENDING};
use crate::layout::{
    blob_key, cat_pk, key_item, n, number, rows_pk, shard_count, shard_of, text, Entry, Head, Part, RowData,
    TableState, ATOMIC, ATTR_BLOB, BASE_ROWS_PER_SHARD, COMPACT_BUCKETS, ENTRY_PREFIX, HEAD_SK, LEASE_PREFIX,
    LOG_PREFIX, RECORD_PREFIX,
};
use crate::read::TableView;
use crate::{build_error, s, store_error, DynamoStore, Item, GSI_BY_UPDATED};
use shared::store::job_tables::STAGING_IDLE_SECS;
use shared::store::{StoreError, StoreResult};

/// Rows per page while folding or deleting.
const PAGE: usize = 1000;
/// Tables folded per commit (entries plus the head stay within one transaction).
const FOLDS_PER_COMMIT: usize = 90;

/// What a compaction run did (summed over workspaces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub workspaces: usize,
    /// Tables whose layers were folded into their base.
    pub tables_folded: usize,
    /// Rows and tombstones copied from layers into bases.
    pub items_folded: u64,
    /// Row items deleted (folded layers, dropped tables, aborted commits, deleted workspaces).
    pub rows_deleted: u64,
    pub entries_deleted: usize,
    pub commits_aborted: usize,
    pub generations_swept: usize,
    /// Workspaces left marked because some work is not due yet (or the budget ran out).
    pub left_marked: usize,
    /// Of those, the ones this run had no time to start: compaction falling behind, where the
    /// rest of `left_marked` is work inside its grace period (normal on a busy workspace).
    pub not_reached: usize,
}

impl CompactionReport {
    fn add(&mut self, other: &CompactionReport) {
        self.workspaces += other.workspaces;
        self.tables_folded += other.tables_folded;
        self.items_folded += other.items_folded;
        self.rows_deleted += other.rows_deleted;
        self.entries_deleted += other.entries_deleted;
        self.commits_aborted += other.commits_aborted;
        self.generations_swept += other.generations_swept;
        self.left_marked += other.left_marked;
        self.not_reached += other.not_reached;
    }
}

/// Everything stored in one generation's catalog partition.
struct Generation {
    entries: Vec<Entry>,
    /// Revision → (staged commit that made it, when).
    logs: HashMap<u64, (String, u64)>,
    records: Vec<Record>,
}

struct Record {
    txn: String,
    state: String,
    created: u64,
    at: Option<u64>,
    parts: Vec<(String, Part)>,
    /// Oversized rows' blobs it writes (before their items, so a crash may leave a blob alone).
    blobs: Vec<String>,
    /// A job's staging (`staging.rs`): its last write.
    touched: Option<u64>,
}

impl DynamoStore {
    /// Compacts the workspaces marked for it, one after another, until `budget` has passed
    /// (a workspace started is finished). What the scheduled compaction function runs.
    pub async fn compact_marked(&self, budget: Duration) -> StoreResult<CompactionReport> {
        let deadline = Instant::now() + budget;
        let mut report = CompactionReport::default();
        for bucket in 0..COMPACT_BUCKETS {
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(GSI_BY_UPDATED)
                    .key_condition_expression("#gpk = :bucket")
                    .expression_attribute_names("#gpk", "GSI1PK")
                    .expression_attribute_values(":bucket", s(format!("compact#{bucket}")))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| store_error("Query", e))?;
                for item in page.items() {
                    if Instant::now() >= deadline {
                        report.left_marked += 1;
                        report.not_reached += 1;
                        continue;
                    }
                    if let Some(ws_key) = text(item, "GSI1SK") {
                        let done = self.compact_workspace(ws_key).await?;
                        report.add(&done);
                    }
                }
                match page.last_evaluated_key {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
        }
        Ok(report)
    }

    /// Compacts one workspace (`WsKey::key()`) as of now.
    pub async fn compact_workspace(&self, ws_key: &str) -> StoreResult<CompactionReport> {
        self.compact_workspace_at(ws_key, crate::layout::now_secs()).await
    }

    /// Compacts one workspace as if the clock read `now` (epoch s). Tests pass a time past the
    /// grace period to see what a later run does; production passes the real time.
    pub async fn compact_workspace_at(&self, ws_key: &str, now: u64) -> StoreResult<CompactionReport> {
        self.check_layout().await?;
        let mut report = CompactionReport { workspaces: 1, ..CompactionReport::default() };
        let head = self.head(ws_key).await?;
        let mut work_left = false;
        // A reader that started before the delete may still be reading the old generation.
        if head.at <= now.saturating_sub(self.grace_secs) {
            for gen in &head.gone {
                report.rows_deleted += self.sweep_generation(ws_key, gen).await?;
                report.generations_swept += 1;
                self.forget_generation(ws_key, gen).await?;
            }
        } else if !head.gone.is_empty() {
            work_left = true;
        }
        if let Some(gen) = &head.gen {
            work_left = self.compact_generation(ws_key, &head, gen, now, &mut report).await?;
        }
        if work_left {
            report.left_marked += 1;
        } else {
            self.unmark(ws_key).await?;
        }
        Ok(report)
    }

    /// Returns whether work remains that is not due yet.
    async fn compact_generation(
        &self,
        ws_key: &str,
        head: &Head,
        gen: &str,
        now: u64,
        report: &mut CompactionReport,
    ) -> StoreResult<bool> {
        let cat = cat_pk(ws_key, gen);
        let generation = self.read_generation(&cat).await?;
        let horizon = now.saturating_sub(self.grace_secs);
        let floor = self.floor(ws_key, head, &generation, horizon, now).await?;
        let mut work_left = false;
        let mut dead_entries: Vec<String> = Vec::new();
        let mut dead_parts: Vec<(String, Part)> = Vec::new();

        // Staged commits that never finished, and records of finished ones.
        let mut pending: HashSet<&str> = HashSet::new();
        for record in &generation.records {
            // A job's staging lives while written to: aborted once idle for STAGING_IDLE_SECS,
            // swept a grace period after its last write.
            let old = record.created.max(record.touched.unwrap_or(0)) <= horizon;
            let idle = record.touched.is_none_or(|t| t <= now.saturating_sub(STAGING_IDLE_SECS));
            let abandoned = match record.state.as_str() {
                PENDING if old && idle => self.mark_aborting(&cat, &record.txn).await?,
                ABORTING => old,
                COMMITTED => {
                    if record.at.unwrap_or(record.created) <= horizon {
                        dead_entries.push(crate::layout::record_sk(&record.txn));
                    } else {
                        work_left = true;
                    }
                    false
                }
                _ => false,
            };
            if abandoned {
                for blob in &record.blobs {
                    self.blobs("(aborted commit)", blob)?.delete_blob(blob).await?;
                }
                dead_parts.extend(record.parts.iter().cloned());
                dead_entries.extend(generation.entries.iter().filter(|e| e.txn == record.txn).map(Entry::sk));
                dead_entries.push(crate::layout::record_sk(&record.txn));
                report.commits_aborted += 1;
            } else if record.state != COMMITTED {
                pending.insert(&record.txn);
                work_left = true;
            }
        }
        let txn_logs: HashMap<u64, String> = generation.logs.iter().map(|(r, (t, _))| (*r, t.clone())).collect();
        // Staged entries of commits that lost their revision never become valid.
        for entry in &generation.entries {
            let lost = entry.txn != ATOMIC && entry.rev <= head.rev && !valid(entry, head.rev, &txn_logs);
            let orphan = entry.txn != ATOMIC && entry.rev > head.rev && !pending.contains(entry.txn.as_str());
            if lost || orphan {
                dead_entries.push(entry.sk());
            }
        }

        // Per table: what the floor needs, what is superseded below it, what can be folded.
        let mut by_table: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for entry in generation.entries.iter().filter(|e| valid(e, head.rev, &txn_logs)) {
            by_table.entry(&entry.table).or_default().push(entry);
        }
        let mut folds: Vec<&Entry> = Vec::new();
        for (table, mut entries) in by_table {
            entries.sort_by_key(|e| e.rev);
            let Some(at_floor) = entries.iter().rposition(|e| e.rev <= floor) else {
                work_left = true;
                continue;
            };
            let latest = at_floor + 1 == entries.len();
            let keep_from = if latest && entries[at_floor].state.dropped { entries.len() } else { at_floor };
            let kept: HashSet<Part> = entries[keep_from..].iter().flat_map(|e| e.state.parts()).collect();
            for gone in &entries[..keep_from] {
                dead_entries.push(gone.sk());
                dead_parts.extend(
                    gone.state.parts().into_iter().filter(|p| !kept.contains(p)).map(|p| (table.to_owned(), p)),
                );
            }
            if !latest {
                work_left = true;
            } else if needs_fold(&entries[at_floor].state) {
                folds.push(entries[at_floor]);
            }
        }
        dead_parts.sort_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
        dead_parts.dedup();

        // Logs no staged entry needs any more.
        let dead: HashSet<&String> = dead_entries.iter().collect();
        let live_staged: HashSet<u64> =
            generation.entries.iter().filter(|e| e.txn != ATOMIC && !dead.contains(&e.sk())).map(|e| e.rev).collect();
        for rev in generation.logs.keys() {
            if !live_staged.contains(rev) {
                dead_entries.push(crate::layout::log_sk(*rev));
            }
        }

        for (table, part) in &dead_parts {
            report.rows_deleted += self.delete_part(&cat, table, part).await?;
        }
        let mut writer = Writer::new(self);
        for sk in &dead_entries {
            writer.push(delete_request(key_item(&cat, sk.as_str()))?).await?;
        }
        writer.finish().await?;
        report.entries_deleted += dead_entries.len();

        if !folds.is_empty() {
            // A fold is a commit: the head moves again, so it is not yet all done.
            work_left = true;
            let mut rev = head.rev;
            for chunk in folds.chunks(FOLDS_PER_COMMIT) {
                let mut entries = Vec::with_capacity(chunk.len());
                for entry in chunk {
                    let (state, items) = self.fold(ws_key, &cat, entry, rev + 1).await?;
                    report.items_folded += items;
                    report.tables_folded += 1;
                    entries.push(Entry {
                        table: entry.table.clone(),
                        rev: rev + 1,
                        txn: ATOMIC.into(),
                        at: now,
                        state,
                    });
                }
                match self.commit_fold(ws_key, &cat, rev, now, &entries).await {
                    Ok(()) => rev += 1,
                    // A writer got there first: its commit builds on the unfolded layers, which are
                    // still there; the next run folds again (writing the same values).
                    Err(StoreError::Conflict(_)) => break,
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(work_left)
    }

    /// The newest revision every reader is at or past: visible `grace` ago, no newer than a live
    /// lease's.
    async fn floor(
        &self,
        ws_key: &str,
        head: &Head,
        generation: &Generation,
        horizon: u64,
        now: u64,
    ) -> StoreResult<u64> {
        let mut floor = if head.at <= horizon {
            head.rev
        } else {
            let txn_logs: HashMap<u64, String> = generation.logs.iter().map(|(r, (t, _))| (*r, t.clone())).collect();
            generation
                .entries
                .iter()
                .filter(|e| valid(e, head.rev, &txn_logs))
                .filter_map(|e| {
                    let visible =
                        if e.txn == ATOMIC { e.at } else { generation.logs.get(&e.rev).map_or(u64::MAX, |l| l.1) };
                    (visible <= horizon).then_some(e.rev)
                })
                .max()
                .unwrap_or(0)
        };
        for lease in self.query_prefix(ws_key, LEASE_PREFIX).await? {
            let (Some(rev), Some(expires)) = (number(&lease, "rev"), number(&lease, "expires")) else { continue };
            if expires > now {
                floor = floor.min(rev);
            }
        }
        Ok(floor)
    }

    async fn read_generation(&self, cat: &str) -> StoreResult<Generation> {
        let items = self.query_prefix(cat, "").await?;
        let mut generation = Generation { entries: Vec::new(), logs: HashMap::new(), records: Vec::new() };
        for item in &items {
            let sk = text(item, "SK").unwrap_or("");
            if sk.starts_with(ENTRY_PREFIX) {
                generation.entries.push(Entry::from_item(item)?);
            } else if let Some(rev) = sk.strip_prefix(LOG_PREFIX) {
                let rev = rev.parse().map_err(|_| StoreError::Internal(format!("malformed log item {sk}")))?;
                generation
                    .logs
                    .insert(rev, (text(item, "txn").unwrap_or("").to_owned(), number(item, "at").unwrap_or(0)));
            } else if let Some(txn) = sk.strip_prefix(RECORD_PREFIX) {
                let parts = match text(item, "parts") {
                    Some(json) => serde_json::from_str(json)
                        .map_err(|e| StoreError::Internal(format!("malformed commit record {sk}: {e}")))?,
                    None => Vec::new(),
                };
                // A JSON list (a commit's, written at once) or a string set (a staging's, added to).
                let blobs = match item.get("blobs") {
                    Some(AttributeValue::S(json)) => serde_json::from_str(json)
                        .map_err(|e| StoreError::Internal(format!("malformed commit record {sk}: {e}")))?,
                    Some(AttributeValue::Ss(set)) => set.clone(),
                    None => Vec::new(),
                    Some(_) => return Err(StoreError::Internal(format!("malformed commit record {sk}: 'blobs'"))),
                };
                generation.records.push(Record {
                    blobs,
                    txn: txn.to_owned(),
                    state: text(item, "state").unwrap_or("").to_owned(),
                    created: number(item, "created").unwrap_or(0),
                    at: number(item, "at"),
                    parts,
                    touched: number(item, "touched"),
                });
            }
        }
        Ok(generation)
    }

    /// Writes the entry's layers into a base and returns the state that names only that base,
    /// and how many items were written. The base is the current one when it has room, else the
    /// first layer when it holds no tombstones (no copy at all), else a new base with shards for
    /// the table's size (written from all parts; the old base goes when its entries do).
    async fn fold(&self, ws_key: &str, cat: &str, entry: &Entry, rev: u64) -> StoreResult<(TableState, u64)> {
        let state = &entry.state;
        let fits = |p: &Part| state.rows <= u64::from(p.shards) * BASE_ROWS_PER_SHARD;
        let (base, sources, keep_tombstones) = match (&state.base, state.layers.first()) {
            (Some(base), _) if fits(base) => {
                (base.clone(), state.layers.iter().map(|l| l.part.clone()).collect::<Vec<_>>(), true)
            }
            (None, Some(first)) if first.dels == 0 && fits(&first.part) => {
                (first.part.clone(), state.layers[1..].iter().map(|l| l.part.clone()).collect(), true)
            }
            _ => (Part { id: format!("c{rev}"), shards: shard_count(state.rows) }, state.parts(), false),
        };
        let view = TableView { store: self, cat_pk: cat, table: &entry.table, parts: sources };
        let mut writer = Writer::new(self);
        let mut written = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = view.merge(after.as_deref(), PAGE, keep_tombstones).await?;
            let short_page = page.len() < PAGE;
            after = page.last().map(|(k, _)| k.clone());
            for (key, data) in page {
                let pk = rows_pk(cat, &entry.table, &base.id, shard_of(&key, base.shards));
                let request = match data {
                    RowData::Tombstone => delete_request(key_item(pk, key.as_str()))?,
                    RowData::Inline(text) => put_request(crate::layout::row_item(pk, &key, RowData::Inline(text)))?,
                    // The base gets its own copy, so deleting the layer later cannot break it.
                    RowData::Blob(blob) => {
                        let text = self.row_text(&entry.table, &key, RowData::Blob(blob)).await?;
                        let own = blob_key(ws_key, &entry.table, &base.id, &key);
                        self.blobs(&entry.table, &key)?.put_blob(&own, text.into_bytes()).await?;
                        put_request(crate::layout::row_item(pk, &key, RowData::Blob(own)))?
                    }
                };
                writer.push(request).await?;
                written += 1;
            }
            if short_page {
                break;
            }
        }
        writer.finish().await?;
        Ok((TableState { base: Some(base), layers: Vec::new(), ..state.clone() }, written))
    }

    /// Makes folded entries current: new entries at `base + 1` and the head moved there, on
    /// condition nobody committed since `base`.
    async fn commit_fold(&self, ws_key: &str, cat: &str, base: u64, now: u64, entries: &[Entry]) -> StoreResult<()> {
        let mut items = Vec::with_capacity(entries.len() + 1);
        for entry in entries {
            let put = aws_sdk_dynamodb::types::Put::builder().table_name(&self.table).set_item(Some(entry.item(cat)?));
            items.push(TransactWriteItem::builder().put(put.build().map_err(build_error)?).build());
        }
        let head = Update::builder()
            .table_name(&self.table)
            .key("PK", s(ws_key))
            .key("SK", s(HEAD_SK))
            .update_expression("SET #rev = :rev, #at = :now")
            .condition_expression("#rev = :base")
            .expression_attribute_names("#rev", "rev")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":rev", n(base + 1))
            .expression_attribute_values(":base", n(base))
            .expression_attribute_values(":now", n(now));
        items.push(TransactWriteItem::builder().update(head.build().map_err(build_error)?).build());
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| transaction_error(e, CHANGED))?;
        Ok(())
    }

    /// Deletes every row item of a part (and its blobs first, so none is orphaned); returns how
    /// many went.
    pub(super) async fn delete_part(&self, cat: &str, table: &str, part: &Part) -> StoreResult<u64> {
        let mut writer = Writer::new(self);
        let mut deleted = 0u64;
        for shard in 0..part.shards.max(1) {
            let pk = rows_pk(cat, table, &part.id, shard);
            let mut start = None;
            loop {
                let (items, next) = self.query_page(&pk, None, PAGE, start, true).await?;
                for item in items {
                    if let Some(blob) = text(&item, ATTR_BLOB) {
                        self.blobs(table, text(&item, "SK").unwrap_or("?"))?.delete_blob(blob).await?;
                    }
                    let (Some(pk), Some(sk)) = (text(&item, "PK"), text(&item, "SK")) else {
                        return Err(StoreError::Internal(format!("a row item under {pk} has no string keys")));
                    };
                    writer.push(delete_request(key_item(pk, sk))?).await?;
                    deleted += 1;
                }
                match next {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
        }
        writer.finish().await?;
        Ok(deleted)
    }

    /// Deletes a deleted workspace's generation: every part any entry or record names, then
    /// every item of its catalog partition. Returns the row items deleted.
    async fn sweep_generation(&self, ws_key: &str, gen: &str) -> StoreResult<u64> {
        let cat = cat_pk(ws_key, gen);
        let generation = self.read_generation(&cat).await?;
        let mut parts: HashSet<(String, Part)> = HashSet::new();
        for entry in &generation.entries {
            parts.extend(entry.state.parts().into_iter().map(|p| (entry.table.clone(), p)));
        }
        for record in &generation.records {
            parts.extend(record.parts.iter().cloned());
            // Blobs of a commit that never wrote their items (deleting one twice is harmless).
            for blob in &record.blobs {
                self.blobs("(deleted workspace)", blob)?.delete_blob(blob).await?;
            }
        }
        let mut deleted = 0;
        for (table, part) in &parts {
            deleted += self.delete_part(&cat, table, part).await?;
        }
        let mut writer = Writer::new(self);
        for item in self.query_prefix(&cat, "").await? {
            if let Some(sk) = text(&item, "SK") {
                writer.push(delete_request(key_item(&cat, sk))?).await?;
            }
        }
        writer.finish().await?;
        Ok(deleted)
    }

    async fn forget_generation(&self, ws_key: &str, gen: &str) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(ws_key))
            .key("SK", s(HEAD_SK))
            .update_expression("DELETE #gone :gen")
            .expression_attribute_names("#gone", "gone")
            .expression_attribute_values(":gen", AttributeValue::Ss(vec![gen.to_owned()]))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }

    /// Clears the compaction mark, unless a commit marked it again meanwhile.
    async fn unmark(&self, ws_key: &str) -> StoreResult<()> {
        let head = self.head(ws_key).await?;
        if !head.exists || !head.gone.is_empty() {
            return Ok(());
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(ws_key))
            .key("SK", s(HEAD_SK))
            .update_expression("REMOVE #gpk, #gsk")
            .condition_expression("#rev = :rev")
            .expression_attribute_names("#gpk", "GSI1PK")
            .expression_attribute_names("#gsk", "GSI1SK")
            .expression_attribute_names("#rev", "rev")
            .expression_attribute_values(":rev", n(head.rev))
            .send()
            .await;
        match out.map_err(|e| store_error("UpdateItem", e)) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Holds revision `rev` of a workspace against compaction until `expires` (epoch s): for a
    /// reader that may outlive the grace period (a job).
    pub async fn take_lease(&self, ws_key: &str, id: &str, rev: u64, expires: u64) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(ws_key))
            .item("SK", s(format!("{LEASE_PREFIX}{id}")))
            .item("rev", n(rev))
            .item("expires", n(expires))
            .item(crate::TTL_ATTRIBUTE, n(expires))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    pub async fn release_lease(&self, ws_key: &str, id: &str) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(ws_key))
            .key("SK", s(format!("{LEASE_PREFIX}{id}")))
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", e))?;
        Ok(())
    }
}

/// Whether folding would make reads cheaper: more than one part, or a lone layer that carries
/// tombstones or has outgrown its shards. A table written by one commit reads as cheaply from
/// its layer as from a base, so it is left as it is.
fn needs_fold(state: &TableState) -> bool {
    if state.dropped {
        return false;
    }
    match (&state.base, state.layers.as_slice()) {
        (_, []) => false,
        (None, [only]) => only.dels > 0 || state.rows > u64::from(only.part.shards) * BASE_ROWS_PER_SHARD,
        _ => true,
    }
}
