//! Peers per infohash, bounded in both dimensions and expired lazily.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::announce::{Announce, Event};

struct Peer {
    ip: IpAddr,
    port: u16,
    seeder: bool,
    last_seen: Instant,
}

#[derive(Default)]
struct Swarm {
    peers: HashMap<[u8; 20], Peer>,
    completed: u64,
}

impl Swarm {
    fn expire(&mut self, now: Instant, ttl: Duration) {
        self.peers
            .retain(|_, p| now.duration_since(p.last_seen) < ttl);
    }

    fn counts(&self) -> (usize, usize) {
        let seeders = self.peers.values().filter(|p| p.seeder).count();
        (seeders, self.peers.len() - seeders)
    }
}

/// What an announce returns: counts and up to `numwant` other peers.
pub struct View {
    pub seeders: usize,
    pub leechers: usize,
    pub compact_v4: Vec<u8>,
    pub compact_v6: Vec<u8>,
    pub peers: Vec<([u8; 20], IpAddr, u16)>,
}

pub struct Stats {
    pub seeders: usize,
    pub leechers: usize,
    pub completed: u64,
}

pub struct Swarms {
    max_peers: usize,
    torrents: Mutex<LruCache<[u8; 20], Swarm>>,
}

impl Swarms {
    pub fn new(max_torrents: usize, max_peers: usize) -> Swarms {
        Swarms {
            max_peers,
            torrents: Mutex::new(LruCache::new(
                NonZeroUsize::new(max_torrents).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<[u8; 20], Swarm>> {
        self.torrents.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, info_hash: [u8; 20]) {
        let mut torrents = self.lock();
        if torrents.get(&info_hash).is_none() {
            torrents.put(info_hash, Swarm::default());
        }
    }

    /// `None` when the infohash was never registered (or aged out).
    pub fn announce(
        &self,
        a: &Announce,
        ip: IpAddr,
        numwant: usize,
        now: Instant,
        ttl: Duration,
    ) -> Option<View> {
        let mut torrents = self.lock();
        let swarm = torrents.get_mut(&a.info_hash)?;
        swarm.expire(now, ttl);
        let seeder = a.left == 0;
        match a.event {
            Event::Stopped => {
                swarm.peers.remove(&a.peer_id);
            }
            event => {
                let was_seeder = swarm.peers.get(&a.peer_id).is_some_and(|p| p.seeder);
                if event == Event::Completed && !was_seeder {
                    swarm.completed += 1;
                }
                let known = swarm.peers.contains_key(&a.peer_id);
                // A full swarm still answers; it just does not grow.
                if known || swarm.peers.len() < self.max_peers {
                    swarm.peers.insert(
                        a.peer_id,
                        Peer {
                            ip,
                            port: a.port,
                            seeder,
                            last_seen: now,
                        },
                    );
                }
            }
        }
        let (seeders, leechers) = swarm.counts();
        let mut view = View {
            seeders,
            leechers,
            compact_v4: Vec::new(),
            compact_v6: Vec::new(),
            peers: Vec::new(),
        };
        let others = swarm
            .peers
            .iter()
            .filter(|(id, p)| **id != a.peer_id && !(seeder && p.seeder))
            .take(numwant);
        for (id, p) in others {
            match p.ip {
                IpAddr::V4(v4) => {
                    view.compact_v4.extend_from_slice(&v4.octets());
                    view.compact_v4.extend_from_slice(&p.port.to_be_bytes());
                }
                IpAddr::V6(v6) => {
                    view.compact_v6.extend_from_slice(&v6.octets());
                    view.compact_v6.extend_from_slice(&p.port.to_be_bytes());
                }
            }
            view.peers.push((*id, p.ip, p.port));
        }
        Some(view)
    }

    pub fn stats(&self, info_hash: &[u8; 20], now: Instant, ttl: Duration) -> Option<Stats> {
        let mut torrents = self.lock();
        let swarm = torrents.peek_mut(info_hash)?;
        swarm.expire(now, ttl);
        let (seeders, leechers) = swarm.counts();
        Some(Stats {
            seeders,
            leechers,
            completed: swarm.completed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(peer: u8, left: u64, event: Event) -> Announce {
        Announce {
            info_hash: [7; 20],
            peer_id: [peer; 20],
            port: 6000 + peer as u16,
            left,
            event,
            numwant: None,
            compact: true,
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn unknown_torrents_are_not_tracked() {
        let s = Swarms::new(10, 10);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(s
            .announce(&announce(1, 5, Event::Started), ip, 50, Instant::now(), TTL)
            .is_none());
    }

    #[test]
    fn peers_see_each_other_compactly_v4_and_v6() {
        let s = Swarms::new(10, 10);
        s.register([7; 20]);
        let now = Instant::now();
        let v4: IpAddr = "127.0.0.2".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        s.announce(&announce(1, 0, Event::Started), v4, 50, now, TTL)
            .unwrap();
        let view = s
            .announce(&announce(2, 10, Event::Started), v6, 50, now, TTL)
            .unwrap();
        assert_eq!((view.seeders, view.leechers), (1, 1));
        assert_eq!(view.compact_v4, vec![127, 0, 0, 2, 0x17, 0x71]); // port 6001
        assert!(
            view.compact_v6.is_empty(),
            "a peer does not get itself back"
        );
        let view = s
            .announce(&announce(3, 10, Event::None), v4, 50, now, TTL)
            .unwrap();
        assert_eq!(view.compact_v4.len(), 6);
        assert_eq!(view.compact_v6.len(), 18);
    }

    #[test]
    fn stopped_completed_expiry_and_caps() {
        let s = Swarms::new(10, 2);
        s.register([7; 20]);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        s.announce(&announce(1, 10, Event::Started), ip, 50, t0, TTL)
            .unwrap();
        s.announce(&announce(1, 0, Event::Completed), ip, 50, t0, TTL)
            .unwrap();
        let st = s.stats(&[7; 20], t0, TTL).unwrap();
        assert_eq!((st.seeders, st.leechers, st.completed), (1, 0, 1));
        s.announce(&announce(2, 10, Event::Started), ip, 50, t0, TTL)
            .unwrap();
        let full = s
            .announce(&announce(3, 10, Event::Started), ip, 50, t0, TTL)
            .unwrap();
        assert_eq!(full.seeders + full.leechers, 2, "capped at max_peers");
        s.announce(&announce(2, 10, Event::Stopped), ip, 50, t0, TTL)
            .unwrap();
        assert_eq!(s.stats(&[7; 20], t0, TTL).unwrap().leechers, 0);
        let later = t0 + TTL + Duration::from_secs(1);
        assert_eq!(s.stats(&[7; 20], later, TTL).unwrap().seeders, 0, "expired");
    }

    #[test]
    fn torrent_count_is_bounded() {
        let s = Swarms::new(2, 10);
        for i in 0..5u8 {
            s.register([i; 20]);
        }
        let now = Instant::now();
        assert!(s.stats(&[0; 20], now, TTL).is_none(), "oldest aged out");
        assert!(s.stats(&[4; 20], now, TTL).is_some());
    }
}
