//! Secrets never leave in clear by default: values of password-like fields (at any depth, JSON
//! columns included) and `password=...` inside annotation strings become [`REDACTED`].
//! Importing the marker keeps the value already stored (see [`restore`]).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// Distinct from every real value, `""` included (an empty password is a real value).
pub const REDACTED: &str = "**redacted**";

static INLINE_SECRET: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(password|passwd|pwd|secret)(\s*=\s*)([^,;"'\s)]+)"#).ok());

pub fn is_secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "api_key", "access_key", "secret_key"]
        .iter()
        .any(|s| n == *s || n.ends_with(&format!("_{s}")))
}

/// Redacts in place; returns how many secrets it hid.
pub fn redact(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => {
            let mut n = 0;
            for (k, v) in map.iter_mut() {
                let hidden = matches!(v, Value::Null) || matches!(v.as_str(), Some("") | Some(REDACTED));
                if is_secret_field(k) && !hidden {
                    *v = Value::String(REDACTED.into());
                    n += 1;
                } else {
                    n += redact(v);
                }
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(redact).sum(),
        Value::String(s) => {
            let Some(re) = INLINE_SECRET.as_ref() else { return 0 };
            let count = re.find_iter(s).filter(|m| !m.as_str().ends_with(REDACTED)).count();
            if count > 0 {
                *s = re.replace_all(s, format!("${{1}}${{2}}{REDACTED}")).into_owned();
            }
            count
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

/// Puts stored secrets back where `incoming` has markers. A marker with nothing stored to
/// restore becomes null for a whole-field secret (the value never left its source) and stays
/// as text inside a string.
pub fn restore(incoming: &mut Value, stored: Option<&Value>) -> Result<(), SecretRebind> {
    restore_values(incoming, stored);
    Ok(())
}

/// TEMPORARY shim until the rebind rule lands (branch wt-a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRebind {
    pub field: String,
}

impl SecretRebind {
    pub fn message(&self) -> String {
        format!("{}: '{REDACTED}' can only keep a stored secret when nothing else in the row changes", self.field)
    }
}

fn restore_values(incoming: &mut Value, stored: Option<&Value>) {
    match incoming {
        Value::String(s) if s == REDACTED => {
            *incoming = stored.filter(|v| v.as_str() != Some(REDACTED)).cloned().unwrap_or(Value::Null);
        }
        Value::String(s) if s.contains(REDACTED) => {
            if let (Some(Value::String(old)), Some(re)) = (stored, INLINE_SECRET.as_ref()) {
                let mut secrets = re.captures_iter(old).filter_map(|c| c.get(3).map(|m| m.as_str().to_owned()));
                let restored = re.replace_all(s, |c: &regex::Captures<'_>| {
                    let value = c.get(3).map(|m| m.as_str()).unwrap_or_default();
                    let next = secrets.next();
                    let value = if value == REDACTED { next.as_deref().unwrap_or(REDACTED) } else { value };
                    format!("{}{}{}", &c[1], &c[2], value)
                });
                *s = restored.into_owned();
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                restore_values(v, stored.and_then(|s| s.get(k)));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                restore_values(v, stored.and_then(|s| s.get(i)));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BIND: &str = r#"@bind("o","postgresql host=localhost, port=5432, username=prometheux, password=postgres@prometheux, saveMode='overwrite'","devuser","o_1")."#;

    #[test]
    fn redacts_fields_and_inline_passwords_but_not_empty_ones() {
        let mut row = json!({"password": "hunter2", "host": "", "connection_params": {"db_password": "x", "port": 1},
                             "bind_annotations": BIND, "empty": {"password": ""}});
        assert_eq!(redact(&mut row), 3);
        assert_eq!(row["password"], REDACTED);
        assert_eq!(row["connection_params"]["db_password"], REDACTED);
        assert_eq!(row["empty"]["password"], "");
        let bind = row["bind_annotations"].as_str().unwrap();
        assert!(bind.contains("password=**redacted**, saveMode"), "{bind}");
        assert!(!bind.contains("postgres@prometheux"));
        assert_eq!(redact(&mut row), 0, "idempotent");
    }

    #[test]
    fn restore_puts_stored_values_back() {
        let stored = json!({"password": "hunter2", "bind_annotations": BIND});
        let mut incoming = stored.clone();
        redact(&mut incoming);
        incoming["bind_annotations"] =
            json!(incoming["bind_annotations"].as_str().unwrap().replace("port=5432", "port=6543"));
        restore(&mut incoming, Some(&stored));
        assert_eq!(incoming["password"], "hunter2");
        assert_eq!(incoming["bind_annotations"], BIND.replace("port=5432", "port=6543"));
        let mut orphan = json!({"password": REDACTED});
        restore(&mut orphan, None);
        assert_eq!(orphan["password"], Value::Null);
    }
}
