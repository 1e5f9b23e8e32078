//! JSON logs for CloudWatch, one object per line, built on the `tracing` stack lambda_http ships
//! (its re-exported `tracing_subscriber`, so no second copy with other features).
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (Lambda's logging controls), else `RUST_LOG`,
//! else `info`. Lines are JSON whatever `AWS_LAMBDA_LOG_FORMAT` says: our own fields matter more
//! than the platform's text format.

use lambda_http::tracing::subscriber::fmt::MakeWriter;
use lambda_http::tracing::subscriber::{fmt, EnvFilter};

/// Installs [`subscriber`] on stdout for the whole process; a second call changes nothing.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_default();
    let _ = tracing::subscriber::set_global_default(subscriber(&level, std::io::stdout));
}

/// The subscriber `init` installs, writing to `writer` (tests capture lines with it). `level` is
/// an `EnvFilter` directive such as `info` or `shared=debug`; empty or invalid means `info`.
pub fn subscriber<W>(level: &str, writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(level.to_ascii_lowercase())
        .ok()
        .filter(|_| !level.trim().is_empty())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Lambda adds its own timestamps; fields go at the top level, so a query can name them.
    fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}
