//! What went wrong, as an exit code a script can tell apart (docs/cli.md lists them).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A local file could not be read or written.
    Local,
    /// Bad arguments, or no URL / token configured.
    Usage,
    /// 401 / 403: the token is missing, invalid, expired or not for this path.
    Auth,
    /// 404.
    NotFound,
    /// 409 / 412 (and a cancelled job).
    Conflict,
    /// 400 / 413 / 422 and any other 4xx: the request or the bundle is not acceptable.
    Invalid,
    /// 5xx, 408, 429, connection errors, and a transfer that did not arrive whole.
    Server,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Local => 1,
            Kind::Usage => 2,
            Kind::Auth => 3,
            Kind::NotFound => 4,
            Kind::Conflict => 5,
            Kind::Invalid => 6,
            Kind::Server => 7,
        }
    }

    pub fn from_status(status: u16) -> Kind {
        match status {
            401 | 403 => Kind::Auth,
            404 => Kind::NotFound,
            409 | 412 => Kind::Conflict,
            408 | 429 => Kind::Server,
            400..=499 => Kind::Invalid,
            _ => Kind::Server,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: Kind,
    /// The HTTP status the server answered, when it answered.
    pub status: Option<u16>,
    /// The server's `message` as it is, or what failed locally.
    pub message: String,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, status: None, message: message.into() }
    }
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Self { kind: Kind::from_status(status), status: Some(status), message: message.into() }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn local(message: impl Into<String>) -> Self {
        Self::new(Kind::Local, message)
    }
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(Kind::Server, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (HTTP {status})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_exit_codes() {
        let code = |s| Kind::from_status(s).code();
        assert_eq!([code(401), code(403), code(404), code(409), code(412)], [3, 3, 4, 5, 5]);
        assert_eq!([code(400), code(413), code(422), code(405)], [6, 6, 6, 6]);
        assert_eq!([code(500), code(503), code(429)], [7, 7, 7]);
    }
}
