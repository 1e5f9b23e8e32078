//! Reading request bodies field by field, so every 400 names the field that is wrong.

use serde_json::{Map, Value};

use crate::error::ApiError;

pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("body: a JSON object is required"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("body: must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("body: not valid JSON ({e})"))),
    }
}

/// A field that may be absent or null; otherwise it must be a string.
pub fn opt_string(map: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{field}: must be a string"))),
    }
}

pub fn required_string(map: &Map<String, Value>, field: &str, max_chars: usize) -> Result<String, ApiError> {
    let value = opt_string(map, field)?.map(|s| s.trim().to_owned()).unwrap_or_default();
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("{field}: required, a non-empty string")));
    }
    if value.chars().count() > max_chars {
        return Err(ApiError::bad_request(format!("{field}: longer than {max_chars} characters")));
    }
    Ok(value)
}

pub fn opt_object(map: &Map<String, Value>, field: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{field}: must be a JSON object"))),
    }
}
