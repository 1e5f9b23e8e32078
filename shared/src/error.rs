//! One place that turns every failure into the API's envelope and status code.

use serde_json::{json, Value};

/// A failure the caller is told about. The message is safe to show: it never carries internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, message)
    }
    /// A real server fault. The detail goes to the log, the caller gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(500, "Internal server error")
    }
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "backend unavailable");
        Self::new(503, "Service temporarily unavailable, please retry")
    }

    /// `"conflict"` for 409 (as the platform answers), `"error"` for everything else.
    pub fn status_word(&self) -> &'static str {
        if self.status == 409 {
            "conflict"
        } else {
            "error"
        }
    }

    pub fn envelope(&self) -> Value {
        json!({"data": null, "message": self.message, "status": self.status_word()})
    }
}

/// The success envelope, keys in the platform's order.
pub fn success(data: Value, message: impl Into<String>) -> Value {
    json!({"data": data, "message": message.into(), "status": "success"})
}

pub type ApiResult<T> = Result<T, ApiError>;
