//! Several replicas, one sidecar (`[cluster]`): each torrent has one owner among the live
//! replicas (rendezvous hashing over its infohash), and whatever any replica receives for it
//! — an announce, a peer connection, a web-seed request — is handed to the owner, so one
//! tracker sees the whole swarm and one seeder reads each piece from the origin once.
//!
//! - [`member`] — one replica as the others know it.
//! - [`ring`] — who owns a key.
//! - [`frame`] — authenticated sibling frames (forged, stale, replayed ones refused).
//! - [`message`] — what a frame says, typed.
//!
//! Membership lives in the store bucket the replicas already share: every `heartbeat` each
//! writes a sealed record of itself and reads the others'; one not heard of for
//! `member_ttl` is gone. A replica that cannot reach the store or an owner does the work
//! itself (counted in `s3torrent_cluster_fallbacks_total`, logged once per cause): the
//! origin pays more, nobody waits. Sibling traffic uses pod addresses only, on a port of its
//! own that no S3 request can reach.

pub mod frame;
pub mod member;
pub mod message;
pub mod ring;

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use lru::LruCache;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::Config;
use crate::store::Store;
use crate::telemetry::logging::WarnOnce;
use crate::telemetry::metrics::ClusterMetrics;

pub use frame::{FrameKey, Refused};
pub use member::Member;
pub use message::{Description, Message};

/// The store folder membership records live in.
const MEMBERS: &str = "cluster-members";
/// A sibling frame is small (a torrent's `info` at most): larger is refused unread.
pub const MAX_FRAME: usize = 8 << 20;
/// Dialing a sibling and its answer: on a pod network, well under this.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Torrent announcements kept to hand to a replica that joins later.
const RECENT_TORRENTS: usize = 2000;

pub struct Cluster {
    me: Member,
    heartbeat: Duration,
    ttl: Duration,
    store: Arc<Store>,
    key: FrameKey,
    /// Live members, sorted by name, this one included.
    live: RwLock<Vec<Member>>,
    /// The latest `Torrent` message per infohash, for members that join later.
    recent: Mutex<LruCache<[u8; 20], Message>>,
    metrics: Arc<ClusterMetrics>,
    warned: WarnOnce,
    max_relayed: usize,
}

impl Cluster {
    /// `None` unless `[cluster] enabled` (which needs a store).
    pub fn new(
        config: &Config,
        store: Option<Arc<Store>>,
        metrics: Arc<ClusterMetrics>,
    ) -> Option<Arc<Cluster>> {
        let c = &config.cluster;
        let store = store.filter(|_| c.enabled)?;
        let me = Member {
            name: c.pod_name.clone(),
            ip: c.pod_ip?,
            cluster_port: c.listen.port(),
            server_port: config.server.listen.port(),
            at: frame::unix_now(),
        };
        let key = FrameKey::new(store.derived_key("cluster frames v2"), c.max_buffered_bytes);
        metrics.members.set(1);
        Some(Arc::new(Cluster {
            live: RwLock::new(vec![me.clone()]),
            me,
            heartbeat: c.heartbeat.get(),
            ttl: c.member_ttl.get(),
            store,
            key,
            recent: Mutex::new(LruCache::new(
                NonZeroUsize::new(RECENT_TORRENTS).expect("not zero"),
            )),
            metrics,
            warned: WarnOnce::default(),
            max_relayed: c.max_relayed_per_replica,
        }))
    }

    /// The sibling that owns `key`, or `None` when this replica does.
    pub fn owner_of(&self, key: &[u8]) -> Option<Member> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        ring::owner(&live, key)
            .filter(|m| m.name != self.me.name)
            .cloned()
    }

    /// The live sibling named `name`.
    pub fn member(&self, name: &str) -> Option<Member> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .find(|m| m.name == name && m.name != self.me.name)
            .cloned()
    }

    /// Peers one sibling may relay here at once.
    pub fn max_relayed_per_replica(&self) -> usize {
        self.max_relayed
    }

    /// Every live member but this one.
    pub fn siblings(&self) -> Vec<Member> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .filter(|m| m.name != self.me.name)
            .cloned()
            .collect()
    }

    /// Dials `to` and writes `message`: the stream, for what follows (an answer, a relayed
    /// peer connection).
    pub async fn send(&self, to: &Member, message: &Message) -> std::io::Result<TcpStream> {
        let connect = TcpStream::connect(to.cluster_addr());
        let mut stream = tokio::time::timeout(DIAL_TIMEOUT, connect)
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        let _ = stream.set_nodelay(true);
        let sealed = self.key.seal(&message.to_frame(), &self.me.name, &to.name);
        stream.write_all(&sealed).await?;
        Ok(stream)
    }

    /// Sends `message` to `to` and reads its answer.
    pub async fn ask(&self, to: &Member, message: &Message) -> Result<Message, String> {
        let mut stream = self.send(to, message).await.map_err(|e| e.to_string())?;
        let answer = self.key.read(&mut stream, &self.me.name, MAX_FRAME);
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(frame)) => {
                Message::from_frame(&frame).ok_or_else(|| "its answer was not a message".into())
            }
            Ok(Err(refused)) => Err(format!("its answer was {}", refused.as_str())),
            Err(_) => Err("no answer in time".into()),
        }
    }

    /// Writes `message` as the answer to the sibling named `to` on its stream.
    pub async fn answer(
        &self,
        stream: &mut TcpStream,
        to: &str,
        message: &Message,
    ) -> std::io::Result<()> {
        let sealed = self.key.seal(&message.to_frame(), &self.me.name, to);
        stream.write_all(&sealed).await
    }

    /// Reads and checks a sibling's message: who sent it, and what it says. What was
    /// refused is counted (by kind unknown: the frame was not trusted enough to read one).
    pub async fn receive(&self, stream: &mut TcpStream) -> Result<(String, Message), Refused> {
        let read = self.key.read(stream, &self.me.name, MAX_FRAME);
        let read = tokio::time::timeout(ANSWER_TIMEOUT, read);
        let frame = read.await.unwrap_or(Err(Refused::Malformed));
        let result = frame.and_then(|f| {
            let from = f.text("from").ok_or(Refused::Malformed)?.to_string();
            let message = Message::from_frame(&f).ok_or(Refused::Malformed)?;
            Ok((from, message, f.wire_len()))
        });
        let (kind, outcome) = match &result {
            Ok((_, m, _)) => (m.kind(), "ok"),
            Err(r) => ("unknown", r.as_str()),
        };
        self.metrics
            .frames
            .with_label_values(&[kind, outcome])
            .inc();
        match result {
            Ok((from, message, wire_len)) => {
                let bytes = self.metrics.frame_bytes.with_label_values(&[kind]);
                bytes.inc_by(wire_len as u64);
                Ok((from, message))
            }
            Err(r) => {
                if self.warned.first(r.as_str()) {
                    tracing::warn!(target: "s3torrent::cluster", refused = r.as_str(), "a sibling message was refused (logged once per cause; counted in s3torrent_cluster_frames_total)");
                }
                Err(r)
            }
        }
    }

    /// A one-use token for a request handed to `to` over HTTP (a web-seed request): a
    /// sealed frame naming `what`, hex-encoded for a header; no other replica takes it.
    pub fn token(&self, to: &Member, what: &str) -> String {
        let message = Message::Webseed {
            what: what.to_string(),
        };
        hex::encode(self.key.seal(&message.to_frame(), &self.me.name, &to.name))
    }

    /// Whether `token` is a fresh, unused token for `what` from a sibling.
    pub async fn check_token(&self, token: &str, what: &str) -> Result<(), Refused> {
        let bytes = hex::decode(token).map_err(|_| Refused::Malformed)?;
        let frame = self
            .key
            .read(&mut &bytes[..], &self.me.name, MAX_FRAME)
            .await;
        let outcome = match frame.as_ref().map(Message::from_frame) {
            Ok(Some(Message::Webseed { what: named })) if named == what => Ok(()),
            Ok(_) => Err(Refused::Forged),
            Err(r) => Err(*r),
        };
        let label = outcome.err().map_or("ok", Refused::as_str);
        self.metrics
            .frames
            .with_label_values(&["webseed", label])
            .inc();
        outcome
    }

    /// Work for `key` was handed to its owner.
    pub fn forwarded(&self, what: &str) {
        self.metrics.forwarded.with_label_values(&[what]).inc();
    }

    /// The owner could not be reached: the work is done here. Counted every time, logged
    /// once per cause.
    pub fn fell_back(&self, cause: &'static str, detail: &str) {
        self.metrics.fallbacks.with_label_values(&[cause]).inc();
        if self.warned.first(cause) {
            tracing::warn!(target: "s3torrent::cluster", cause, detail, "a sibling could not be reached; doing the work here (logged once per cause; counted in s3torrent_cluster_fallbacks_total)");
        }
    }

    /// Tells every sibling about a torrent (a `Torrent` message), and keeps it for replicas
    /// that join later.
    pub fn spread_torrent(self: &Arc<Self>, message: Message) {
        let Some(info_hash) = torrent_key(&message) else {
            return;
        };
        let fresh = {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            // New, or now with a seed where it had none.
            let fresh = recent
                .peek(&info_hash)
                .is_none_or(|old| !has_seed(old) && has_seed(&message));
            if fresh {
                recent.put(info_hash, message.clone());
            }
            fresh
        };
        if fresh {
            let cluster = self.clone();
            tokio::spawn(async move {
                for sibling in cluster.siblings() {
                    cluster.tell(&sibling, &message).await;
                }
            });
        }
    }

    /// Keeps a torrent a sibling told us of, to hand on to replicas that join later.
    pub fn remember_torrent(&self, message: &Message) {
        if let Some(info_hash) = torrent_key(message) {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.put(info_hash, message.clone());
        }
    }

    async fn tell(&self, to: &Member, message: &Message) {
        match self.send(to, message).await {
            Ok(mut stream) => drop(stream.shutdown().await),
            Err(e) => self.fell_back("sibling unreachable", &e.to_string()),
        }
    }

    /// Heartbeats until shutdown, then says it left.
    pub async fn run(self: Arc<Self>, mut shutdown: ShutdownWatch) {
        loop {
            self.beat().await;
            tokio::select! {
                _ = tokio::time::sleep(self.heartbeat) => {}
                _ = shutdown.changed() => break,
            }
        }
        let left = Member {
            at: 0,
            ..self.me.clone()
        };
        let _ = self
            .store
            .put_record(MEMBERS, &self.me.name, left.encode())
            .await;
    }

    /// Says this replica is alive and reads who else is.
    async fn beat(self: &Arc<Self>) {
        let now = frame::unix_now();
        let me = Member {
            at: now,
            ..self.me.clone()
        };
        if let Err(e) = self
            .store
            .put_record(MEMBERS, &self.me.name, me.encode())
            .await
        {
            self.fell_back("membership write", &e.to_string());
        }
        let ttl = self.ttl.as_secs();
        let alive = |m: &Member| m.at != 0 && now.saturating_sub(m.at) <= ttl && m.at <= now + ttl;
        let mut live: Vec<Member> = match self.store.records(MEMBERS).await {
            Ok(records) => records
                .iter()
                .filter_map(|r| Member::decode(r))
                .filter(|m| alive(m) && m.name != self.me.name)
                .collect(),
            Err(e) => {
                self.fell_back("membership read", &e.to_string());
                // The last view, less those it can no longer vouch for.
                let old = self.live.read().unwrap_or_else(|p| p.into_inner());
                old.iter()
                    .filter(|m| alive(m) && m.name != self.me.name)
                    .cloned()
                    .collect()
            }
        };
        live.push(me);
        live.sort_by(|a, b| a.name.cmp(&b.name));
        let joined: Vec<Member> = {
            let mut old = self.live.write().unwrap_or_else(|p| p.into_inner());
            let joined = live
                .iter()
                .filter(|m| !old.iter().any(|o| o.name == m.name))
                .cloned()
                .collect();
            *old = live;
            self.metrics.members.set(old.len() as i64);
            joined
        };
        for member in joined {
            tracing::info!(target: "s3torrent::cluster", member = %member.name, addr = %member.cluster_addr(), "a replica joined");
            let torrents: Vec<Message> = {
                let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
                recent.iter().map(|(_, m)| m.clone()).collect()
            };
            let cluster = self.clone();
            tokio::spawn(async move {
                for message in torrents {
                    cluster.tell(&member, &message).await;
                }
            });
        }
    }
}

/// What a `Torrent` message is kept under, by sender and receivers alike: the first id the
/// tracker knows it by.
fn torrent_key(message: &Message) -> Option<[u8; 20]> {
    match message {
        Message::Torrent { ids, .. } => ids.first().copied(),
        _ => None,
    }
}

fn has_seed(message: &Message) -> bool {
    matches!(message, Message::Torrent { seed: Some(_), .. })
}
