//! s3torrent: a pingora reverse-proxy sidecar that answers S3's `GET /bucket/key?torrent`
//! for any S3 backend, and passes all other S3 traffic through untouched.
//!
//! # Layout
//!
//! The data path, top to bottom:
//!
//! - [`proxy`] — the pingora `ProxyHttp`: routes each request, answers `?torrent` itself,
//!   streams everything else to the backend.
//! - [`route`] — request → [`route::Route`]: torrent request (bucket, key, version), refusal,
//!   or pass-through; path-style and virtual-hosted-style.
//! - [`sigv4`] — verifies callers' SigV4 signatures (header and presigned forms).
//! - [`torrent_service`] — one `?torrent` request: authorize → cache → generate → respond.
//! - [`authorize`] — the READ check: the backend decides, asked as the caller.
//! - [`response`] — replies the proxy writes itself; torrent response headers, magnet link.
//! - [`upstream`] — the sidecar's own requests to the backend (probe as the caller, fetch as
//!   the sidecar), over pingora's connector.
//! - [`generate`] — fetch the object and stream it through piece hashing into a torrent.
//! - [`torrent`] — bencode, piece hashing, piece length, metainfo encoding.
//! - [`tracker`] — the built-in BitTorrent tracker (`/announce`, `/scrape`).
//! - [`probe_cache`] — optional short reuse of a caller's authorization probe
//!   (`[cache] revalidate_after`).
//! - [`cache`] — LRU of generated torrents, bounded in bytes, keyed by bucket/key/version/ETag.
//!
//! Around it:
//!
//! - [`config`] — TOML configuration, validated before any port is bound.
//! - [`server`] — assembles the pingora server: proxy, admin listener, demo backend.
//! - [`shutdown`] — SIGTERM: stop accepting, not-ready, drain in-flight requests, exit 0.
//! - [`admin`] — the admin listener (`/healthz`, `/readyz`, `/metrics`).
//! - [`metrics`] — Prometheus metrics, one struct per component, one registry.
//! - [`logging`] — `tracing` setup (text or JSON), one access line per request.
//! - [`signing`] — SigV4 signing of outgoing requests (`aws-sigv4`).
//! - [`s3_error`], [`request_id`], [`uri_encoding`] — S3 XML errors, request ids, S3's
//!   percent-encoding rules.
//! - [`fuzzing`] — fuzz target bodies (cargo-fuzz in `fuzz/`, smoke runs in `cargo test`).
//! - `demo` — the embedded filesystem-backed S3 backend (cargo feature `demo`).

pub mod admin;
pub mod authorize;
pub mod cache;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod fuzzing;
pub mod generate;
pub mod logging;
pub mod metrics;
pub mod probe_cache;
pub mod proxy;
pub mod request_id;
pub mod response;
pub mod route;
pub mod s3_error;
pub mod server;
pub mod shutdown;
pub mod signing;
pub mod sigv4;
pub mod torrent;
pub mod torrent_service;
pub mod tracker;
pub mod upstream;
pub mod uri_encoding;
