//! Secrets never leave in clear by default: [`redact`] replaces them with [`REDACTED`]. An import
//! may send the marker back to keep the stored value, but only for a row that is otherwise
//! unchanged ([`restore`]), so a marker can never carry a stored credential to a new host.
//!
//! A secret is, at any depth (JSON columns included):
//! - the value of a field with a secret name ([`is_secret_field`]), masked whole, objects too;
//! - inside any string, the value after a secret name and `=` or `:` (`password=x`,
//!   `"apiKey": "x"`), and the password of a URL (`postgres://ann:x@db`).
//!
//! Null, `""`, `{}`, `[]` and booleans are left as they are: they hide nothing (an empty
//! password is a real value, shown as `""`).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

/// Distinct from every real value, `""` included.
pub const REDACTED: &str = "**redacted**";

/// A name is secret when, in snake_case, it is one of these or ends in `_` + one of these.
const SECRET_NAMES: [&str; 14] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "secret_key",
    "private_key",
    "client_secret",
    "credentials",
    "credential",
    "auth_token",
];

/// Either a URL up to its password (`scheme://user:`, the password, then `@`), or a name and
/// its `=` / `:` (quoted or not) before a value. The URL comes first so that, starting at the
/// same place, `postgres://token:x@db` reads as a URL and not as `postgres: ...`.
static SCANNER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r##"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@"']*:(?P<pass>[^\s/?#"']+)@"##,
        r##"|\b(?P<key>[A-Za-z][A-Za-z0-9_-]*)["']?[ \t]*(?:=>|[=:]{1,2})[ \t]*"##,
    ))
    .expect("the secret scanner is a valid regex")
});

/// `apiKey`, `APIKey`, `api-key` → `api_key`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).and_then(|j| chars.get(j));
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let word_starts = match prev {
                Some(p) => p.is_lowercase() || p.is_ascii_digit() || (p.is_uppercase() && next_lower),
                None => false,
            };
            if word_starts {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else if matches!(c, '-' | '.' | ' ') {
            out.push('_');
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `db_password`, `apiKey`, `credentials` are secret; `token_count`, `password_policy`,
/// `primary_key` are not.
pub fn is_secret_field(name: &str) -> bool {
    let n = snake_case(name);
    SECRET_NAMES.iter().any(|s| n.strip_suffix(s).is_some_and(|head| head.is_empty() || head.ends_with('_')))
}

/// Whether a secret field's value hides anything worth masking.
fn hides_something(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

/// The value after a secret name at `start`: up to the closing quote, or to the next delimiter.
fn value_at(s: &str, start: usize) -> Option<Range<usize>> {
    let rest = s.get(start..)?;
    let quote = rest.chars().next().filter(|c| matches!(c, '"' | '\''));
    let range = match quote {
        Some(q) => {
            let len = rest.get(1..)?.find(q)?;
            start + 1..start + 1 + len
        }
        None => {
            let len = rest.find(|c: char| c.is_whitespace() || ",;&\"')}".contains(c)).unwrap_or(rest.len());
            start..start + len
        }
    };
    (!range.is_empty()).then_some(range)
}

/// Splits `s` into the text around its secrets (n + 1 pieces) and the n secrets, in order.
fn split(s: &str) -> (Vec<&str>, Vec<&str>) {
    // Every secret follows a `=` or a `:`; most strings have neither (export scans every row).
    if !s.contains(['=', ':']) {
        return (vec![s], Vec::new());
    }
    let (mut pieces, mut secrets) = (Vec::new(), Vec::new());
    let (mut at, mut piece_start) = (0, 0);
    while let Some(c) = SCANNER.captures_at(s, at) {
        let Some(whole) = c.get(0) else { break };
        at = whole.end();
        let span = match (c.name("pass"), c.name("key")) {
            (Some(pass), _) => Some(pass.range()),
            (None, Some(key)) if is_secret_field(key.as_str()) => value_at(s, at),
            _ => None,
        };
        if let Some(span) = span {
            pieces.push(&s[piece_start..span.start]);
            secrets.push(&s[span.clone()]);
            piece_start = span.end;
            at = at.max(span.end);
        }
    }
    pieces.push(&s[piece_start..]);
    (pieces, secrets)
}

/// Redacts in place; returns how many secrets it hid (markers already there do not count).
pub fn redact(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => map
            .iter_mut()
            .map(|(k, v)| {
                if !(is_secret_field(k) && hides_something(v)) {
                    redact(v)
                } else if v.as_str() == Some(REDACTED) {
                    0
                } else {
                    *v = Value::String(REDACTED.into());
                    1
                }
            })
            .sum(),
        Value::Array(items) => items.iter_mut().map(redact).sum(),
        Value::String(s) => {
            let (pieces, secrets) = split(s);
            let hidden = secrets.iter().filter(|x| **x != REDACTED).count();
            if hidden > 0 {
                *s = pieces.join(REDACTED);
            }
            hidden
        }
        _ => 0,
    }
}

pub fn contains_marker(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains(REDACTED),
        Value::Array(items) => items.iter().any(contains_marker),
        Value::Object(map) => map.values().any(contains_marker),
        _ => false,
    }
}

/// A marker that cannot keep its stored secret: `field` is the JSON path that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRebind {
    pub field: String,
}

impl SecretRebind {
    pub fn message(&self) -> String {
        format!(
            "{}: '{REDACTED}' can only keep a stored secret when nothing else in the row changes; \
             send the real value (or export with include_secrets)",
            self.field
        )
    }
}

/// Puts stored secrets back behind the markers of `row`, which must otherwise equal `stored`
/// (every secret masked on both sides, key order ignored); else names the first field carrying
/// a marker. Secrets sent in clear are kept. A marker with no secret stored behind it (no row,
/// or null, `""`, absent there) takes what is stored, null when nothing is: nothing can leak,
/// so it needs no check. A marker inside a string with no stored row stays as text.
pub fn restore(row: &mut Value, stored: Option<&Value>) -> Result<(), SecretRebind> {
    settle_orphans(row, stored);
    let Some(stored) = stored.filter(|_| contains_marker(row)) else { return Ok(()) };
    if let Some(field) = marker_inside_secret(row, "") {
        return Err(SecretRebind { field });
    }
    if masked(row) != masked(stored) {
        return Err(SecretRebind { field: first_marker(row, "").unwrap_or_default() });
    }
    put_back(row, stored, "")
}

/// Replaces each whole-value marker that has no secret behind it with the stored value there.
fn settle_orphans(value: &mut Value, stored: Option<&Value>) {
    match value {
        Value::String(s) if s == REDACTED && !stored.is_some_and(hides_something) => {
            *value = stored.cloned().unwrap_or(Value::Null);
        }
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| settle_orphans(v, stored.and_then(|s| s.get(k)))),
        Value::Array(items) => {
            items.iter_mut().enumerate().for_each(|(i, v)| settle_orphans(v, stored.and_then(|s| s.get(i))))
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Entries in key order, so that "first" and "canonical" do not depend on how keys came in.
fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Canonical form with every secret masked (keys sorted; `Value` equality then is JSON equality).
fn masked(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            sorted(map)
                .into_iter()
                .map(|(k, v)| {
                    let v = if is_secret_field(k) && hides_something(v) { REDACTED.into() } else { masked(v) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        Value::String(s) => Value::String(split(s).0.join(REDACTED)),
        other => other.clone(),
    }
}

fn first_marker(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) => s.contains(REDACTED).then(|| path.to_owned()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| first_marker(v, &format!("{path}[{i}]"))),
        Value::Object(map) => sorted(map).into_iter().find_map(|(k, v)| first_marker(v, &join(path, k))),
        _ => None,
    }
}

/// A marker inside a secret field's value (`credentials: {host, password: marker}`): redact
/// never puts one there, and the whole-value mask would hide the changes around it.
fn marker_inside_secret(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| marker_inside_secret(v, &format!("{path}[{i}]")))
        }
        Value::Object(map) => sorted(map).into_iter().find_map(|(k, v)| match v {
            Value::String(s) if s == REDACTED => None,
            _ if is_secret_field(k) => first_marker(v, &join(path, k)),
            _ => marker_inside_secret(v, &join(path, k)),
        }),
        _ => None,
    }
}

/// Fills the markers of `value` from `stored`, whose masked form is the same.
fn put_back(value: &mut Value, stored: &Value, path: &str) -> Result<(), SecretRebind> {
    let rebind = || SecretRebind { field: path.to_owned() };
    match (value, stored) {
        (Value::Object(map), Value::Object(old)) => {
            for (k, v) in map.iter_mut() {
                let field = join(path, k);
                match old.get(k) {
                    Some(o) if is_secret_field(k) && v.as_str() == Some(REDACTED) => *v = o.clone(),
                    Some(o) => put_back(v, o, &field)?,
                    None if contains_marker(v) => return Err(SecretRebind { field }),
                    None => {}
                }
            }
            Ok(())
        }
        (Value::Array(items), Value::Array(old)) if items.len() == old.len() => {
            items.iter_mut().zip(old).enumerate().try_for_each(|(i, (v, o))| put_back(v, o, &format!("{path}[{i}]")))
        }
        (Value::String(s), Value::String(old)) if s.contains(REDACTED) => {
            let (pieces, secrets) = split(s);
            let (old_pieces, old_secrets) = split(old);
            // Same text around the secrets, so each stored secret goes back to its own place.
            if pieces != old_pieces {
                return Err(rebind());
            }
            let mut out = String::with_capacity(old.len());
            for (i, piece) in pieces.iter().enumerate() {
                out.push_str(piece);
                match (secrets.get(i), old_secrets.get(i)) {
                    (Some(x), Some(o)) if *x == REDACTED => out.push_str(o),
                    (Some(x), _) => out.push_str(x),
                    (None, _) => {}
                }
            }
            *s = out;
            Ok(())
        }
        (v, _) if contains_marker(v) => Err(rebind()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BIND: &str = r#"@bind("o","postgresql host=localhost, port=5432, username=prometheux, password=postgres@prometheux, saveMode='overwrite'","devuser","o_1")."#;

    fn redacted(value: &Value) -> Value {
        let mut v = value.clone();
        redact(&mut v);
        v
    }

    fn restored(mut row: Value, stored: &Value) -> Result<Value, SecretRebind> {
        restore(&mut row, Some(stored)).map(|()| row)
    }

    fn refused_at(field: &str) -> Result<Value, SecretRebind> {
        Err(SecretRebind { field: field.into() })
    }

    #[test]
    fn secret_names_are_matched_by_suffix_and_camel_case() {
        for name in [
            "password",
            "PASSWORD",
            "db_password",
            "passwd",
            "pwd",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "access_token",
            "accessToken",
            "auth_token",
            "apiKey",
            "APIKey",
            "api_key",
            "apikey",
            "x-api-key",
            "access_key",
            "secret_key",
            "privateKey",
            "private_key",
            "credentials",
            "credential",
            "aws_credentials",
        ] {
            assert!(is_secret_field(name), "{name} is a secret");
        }
        for name in [
            "token_count",
            "tokenCount",
            "tokens",
            "secretary",
            "password_policy",
            "passwordPolicy",
            "key",
            "primary_key",
            "primaryKey",
            "host",
            "username",
            "keyspace",
            "mypassword",
            "credentials_id",
        ] {
            assert!(!is_secret_field(name), "{name} is not a secret");
        }
    }

    #[test]
    fn redacts_fields_at_any_depth_whole_credentials_and_leaves_empty_values() {
        let mut row = json!({
            "password": "hunter2", "pin_pwd": 1234, "host": "",
            "connection": {"params": {"apiKey": "k1", "port": 5432, "token_count": 7}},
            "credentials": {"user": "ann", "password": "x"},
            "list": [{"client_secret": "c"}, {"secretary": "bob"}],
            "empty": {"password": "", "token": null, "credentials": {}, "use_token": true},
        });
        assert_eq!(redact(&mut row), 5);
        assert_eq!(
            row,
            json!({
                "password": REDACTED, "pin_pwd": REDACTED, "host": "",
                "connection": {"params": {"apiKey": REDACTED, "port": 5432, "token_count": 7}},
                "credentials": REDACTED,
                "list": [{"client_secret": REDACTED}, {"secretary": "bob"}],
                "empty": {"password": "", "token": null, "credentials": {}, "use_token": true},
            })
        );
        assert_eq!(redact(&mut row), 0, "idempotent");
    }

    #[test]
    fn redacts_inline_secrets_in_strings_and_urls() {
        let r = REDACTED;
        let cases = [
            (BIND.to_owned(), BIND.replace("postgres@prometheux", r)),
            ("postgres://ann:s3cret@db:5432/x".into(), format!("postgres://ann:{r}@db:5432/x")),
            ("postgres://token:s3cret@db/x".into(), format!("postgres://token:{r}@db/x")),
            ("redis://:pw@cache:6379".into(), format!("redis://:{r}@cache:6379")),
            (
                "jdbc:postgresql://db/x?user=ann&pwd=pw1&ssl=1".into(),
                format!("jdbc:postgresql://db/x?user=ann&pwd={r}&ssl=1"),
            ),
            ("token: abc123 end".into(), format!("token: {r} end")),
            (r#"{"api_key": "k-1", "n": 1}"#.into(), format!(r#"{{"api_key": "{r}", "n": 1}}"#)),
            ("apiKey='a b'; secret=s".into(), format!("apiKey='{r}'; secret={r}")),
            ("spring.datasource.password=x".into(), format!("spring.datasource.password={r}")),
            ("note: password := x".into(), format!("note: password := {r}")),
        ];
        for (input, expected) in cases {
            let mut v = json!(input);
            assert!(redact(&mut v) > 0, "{input}");
            assert_eq!(v, json!(expected), "{input}");
            assert_eq!(redact(&mut v), 0, "idempotent: {input}");
        }
        for untouched in [
            "https://host/x@y",
            "https://ann@host/x",
            "https://host:8080/x@y",
            "mailto:a@b",
            "password=, token=\"\" apiKey:",
            "token_count=5 tokens=3 secretary=bob password_policy=strict primary_key=id key=k",
        ] {
            let mut v = json!(untouched);
            assert_eq!(redact(&mut v), 0, "{untouched}");
            assert_eq!(v, json!(untouched));
        }
    }

    #[test]
    fn a_marker_cannot_follow_a_new_host() {
        let stored = json!({"host": "db.internal", "password": "s3cret"});
        let evil = json!({"host": "evil.example", "password": REDACTED});
        let err = restored(evil, &stored).unwrap_err();
        assert_eq!(err, SecretRebind { field: "password".into() });
        assert!(err.message().starts_with("password: '**redacted**' can only keep a stored secret"));
        assert!(err.message().contains("include_secrets"));
    }

    #[test]
    fn an_unchanged_row_in_another_key_order_gets_its_secrets_back() {
        let stored = json!({"host": "db", "password": "s3cret", "note": BIND, "credentials": {"k": [1, 2]}});
        let incoming: Value = serde_json::from_str(&format!(
            r#"{{"credentials": "{REDACTED}", "note": {}, "password": "{REDACTED}", "host": "db"}}"#,
            json!(redacted(&json!(BIND)))
        ))
        .unwrap();
        assert_eq!(restored(incoming, &stored), Ok(stored));
    }

    #[test]
    fn a_url_keeps_its_password_only_while_it_points_at_the_same_host() {
        let stored = json!({"url": "postgres://ann:s3cret@db:5432/x"});
        let same = redacted(&stored);
        assert_eq!(same["url"], format!("postgres://ann:{REDACTED}@db:5432/x"));
        assert_eq!(restored(same, &stored), Ok(stored.clone()));
        let moved = json!({"url": format!("postgres://ann:{REDACTED}@evil:5432/x")});
        assert_eq!(restored(moved, &stored), refused_at("url"));
    }

    #[test]
    fn nested_json_columns_and_arrays_are_named_by_path() {
        let stored = json!({"id": 1, "connection": {"params": {"api_key": "k", "host": "a"}},
                            "annotations": ["x", "y", "token=t1"]});
        let plain = redacted(&stored);
        assert_eq!(restored(plain.clone(), &stored), Ok(stored.clone()));
        let mut moved = plain.clone();
        moved["connection"]["params"]["host"] = json!("b");
        assert_eq!(restored(moved, &stored), refused_at("annotations[2]"));
        let mut moved = plain;
        moved["annotations"][2] = json!("x");
        moved["id"] = json!(2);
        assert_eq!(restored(moved, &stored), refused_at("connection.params.api_key"));
    }

    #[test]
    fn a_marker_inside_a_sent_credentials_object_is_refused() {
        let stored = json!({"credentials": {"host": "db", "password": "s3cret"}});
        let partial = json!({"credentials": {"host": "evil", "password": REDACTED}});
        assert_eq!(restored(partial, &stored), refused_at("credentials.password"));
    }

    #[test]
    fn secrets_sent_in_clear_are_kept_beside_restored_ones() {
        let stored = json!({"host": "db", "password": "old", "api_key": "k"});
        let incoming = json!({"host": "db", "password": "new", "api_key": REDACTED});
        assert_eq!(restored(incoming, &stored), Ok(json!({"host": "db", "password": "new", "api_key": "k"})));
    }

    #[test]
    fn with_nothing_stored_a_field_marker_becomes_null_and_inline_stays() {
        let inline = format!("password={REDACTED}");
        let mut row = json!({"password": REDACTED, "note": inline});
        assert_eq!(restore(&mut row, None), Ok(()));
        assert_eq!(row, json!({"password": null, "note": inline}));
    }

    #[test]
    fn a_marker_with_no_secret_stored_behind_it_takes_the_stored_value() {
        // The same row twice in one bundle: the first, with nothing stored, settled to null.
        let earlier = json!({"host": "db", "password": null, "pin": "", "api_key": "k"});
        let again = json!({"host": "db", "password": REDACTED, "pin": REDACTED, "api_key": REDACTED});
        assert_eq!(restored(again, &earlier), Ok(earlier.clone()));
        // Nothing secret is behind it, so there is nothing to send elsewhere.
        let moved = json!({"host": "evil", "password": REDACTED, "extra": [REDACTED]});
        assert_eq!(restored(moved, &earlier), Ok(json!({"host": "evil", "password": null, "extra": [null]})));
    }

    /// xorshift: a small deterministic generator for the property test below.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn pick<T: Clone>(&mut self, items: &[T]) -> T {
            items[self.next(items.len())].clone()
        }
        fn value(&mut self, depth: usize) -> Value {
            let strings = [
                "db.internal",
                "",
                "plain text",
                BIND,
                "postgres://ann:s3cret@db:5432/x",
                "https://host/x@y",
                "mailto:a@b",
                "token: abc def",
                "password=",
                r#"{"api_key": "k9"}"#,
                "redis://:pw@cache",
            ];
            match self.next(if depth == 0 { 5 } else { 7 }) {
                0 | 1 => json!(self.pick(&strings)),
                2 => json!(self.next(1000)),
                3 => json!(self.next(2) == 0),
                4 => Value::Null,
                5 => Value::Array((0..self.next(4)).map(|_| self.value(depth - 1)).collect()),
                _ => self.object(depth - 1),
            }
        }
        fn object(&mut self, depth: usize) -> Value {
            let names = [
                "host",
                "port",
                "notes",
                "token_count",
                "secretary",
                "password_policy",
                "primary_key",
                "options",
                "password",
                "apiKey",
                "client_secret",
                "credentials",
                "db_pwd",
                "use_token",
            ];
            Value::Object((0..self.next(5)).map(|_| (self.pick(&names).to_owned(), self.value(depth))).collect())
        }
    }

    /// Changes the `n`th leaf that is not a secret field's marker; false when there are fewer.
    fn change_leaf(value: &mut Value, n: &mut usize) -> bool {
        match value {
            Value::Object(map) => map
                .iter_mut()
                .filter(|(k, v)| !(is_secret_field(k) && v.as_str() == Some(REDACTED)))
                .any(|(_, v)| change_leaf(v, n)),
            Value::Array(items) => items.iter_mut().any(|v| change_leaf(v, n)),
            _ if *n > 0 => {
                *n -= 1;
                false
            }
            leaf => {
                *leaf = match leaf {
                    Value::String(s) => json!(format!("x{s}")),
                    Value::Number(x) => json!(x.as_u64().unwrap_or(0) + 1),
                    Value::Bool(b) => json!(!*b),
                    _ => json!(0),
                };
                true
            }
        }
    }

    #[test]
    fn property_restore_inverts_redact_and_any_other_change_is_refused() {
        let mut gen = Gen(0x9e37_79b9_7f4a_7c15);
        let mut changes = 0;
        for _ in 0..300 {
            let mut row = gen.object(2);
            row["password"] = json!(format!("pw{}", gen.next(100)));
            let plain = redacted(&row);
            assert_eq!(redacted(&plain), plain, "idempotent: {row}");
            assert!(!plain.to_string().contains("s3cret") && !plain.to_string().contains("k9"), "{plain}");
            assert_eq!(restored(plain.clone(), &row), Ok(row.clone()));
            for i in 0.. {
                let (mut changed, mut nth) = (plain.clone(), i);
                if !change_leaf(&mut changed, &mut nth) {
                    break;
                }
                changes += 1;
                assert!(restored(changed.clone(), &row).is_err(), "{changed} restored from {row}");
            }
        }
        assert!(changes > 300, "the generator changes leaves ({changes})");
    }
}
