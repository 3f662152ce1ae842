//! The sidecar as a BitTorrent seed (`[seeder] enabled`), as Amazon S3 once was: it seeds the
//! torrents it makes, reading piece data from the backend, so a crowd costs the origin about
//! one copy and peers trade the rest.
//!
//! - [`wire`] — the peer wire format (BEP 3, 6, 10, 52), strict and bounded.
//! - [`peer`] — one connection: handshake, `ut_metadata` (BEP 9), requests, unchoke rotation.
//! - [`torrents`] — what is seeded, and which piece to reveal to whom (super-seeding).
//! - [`pieces`] — piece data from the backend: `If-Match`, verified, cached, single-flight.
//! - [`hashes`] — a torrent's v2 hashes: checking v2-only pieces, answering BEP 52 hash
//!   requests.
//! - [`bitset`] — a peer's pieces.
//! - [`announcer`] — announcing to a torrent's external trackers, when configured.
//! - [`public`] — whether an object is public (with `objects = "public"`), asked again
//!   periodically.
//! - [`siblings`] — among replicas (`[cluster]`): peers of a torrent another replica owns
//!   are relayed to it; offered torrents are described to every sibling.
//!
//! Trust: knowing an infohash is weaker than a signature, so by default (`objects =
//! "public"`) only objects an anonymous caller may read are seeded.

mod announcer;
mod bitset;
mod conn;
mod hashes;
pub mod mse;
mod outbox;
mod peer;
mod pieces;
pub mod public;
pub mod siblings;
mod torrents;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Semaphore;

use crate::common::flight::{Ended, SingleFlight};
use crate::common::shares::Shares;
use crate::config::SeederConfig;
use crate::s3::upstream::Upstream;
use crate::s3::ObjectRef;
use crate::telemetry::metrics::SeederMetrics;
use crate::torrent::Torrent;
use crate::tracker::Tracker;

use pieces::PieceStore;
pub use torrents::SeedFile;
pub use torrents::WebseedTicket;
use torrents::{Registry, SeedTorrent};

pub struct Seeder {
    config: SeederConfig,
    registry: Registry,
    upstream: Arc<Upstream>,
    pieces: Arc<PieceStore>,
    metrics: Arc<SeederMetrics>,
    tracker: Option<Arc<Tracker>>,
    unchoke_slots: Arc<Semaphore>,
    waiting: AtomicIsize,
    limiter: RateLimiter,
    peer_id: [u8; 20],
    /// Bound before the server starts, so a port clash is reported before anything runs.
    listener: Mutex<Option<std::net::TcpListener>>,
    /// The seeder's address as peers dial it, for the tracker and magnet links.
    public_addr: Option<SocketAddr>,
    /// The built-in tracker's announce URL (not announced to: the seed is listed there).
    own_tracker: Option<String>,
    /// The replicas this one seeds with (`[cluster]`), once attached.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// One permit per peer connection (`max_peers`), taken before it is accepted.
    peer_slots: Arc<Semaphore>,
    /// Set on shutdown: every peer stops.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Relayed peers held per sibling that relayed them.
    relayed: Shares<String>,
    /// Peer connections held per address (`max_peers_per_address`).
    by_address: Shares<IpAddr>,
    /// The accept loop waits for a slot: every one is taken.
    full: AtomicBool,
    /// When a relayed peer last found no slot free (ms after `born`; 0: never): peers that
    /// take nothing make room for a while after.
    short_at: AtomicU64,
    born: Instant,
    /// Torrents being asked of a sibling, one question each.
    describing: Arc<SingleFlight<[u8; 20], (), Ended>>,
    /// Torrents a sibling could not describe lately: not asked again at once.
    undescribed: siblings::Undescribed,
}

/// After a relayed peer found no slot free, how long peers that take nothing make room.
const SHORT_FOR_MS: u64 = 5_000;

/// After a failing `accept`, the pause before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

impl Seeder {
    pub fn bind(
        config: &SeederConfig,
        upstream: Arc<Upstream>,
        metrics: Arc<SeederMetrics>,
        tracker: Option<Arc<Tracker>>,
        own_tracker: Option<String>,
    ) -> std::io::Result<Seeder> {
        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let mut peer_id = *b"-S3T0100-000000000000";
        rand::Rng::fill(&mut rand::thread_rng(), &mut peer_id[8..]);
        let public_addr = std::net::ToSocketAddrs::to_socket_addrs(&config.public_addr())
            .ok()
            .and_then(|mut a| a.next());
        Ok(Seeder {
            registry: Registry::new(),
            pieces: Arc::new(PieceStore::new(
                upstream.clone(),
                config.piece_cache_bytes,
                metrics.clone(),
            )),
            metrics,
            tracker,
            unchoke_slots: Arc::new(Semaphore::new(config.max_unchoked)),
            waiting: AtomicIsize::new(0),
            limiter: RateLimiter::new(config.upload_rate),
            peer_id: peer_id[..20].try_into().expect("20 bytes"),
            listener: Mutex::new(Some(listener)),
            public_addr,
            own_tracker,
            upstream,
            config: config.clone(),
            cluster: std::sync::OnceLock::new(),
            peer_slots: Arc::new(Semaphore::new(config.max_peers)),
            stopping: tokio::sync::watch::channel(false).0,
            relayed: Shares::default(),
            by_address: Shares::default(),
            full: AtomicBool::new(false),
            short_at: AtomicU64::new(0),
            born: Instant::now(),
            describing: Arc::new(SingleFlight::new()),
            undescribed: siblings::Undescribed::default(),
        })
    }

    pub fn config(&self) -> &SeederConfig {
        &self.config
    }

    /// Whether this infohash is seeded (and not retired).
    pub fn seeds(&self, info_hash: &[u8; 20]) -> bool {
        self.registry.get(info_hash).is_some()
    }

    /// Seeds a torrent this sidecar served for `object` at `etag`.
    pub fn offer(&self, torrent: &Torrent, object: &ObjectRef, etag: &str) {
        let file = SeedFile {
            object: object.clone(),
            etag: etag.to_string(),
        };
        self.offer_files(torrent, vec![file]);
    }

    /// Seeds a torrent this sidecar served whose files, in layout order, are `files` (a
    /// directory's objects, each at the version and ETag the caller was authorized for).
    pub fn offer_files(&self, torrent: &Torrent, files: Vec<SeedFile>) {
        let id = torrent.swarm_id();
        if self.seeds(&id) {
            return;
        }
        let seed = SeedTorrent::of_files(torrent, files);
        if self.registry.insert(seed) {
            if let (Some(tracker), Some(addr)) = (&self.tracker, self.public_addr) {
                for id in torrent.swarm_ids() {
                    tracker.add_seed(id, addr);
                }
            }
            self.announce_external(torrent);
            if let (Some(cluster), Some(seed)) = (self.cluster(), self.registry.get(&id)) {
                let message = siblings::torrent_message(&torrent.swarm_ids(), Some(&seed));
                cluster.spread_torrent(message);
            }
        }
    }

    /// With `announce_external`, announces the seed to the torrent's other http trackers.
    fn announce_external(&self, torrent: &Torrent) {
        let (Some(seed), Some(addr)) = (self.registry.get(&torrent.swarm_id()), self.public_addr)
        else {
            return;
        };
        if !self.config.announce_external {
            return;
        }
        let own = self.own_tracker.as_deref();
        let urls = torrent.meta.announce.iter().flatten();
        for url in urls.filter(|u| announcer::announceable(u, own)) {
            tokio::spawn(announcer::announce_loop(
                url.clone(),
                seed.clone(),
                self.peer_id,
                addr.port(),
            ));
        }
    }

    /// `x.pe` for magnet links: where this seeder takes connections.
    pub fn public_addr(&self) -> String {
        self.config.public_addr()
    }

    /// Web-seed shaping, for a request on the web-seed route for bytes `first..=last` of
    /// `object`: not seeded here (go ahead, unshaped), admitted (holding a slot and the
    /// pieces' reservation until the response ends), or deferred (answer 503 with
    /// Retry-After): every piece the range touches has already left the origin or is on its
    /// way, or enough web-seed requests for the object are under way. So each piece leaves
    /// the origin about once, and late joiners take from the swarm.
    /// The infohash `object` is seeded under, if it is.
    pub fn seeded_as(&self, object: &ObjectRef) -> Option<[u8; 20]> {
        self.registry.for_object(object).map(|t| t.info_hash)
    }

    pub fn admit_webseed(&self, object: &ObjectRef, first: u64, last: u64) -> Admission {
        let Some(torrent) = self.registry.for_object(object) else {
            return Admission::NotSeeded;
        };
        let term = self.config.webseed_slot_ttl.get();
        match torrent.enter_webseed(self.config.webseed_concurrency, term, first, last) {
            Some(ticket) => Admission::Admitted(ticket),
            None => {
                self.metrics.webseed_deferred.inc();
                Admission::Deferred(self.config.webseed_retry_after.get())
            }
        }
    }

    fn waiting_for_slot(&self, delta: isize) {
        self.waiting.fetch_add(delta, Ordering::SeqCst);
    }

    fn peers_waiting(&self) -> isize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Accepts peers until shutdown, at most `max_peers` at once: a slot is taken before
    /// `accept`, so a peer past the bound waits in the kernel's backlog instead of being
    /// accepted and dropped (and peers that take nothing are asked to make room, see
    /// [`Seeder::short_of_slots`]). One address holds at most `max_peers_per_address`; past
    /// it a connection is closed at once. A failing `accept` (out of descriptors, say) waits
    /// a moment instead of spinning. On shutdown every peer is told to stop (see
    /// [`Peer::run`]).
    async fn accept_loop(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        mut shutdown: ShutdownWatch,
    ) {
        loop {
            let permit = match self.peer_slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    // Every slot is taken: until one frees, peers that take nothing go.
                    self.full.store(true, Ordering::Relaxed);
                    let permit = tokio::select! {
                        p = self.peer_slots.clone().acquire_owned() => p.expect("never closed"),
                        _ = shutdown.changed() => break,
                    };
                    self.full.store(false, Ordering::Relaxed);
                    permit
                }
            };
            let (stream, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        self.metrics.accept_errors.inc();
                        tracing::debug!(target: "s3torrent::seeder", error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let max = self.config.max_peers_per_address;
            let Some(share) = self.by_address.enter(addr.ip(), max) else {
                self.refused("address");
                continue;
            };
            let seeder = self.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                seeder.metrics.peers.inc();
                if let Err(e) = peer::serve(stream, seeder.clone()).await {
                    tracing::debug!(target: "s3torrent::seeder", error = %e, "peer closed");
                }
                seeder.metrics.peers.dec();
                drop((share, permit));
            });
        }
        // Stop accepting (the listener goes with this loop) and tell every peer.
        let _ = self.stopping.send(true);
    }

    /// A slot for a peer a sibling relayed here, if one is free now (never waited for: the
    /// sibling's peer is refused instead, and peers that take nothing make room).
    pub(crate) fn try_peer_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let slot = self.peer_slots.clone().try_acquire_owned().ok();
        if slot.is_none() {
            self.note_short();
        }
        slot
    }

    fn note_short(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.short_at.store(ms.max(1), Ordering::Relaxed);
    }

    /// Whether every slot is taken, or a relayed peer found none free lately.
    pub(crate) fn short_of_slots(&self) -> bool {
        let at = self.short_at.load(Ordering::Relaxed);
        let lately = (self.born.elapsed().as_millis() as u64).saturating_sub(at) < SHORT_FOR_MS;
        self.full.load(Ordering::Relaxed) || (at != 0 && lately)
    }

    /// A peer connection refused or cut off, by why.
    pub(crate) fn refused(&self, reason: &str) {
        self.metrics
            .refused_peers
            .with_label_values(&[reason])
            .inc();
    }

    /// Resolves once the seeder is shutting down.
    pub(crate) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

/// What web-seed shaping says of one request.
pub enum Admission {
    NotSeeded,
    Admitted(WebseedTicket),
    /// Ask again after this long.
    Deferred(Duration),
}

/// The seeder as a pingora background service, on its own listener.
pub struct SeederService(pub Arc<Seeder>);

#[async_trait]
impl BackgroundService for SeederService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let Some(listener) = self
            .0
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        if self.0.config.objects == crate::config::SeedObjects::Public {
            tokio::spawn(self.0.clone().recheck_public());
        }
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => self.0.clone().accept_loop(listener, shutdown).await,
            Err(e) => tracing::error!(target: "s3torrent::seeder", error = %e, "cannot listen"),
        }
    }
}

/// A token bucket for `upload_rate` (bytes/s) over all peers; 0 is no limit.
struct RateLimiter {
    rate: u64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn new(rate: u64) -> Self {
        RateLimiter {
            rate,
            state: Mutex::new((rate as f64, Instant::now())),
        }
    }

    async fn take(&self, bytes: u32) {
        if self.rate == 0 {
            return;
        }
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (tokens, at) = &mut *state;
            let now = Instant::now();
            let rate = self.rate as f64;
            *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
            *at = now;
            *tokens -= f64::from(bytes);
            (*tokens < 0.0).then(|| Duration::from_secs_f64(-*tokens / rate))
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}
