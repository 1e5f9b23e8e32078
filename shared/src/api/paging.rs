//! Paging of list answers: complete by default, paged when the caller asks (`limit`) or when
//! the answer would pass the response size limit; `next_token` (beside the envelope) is an
//! opaque cursor, the sort key of the last item sent.

use base64::Engine;

use crate::api::Call;
use crate::error::ApiError;

/// A user-given `limit` may not exceed this; without one the list is complete up to the size limit.
pub const MAX_LIST_LIMIT: usize = 1_000;

/// `limit` from the query: `None` when absent, else 1..=[`MAX_LIST_LIMIT`].
pub fn limit(call: &Call) -> Result<Option<usize>, ApiError> {
    match call.query("limit") {
        None => Ok(None),
        Some(raw) => {
            raw.parse::<usize>().ok().filter(|n| (1..=MAX_LIST_LIMIT).contains(n)).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!("limit: must be a whole number from 1 to {MAX_LIST_LIMIT}"))
            })
        }
    }
}

pub fn encode_token(sort_key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sort_key)
}

/// The sort key inside a token this API issued; `well_formed` checks its shape.
pub fn decode_token(token: &str, well_formed: impl Fn(&str) -> bool) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("next_token: not a token this API issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    if well_formed(&key) {
        Ok(key)
    } else {
        Err(bad())
    }
}
