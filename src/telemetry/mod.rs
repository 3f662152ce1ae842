//! What the sidecar reports about itself, used by every room: metrics and logs.
//!
//! - [`metrics`] — Prometheus metrics, one struct per component, one registry.
//! - [`logging`] — `tracing` setup (text or JSON), one access line per request.

pub mod logging;
pub(crate) mod metrics;
