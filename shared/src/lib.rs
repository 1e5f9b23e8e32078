//! The Workspaces API's model crate: every rule lives here, so each Lambda binary is a thin shell.
//!
//! Request path: `http::serve` (Lambda types, auth, envelope) → `api::*` (typed handlers, rules)
//! → `store::Store` (DynamoDB or SQLite).

pub mod api;
pub mod app;
pub mod auth;
pub mod bundles;
pub mod config;
pub mod error;
pub mod http;
pub mod iam;
pub mod model;
pub mod naming;
pub mod routes;
pub mod secrets;
pub mod store;
pub mod tables;
pub mod telemetry;

pub use app::App;
pub use error::ApiError;
