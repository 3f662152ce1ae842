//! Peers per infohash, bounded three ways — torrents, peers in all, peers per address in one
//! torrent — and expired lazily. A peer id belongs to the address that registered it: only
//! that address may update it or stop it.

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
    /// The sidecar's own seeder, when it seeds this torrent: always listed, first.
    seed: Option<(IpAddr, u16)>,
}

impl Swarm {
    /// Drops silent peers; returns how many.
    fn expire(&mut self, now: Instant, ttl: Duration) -> usize {
        let before = self.peers.len();
        self.peers
            .retain(|_, p| now.duration_since(p.last_seen) < ttl);
        before - self.peers.len()
    }

    fn counts(&self) -> (usize, usize) {
        let seeders = self.peers.values().filter(|p| p.seeder).count();
        (
            seeders + usize::from(self.seed.is_some()),
            self.peers.len() - seeders,
        )
    }

    fn peers_at(&self, ip: IpAddr) -> usize {
        self.peers.values().filter(|p| p.ip == ip).count()
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

/// How many of what the tracker keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub torrents: usize,
    pub peers: usize,
    pub peers_per_torrent: usize,
    pub peers_per_address: usize,
}

struct State {
    torrents: LruCache<[u8; 20], Swarm>,
    /// Peers in all torrents.
    peers: usize,
}

pub struct Swarms {
    limits: Limits,
    state: Mutex<State>,
}

impl Swarms {
    pub fn new(limits: Limits) -> Swarms {
        Swarms {
            limits,
            state: Mutex::new(State {
                torrents: LruCache::new(
                    NonZeroUsize::new(limits.torrents).unwrap_or(NonZeroUsize::MIN),
                ),
                peers: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, info_hash: [u8; 20]) {
        let mut state = self.lock();
        if state.torrents.get(&info_hash).is_none() {
            if let Some((_, evicted)) = state.torrents.push(info_hash, Swarm::default()) {
                state.peers -= evicted.peers.len();
            }
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
        let mut guard = self.lock();
        let state = &mut *guard;
        let swarm = state.torrents.get_mut(&a.info_hash)?;
        state.peers -= swarm.expire(now, ttl);
        let seeder = a.left == 0;
        // A peer id is its registering address's: others can neither move nor stop it.
        let owner = swarm.peers.get(&a.peer_id).map(|p| p.ip);
        let own = owner.is_none_or(|o| o == ip);
        match a.event {
            Event::Stopped if own => {
                if swarm.peers.remove(&a.peer_id).is_some() {
                    state.peers -= 1;
                }
            }
            Event::Stopped => {}
            _ if !own => {}
            event => {
                let was_seeder = swarm.peers.get(&a.peer_id).is_some_and(|p| p.seeder);
                if event == Event::Completed && !was_seeder {
                    swarm.completed += 1;
                }
                let known = owner.is_some();
                // A full swarm (or tracker, or address) still answers; it just does not grow.
                let room = state.peers < self.limits.peers
                    && swarm.peers.len() < self.limits.peers_per_torrent
                    && swarm.peers_at(ip) < self.limits.peers_per_address;
                if known || room {
                    let peer = Peer {
                        ip,
                        port: a.port,
                        seeder,
                        last_seen: now,
                    };
                    if swarm.peers.insert(a.peer_id, peer).is_none() {
                        state.peers += 1;
                    }
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
        // The seed first, for everyone: a magnet client announces `left=0` before it knows
        // the size, and needs the seed for the metadata. Then other peers (seeders need only
        // leechers).
        let seed = swarm
            .seed
            .map(|(ip, port)| (*b"-S3T0100-seed0000000", ip, port));
        let others = swarm
            .peers
            .iter()
            .filter(|(id, p)| **id != a.peer_id && !(seeder && p.seeder))
            .map(|(id, p)| (*id, p.ip, p.port));
        for (id, ip, port) in seed.into_iter().chain(others).take(numwant) {
            match ip {
                IpAddr::V4(v4) => {
                    view.compact_v4.extend_from_slice(&v4.octets());
                    view.compact_v4.extend_from_slice(&port.to_be_bytes());
                }
                IpAddr::V6(v6) => {
                    view.compact_v6.extend_from_slice(&v6.octets());
                    view.compact_v6.extend_from_slice(&port.to_be_bytes());
                }
            }
            view.peers.push((id, ip, port));
        }
        Some(view)
    }

    pub fn stats(&self, info_hash: &[u8; 20], now: Instant, ttl: Duration) -> Option<Stats> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let swarm = state.torrents.peek_mut(info_hash)?;
        state.peers -= swarm.expire(now, ttl);
        let (seeders, leechers) = swarm.counts();
        Some(Stats {
            seeders,
            leechers,
            completed: swarm.completed,
        })
    }

    /// Lists the sidecar's own seeder in a registered torrent's swarm.
    pub fn add_seed(&self, info_hash: [u8; 20], ip: IpAddr, port: u16) {
        if let Some(swarm) = self.lock().torrents.get_mut(&info_hash) {
            swarm.seed = Some((ip, port));
        }
    }

    /// Peers held in all torrents.
    pub fn peer_count(&self) -> usize {
        self.lock().peers
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

    fn swarms(torrents: usize, peers_per_torrent: usize) -> Swarms {
        Swarms::new(Limits {
            torrents,
            peers: 1000,
            peers_per_torrent,
            peers_per_address: 100,
        })
    }

    #[test]
    fn unknown_torrents_are_not_tracked() {
        let s = swarms(10, 10);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(s
            .announce(&announce(1, 5, Event::Started), ip, 50, Instant::now(), TTL)
            .is_none());
    }

    #[test]
    fn peers_see_each_other_compactly_v4_and_v6() {
        let s = swarms(10, 10);
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
        let s = swarms(10, 2);
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
        let s = swarms(2, 10);
        for i in 0..5u8 {
            s.register([i; 20]);
        }
        let now = Instant::now();
        assert!(s.stats(&[0; 20], now, TTL).is_none(), "oldest aged out");
        assert!(s.stats(&[4; 20], now, TTL).is_some());
    }

    #[test]
    fn peers_in_all_and_per_address_are_capped() {
        let s = Swarms::new(Limits {
            torrents: 10,
            peers: 3,
            peers_per_torrent: 100,
            peers_per_address: 2,
        });
        let now = Instant::now();
        for t in 0..2u8 {
            s.register([t; 20]);
        }
        let from = |t: u8, peer: u8, ip: &str| {
            let mut a = announce(peer, 10, Event::Started);
            a.info_hash = [t; 20];
            s.announce(&a, ip.parse().unwrap(), 50, now, TTL).unwrap();
        };
        for peer in 1..=5 {
            from(0, peer, "10.0.0.1");
        }
        assert_eq!(s.peer_count(), 2, "two per address in one torrent");
        from(0, 6, "10.0.0.2");
        from(1, 7, "10.0.0.3");
        assert_eq!(s.peer_count(), 3, "three in all");
        s.register([2; 20]);
        for t in 3..12u8 {
            s.register([t; 20]);
        }
        assert_eq!(s.peer_count(), 0, "evicted torrents take their peers along");
    }

    #[test]
    fn a_peer_id_belongs_to_the_address_that_registered_it() {
        let s = swarms(10, 10);
        s.register([7; 20]);
        let now = Instant::now();
        let (owner, other): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.6.6.6".parse().unwrap());
        s.announce(&announce(1, 10, Event::Started), owner, 50, now, TTL)
            .unwrap();
        // Someone else can neither stop it nor move it to their address.
        s.announce(&announce(1, 10, Event::Stopped), other, 50, now, TTL)
            .unwrap();
        let moved = s
            .announce(&announce(1, 10, Event::None), other, 50, now, TTL)
            .unwrap();
        assert_eq!(moved.leechers, 1);
        let seen = s
            .announce(&announce(2, 10, Event::Started), owner, 50, now, TTL)
            .unwrap();
        assert_eq!(seen.peers[0].1, owner, "still at its own address");
        s.announce(&announce(1, 10, Event::Stopped), owner, 50, now, TTL)
            .unwrap();
        assert_eq!(
            s.stats(&[7; 20], now, TTL).unwrap().leechers,
            1,
            "its owner can stop it"
        );
    }
}
