//! Peers per infohash, bounded four ways — torrents, peers in all, peers per address and per
//! network prefix (IPv4 /24, IPv6 /64) in one torrent — and expired lazily. A peer id belongs
//! to the address that registered it: only that address may update it or stop it.
//!
//! A full swarm is not first come, first kept: a peer earns credit by coming back (an
//! announce at least `min interval` after the last credited one) and by reporting progress
//! (`left` going down). A newcomer to a full swarm takes the place of the stalest peer that
//! never earned any, and answers list credited peers first: a flood of one-off announces
//! fills a swarm only until real peers come.

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
    left: u64,
    credits: u32,
    credited_at: Instant,
}

/// Credits stop counting here: an old peer is not worth more than a recent regular.
const MAX_CREDITS: u32 = 16;

/// The network a peer's address is in, for per-prefix limits: IPv4 /24, IPv6 /64.
fn prefix(ip: IpAddr) -> (bool, u64) {
    match ip {
        IpAddr::V4(v4) => (false, u64::from(u32::from(v4) >> 8)),
        IpAddr::V6(v6) => (true, (u128::from(v6) >> 64) as u64),
    }
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

    /// Peers at `ip`, and in its prefix.
    fn peers_near(&self, ip: IpAddr) -> (usize, usize) {
        let net = prefix(ip);
        self.peers
            .values()
            .filter(|p| prefix(p.ip) == net)
            .fold((0, 0), |(at, near), p| {
                (at + usize::from(p.ip == ip), near + 1)
            })
    }

    /// The peer a newcomer may replace in a full swarm: the stalest that never earned credit.
    fn evictable(&self) -> Option<[u8; 20]> {
        self.peers
            .iter()
            .filter(|(_, p)| p.credits == 0)
            .min_by_key(|(_, p)| p.last_seen)
            .map(|(id, _)| *id)
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
    pub peers_per_prefix: usize,
    /// An announce earns credit this long after the last credited one (`min interval`).
    pub credit_gap: Duration,
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
                let limits = &self.limits;
                match swarm.peers.get_mut(&a.peer_id) {
                    Some(peer) => {
                        if event == Event::Completed && !peer.seeder {
                            swarm.completed += 1;
                        }
                        // Credit is earned no faster than announces are due; progress
                        // makes one worth more.
                        if now.duration_since(peer.credited_at) >= limits.credit_gap {
                            let earned = 1 + u32::from(a.left < peer.left);
                            peer.credits = (peer.credits + earned).min(MAX_CREDITS);
                            peer.credited_at = now;
                        }
                        peer.port = a.port;
                        peer.seeder = seeder;
                        peer.last_seen = now;
                        peer.left = a.left;
                    }
                    None => {
                        if event == Event::Completed {
                            swarm.completed += 1;
                        }
                        let (at, near) = swarm.peers_near(ip);
                        let welcome =
                            at < limits.peers_per_address && near < limits.peers_per_prefix;
                        let room = state.peers < limits.peers
                            && swarm.peers.len() < limits.peers_per_torrent;
                        // A full swarm (or tracker) still answers; it takes a newcomer only
                        // in place of a peer that never came back.
                        let place = match (welcome, room) {
                            (false, _) => false,
                            (true, true) => {
                                state.peers += 1;
                                true
                            }
                            (true, false) => swarm
                                .evictable()
                                .and_then(|id| swarm.peers.remove(&id))
                                .is_some(),
                        };
                        if place {
                            let peer = Peer {
                                ip,
                                port: a.port,
                                seeder,
                                last_seen: now,
                                left: a.left,
                                credits: 0,
                                credited_at: now,
                            };
                            swarm.peers.insert(a.peer_id, peer);
                        }
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
        let mut others: Vec<_> = swarm
            .peers
            .iter()
            .filter(|(id, p)| **id != a.peer_id && !(seeder && p.seeder))
            .collect();
        // Peers that came back (or made progress) first.
        others.sort_by_key(|(_, p)| std::cmp::Reverse(p.credits));
        let others = others.into_iter().map(|(id, p)| (*id, p.ip, p.port));
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
            peers_per_prefix: 1000,
            credit_gap: Duration::from_secs(10),
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
        // Peer 1 comes back (a credit) having completed.
        let t1 = t0 + Duration::from_secs(10);
        s.announce(&announce(1, 10, Event::Started), ip, 50, t0, TTL)
            .unwrap();
        s.announce(&announce(1, 0, Event::Completed), ip, 50, t1, TTL)
            .unwrap();
        let st = s.stats(&[7; 20], t1, TTL).unwrap();
        assert_eq!((st.seeders, st.leechers, st.completed), (1, 0, 1));
        s.announce(&announce(2, 10, Event::Started), ip, 50, t1, TTL)
            .unwrap();
        let full = s
            .announce(&announce(3, 10, Event::Started), ip, 50, t1, TTL)
            .unwrap();
        assert_eq!(full.seeders + full.leechers, 2, "capped at max_peers");
        // Peer 3 took the place of peer 2 (neither came back), not of peer 1.
        s.announce(&announce(3, 10, Event::Stopped), ip, 50, t1, TTL)
            .unwrap();
        let st = s.stats(&[7; 20], t1, TTL).unwrap();
        assert_eq!((st.seeders, st.leechers), (1, 0));
        let later = t1 + TTL + Duration::from_secs(1);
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
            peers_per_prefix: 100,
            credit_gap: Duration::from_secs(10),
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

    #[test]
    fn one_network_fills_at_most_its_share_of_a_swarm() {
        let s = Swarms::new(Limits {
            torrents: 10,
            peers: 1000,
            peers_per_torrent: 1000,
            peers_per_address: 2,
            peers_per_prefix: 5,
            credit_gap: Duration::from_secs(10),
        });
        s.register([7; 20]);
        let now = Instant::now();
        for host in 1..=20u8 {
            let ip: IpAddr = format!("198.51.100.{host}").parse().unwrap();
            s.announce(&announce(host, 10, Event::Started), ip, 50, now, TTL);
        }
        for host in 1..=20u8 {
            let ip: IpAddr = format!("2001:db8::{host}").parse().unwrap();
            s.announce(&announce(100 + host, 10, Event::Started), ip, 50, now, TTL);
        }
        assert_eq!(s.peer_count(), 10, "a /24 and a /64 hold five each");
        let other: IpAddr = "203.0.113.1".parse().unwrap();
        s.announce(&announce(200, 10, Event::Started), other, 50, now, TTL);
        assert_eq!(s.peer_count(), 11, "another network is not affected");
    }

    #[test]
    fn a_full_swarm_takes_newcomers_in_place_of_peers_that_never_came_back() {
        let s = swarms(10, 4);
        s.register([7; 20]);
        let t0 = Instant::now();
        let gap = Duration::from_secs(10);
        let at = |host: u8| -> IpAddr { format!("10.{host}.0.1").parse().unwrap() };
        // Two real peers come back and report progress.
        for p in [1, 2] {
            s.announce(&announce(p, 10, Event::Started), at(p), 50, t0, TTL);
            s.announce(&announce(p, 5, Event::None), at(p), 50, t0 + gap, TTL);
        }
        // A flood of one-off announces fills the rest, and keeps trying.
        for p in 10..40 {
            s.announce(&announce(p, 10, Event::Started), at(p), 50, t0 + gap, TTL);
        }
        assert_eq!(s.peer_count(), 4);
        let view = s
            .announce(&announce(50, 10, Event::Started), at(50), 50, t0 + gap, TTL)
            .unwrap();
        assert_eq!(s.peer_count(), 4, "in place of a peer without credit");
        let listed: Vec<u8> = view.peers.iter().map(|(id, ..)| id[0]).collect();
        let mut first = listed[..2].to_vec();
        first.sort();
        assert_eq!(first, vec![1, 2], "credited peers first: {listed:?}");
        // The real peers were never displaced.
        for p in [1, 2] {
            let v = s
                .announce(&announce(p, 5, Event::None), at(p), 50, t0 + 2 * gap, TTL)
                .unwrap();
            assert!(
                v.peers.iter().any(|(id, ..)| id[0] == 50),
                "the newcomer is listed"
            );
        }
    }
}
