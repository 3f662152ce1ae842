//! What every test stands on, by concern:
//!
//! - [`processes`] — children stopped by their own PIDs, ephemeral ports.
//! - [`backends`] — SeaweedFS (started once per test binary, a sidecar in front of it) and
//!   fake backends; [`ceph`] — Ceph RGW and [`garage`] — Garage beside it
//!   ([`on_every_backend!`]).
//! - [`sidecar`] — sidecars under test, configured by a typed builder.
//! - [`replicas`] — several sidecars behind HAProxy, as behind a Kubernetes Service.
//! - [`netns`] — network namespaces for clients that refuse loopback peers.
//! - [`http`] — a minimal HTTP/1.1 client and SigV4 signing, for requests exactly as meant.
//! - [`clients`] — the real clients: boto3, the aws CLI, libtorrent, aria2c, Transmission,
//!   qBittorrent.

pub mod backends;
pub mod ceph;
pub mod clients;
pub mod garage;
pub mod http;
pub mod netns;
pub mod processes;
pub mod replicas;
pub mod sidecar;

pub use backends::*;
#[allow(unused_imports)]
pub use ceph::*;
pub use clients::*;
#[allow(unused_imports)]
pub use garage::*;
pub use http::*;
pub use processes::*;
#[allow(unused_imports)]
pub use replicas::*;
pub use sidecar::*;

// Secrets of 16 characters or more: Garage refuses to import shorter ones.
pub const ADMIN: (&str, &str) = ("ADMINKEY", "ADMINSECRET-0123456789");
pub const READER: (&str, &str) = ("READERKEY", "READERSECRET-0123456789");
pub const NOREAD: (&str, &str) = ("NOREADKEY", "NOREADSECRET-0123456789");
pub const DOMAIN: &str = "s3.test";

/// Deterministic pseudo-random bytes: different for every seed, incompressible.
pub fn test_data(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}
