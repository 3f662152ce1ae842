//! `[tracker]`: the built-in BitTorrent tracker.

use serde::{Deserialize, Serialize};

use super::values::{HttpUrl, Seconds};

/// Where the tracker answers: under `/_s3torrent/`, which no S3 request can name path-style
/// (bucket names begin with a letter or digit). `tracker.public_url` must name the first.
pub const ANNOUNCE_PATH: &str = "/_s3torrent/announce";
pub const SCRAPE_PATH: &str = "/_s3torrent/scrape";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    pub enabled: bool,
    /// The announce URL peers use, e.g. `http://s3.example.com/_s3torrent/announce` (that
    /// path, which no S3 bucket can take); the torrent's first tier. Required when enabled.
    pub public_url: Option<HttpUrl>,
    /// How long peers are told to wait between announces.
    pub interval: Seconds,
    /// How long after its last announce a peer is forgotten.
    pub peer_ttl: Seconds,
    /// Bounds on what the tracker holds. With the defaults the worst case is about 10,000
    /// torrents × ~200 bytes + 100,000 peers × ~150 bytes ≈ 17 MiB.
    pub max_torrents: usize,
    /// Peers in all torrents together.
    pub max_peers: usize,
    pub max_peers_per_torrent: usize,
    /// Peers from one IP address in one torrent (a flood from one host stays small).
    pub max_peers_per_address: usize,
    /// Peers from one network (IPv4 /24, IPv6 /64) in one torrent.
    pub max_peers_per_prefix: usize,
    pub max_numwant: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            enabled: false,
            public_url: None,
            interval: Seconds(900),
            peer_ttl: Seconds(2 * 900 + 60),
            max_torrents: 10_000,
            max_peers: 100_000,
            max_peers_per_torrent: 1000,
            max_peers_per_address: 16,
            max_peers_per_prefix: 64,
            max_numwant: 200,
        }
    }
}
