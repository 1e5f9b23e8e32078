//! Reading request bodies so that every 400 names the field that is wrong, and so that no body
//! can cost more memory than its size suggests.
//!
//! Every read first runs [`prescan`], which bounds nesting and the number of values before any
//! tree is built: 6 MB of `[0,0,0,…]` would otherwise become ~3 million `Value`s.
//!
//! Handlers declare their body as a `Deserialize` struct and read it with [`parse`] (or
//! [`parse_or_default`] where an empty body is allowed); a type error then names its path, e.g.
//! `metadata: invalid type: sequence, expected a map`. Unknown fields are ignored, so what a
//! `load` answers can be sent back to `save`.

use serde::de::{DeserializeOwned, IgnoredAny};

use crate::error::ApiError;

/// Deepest nesting of arrays and objects a body may have (400 beyond).
pub const MAX_DEPTH: usize = 64;
/// Most JSON values a body may hold (413 beyond), in units of roughly 80 bytes of parsed tree:
/// each scalar, array, object and object key counts one, and a non-empty array or object
/// [`CONTAINER_WEIGHT`] more (its first allocation holds room for several entries). This keeps
/// the densest 6 MB body under ~110 MB of tree, well inside a 256 MB function.
pub const MAX_VALUES: usize = 1_000_000;
/// The extra count of a non-empty array or object: measured, `[[0],[0],…]` and `[{"a":0},…]`
/// cost ~400-470 bytes per inner container against ~75 bytes per element of `[0,0,…]`.
pub const CONTAINER_WEIGHT: usize = 4;

/// Counts nesting and values over the raw bytes, strings and escapes respected, without
/// allocating. It does not validate: whatever it lets through, the parser still checks.
pub fn prescan(body: &[u8]) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut values = 0usize;
    // The next non-blank byte starts a value (or key): at the top, and just inside `[` or `{`.
    let mut expect_value = true;
    let mut just_opened = false;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        let closing = matches!(b, b']' | b'}');
        // A container closed right after opening (`[]`, `{}`) holds nothing to count.
        if std::mem::take(&mut expect_value) && !closing {
            values += 1;
            if std::mem::take(&mut just_opened) {
                values += CONTAINER_WEIGHT;
            }
        }
        just_opened = false;
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ApiError::bad_request(format!("body: nested deeper than {MAX_DEPTH} levels")));
                }
                expect_value = true;
                just_opened = true;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            // Another element or member follows (`,`); a member's value follows its key (`:`).
            b',' | b':' => values += 1,
            _ => {}
        }
        if values > MAX_VALUES {
            return Err(ApiError::too_large(format!(
                "body: more than {MAX_VALUES} JSON values (keys count one, non-empty arrays and objects {})",
                1 + CONTAINER_WEIGHT
            )));
        }
    }
    Ok(())
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// The body as a `T` (a struct of the endpoint's fields). The errors: no body, not JSON, not an
/// object (400), over [`prescan`]'s limits, or a field of the wrong type (400 naming its path).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if is_blank(body) {
        return Err(ApiError::bad_request("body: a JSON object is required"));
    }
    prescan(body)?;
    // A derived struct would also accept an array (as a tuple): only an object is a body here.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => ApiError::bad_request("body: must be a JSON object"),
            Err(e) => not_json(&e),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "body" } else { path.as_str() };
                ApiError::bad_request(format!("{field}: {}", without_position(&inner)))
            }
            _ => not_json(&inner),
        }
    })?;
    // Trailing bytes after the object.
    de.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

/// [`parse`], except that an empty body is `T::default()` (endpoints whose fields are all optional).
pub fn parse_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if is_blank(body) {
        return Ok(T::default());
    }
    parse(body)
}

fn not_json(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("body: not valid JSON ({e})"))
}

/// serde_json ends every message with ` at line L column C`; for a named field that only adds noise.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).map(str::to_owned).unwrap_or(text)
}

/// An optional text field of at most `max_chars` characters.
pub fn optional_text(field: &str, value: Option<String>, max_chars: usize) -> Result<Option<String>, ApiError> {
    if value.as_ref().is_some_and(|v| v.chars().count() > max_chars) {
        return Err(ApiError::bad_request(format!("{field}: longer than {max_chars} characters")));
    }
    Ok(value)
}

/// A required text field: trimmed, non-empty, at most `max_chars` characters.
pub fn required_text(field: &str, value: Option<String>, max_chars: usize) -> Result<String, ApiError> {
    let value = value.map(|s| s.trim().to_owned()).unwrap_or_default();
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("{field}: required, a non-empty string")));
    }
    if value.chars().count() > max_chars {
        return Err(ApiError::bad_request(format!("{field}: longer than {max_chars} characters")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(body: &str) -> Option<u16> {
        prescan(body.as_bytes()).err().map(|e| e.status)
    }

    #[test]
    fn the_prescan_counts_every_value_and_only_values() {
        let w = CONTAINER_WEIGHT;
        // Strings with brackets, commas, colons and escaped quotes are one value each.
        let ok = r#"[1, "a,[{:\"]", {"k": [], "m": {}}]"#;
        assert_eq!(status(ok), None);
        // The array (1 + w) and its n elements.
        let n = MAX_VALUES - 1 - w;
        let at_limit = format!("[{}0]", "0,".repeat(n - 1));
        assert_eq!(status(&at_limit), None);
        let over = format!("[{}0]", "0,".repeat(n));
        assert_eq!(status(&over), Some(413));
        let e = prescan(over.as_bytes()).unwrap_err();
        assert!(e.message.contains(&MAX_VALUES.to_string()), "{}", e.message);
        // Commas inside strings are not values.
        let strings = format!("[\"{}\"]", ",".repeat(2 * MAX_VALUES));
        assert_eq!(status(&strings), None);
        // Keys count, and so does the weight of each small object: 1 + w + 2 per `{"a":0}`.
        let objects = |k: usize| format!("[{}{{}}]", r#"{"a":0},"#.repeat(k));
        // The outer array with its weight, and the trailing `{}`.
        let (per, base) = (3 + w, 2 + w);
        let fit = (MAX_VALUES - base) / per;
        assert_eq!(status(&objects(fit)), None);
        assert_eq!(status(&objects(fit + 1)), Some(413));
        // Empty arrays weigh one: the outer array (1 + w) and MAX - 1 - w of them.
        let empties = |k: usize| format!("[{}[]]", "[],".repeat(k - 1));
        assert_eq!(status(&empties(MAX_VALUES - 1 - w)), None);
        assert_eq!(status(&empties(MAX_VALUES - w)), Some(413));
    }

    #[test]
    fn the_prescan_bounds_nesting_outside_strings() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(status(&deep(MAX_DEPTH)), None);
        let e = prescan(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("nested deeper than 64"), "{}", e.message);
        assert_eq!(status(&format!("{{\"a\":\"{}\"}}", "[".repeat(1000))), None);
        // An escaped backslash ends the escape: the quote after it closes the string.
        assert_eq!(status(&format!("[\"\\\\\"{}]", ",[".repeat(MAX_DEPTH))), Some(400));
    }

    #[derive(Debug, Default, serde::Deserialize)]
    struct Input {
        name: Option<String>,
        #[serde(default)]
        nested: Option<Nested>,
    }
    #[derive(Debug, Default, serde::Deserialize)]
    struct Nested {
        #[serde(default)]
        items: Vec<u32>,
    }

    #[test]
    fn typed_bodies_name_the_bad_field_by_path() {
        let e = parse::<Input>(br#"{"nested": {"items": [1, "x"]}}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with("nested.items[1]: invalid type: string \"x\""), "{}", e.message);
        assert!(!e.message.contains("line 1"), "{}", e.message);
        let e = parse::<Input>(br#"{"name": 42}"#).unwrap_err();
        assert!(e.message.starts_with("name: invalid type: integer `42`"), "{}", e.message);
        let ok = parse::<Input>(br#"{"name": "n", "unknown": [1], "nested": {"items": [3]}}"#).unwrap();
        assert_eq!((ok.name.as_deref(), ok.nested.map(|n| n.items)), (Some("n"), Some(vec![3])));
    }

    #[test]
    fn typed_bodies_must_be_one_json_object() {
        for (body, needle) in [
            ("", "a JSON object is required"),
            ("[1]", "must be a JSON object"),
            ("42", "must be a JSON object"),
            ("{\"name\": ", "not valid JSON"),
            ("nope", "not valid JSON"),
            ("{} {}", "not valid JSON"),
        ] {
            let e = parse::<Input>(body.as_bytes()).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        assert!(parse_or_default::<Input>(b"  ").is_ok_and(|i| i.name.is_none()));
        assert_eq!(parse_or_default::<Input>(b"[]").unwrap_err().status, 400);
    }

    #[test]
    fn typed_reads_go_through_the_prescan() {
        #[derive(Debug, serde::Deserialize)]
        struct Any {
            #[allow(dead_code)]
            a: Option<serde_json::Value>,
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(parse::<Any>(deep.as_bytes()).unwrap_err().status, 400);
    }
}
