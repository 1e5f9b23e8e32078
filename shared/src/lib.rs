//! The Workspaces API's model crate: every rule lives here, so each Lambda binary is a thin shell.
//!
//! Request path: `http` (the edge: Lambda types, auth, envelope, access log) → `api::*` (typed
//! handlers, rules) → `store::Store` (DynamoDB or SQLite) and `bundles::BundleStore` (S3 or a
//! folder). `app` is the one place adapters are wired together, per function's `app::Needs`.
//!
//! Dependencies point one way: `http` → `api` → `app` → `store`, `bundles` → `model`,
//! `tables` → `error`; `config` only borrows `bundles`' key rules. Nothing below `http` knows
//! Lambda or HTTP framing, and storage failures become statuses in `http` alone.

pub mod api;
pub mod app;
pub mod auth;
pub mod bundles;
pub mod compaction;
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

pub use app::{App, Needs};
pub use error::ApiError;
