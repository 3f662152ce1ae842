//! `[tracker]`: the built-in BitTorrent tracker.

use serde::{Deserialize, Serialize};

use super::values::{HttpUrl, Seconds};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    pub enabled: bool,
    /// The announce URL peers use, e.g. `http://s3.example.com/announce`; the torrent's
    /// first tier. Required when enabled.
    pub public_url: Option<HttpUrl>,
    /// How long peers are told to wait between announces.
    pub interval: Seconds,
    /// How long after its last announce a peer is forgotten.
    pub peer_ttl: Seconds,
    pub max_torrents: usize,
    pub max_peers_per_torrent: usize,
    pub max_numwant: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            enabled: false,
            public_url: None,
            interval: Seconds(900),
            peer_ttl: Seconds(2 * 900 + 60),
            max_torrents: 100_000,
            max_peers_per_torrent: 1000,
            max_numwant: 200,
        }
    }
}
