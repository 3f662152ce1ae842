//! Running the sidecar: assembling the server, its admin listener and shutdown.
//!
//! - [`server`] — assembles the pingora server from a validated configuration.
//! - [`shutdown`] — SIGTERM: stop accepting, not-ready, drain in-flight requests.
//! - [`admin`] — the admin listener (`/healthz`, `/readyz`, `/metrics`).
//! - [`connections`] — the S3 listener's gate: connections bounded, silent ones cut short.
//! - [`siblings`] — the sibling port (`[cluster]`): what replicas hand each other.

pub(crate) mod admin;
pub(crate) mod connections;
pub mod server;
pub(crate) mod shutdown;
pub(crate) mod siblings;
