//! Per-object versions and conditional saves.
//!
//! Every workspace and every project carries its own `version`: 1 when created, one more on each
//! save. It belongs to the object, not to the workspace's tables: saving project A never makes a
//! save naming project B's version stale. Load answers it in `data.version` and as a strong
//! `ETag` (`"<version>"`); a save may name the version it was decided on, in the body
//! (`version`) or as `If-Match` (`"<version>"`, a bare `<version>`, or `*` for "it must exist").
//! A save naming a version that is not the stored one, or naming one for an object that does
//! not exist, is 409 `conflict` and changes nothing; a save naming none works as before (and
//! still bumps the version).
//!
//! Where the check happens: a workspace's in the store's one write (`WorkspaceDraft::
//! expected_version`); a project's, which is a row of the workspace's projects table, against
//! the snapshot the save reads, and the commit names that snapshot's revision: if anything was
//! committed in between, the commit is a conflict and the save decides again on a new snapshot
//! (`api::retry_on_conflict`), where a stale version is the 409.
//!
//! Records from before versions: a workspace without one counts as 1 (SQLite's migration stores
//! 1; a DynamoDB item without the attribute reads as 1 and its first save makes it 2), and a
//! project row without a `version` value counts as 1 too. An imported bundle's `version` is never
//! taken as given: a project row the import changes gets the stored version plus one, a new one 1.

use serde_json::{json, Value};

use super::Call;
use crate::error::ApiError;
use crate::tables::Row;

/// The projects-table column a project's version is kept in.
pub const VERSION_COLUMN: &str = "version";

/// What a save demands of the stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: create or overwrite, as saves always did.
    Nothing,
    /// It must exist (`If-Match: *`).
    Exists,
    /// It must exist at this version.
    Version(u64),
}

/// One `If-Match` header value, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    Version(u64),
}

/// `*`, `"<version>"` (as load's `ETag` gives it) or a bare `<version>`. Weak tags (`W/"3"`) never
/// match under If-Match's strong comparison and lists of tags are not something a save can mean,
/// so both are a 400, like anything else that is not a version.
pub fn parse_if_match(raw: &str) -> Result<IfMatch, ApiError> {
    let value = raw.trim();
    let shown: String = value.chars().take(40).collect();
    let bad = |why: &str| {
        ApiError::bad_request(format!("If-Match: '{shown}' {why}; send \"<version>\" as load's ETag gives it, or *"))
    };
    if value == "*" {
        return Ok(IfMatch::Any);
    }
    if value.starts_with("W/") {
        return Err(bad("is a weak entity tag"));
    }
    if value.contains(',') {
        return Err(bad("names more than one entity tag"));
    }
    let inner = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(|| bad("is not a quoted version"))?,
        None => value,
    };
    if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("is not a version"));
    }
    inner.parse::<u64>().ok().filter(|v| *v <= MAX_VERSION).map(IfMatch::Version).ok_or_else(|| bad("is not a version"))
}

/// The largest version a request may name: the document's `int64`, and what DynamoDB numbers
/// and SQLite integers hold.
pub const MAX_VERSION: u64 = i64::MAX as u64;

/// A body's `version` within [`MAX_VERSION`] (400 otherwise), for save and cleanup alike.
pub fn check_body_version(version: Option<u64>) -> Result<Option<u64>, ApiError> {
    match version {
        Some(v) if v > MAX_VERSION => {
            Err(ApiError::bad_request(format!("version: {v} is more than the largest version, {MAX_VERSION}")))
        }
        other => Ok(other),
    }
}

/// What a save expects, from its `If-Match` header and its body's `version`. Both naming a
/// version: they must agree, else no object can be at both and the save is a 409 `conflict`,
/// as any precondition that does not hold; `*` with a body version is that version.
pub fn expectation(call: &Call, body_version: Option<u64>) -> Result<Expect, ApiError> {
    let body_version = check_body_version(body_version)?;
    let header = call.if_match.as_deref().map(parse_if_match).transpose()?;
    Ok(match (header, body_version) {
        (None, None) => Expect::Nothing,
        (Some(IfMatch::Any), None) => Expect::Exists,
        (None | Some(IfMatch::Any), Some(v)) => Expect::Version(v),
        (Some(IfMatch::Version(h)), Some(b)) if h != b => {
            return Err(ApiError::conflict(format!(
                "version: the body names version {b} and If-Match version {h}; no object is at both (send one \
                 of them, or the same in both)"
            )));
        }
        (Some(IfMatch::Version(h)), _) => Expect::Version(h),
    })
}

/// The `ETag` of an object at `version`: a strong validator.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The save's answer: the object's id under `id_field`, and its new version.
pub fn saved_json(id_field: &str, id: &str, version: u64) -> Value {
    json!({id_field: id, "version": version})
}

/// A stored project row's version: 1 for a row from before versions (no value, or not a number).
pub fn row_version(row: &Row) -> u64 {
    match row.get(VERSION_COLUMN) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(1),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(1),
        _ => 1,
    }
}

/// A project save's decision: the version the row gets, or the 409 when `expect` does not hold
/// for `stored` (the row as read; `None` when the project does not exist).
pub fn next_project_version(id: &str, stored: Option<&Row>, expect: Expect) -> Result<u64, ApiError> {
    match (stored, expect) {
        (None, Expect::Nothing) => Ok(1),
        (None, Expect::Exists) => Err(ApiError::conflict(format!(
            "project '{id}' does not exist (If-Match: * needs it to); reload it and retry"
        ))),
        (None, Expect::Version(v)) => Err(ApiError::conflict(format!(
            "project '{id}' does not exist (the save named version {v}); reload it and retry"
        ))),
        (Some(row), expect) => {
            let current = row_version(row);
            match expect {
                Expect::Version(v) if v != current => Err(ApiError::conflict(format!(
                    "project '{id}' is at version {current}, not {v}; reload it and retry"
                ))),
                _ => Ok(current.saturating_add(1)),
            }
        }
    }
}

/// `If-Match: *` for a workspace that is not there.
pub fn workspace_missing(id: &str) -> ApiError {
    ApiError::conflict(format!("workspace '{id}' does not exist (If-Match: * needs it to); reload it and retry"))
}

/// The version an imported project row gets: 1 when new; the stored one when the import leaves
/// the row as it was (apart from the version the bundle claims), else one more. The bundle's own
/// `version` is never taken.
pub fn imported_project_version(stored: Option<&Row>, row: &Row) -> u64 {
    let Some(stored) = stored else { return 1 };
    let current = row_version(stored);
    let same = |a: &Row, b: &Row| {
        let strip = |r: &Row| {
            r.iter().filter(|(k, _)| *k != VERSION_COLUMN).map(|(k, v)| (k.clone(), v.clone())).collect::<Row>()
        };
        strip(a) == strip(b)
    };
    if same(stored, row) {
        current
    } else {
        current.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(if_match: Option<&str>) -> Call {
        Call { if_match: if_match.map(str::to_owned), ..Call::default() }
    }

    #[test]
    fn if_match_takes_quoted_bare_and_star() {
        assert_eq!(parse_if_match("\"3\""), Ok(IfMatch::Version(3)));
        assert_eq!(parse_if_match(" \"12\" "), Ok(IfMatch::Version(12)));
        assert_eq!(parse_if_match("7"), Ok(IfMatch::Version(7)));
        assert_eq!(parse_if_match("*"), Ok(IfMatch::Any));
        assert_eq!(parse_if_match("\"0\""), Ok(IfMatch::Version(0)));
    }

    #[test]
    fn malformed_if_match_is_400() {
        for raw in [
            "",
            "\"\"",
            "\"3",
            "3\"",
            "W/\"3\"",
            "\"3\", \"4\"",
            "abc",
            "-1",
            "+1",
            "1.5",
            "\"a\"",
            "99999999999999999999999",
            "\u{fffd}",
        ] {
            let err = parse_if_match(raw).expect_err(raw);
            assert_eq!(err.status, 400, "{raw}");
            assert!(err.message.starts_with("If-Match:"), "{}", err.message);
        }
    }

    #[test]
    fn header_and_body_combine() {
        assert_eq!(expectation(&call(None), None), Ok(Expect::Nothing));
        assert_eq!(expectation(&call(None), Some(2)), Ok(Expect::Version(2)));
        assert_eq!(expectation(&call(Some("\"2\"")), None), Ok(Expect::Version(2)));
        assert_eq!(expectation(&call(Some("2")), Some(2)), Ok(Expect::Version(2)));
        assert_eq!(expectation(&call(Some("*")), None), Ok(Expect::Exists));
        assert_eq!(expectation(&call(Some("*")), Some(5)), Ok(Expect::Version(5)));
        let both = expectation(&call(Some("\"2\"")), Some(3)).expect_err("disagreeing");
        assert_eq!(both.status, 409, "no object is at both versions");
        assert_eq!(expectation(&call(None), Some(u64::MAX)).map_err(|e| e.status), Err(400));
        assert_eq!(expectation(&call(Some("9223372036854775808")), None).map_err(|e| e.status), Err(400));
        assert!(both.message.contains('2') && both.message.contains('3'), "{}", both.message);
        assert_eq!(expectation(&call(Some("x")), Some(3)).map_err(|e| e.status), Err(400));
    }

    #[test]
    fn etags_are_strong_and_quoted() {
        assert_eq!(etag(4), "\"4\"");
        assert_eq!(parse_if_match(&etag(4)), Ok(IfMatch::Version(4)));
    }

    #[test]
    fn project_versions_decide() {
        let row = |v: Value| -> Row {
            let mut r = Row::new();
            r.insert("project_id".into(), json!("p"));
            if !v.is_null() {
                r.insert(VERSION_COLUMN.into(), v);
            }
            r
        };
        assert_eq!(next_project_version("p", None, Expect::Nothing), Ok(1));
        assert_eq!(next_project_version("p", None, Expect::Exists).map_err(|e| e.status), Err(409));
        assert_eq!(next_project_version("p", None, Expect::Version(1)).map_err(|e| e.status), Err(409));
        // A row from before versions is at 1.
        assert_eq!(next_project_version("p", Some(&row(Value::Null)), Expect::Version(1)), Ok(2));
        assert_eq!(next_project_version("p", Some(&row(json!(4))), Expect::Version(4)), Ok(5));
        assert_eq!(next_project_version("p", Some(&row(json!(4))), Expect::Exists), Ok(5));
        let stale = next_project_version("p", Some(&row(json!(4))), Expect::Version(3)).expect_err("stale");
        assert_eq!(
            (stale.status, stale.message.as_str()),
            (409, "project 'p' is at version 4, not 3; reload it and retry")
        );
    }

    #[test]
    fn imports_never_take_the_bundles_version() {
        let row = |name: &str, v: Option<u64>| -> Row {
            let mut r = Row::new();
            r.insert("name".into(), json!(name));
            if let Some(v) = v {
                r.insert(VERSION_COLUMN.into(), json!(v));
            }
            r
        };
        assert_eq!(imported_project_version(None, &row("a", Some(40))), 1);
        assert_eq!(imported_project_version(Some(&row("a", Some(3))), &row("a", Some(40))), 3);
        assert_eq!(imported_project_version(Some(&row("a", Some(3))), &row("b", Some(40))), 4);
        assert_eq!(imported_project_version(Some(&row("a", None)), &row("b", None)), 2);
    }
}
