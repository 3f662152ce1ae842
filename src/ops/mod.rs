//! Running the sidecar: assembling the server, its admin listener and shutdown.
//!
//! - [`server`] — assembles the pingora server from a validated configuration.
//! - [`shutdown`] — SIGTERM: stop accepting, not-ready, drain in-flight requests.
//! - [`admin`] — the admin listener (`/healthz`, `/readyz`, `/metrics`).

pub(crate) mod admin;
pub mod server;
pub(crate) mod shutdown;
