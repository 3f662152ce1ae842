//! The seeder among replicas (`[cluster]`): a peer connection for a torrent another replica
//! owns is relayed to that owner whole (its seeder alone then sees the torrent's peers and
//! reads each piece from the origin once); a torrent offered here is described to every
//! sibling, so whichever becomes its owner can seed it.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;
use tokio::net::TcpStream;

use crate::cluster::{Cluster, Description, Member, Message, MAX_FRAME};

use super::peer;
use super::torrents::{SeedFile, SeedTorrent};
use super::Seeder;

/// Bytes buffered each way in a relayed peer connection.
const RELAY_BUFFER: usize = 256 * 1024;
/// After a sibling could not describe a torrent, how long its peers are refused unasked.
const UNDESCRIBED_TERM: Duration = Duration::from_secs(10);
/// Torrents remembered as undescribed.
const UNDESCRIBED_KEPT: usize = 1024;

/// Torrents siblings could not describe lately.
pub struct Undescribed(Mutex<LruCache<[u8; 20], Instant>>);

impl Default for Undescribed {
    fn default() -> Self {
        let n = NonZeroUsize::new(UNDESCRIBED_KEPT).expect("not zero");
        Undescribed(Mutex::new(LruCache::new(n)))
    }
}

impl Undescribed {
    fn recently(&self, ih: &[u8; 20]) -> bool {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match kept.peek(ih) {
            Some(at) if at.elapsed() < UNDESCRIBED_TERM => true,
            Some(_) => {
                kept.pop(ih);
                false
            }
            None => false,
        }
    }

    fn note(&self, ih: [u8; 20]) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        kept.put(ih, Instant::now());
    }
}

/// How a torrent is told to siblings: `ids` (what the tracker knows it by), and, when it is
/// seeded, what seeding it takes.
pub fn torrent_message(ids: &[[u8; 20]], seed: Option<&SeedTorrent>) -> Message {
    Message::Torrent {
        ids: ids.to_vec(),
        seed: seed.and_then(description_of),
    }
}

/// Room left in a frame for everything but the seed's description.
const FRAME_HEADROOM: usize = 64 * 1024;

/// `t`'s description; none when it would not fit in a frame (a directory of very many long
/// keys): its owner then seeds it once a request for it reaches it.
fn description_of(t: &SeedTorrent) -> Option<Description> {
    let layer =
        |f: &Option<super::hashes::V2File>| f.as_ref().map_or(Bytes::new(), |f| f.layer.clone());
    let description = Description {
        info_hash: t.info_hash,
        info: t.info.clone(),
        files: t
            .files
            .iter()
            .map(|f| (f.object.clone(), f.etag.clone()))
            .collect(),
        layers: t.v2.iter().map(layer).collect(),
    };
    (description.size() <= MAX_FRAME - FRAME_HEADROOM).then_some(description)
}

/// The seed a sibling described, if its `info` is one, names as many files (and v2 layers
/// that hash to their roots), and hashes to its infohash.
fn seed_of(d: &Description) -> Option<SeedTorrent> {
    let files = d
        .files
        .iter()
        .map(|(object, etag)| SeedFile {
            object: object.clone(),
            etag: etag.clone(),
        })
        .collect();
    let seed = SeedTorrent::from_info(d.info.clone(), files, d.layers.clone())?;
    (seed.info_hash == d.info_hash).then_some(seed)
}

impl Seeder {
    /// Joins the cluster: from now on peers of torrents other replicas own are relayed.
    pub fn attach(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    pub(super) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// Seeds a torrent a sibling described (authenticated: it vouches for the object's
    /// checks), unless it is seeded already.
    pub fn learn(&self, description: &Description) {
        let Some(seed) = seed_of(description) else {
            return;
        };
        if self.seeds(&seed.info_hash) {
            return;
        }
        let ids = seed.ids();
        if self.registry.insert(seed) {
            if let (Some(tracker), Some(addr)) = (&self.tracker, self.public_addr) {
                for id in ids {
                    tracker.add_seed(id, addr);
                }
            }
        }
    }

    /// Hands a peer connection to the torrent's owner: `head` (the handshake up to the
    /// infohash) and everything after it. The frame carries nothing else: the owner knows
    /// the torrent from its spreading, or asks for it once (see [`Seeder::describe`]). `Err`
    /// gives the connection back when the owner cannot be reached, for this replica to serve.
    pub(super) async fn relay<S: super::conn::PeerIo>(
        &self,
        cluster: &Cluster,
        owner: &Member,
        mut client: S,
        head: [u8; 48],
        info_hash: [u8; 20],
    ) -> Result<(), S> {
        let message = Message::Peer { info_hash, head };
        let mut sibling = match cluster.send(owner, &message).await {
            Ok(s) => s,
            Err(e) => {
                cluster.fell_back("owner unreachable", &e.to_string());
                return Err(client);
            }
        };
        cluster.forwarded("peer");
        // Piece data flows one way in 16 KiB blocks: large buffers keep the relay's
        // syscalls (its whole cost) few.
        let _ = tokio::io::copy_bidirectional_with_sizes(
            &mut client,
            &mut sibling,
            RELAY_BUFFER,
            RELAY_BUFFER,
        )
        .await;
        Ok(())
    }

    /// A peer a sibling (`from`) relayed: served as if it had dialed here, once it has a
    /// slot — of `max_peers`, and of the sibling's own share
    /// (`cluster.max_relayed_per_replica`) — and the torrent is known here.
    pub async fn serve_relayed(
        self: Arc<Self>,
        stream: TcpStream,
        from: String,
        ih: [u8; 20],
        head: [u8; 48],
    ) {
        let Some(cluster) = self.cluster().cloned() else {
            return;
        };
        let Some(_share) = self
            .relayed
            .enter(from.clone(), cluster.max_relayed_per_replica())
        else {
            self.refused("relay share");
            return;
        };
        let Some(_slot) = self.try_peer_slot() else {
            self.refused("slots");
            return;
        };
        if !self.seeds(&ih) && !self.describe(&cluster, &from, ih).await {
            return;
        }
        self.metrics.peers.inc();
        if let Err(e) = peer::serve_after_head(stream, head, self.clone()).await {
            tracing::debug!(target: "s3torrent::seeder", error = %e, "relayed peer closed");
        }
        self.metrics.peers.dec();
    }

    /// Learns `ih` from the sibling `from` that relayed a peer of it: once per torrent
    /// however many peers arrive meanwhile (they wait for the one question), and not asked
    /// again for a while after the sibling could not describe it. Whether it is seeded now.
    async fn describe(self: &Arc<Self>, cluster: &Arc<Cluster>, from: &str, ih: [u8; 20]) -> bool {
        if self.undescribed.recently(&ih) {
            return false;
        }
        let Some(sibling) = cluster.member(from) else {
            return false;
        };
        let (seeder, cluster) = (self.clone(), cluster.clone());
        let (_, _) = self
            .describing
            .run(ih, move || {
                Ok(async move {
                    let ask = Message::Describe { info_hash: ih };
                    match cluster.ask(&sibling, &ask).await {
                        Ok(Message::Torrent {
                            seed: Some(description),
                            ..
                        }) => seeder.learn(&description),
                        Ok(_) => {}
                        Err(e) => cluster.fell_back("sibling could not describe", &e),
                    }
                    if !seeder.seeds(&ih) {
                        seeder.undescribed.note(ih);
                    }
                    Ok(())
                })
            })
            .await;
        self.seeds(&ih)
    }

    /// A sibling's `Describe`: the torrent as [`torrent_message`] tells it, without a seed
    /// when it is not seeded here.
    pub fn description(&self, ih: &[u8; 20]) -> Message {
        match self.registry.get(ih) {
            Some(seed) => torrent_message(&seed.ids(), Some(&seed)),
            None => Message::Torrent {
                ids: vec![*ih],
                seed: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::ObjectRef;
    use crate::torrent::{FileTree, Format, Info, Layout, PieceHasher, Torrent};

    #[test]
    fn a_v2_seed_reaches_a_sibling_with_its_piece_layers() {
        let p = 16 * 1024;
        let data: Vec<u8> = (0..7 * p as usize + 3).map(|i| (i % 249) as u8).collect();
        let length = data.len() as u64;
        let mut hasher = PieceHasher::new(&Layout::single(length, p), length, Format::V2);
        hasher.update(&data);
        let hashes = hasher.finish();
        let info = Info {
            length,
            piece_length: p,
            pieces: Vec::new(),
            file_tree: Some(FileTree::from_hashes(&hashes, p)),
            ..Info::fixture()
        };
        let torrent = Torrent::new(info, Default::default(), None);
        let object = ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
        };
        let seed = SeedTorrent::new(&torrent, object, "\"e\"".into());
        let Message::Torrent {
            seed: Some(description),
            ..
        } = torrent_message(&torrent.swarm_ids(), Some(&seed))
        else {
            panic!("a seeded torrent is told with its description");
        };
        let sent = Message::from_frame(
            &Message::Torrent {
                ids: vec![],
                seed: Some(description),
            }
            .to_frame(),
        );
        let Some(Message::Torrent {
            seed: Some(description),
            ..
        }) = sent
        else {
            panic!("the description survives its frame");
        };
        let learned = seed_of(&description).expect("a v2 seed with its layers");
        assert_eq!(learned.info_hash, torrent.swarm_id());
        assert_eq!(learned.v2_id, seed.v2_id);
        let root = torrent.info.file_tree.as_ref().unwrap().pieces_root;
        assert_eq!(
            learned.v2_file(&root).map(|f| f.layer.clone()),
            Some(Bytes::from(hashes.layer.concat()))
        );
    }
}
