//! The built-in BitTorrent tracker (`[tracker] enabled`): BEP 3 announce with BEP 23 compact
//! peers and BEP 7 `peers6`, and scrape, on the main listener at `/_s3torrent/announce` and
//! `/_s3torrent/scrape`: paths no S3 request can take, so the tracker never answers for S3.
//!
//! It is not an open tracker: only infohashes this sidecar generated are tracked (a torrent
//! generation registers its infohash). Memory is bounded: at most `max_torrents` infohashes
//! (least recently announced go first), `max_peers` peers in all, `max_peers_per_torrent` in
//! one torrent, `max_peers_per_address` from one address and `max_peers_per_prefix` from one
//! network (IPv4 /24, IPv6 /64) in one torrent; peers that have not announced for `peer_ttl`
//! are dropped, and in a full swarm newcomers replace peers that never came back. Behind a
//! load balancer listed in `server.trusted_proxies` a peer is the address it reports.

mod announce;
mod swarm;

use announce::{parse_announce, parse_scrape};
use swarm::{Limits, Swarms};

use std::net::IpAddr;
use std::time::Instant;

use crate::config::TrackerConfig;
use crate::torrent::bencode::Value;

pub struct Tracker {
    config: TrackerConfig,
    swarms: Swarms,
    /// Reports how many peers are held, when a metrics gauge is attached.
    peers_gauge: Option<prometheus::IntGauge>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Tracker {
        Tracker {
            swarms: Swarms::new(Limits {
                torrents: config.max_torrents,
                peers: config.max_peers,
                peers_per_torrent: config.max_peers_per_torrent,
                peers_per_address: config.max_peers_per_address,
                peers_per_prefix: config.max_peers_per_prefix,
                credit_gap: std::time::Duration::from_secs((config.interval.secs() / 2).max(1)),
            }),
            peers_gauge: None,
            config,
        }
    }

    pub fn reporting_to(mut self, peers: prometheus::IntGauge) -> Tracker {
        self.peers_gauge = Some(peers);
        self
    }

    /// The sidecar's seeder seeds this (registered) torrent at `addr`.
    pub fn add_seed(&self, info_hash: [u8; 20], addr: std::net::SocketAddr) {
        self.swarms.add_seed(info_hash, addr.ip(), addr.port());
    }

    /// Called for every torrent the sidecar serves: from then on peers may announce it.
    pub fn register(&self, info_hash: [u8; 20]) {
        self.swarms.register(info_hash);
    }

    /// `GET /announce?…` → a bencoded dictionary (a `failure reason` for bad requests).
    pub fn announce(&self, query: &str, peer_ip: IpAddr) -> Vec<u8> {
        let a = match parse_announce(query) {
            Ok(a) => a,
            Err(reason) => return failure(reason),
        };
        let now = Instant::now();
        let ttl = self.config.peer_ttl.get();
        let numwant = a.numwant.unwrap_or(50).min(self.config.max_numwant);
        let view = self.swarms.announce(&a, peer_ip, numwant, now, ttl);
        if let Some(gauge) = &self.peers_gauge {
            gauge.set(self.swarms.peer_count() as i64);
        }
        let Some(view) = view else {
            return failure(
                "unregistered torrent: this tracker only tracks torrents its sidecar generated",
            );
        };
        let mut d = std::collections::BTreeMap::new();
        d.insert(b"complete".to_vec(), Value::Int(view.seeders as i64));
        d.insert(b"incomplete".to_vec(), Value::Int(view.leechers as i64));
        d.insert(
            b"interval".to_vec(),
            Value::Int(self.config.interval.secs() as i64),
        );
        d.insert(
            b"min interval".to_vec(),
            Value::Int((self.config.interval.secs() / 2).max(1) as i64),
        );
        if a.compact {
            d.insert(b"peers".to_vec(), Value::Bytes(view.compact_v4));
            d.insert(b"peers6".to_vec(), Value::Bytes(view.compact_v6));
        } else {
            let list = view
                .peers
                .into_iter()
                .map(|(id, ip, port)| {
                    let mut p = std::collections::BTreeMap::new();
                    p.insert(b"peer id".to_vec(), Value::Bytes(id.to_vec()));
                    p.insert(b"ip".to_vec(), Value::bytes(ip.to_string()));
                    p.insert(b"port".to_vec(), Value::Int(port as i64));
                    Value::Dict(p)
                })
                .collect();
            d.insert(b"peers".to_vec(), Value::List(list));
        }
        Value::Dict(d).encode()
    }

    /// `GET /scrape?info_hash=…` → counts for the asked (or, with none asked, no) torrents.
    pub fn scrape(&self, query: &str) -> Vec<u8> {
        let hashes = match parse_scrape(query) {
            Ok(h) => h,
            Err(reason) => return failure(reason),
        };
        let now = Instant::now();
        let ttl = self.config.peer_ttl.get();
        let mut files = std::collections::BTreeMap::new();
        for h in hashes {
            if let Some(s) = self.swarms.stats(&h, now, ttl) {
                let mut f = std::collections::BTreeMap::new();
                f.insert(b"complete".to_vec(), Value::Int(s.seeders as i64));
                f.insert(b"downloaded".to_vec(), Value::Int(s.completed as i64));
                f.insert(b"incomplete".to_vec(), Value::Int(s.leechers as i64));
                files.insert(h.to_vec(), Value::Dict(f));
            }
        }
        let mut d = std::collections::BTreeMap::new();
        d.insert(b"files".to_vec(), Value::Dict(files));
        Value::Dict(d).encode()
    }
}

/// The one torrent a request is about (an announce, or a scrape of one infohash): what
/// decides which replica answers it.
pub fn swarm_of(endpoint: TrackerEndpoint, query: &str) -> Option<[u8; 20]> {
    match endpoint {
        TrackerEndpoint::Announce => parse_announce(query).ok().map(|a| a.info_hash),
        TrackerEndpoint::Scrape => match parse_scrape(query).ok()?[..] {
            [one] => Some(one),
            _ => None,
        },
    }
}

fn failure(reason: &str) -> Vec<u8> {
    let mut d = std::collections::BTreeMap::new();
    d.insert(b"failure reason".to_vec(), Value::bytes(reason));
    Value::Dict(d).encode()
}

pub use crate::config::{ANNOUNCE_PATH, SCRAPE_PATH};

/// Which tracker endpoint a request names, if any: only a `GET` of one of the two paths, and
/// never on a virtual-hosted `Host`, where `/_s3torrent/announce` is an ordinary key.
pub fn endpoint(
    method: &http::Method,
    path: &str,
    virtual_hosted: bool,
) -> Option<TrackerEndpoint> {
    if method != http::Method::GET || virtual_hosted {
        return None;
    }
    match path {
        ANNOUNCE_PATH => Some(TrackerEndpoint::Announce),
        SCRAPE_PATH => Some(TrackerEndpoint::Scrape),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerEndpoint {
    Announce,
    Scrape,
}
