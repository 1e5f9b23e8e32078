//! A table's rows, as both reads of pass 1 check them: each row built, checked, reduced to its
//! key's hash ([`Entry`]) and cut into chunks, one row in memory at a time.

use std::io::Read;

use serde_json::Value;
use sha2::{Digest, Sha256};
use struson::reader::{JsonReader, JsonStreamReader, ReaderError};

use super::index::Entry;
use super::parse::{bad, check_row};
use super::scan::{pos, read_value, settings, Res, Scanner, Stop};
use crate::api::projects::PROJECT_KEY;
use crate::error::ApiError;
use crate::tables::{key_text, Column};

#[derive(Debug)]
pub(super) struct RowsScan {
    pub key_column: String,
    pub rows: u64,
    /// The first invalid row's problem; rows after it are not kept.
    pub error: Option<ApiError>,
    /// This table's rows in [`Scanner::entries`]: `(start, len)`.
    pub entries: (usize, usize),
    pub chunks: Vec<ChunkDraft>,
    /// For tables named `projects*`: each row's key and its `created_at` when not null.
    pub project_rows: Vec<(String, Option<Value>)>,
}

#[derive(Debug, Clone)]
pub(super) struct ChunkDraft {
    pub first_row: u64,
    pub rows: u64,
    pub start: u64,
    pub end: u64,
    pub keys_digest: u64,
}

/// A key's hash in the index: 96 bits of its SHA-256.
pub(super) fn key_hash(key: &str) -> [u32; 3] {
    let d = Sha256::digest(key.as_bytes());
    let word = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    [word(0), word(4), word(8)]
}

/// What pass 2 checks a chunk's keys against, so a bundle changed between the passes is refused.
#[derive(Default)]
pub(super) struct KeysDigest(Sha256);

impl KeysDigest {
    pub fn add(&mut self, key: &str) {
        self.0.update(key.as_bytes());
        self.0.update([0]);
    }
    pub fn finish(self) -> u64 {
        let d = self.0.finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
}

/// The rows' checking context: where, which columns, which key.
pub(super) struct RowCtx<'a> {
    pub at: &'a str,
    pub columns: &'a [Column],
    pub key_column: &'a str,
    pub projects_name: bool,
}

/// One table's `data` array (its bytes, `[` to `]`) to check again, and how.
pub(super) struct Recheck {
    pub start: u64,
    pub end: u64,
    pub at: String,
    pub key_column: String,
    pub columns: Vec<Column>,
    pub projects_name: bool,
}

impl Scanner {
    /// A table's `data` array, every row checked; `offset` is where the reader's byte 0 is.
    pub fn rows<R: Read>(
        &mut self,
        r: &mut JsonStreamReader<R>,
        offset: u64,
        ctx: &RowCtx<'_>,
        project_ids: &mut Vec<String>,
    ) -> Res<RowsScan> {
        let first_entry = self.entries.len();
        let mut out = RowsScan {
            key_column: ctx.key_column.to_owned(),
            rows: 0,
            error: None,
            entries: (first_entry, 0),
            chunks: Vec::new(),
            project_rows: Vec::new(),
        };
        let mut chunk: Option<(ChunkDraft, KeysDigest)> = None;
        r.begin_array()?;
        while r.has_next()? {
            let start = offset + pos(r);
            let row = read_value(r)?;
            let end = offset + pos(r);
            let i = out.rows;
            out.rows += 1;
            if ctx.projects_name {
                project_ids.extend(key_text(row.get(PROJECT_KEY)));
            }
            if out.error.is_some() {
                continue;
            }
            let key = match check_row(ctx.at, i, &row, ctx.key_column, ctx.columns) {
                Ok(key) => key,
                Err(e) => {
                    out.error = Some(e);
                    continue;
                }
            };
            let full = chunk.as_ref().is_some_and(|(c, _)| {
                c.rows >= u64::from(self.limits.max_rows) || end - c.start > self.limits.max_bytes
            });
            if full {
                out.chunks.extend(chunk.take().map(close));
            }
            let (c, digest) = chunk.get_or_insert_with(|| {
                (ChunkDraft { first_row: i, rows: 0, start, end, keys_digest: 0 }, KeysDigest::default())
            });
            c.rows += 1;
            c.end = end;
            digest.add(&key);
            let row_index = u32::try_from(i).map_err(|_| Stop::Api(too_many_rows()))?;
            self.entries.push(Entry::new(key_hash(&key), row_index));
            if ctx.projects_name {
                let created = row.get("created_at").filter(|v| !v.is_null()).cloned();
                out.project_rows.push((key, created));
            }
        }
        r.end_array()?;
        out.chunks.extend(chunk.take().map(close));
        out.entries.1 = self.entries.len() - first_entry;
        Ok(out)
    }

    /// The second read: each job's array (in byte order) checked.
    pub fn rescan<R: Read>(&mut self, mut reader: R, jobs: &[Recheck]) -> Res<Vec<RowsScan>> {
        let mut at = 0u64;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (start, end) = (&job.start, &job.end);
            let ctx = RowCtx {
                at: &job.at,
                columns: &job.columns,
                key_column: &job.key_column,
                projects_name: job.projects_name,
            };
            let skip = start.saturating_sub(at);
            let skipped = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())
                .map_err(|e| Stop::Json(ReaderError::IoError { error: e, location: unknown_position() }))?;
            if skipped < skip {
                return Err(Stop::Api(bad("the bundle ended early on its second read")));
            }
            let mut piece = (&mut reader).take(end - start);
            let mut ignored = Vec::new();
            {
                let mut r = JsonStreamReader::new_custom(&mut piece, settings());
                out.push(self.rows(&mut r, *start, &ctx, &mut ignored)?);
            }
            std::io::copy(&mut piece, &mut std::io::sink())
                .map_err(|e| Stop::Json(ReaderError::IoError { error: e, location: unknown_position() }))?;
            at = *end;
        }
        Ok(out)
    }
}

fn unknown_position() -> struson::reader::JsonReaderPosition {
    struson::reader::JsonReaderPosition { path: None, line_pos: None, data_pos: None }
}

pub(super) fn too_many_rows() -> ApiError {
    ApiError::too_large(format!("a bundle holds at most {} rows", u32::MAX))
}

fn close((mut c, digest): (ChunkDraft, KeysDigest)) -> ChunkDraft {
    c.keys_digest = digest.finish();
    c
}
