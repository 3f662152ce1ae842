//! `[seeder]`: the sidecar as a BitTorrent peer that seeds the torrents it generates.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::values::Seconds;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeederConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// The `host:port` peers should dial (the tracker hands it out, magnet links carry it as
    /// `x.pe`); default: `listen`.
    pub public_addr: Option<String>,
    /// Peer connections at once; more wait (and peers that take nothing make room).
    pub max_peers: usize,
    /// Peer connections from one IP address at once; more are closed at once.
    pub max_peers_per_address: usize,
    /// Peers unchoked at once; the others wait their turn (rotated every few seconds).
    pub max_unchoked: usize,
    /// Bytes of piece data kept in memory (LRU).
    pub piece_cache_bytes: u64,
    /// Upload limit in bytes per second for all peers together; 0: none.
    pub upload_rate: u64,
    /// Which objects are seeded: `public` (an anonymous caller may read them: knowing an
    /// infohash is weaker than a signature) or `all` that this sidecar made torrents for.
    pub objects: SeedObjects,
    /// Range requests to the web seed of one seeded object at once; more get 503 SlowDown
    /// with Retry-After, steering late joiners to the swarm. 0: no limit.
    pub webseed_concurrency: usize,
    /// How long one web-seed request holds its slot (and the pieces it reserves) at most; a
    /// client that reads slowly, or not at all, then holds nothing.
    pub webseed_slot_ttl: Seconds,
    /// The `Retry-After` of a deferred web-seed request: how long the client leaves the web
    /// seed alone (libtorrent honors it) before it asks again for pieces still fresh.
    pub webseed_retry_after: Seconds,
    /// With `objects = "public"`: how often each seeded object is asked again, anonymously,
    /// whether it is still public; one that is not is no longer seeded.
    pub public_recheck: Seconds,
    /// Also announce the seed to the torrent's other (`http://`) trackers, from
    /// `[torrent] announce`; off by default: the built-in tracker lists it anyway.
    pub announce_external: bool,
    /// Which handshakes peers may use: `plaintext` (BitTorrent's own only), `both` (also
    /// MSE/PE: RC4 when the peer offers it, else a plaintext payload), `required` (MSE with
    /// an RC4 payload only).
    pub encryption: Encryption,
}

impl Default for SeederConfig {
    fn default() -> Self {
        SeederConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
            public_addr: None,
            max_peers: 200,
            max_peers_per_address: 8,
            max_unchoked: 16,
            piece_cache_bytes: 64 * 1024 * 1024,
            upload_rate: 0,
            objects: SeedObjects::Public,
            webseed_concurrency: 2,
            webseed_slot_ttl: Seconds(30),
            webseed_retry_after: Seconds(10),
            public_recheck: Seconds(300),
            announce_external: false,
            encryption: Encryption::Both,
        }
    }
}

impl SeederConfig {
    pub fn public_addr(&self) -> String {
        self.public_addr
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SeedObjects {
    #[default]
    Public,
    All,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    Plaintext,
    #[default]
    Both,
    Required,
}
