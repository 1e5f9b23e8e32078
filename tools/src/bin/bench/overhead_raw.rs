//! The raw calls each measured operation needs, made directly: `aws_sdk_dynamodb` requests on
//! the item layout `adapters/dynamodb` writes (storage layout 2, see its module doc), or
//! `rusqlite` statements on the file and schema `adapters/sqlite` uses. What the handler is
//! measured against, so each does only what the operation's semantics need: no spawn_blocking
//! hop, no envelope, and on DynamoDB the fewest round trips the layout allows.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use shared::model::{list_key, now_timestamp, Owner, Scope};
use shared::naming::projects_table;
use shared::tables::WsKey;

type Item = HashMap<String, AttributeValue>;

/// The rows of a bundle, as the raw import writes them: (table, key, row JSON).
pub type BundleRows = Vec<(String, String, String)>;

/// The layout's limits, as `adapters/dynamodb` has them (batch.rs, layout.rs).
const BATCH_GET_MAX: usize = 100;
const BATCH_WRITE_MAX: usize = 25;
const WRITE_CONCURRENCY: usize = 32;
const GET_CONCURRENCY: usize = 8;

pub enum Raw {
    Dynamo { client: Client, table: String },
    Sqlite(Box<Connection>),
}

fn sdk<E: std::error::Error>(op: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{op}: {}", DisplayErrorContext(e))
}

fn sql(e: rusqlite::Error) -> String {
    format!("sqlite: {e}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn text<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn number(item: &Item, attr: &str) -> Option<u64> {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// First 8 bytes of sha256(key), big-endian, modulo the shard count (layout.rs `shard_of`).
fn shard_of(key: &str, shards: u64) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % shards.max(1)
}

/// clamp(⌈rows / 1000⌉, 1, 64) (layout.rs `shard_count`).
fn shard_count(rows: usize) -> u64 {
    (rows as u64).div_ceil(1000).clamp(1, 64)
}

fn rows_pk(cat: &str, table: &str, part: &str, shard: u64) -> String {
    format!("{cat}#t#{table}#p#{part}#s#{shard}")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What the raw project calls learn before touching rows: the head and the projects table's
/// current catalog entry.
struct TableAt {
    cat: String,
    rev: u64,
    gen: String,
    head_exists: bool,
    /// The entry's `state` JSON (owner, key, columns, rows, base, layers).
    state: Value,
}

impl TableAt {
    /// (part id, shards), base first, oldest to newest.
    fn parts(&self) -> Vec<(String, u64)> {
        let part = |p: &Value| Some((p["id"].as_str()?.to_owned(), p["shards"].as_u64().unwrap_or(1)));
        self.state
            .get("base")
            .and_then(part)
            .into_iter()
            .chain(self.state["layers"].as_array().into_iter().flatten().filter_map(part))
            .collect()
    }
}

/// A project row as `api::projects` writes it (its column order).
pub fn project_row(
    id: &str,
    name: &str,
    author: &str,
    created_at: &str,
    now: &str,
    version: u64,
) -> Map<String, Value> {
    let row = json!({"project_id": id, "name": name, "author": author, "scope": "user", "to_persist": true,
        "created_at": created_at, "updated_at": now, "description": null, "metadata": {}, "version": version});
    row.as_object().cloned().unwrap_or_default()
}

/// The parts of an existing project row a save keeps: author, created_at, and its version.
fn kept(existing: Option<&Map<String, Value>>, writer: &str, now: &str) -> (String, String, u64) {
    let get = |k: &str| existing.and_then(|r| r.get(k)).and_then(Value::as_str).map(str::to_owned);
    let version = existing.map_or(0, |r| r.get("version").and_then(Value::as_u64).unwrap_or(1));
    (get("author").unwrap_or_else(|| writer.to_owned()), get("created_at").unwrap_or_else(|| now.to_owned()), version)
}

impl Raw {
    /// Saves workspace `id` of `owner` (create or update, version bumped): its new version.
    pub async fn save_workspace(&mut self, owner: &Owner, id: &str, name: &str, writer: &str) -> Result<u64, String> {
        let now = now_timestamp();
        let metadata = "{}";
        match self {
            Raw::Dynamo { client, table } => {
                let (client, table) = (&*client, table.as_str());
                // One UpdateItem, as the adapter's: `if_not_exists` keeps author and created_at.
                let out = client
                    .update_item()
                    .table_name(table)
                    .key("PK", s(owner.key()))
                    .key("SK", s(format!("ws#{id}")))
                    .update_expression(
                        "SET #id = :id, #name = :name, #metadata = :metadata, #scope = :scope, #updated_by = :w, \
                         #updated_at = :now, GSI1PK = :g1, GSI1SK = :g2, #author = if_not_exists(#author, :w), \
                         #created_at = if_not_exists(#created_at, :now), #version = if_not_exists(#version, :zero) + :one \
                         REMOVE #description",
                    )
                    .condition_expression("attribute_not_exists(PK) OR attribute_exists(#version)")
                    .expression_attribute_names("#id", "id")
                    .expression_attribute_names("#name", "name")
                    .expression_attribute_names("#metadata", "metadata")
                    .expression_attribute_names("#scope", "scope")
                    .expression_attribute_names("#updated_by", "updated_by")
                    .expression_attribute_names("#updated_at", "updated_at")
                    .expression_attribute_names("#author", "author")
                    .expression_attribute_names("#created_at", "created_at")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_names("#description", "description")
                    .expression_attribute_values(":id", s(id))
                    .expression_attribute_values(":name", s(name))
                    .expression_attribute_values(":metadata", s(metadata))
                    .expression_attribute_values(":scope", s("user"))
                    .expression_attribute_values(":w", s(writer))
                    .expression_attribute_values(":now", s(&now))
                    .expression_attribute_values(":g1", s(format!("{}#ws", owner.key())))
                    .expression_attribute_values(":g2", s(list_key(&now, Scope::User, id)))
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":one", n(1))
                    .return_values(ReturnValue::UpdatedNew)
                    .send()
                    .await
                    .map_err(sdk("UpdateItem"))?;
                Ok(out.attributes().and_then(|a| number(a, "version")).unwrap_or(0))
            }
            Raw::Sqlite(conn) => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
                let version: i64 = tx
                    .prepare_cached(
                        "INSERT INTO workspaces (owner, id, name, description, metadata, scope, author, updated_by,
                                                 created_at, updated_at, list_key)
                         VALUES (?1, ?2, ?3, NULL, ?4, 'user', ?5, ?5, ?6, ?6, ?7)
                         ON CONFLICT (owner, id) DO UPDATE SET name = excluded.name, description = NULL,
                            metadata = excluded.metadata, scope = excluded.scope, updated_by = excluded.updated_by,
                            updated_at = excluded.updated_at, list_key = excluded.list_key,
                            version = workspaces.version + 1
                         RETURNING version",
                    )
                    .and_then(|mut st| {
                        st.query_row(
                            params![owner.key(), id, name, metadata, writer, now, list_key(&now, Scope::User, id)],
                            |r| r.get(0),
                        )
                    })
                    .map_err(sql)?;
                tx.commit().map_err(sql)?;
                Ok(u64::try_from(version).unwrap_or(0))
            }
        }
    }

    /// Workspace `id` of `owner`: whether it exists (its fields read, as a load needs them).
    pub async fn load_workspace(&mut self, owner: &Owner, id: &str) -> Result<bool, String> {
        match self {
            Raw::Dynamo { client, table } => {
                let (client, table) = (&*client, table.as_str());
                let out = client
                    .get_item()
                    .table_name(table)
                    .key("PK", s(owner.key()))
                    .key("SK", s(format!("ws#{id}")))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(sdk("GetItem"))?;
                Ok(out.item.is_some())
            }
            Raw::Sqlite(conn) => {
                let found = conn
                    .prepare_cached(
                        "SELECT id, name, description, metadata, scope, author, updated_by, created_at, updated_at,
                                version FROM workspaces WHERE owner = ?1 AND id = ?2",
                    )
                    .and_then(|mut st| st.query_row(params![owner.key(), id], workspace_columns).optional())
                    .map_err(sql)?;
                Ok(found.is_some())
            }
        }
    }

    /// Every workspace of `owner`, newest first: how many.
    pub async fn list_workspaces(&mut self, owner: &Owner) -> Result<usize, String> {
        match self {
            Raw::Dynamo { client, table } => {
                let (client, table) = (&*client, table.as_str());
                let (mut count, mut start) = (0, None);
                loop {
                    let page = client
                        .query()
                        .table_name(table)
                        .index_name(shared::iam::GSI_BY_UPDATED)
                        .key_condition_expression("GSI1PK = :pk")
                        .expression_attribute_values(":pk", s(format!("{}#ws", owner.key())))
                        .scan_index_forward(false)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(sdk("Query"))?;
                    count += page.items.map_or(0, |i| i.len());
                    start = page.last_evaluated_key;
                    if start.is_none() {
                        return Ok(count);
                    }
                }
            }
            Raw::Sqlite(conn) => {
                let mut st = conn
                    .prepare_cached(
                        "SELECT id, name, description, metadata, scope, author, updated_by, created_at, updated_at,
                                version FROM workspaces WHERE owner = ?1 ORDER BY list_key DESC",
                    )
                    .map_err(sql)?;
                let rows = st.query_map(params![owner.key()], workspace_columns).map_err(sql)?;
                let mut count = 0;
                for row in rows {
                    row.map_err(sql)?;
                    count += 1;
                }
                Ok(count)
            }
        }
    }

    /// Saves project `id` of workspace `ws` (create or update, its version bumped): its version.
    pub async fn save_project(&mut self, ws: &WsKey, id: &str, name: &str, writer: &str) -> Result<u64, String> {
        let now = now_timestamp();
        let table_name = projects_table(&ws.workspace_id);
        match self {
            Raw::Dynamo { client, table } => {
                let (client, table) = (&*client, table.as_str());
                let at = table_at(client, table, ws, &table_name).await?;
                let existing = get_row(client, table, &at, &table_name, id).await?;
                let (author, created_at, version) = kept(existing.as_ref(), writer, &now);
                let row = project_row(id, name, &author, &created_at, &now, version + 1);
                let row = serde_json::to_string(&row).map_err(|e| e.to_string())?;
                // One new single-row layer, a new entry listing it, and the head's move: one transaction.
                let (rev, txn) = (at.rev + 1, format!("raw-{}.{}", shared::model::new_id("", 16), at.rev));
                let mut state = at.state.clone();
                if let Some(layers) = state.get_mut("layers").and_then(Value::as_array_mut) {
                    layers.push(json!({"id": txn, "shards": 1, "items": 1, "dels": 0}));
                } else {
                    state["layers"] = json!([{"id": txn, "shards": 1, "items": 1, "dels": 0}]);
                }
                if existing.is_none() {
                    state["rows"] = json!(state["rows"].as_u64().unwrap_or(0) + 1);
                }
                let row_item: Item = HashMap::from([
                    ("PK".into(), s(rows_pk(&at.cat, &table_name, &txn, 0))),
                    ("SK".into(), s(id)),
                    ("row".into(), s(row)),
                ]);
                let entry: Item = HashMap::from([
                    ("PK".into(), s(&at.cat)),
                    ("SK".into(), s(format!("tbl#{table_name}#{rev:020}#-"))),
                    ("table".into(), s(&table_name)),
                    ("rev".into(), n(rev)),
                    ("txn".into(), s("-")),
                    ("at".into(), n(now_secs())),
                    ("state".into(), s(state.to_string())),
                ]);
                let ws_key = ws.key();
                let head = Update::builder()
                    .table_name(table)
                    .key("PK", s(&ws_key))
                    .key("SK", s("head"))
                    .update_expression("SET #rev = :rev, #gen = :gen, #at = :now, GSI1PK = :bucket, GSI1SK = :ws")
                    .expression_attribute_names("#rev", "rev")
                    .expression_attribute_names("#gen", "gen")
                    .expression_attribute_names("#at", "at")
                    .expression_attribute_values(":rev", n(rev))
                    .expression_attribute_values(":gen", s(&at.gen))
                    .expression_attribute_values(":now", n(now_secs()))
                    .expression_attribute_values(":bucket", s(format!("compact#{}", shard_of(&ws_key, 16))))
                    .expression_attribute_values(":ws", s(&ws_key));
                let head = if at.head_exists {
                    head.condition_expression("#rev = :base").expression_attribute_values(":base", n(at.rev))
                } else {
                    head.condition_expression("attribute_not_exists(PK)")
                };
                let put = |item: Item| {
                    Put::builder().table_name(table).set_item(Some(item)).build().map_err(|e| e.to_string())
                };
                let items = vec![
                    TransactWriteItem::builder().put(put(row_item)?).build(),
                    TransactWriteItem::builder().put(put(entry)?).build(),
                    TransactWriteItem::builder().update(head.build().map_err(|e| e.to_string())?).build(),
                ];
                client.transact_write_items().set_transact_items(Some(items)).send().await.map_err(sdk("Transact"))?;
                Ok(version + 1)
            }
            Raw::Sqlite(conn) => {
                let ws_key = ws.key();
                // One write transaction: the checks and the write together.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
                sqlite_workspace_exists(&tx, ws)?;
                let rev: i64 = tx
                    .prepare_cached("SELECT rev FROM ws_heads WHERE ws = ?1")
                    .and_then(|mut st| st.query_row(params![ws_key], |r| r.get(0)).optional())
                    .map_err(sql)?
                    .unwrap_or(0);
                let data: Option<String> = tx
                    .prepare_cached("SELECT data FROM ws_rows WHERE ws = ?1 AND tbl = ?2 AND key = ?3")
                    .and_then(|mut st| st.query_row(params![ws_key, table_name, id], |r| r.get(0)).optional())
                    .map_err(sql)?;
                let existing: Option<Map<String, Value>> =
                    data.map(|d| serde_json::from_str(&d)).transpose().map_err(|e| e.to_string())?;
                let (author, created_at, version) = kept(existing.as_ref(), writer, &now);
                let row = project_row(id, name, &author, &created_at, &now, version + 1);
                let row = serde_json::to_string(&row).map_err(|e| e.to_string())?;
                tx.prepare_cached(
                    "INSERT INTO ws_rows (ws, tbl, key, data) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (ws, tbl, key) DO UPDATE SET data = excluded.data",
                )
                .and_then(|mut st| st.execute(params![ws_key, table_name, id, row]))
                .map_err(sql)?;
                if existing.is_none() {
                    tx.prepare_cached("UPDATE ws_tables SET row_count = row_count + 1 WHERE ws = ?1 AND name = ?2")
                        .and_then(|mut st| st.execute(params![ws_key, table_name]))
                        .map_err(sql)?;
                }
                tx.prepare_cached(
                    "INSERT INTO ws_heads (ws, rev) VALUES (?1, ?2) ON CONFLICT (ws) DO UPDATE SET rev = excluded.rev",
                )
                .and_then(|mut st| st.execute(params![ws_key, rev + 1]))
                .map_err(sql)?;
                tx.commit().map_err(sql)?;
                Ok(version + 1)
            }
        }
    }

    /// Every project of workspace `ws`, newest update first: how many.
    pub async fn list_projects(&mut self, ws: &WsKey) -> Result<usize, String> {
        let table_name = projects_table(&ws.workspace_id);
        let rows: Vec<String> = match self {
            Raw::Dynamo { client, table } => {
                let (client, table) = (&*client, table.as_str());
                let at = table_at(client, table, ws, &table_name).await?;
                // Every shard of every part, newest part winning key by key.
                let mut pks = Vec::new();
                for (index, (part, shards)) in at.parts().into_iter().enumerate() {
                    pks.extend((0..shards).map(|shard| (index, rows_pk(&at.cat, &table_name, &part, shard))));
                }
                let pages: Vec<(usize, Vec<Item>)> = stream::iter(pks)
                    .map(|(index, pk)| async move { query_all(client, table, &pk).await.map(|items| (index, items)) })
                    .buffer_unordered(GET_CONCURRENCY)
                    .try_collect()
                    .await?;
                let mut newest: HashMap<String, (usize, Option<String>)> = HashMap::new();
                for (index, items) in pages {
                    for item in items {
                        let Some(key) = text(&item, "SK") else { continue };
                        if newest.get(key).is_none_or(|(have, _)| *have < index) {
                            newest.insert(key.to_owned(), (index, text(&item, "row").map(str::to_owned)));
                        }
                    }
                }
                newest.into_values().filter_map(|(_, row)| row).collect()
            }
            Raw::Sqlite(conn) => {
                let tx = conn.transaction().map_err(sql)?;
                sqlite_workspace_exists(&tx, ws)?;
                let rows = tx
                    .prepare_cached("SELECT data FROM ws_rows WHERE ws = ?1 AND tbl = ?2")
                    .and_then(|mut st| {
                        st.query_map(params![ws.key(), table_name], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(sql)?;
                tx.commit().map_err(sql)?;
                rows
            }
        };
        // The list's order needs each row's `updated_at`: parsed, then sorted.
        let mut parsed: Vec<Map<String, Value>> =
            rows.iter().map(|r| serde_json::from_str(r)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        let updated = |r: &Map<String, Value>| r.get("updated_at").and_then(Value::as_str).unwrap_or("").to_owned();
        parsed.sort_by_key(|r| std::cmp::Reverse(updated(r)));
        Ok(parsed.len())
    }

    /// Project `id` of workspace `ws`: whether it exists (its row parsed).
    pub async fn load_project(&mut self, ws: &WsKey, id: &str) -> Result<bool, String> {
        let table_name = projects_table(&ws.workspace_id);
        match self {
            Raw::Dynamo { client, table } => {
                let (client, table) = (&*client, table.as_str());
                let at = table_at(client, table, ws, &table_name).await?;
                Ok(get_row(client, table, &at, &table_name, id).await?.is_some())
            }
            Raw::Sqlite(conn) => {
                let tx = conn.transaction().map_err(sql)?;
                sqlite_workspace_exists(&tx, ws)?;
                let data: Option<String> = tx
                    .prepare_cached("SELECT data FROM ws_rows WHERE ws = ?1 AND tbl = ?2 AND key = ?3")
                    .and_then(|mut st| st.query_row(params![ws.key(), table_name, id], |r| r.get(0)).optional())
                    .map_err(sql)?;
                tx.commit().map_err(sql)?;
                let row: Option<Map<String, Value>> =
                    data.map(|d| serde_json::from_str(&d)).transpose().map_err(|e| e.to_string())?;
                Ok(row.is_some())
            }
        }
    }

    /// Writes `rows` under workspace key `ws_key` as part `part` (DynamoDB) or into its rows
    /// (SQLite), first reading which keys exist (in part `existing_part` on DynamoDB, when
    /// given): the existence reads and batched writes an import needs. Returns rows that existed.
    pub async fn import(
        &mut self,
        ws_key: &str,
        rows: &BundleRows,
        part: &str,
        existing_part: Option<&str>,
    ) -> Result<usize, String> {
        match self {
            Raw::Dynamo { client, table } => {
                let (client, table) = (&*client, table.as_str());
                let cat = format!("{ws_key}#g#1");
                let mut per_table: HashMap<&str, usize> = HashMap::new();
                for (t, _, _) in rows {
                    *per_table.entry(t.as_str()).or_default() += 1;
                }
                let pk = |t: &str, p: &str, key: &str| rows_pk(&cat, t, p, shard_of(key, shard_count(per_table[t])));
                let mut existed = 0;
                if let Some(old) = existing_part {
                    let keys: Vec<Item> = rows
                        .iter()
                        .map(|(t, k, _)| HashMap::from([("PK".into(), s(pk(t, old, k))), ("SK".into(), s(k))]))
                        .collect();
                    let batches: Vec<Vec<Item>> = keys.chunks(BATCH_GET_MAX).map(<[Item]>::to_vec).collect();
                    let found: Vec<usize> = stream::iter(batches)
                        .map(|batch| batch_get_count(client, table, batch))
                        .buffer_unordered(GET_CONCURRENCY)
                        .try_collect()
                        .await?;
                    existed = found.into_iter().sum();
                }
                let puts: Vec<WriteRequest> = rows
                    .iter()
                    .map(|(t, k, row)| {
                        let item = HashMap::from([
                            ("PK".into(), s(pk(t, part, k))),
                            ("SK".into(), s(k)),
                            ("row".into(), s(row)),
                        ]);
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map(|p| WriteRequest::builder().put_request(p).build())
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<_, _>>()?;
                let batches: Vec<Vec<WriteRequest>> =
                    puts.chunks(BATCH_WRITE_MAX).map(<[WriteRequest]>::to_vec).collect();
                stream::iter(batches)
                    .map(|batch| batch_write(client, table, batch))
                    .buffer_unordered(WRITE_CONCURRENCY)
                    .try_collect::<Vec<()>>()
                    .await?;
                Ok(existed)
            }
            Raw::Sqlite(conn) => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
                let mut existing: HashSet<(String, String)> = HashSet::new();
                let tables: HashSet<&str> = rows.iter().map(|(t, _, _)| t.as_str()).collect();
                for t in tables {
                    let keys = tx
                        .prepare_cached("SELECT key FROM ws_rows WHERE ws = ?1 AND tbl = ?2")
                        .and_then(|mut st| {
                            st.query_map(params![ws_key, t], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()
                        })
                        .map_err(sql)?;
                    existing.extend(keys.into_iter().map(|k| (t.to_owned(), k)));
                }
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO ws_rows (ws, tbl, key, data) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (ws, tbl, key) DO UPDATE SET data = excluded.data",
                        )
                        .map_err(sql)?;
                    for (t, k, row) in rows {
                        insert.execute(params![ws_key, t, k, row]).map_err(sql)?;
                    }
                }
                tx.commit().map_err(sql)?;
                Ok(rows.iter().filter(|(t, k, _)| existing.contains(&(t.clone(), k.clone()))).count())
            }
        }
    }

    /// Every row `import` wrote under `ws_key` (part `part` of `tables` on DynamoDB), serialised
    /// as one JSON object of arrays: the bytes.
    pub async fn export(&mut self, ws_key: &str, tables: &[(String, usize)], part: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::from(&b"{"[..]);
        for (i, (t, count)) in tables.iter().enumerate() {
            let rows: Vec<String> = match self {
                Raw::Dynamo { client, table } => {
                    let (client, table) = (&*client, table.as_str());
                    let cat = format!("{ws_key}#g#1");
                    let pks: Vec<String> =
                        (0..shard_count(*count)).map(|shard| rows_pk(&cat, t, part, shard)).collect();
                    let pages: Vec<Vec<Item>> = stream::iter(pks)
                        .map(|pk| async move { query_all(client, table, &pk).await })
                        .buffer_unordered(64)
                        .try_collect()
                        .await?;
                    pages.into_iter().flatten().filter_map(|item| text(&item, "row").map(str::to_owned)).collect()
                }
                Raw::Sqlite(conn) => conn
                    .prepare_cached("SELECT data FROM ws_rows WHERE ws = ?1 AND tbl = ?2 ORDER BY key")
                    .and_then(|mut st| st.query_map(params![ws_key, t], |r| r.get(0))?.collect::<Result<Vec<_>, _>>())
                    .map_err(sql)?,
            };
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(serde_json::to_string(t).map_err(|e| e.to_string())?.as_bytes());
            out.extend_from_slice(b":[");
            for (j, row) in rows.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(row.as_bytes());
            }
            out.push(b']');
        }
        out.push(b'}');
        Ok(out)
    }
}

type WorkspaceColumns = (String, String, Option<String>, String, String, String, String, String, String, i64);

fn workspace_columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkspaceColumns> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
}

fn sqlite_workspace_exists(tx: &rusqlite::Transaction<'_>, ws: &WsKey) -> Result<(), String> {
    let found = tx
        .prepare_cached("SELECT 1 FROM workspaces WHERE owner = ?1 AND id = ?2")
        .and_then(|mut st| st.exists(params![ws.owner.key(), ws.workspace_id]))
        .map_err(sql)?;
    found.then_some(()).ok_or_else(|| format!("workspace {} not found", ws.workspace_id))
}

/// The workspace item and the head in one consistent BatchGetItem, then the table's catalog
/// entries: the newest atomic one at the head's revision (the bench's tables have no staged ones).
async fn table_at(client: &Client, table: &str, ws: &WsKey, name: &str) -> Result<TableAt, String> {
    let ws_key = ws.key();
    let keys = vec![
        HashMap::from([("PK".into(), s(ws.owner.key())), ("SK".into(), s(format!("ws#{}", ws.workspace_id)))]),
        HashMap::from([("PK".into(), s(&ws_key)), ("SK".into(), s("head"))]),
    ];
    let wanted =
        KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build().map_err(|e| e.to_string())?;
    let out = client.batch_get_item().request_items(table, wanted).send().await.map_err(sdk("BatchGetItem"))?;
    let items = out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default();
    if !items.iter().any(|i| text(i, "SK").is_some_and(|sk| sk.starts_with("ws#"))) {
        return Err(format!("workspace {} not found", ws.workspace_id));
    }
    let head = items.iter().find(|i| text(i, "SK") == Some("head"));
    let rev = head.and_then(|h| number(h, "rev")).unwrap_or(0);
    let gen = head.and_then(|h| text(h, "gen")).map_or_else(|| (rev + 1).to_string(), str::to_owned);
    let cat = format!("{ws_key}#g#{gen}");
    let mut entries = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", s(&cat))
            .expression_attribute_values(":prefix", s(format!("tbl#{name}#")))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk("Query"))?;
        entries.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let entry = entries
        .iter()
        .filter(|e| text(e, "txn") == Some("-") && number(e, "rev").is_some_and(|r| r <= rev))
        .max_by_key(|e| number(e, "rev"));
    let state = match entry.and_then(|e| text(e, "state")) {
        Some(state) => serde_json::from_str(state).map_err(|e| e.to_string())?,
        None => return Err(format!("no table {name} in {}", ws.workspace_id)),
    };
    Ok(TableAt { cat, rev, gen, head_exists: head.is_some(), state })
}

/// The newest item of `key` over the table's parts (BatchGetItem, 100 keys a call), as a row.
async fn get_row(
    client: &Client,
    table: &str,
    at: &TableAt,
    name: &str,
    key: &str,
) -> Result<Option<Map<String, Value>>, String> {
    let parts = at.parts();
    let pks: Vec<String> = parts.iter().map(|(p, shards)| rows_pk(&at.cat, name, p, shard_of(key, *shards))).collect();
    let batches: Vec<Vec<Item>> = pks
        .chunks(BATCH_GET_MAX)
        .map(|c| c.iter().map(|pk| HashMap::from([("PK".into(), s(pk)), ("SK".into(), s(key))])).collect())
        .collect();
    let found: Vec<Vec<Item>> = stream::iter(batches)
        .map(|b| batch_get(client, table, b))
        .buffer_unordered(GET_CONCURRENCY)
        .try_collect()
        .await?;
    let newest = found
        .into_iter()
        .flatten()
        .filter_map(|item| Some((pks.iter().position(|pk| Some(pk.as_str()) == text(&item, "PK"))?, item)))
        .max_by_key(|(index, _)| *index);
    match newest.as_ref().and_then(|(_, item)| text(item, "row")) {
        Some(row) => serde_json::from_str(row).map(Some).map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

async fn batch_get(client: &Client, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, String> {
    let mut found = Vec::new();
    let mut pending = Some(keys);
    while let Some(keys) = pending.take().filter(|k| !k.is_empty()) {
        let wanted = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| e.to_string())?;
        let out = client.batch_get_item().request_items(table, wanted).send().await.map_err(sdk("BatchGetItem"))?;
        found.extend(out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
        pending = out.unprocessed_keys.and_then(|mut u| u.remove(table)).map(|k| k.keys);
    }
    Ok(found)
}

/// How many of `keys` exist (only their keys read back).
async fn batch_get_count(client: &Client, table: &str, keys: Vec<Item>) -> Result<usize, String> {
    let mut found = 0;
    let mut pending = Some(keys);
    while let Some(keys) = pending.take().filter(|k| !k.is_empty()) {
        let wanted = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .projection_expression("PK, SK")
            .build()
            .map_err(|e| e.to_string())?;
        let out = client.batch_get_item().request_items(table, wanted).send().await.map_err(sdk("BatchGetItem"))?;
        found += out.responses.and_then(|mut r| r.remove(table)).map_or(0, |items| items.len());
        pending = out.unprocessed_keys.and_then(|mut u| u.remove(table)).map(|k| k.keys);
    }
    Ok(found)
}

async fn batch_write(client: &Client, table: &str, batch: Vec<WriteRequest>) -> Result<(), String> {
    let mut pending = Some(batch);
    while let Some(batch) = pending.take().filter(|b| !b.is_empty()) {
        let out = client.batch_write_item().request_items(table, batch).send().await.map_err(sdk("BatchWriteItem"))?;
        pending = out.unprocessed_items.and_then(|mut u| u.remove(table));
    }
    Ok(())
}

/// Every item of partition `pk`, all pages.
async fn query_all(client: &Client, table: &str, pk: &str) -> Result<Vec<Item>, String> {
    let (mut out, mut start) = (Vec::new(), None);
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(pk))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk("Query"))?;
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(out);
        }
    }
}
