//! The Workspaces API's model crate: every rule lives here, so each Lambda binary is a thin shell.
//!
//! Request path: `http` (the edge: Lambda types, auth, envelope, access log) → `api::*` (typed
//! handlers, rules) → the ports `store::Store`, `bundles::BundleStore`, `queue::JobQueue`. The
//! adapters are crates of their own (`adapters/`: SQLite, DynamoDB, S3, SQS; the bundle folder is
//! here), so this crate links no AWS SDK and no SQLite. `app` is the one place adapters are wired
//! together: a function's `main` names its `app::Needs` and the `app::Links` it holds.
//!
//! Dependencies point one way: `http` → `api` → `app` → `store`, `bundles` → `model`,
//! `tables` → `error`; `config` only borrows `bundles`' key rules. Nothing below `http` knows
//! Lambda or HTTP framing, and storage failures become statuses in `http` alone.

pub mod api;
pub mod app;
pub mod auth;
pub mod bundles;
pub mod config;
pub mod error;
pub mod http;
pub mod iam;
pub mod jobs;
pub mod model;
pub mod naming;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod queue;
pub mod routes;
pub mod secrets;
pub mod store;
pub mod tables;
pub mod telemetry;

pub use app::{App, Links, Needs};
pub use error::ApiError;
