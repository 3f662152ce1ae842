//! s3torrent: a pingora reverse-proxy sidecar that answers S3's `GET /bucket/key?torrent`
//! for any S3 backend, and passes all other S3 traffic through untouched.
//!
//! # Layout
//!
//! The data path, top to bottom (request → route → authorize → cache → fetch → hash →
//! encode → respond):
//!
//! - [`proxy`] — the pingora `ProxyHttp`: routes each request, answers `?torrent` (and the
//!   tracker) itself, streams everything else to the backend.
//! - [`s3`] — S3 concerns, torrent-agnostic: `route` (request → torrent request, refusal or
//!   pass-through), `object`, `uri` (S3's percent-encoding), `sigv4` (`verify` callers,
//!   `sign` the sidecar's requests), `error` (S3 XML errors, one enum of codes),
//!   `request_id`, `forwarded` (caller headers that travel upstream), `upstream` (the
//!   sidecar's own requests to the backend over pingora's connector) and `xml`.
//! - `service` — the `?torrent` service: `authorize` (READ, asked of the backend as the
//!   caller) → the catalog → tracker and seeder → `response`.
//! - `catalog` — where a torrent comes from: `cache` (LRU by bytes, keyed by the torrent's
//!   identity) → single-flight (bounded) → the store and its lease → `generate` (fetch,
//!   piece-hash off the runtime) → `assemble`; `warm` and hash on upload come in here too.
//! - [`torrent`] — the format: `bencode`, `Layout` (the one owner of piece geometry),
//!   `Info` (one file or many), `Metainfo`, `PieceHasher`, `MultiHasher`, `PieceLength`, and
//!   the generated `Torrent` as served.
//! - [`tracker`] — the built-in BitTorrent tracker.
//! - `webseed` — the public web seed on the sidecar's own route
//!   (`/_s3torrent/webseed/{bucket}/{key}`): the only requests web-seed shaping touches.
//! - [`seeder`] — the sidecar as a BitTorrent seed: peer wire, `ut_metadata`, super-seeding,
//!   piece data from the backend; among replicas, peers relayed to a torrent's owner.
//! - `store` — the shared torrent store in a bucket of the backend (`key`, `entry`, `lease`,
//!   `parts`, `records`, `seal`): what one replica generated, every replica serves,
//!   authenticated.
//! - `cluster` — several replicas, one swarm: membership in the store, one owner per torrent
//!   (rendezvous hashing), authenticated sibling frames.
//! - `swarm` — the tracker, the seeder and the siblings as one: what the service, the proxy
//!   and the sibling port tell the swarm goes through it.
//! - `upload` — hash on upload: `PutObject` and multipart parts hashed as they pass
//!   (`hasher`, `aws_chunked`, `parts`).
//! - [`warm`] — `s3torrent warm`: fill the store for a prefix ahead of the first request.
//!
//! Around it:
//!
//! - `common` — building blocks with no knowledge of S3 or BitTorrent: single-flight, a
//!   byte-bounded LRU, a blocking feed (work on the blocking pool, bounded), an in-flight
//!   counter.
//! - [`config`] — TOML configuration, one file per section, validated before any port is
//!   bound; it imports no other room (S3's own rules it validates against live there).
//! - [`ops`] — running it: `server` (assembles the pingora server: proxy, admin listener,
//!   demo backend), `shutdown` (SIGTERM: stop accepting, not-ready, drain), `admin`
//!   (`/healthz`, `/readyz`, `/metrics`), `siblings` (the sibling port).
//! - [`telemetry`] — what every room reports: `metrics` (Prometheus, one struct per
//!   component, one registry) and `logging` (`tracing`, text or JSON, one access line per
//!   request).
//! - `demo` — the embedded filesystem-backed S3 backend (cargo feature `demo`).
//! - `fuzzing` — fuzz target bodies (built for `cargo fuzz` and for `cargo test` only).

pub(crate) mod catalog;
pub(crate) mod cluster;
pub(crate) mod common;
pub mod config;
#[cfg(feature = "demo")]
pub(crate) mod demo;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod ops;
pub(crate) mod proxy;
pub mod s3;
pub mod seeder;
pub(crate) mod service;
pub(crate) mod store;
pub(crate) mod swarm;
pub mod telemetry;
pub mod torrent;
pub(crate) mod tracker;
pub(crate) mod upload;
pub mod warm;
pub(crate) mod webseed;
