//! The seeder among replicas (`[cluster]`): a peer connection for a torrent another replica
//! owns is relayed to that owner whole (its seeder alone then sees the torrent's peers and
//! reads each piece from the origin once); a torrent offered here is described to every
//! sibling, so whichever becomes its owner can seed it.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;
use tokio::net::TcpStream;

use crate::cluster::{Cluster, Frame, Member, MAX_FRAME};
use crate::s3::ObjectRef;
use crate::torrent::bencode::Value;

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

/// How a torrent is described to siblings: `ids` (what the tracker knows it by), and, when
/// it is seeded, what seeding it takes (`ih`, its `info`, and each file's object and ETag).
pub fn torrent_frame(ids: &[[u8; 20]], seed: Option<&SeedTorrent>) -> Frame {
    let ids = ids.iter().map(|id| Value::Bytes(id.to_vec())).collect();
    let frame = Frame::new("torrent").with("ids", Value::List(ids));
    match seed {
        Some(t) => with_seed(frame, t),
        None => frame,
    }
}

/// Room left in a frame for everything but the seed's description.
const FRAME_HEADROOM: usize = 64 * 1024;

/// `frame` with `t`'s description; without it when it would not fit in a frame (a directory
/// of very many long keys): its owner then seeds it once a request for it reaches it.
fn with_seed(frame: Frame, t: &SeedTorrent) -> Frame {
    let layers: usize = t.v2.iter().flatten().map(|f| f.layer.len() + 8).sum();
    let size: usize = t.info.len()
        + layers
        + t.files
            .iter()
            .map(|f| {
                let o = &f.object;
                let version = o.version_id.as_ref().map_or(0, |v| v.len());
                o.bucket.len() + o.key.len() + f.etag.len() + version + 32
            })
            .sum::<usize>();
    if size > MAX_FRAME - FRAME_HEADROOM {
        return frame;
    }
    let files = t.files.iter().map(file_value).collect();
    let frame = frame
        .with_bytes("ih", t.info_hash.to_vec())
        .with_bytes("info", t.info.to_vec())
        .with("files", Value::List(files));
    // v2: each file's piece layer (empty for a file of one piece, or without a root).
    match t.v2.is_empty() {
        true => frame,
        false => {
            let layer = |f: &Option<super::hashes::V2File>| {
                Value::Bytes(f.as_ref().map_or(Vec::new(), |f| f.layer.to_vec()))
            };
            frame.with("layers", Value::List(t.v2.iter().map(layer).collect()))
        }
    }
}

fn file_value(file: &SeedFile) -> Value {
    let mut d = BTreeMap::new();
    let o = &file.object;
    d.insert(b"b".to_vec(), Value::bytes(o.bucket.as_bytes()));
    d.insert(b"k".to_vec(), Value::bytes(o.key.as_bytes()));
    d.insert(b"e".to_vec(), Value::bytes(file.etag.as_bytes()));
    if let Some(v) = &o.version_id {
        d.insert(b"v".to_vec(), Value::bytes(v.as_bytes()));
    }
    Value::Dict(d)
}

fn file_of(value: &Value) -> Option<SeedFile> {
    let text = |name: &str| std::str::from_utf8(value.get(name)?.as_bytes()?).ok();
    Some(SeedFile {
        object: ObjectRef {
            bucket: text("b")?.to_string(),
            key: text("k")?.to_string(),
            version_id: text("v").map(str::to_string),
        },
        etag: text("e")?.to_string(),
    })
}

/// The seed a sibling described, if its `info` is one, names as many files (and v2 layers
/// that hash to their roots), and hashes to its `ih`.
fn seed_of(frame: &Frame) -> Option<SeedTorrent> {
    let files = frame
        .list("files")?
        .iter()
        .map(file_of)
        .collect::<Option<Vec<_>>>()?;
    let layers = match frame.list("layers") {
        Some(list) => list
            .iter()
            .map(|l| Some(Bytes::copy_from_slice(l.as_bytes()?)))
            .collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    let info = Bytes::copy_from_slice(frame.bytes("info")?);
    let seed = SeedTorrent::from_info(info, files, layers)?;
    (frame.bytes("ih") == Some(&seed.info_hash[..])).then_some(seed)
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
    pub fn learn(&self, frame: &Frame) {
        let Some(seed) = seed_of(frame) else {
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
        let frame = Frame::new("peer")
            .with_bytes("ih", info_hash.to_vec())
            .with_bytes("head", head.to_vec());
        let mut sibling = match cluster.send(owner, &frame).await {
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

    /// A peer a sibling relayed: served as if it had dialed here, once it has a slot — of
    /// `max_peers`, and of the sibling's own share (`cluster.max_relayed_per_replica`) — and
    /// the torrent is known here.
    pub async fn serve_relayed(self: Arc<Self>, stream: TcpStream, frame: Frame) {
        let (Some(cluster), Some(from)) = (self.cluster().cloned(), frame.text("from")) else {
            return;
        };
        let head = frame
            .bytes("head")
            .and_then(|h| <[u8; 48]>::try_from(h).ok());
        let ih = frame.bytes("ih").and_then(|h| <[u8; 20]>::try_from(h).ok());
        let (Some(head), Some(ih)) = (head, ih) else {
            return;
        };
        let Some(_share) = self
            .relayed
            .enter(from.to_string(), cluster.max_relayed_per_replica())
        else {
            self.refused("relay share");
            return;
        };
        let Some(_slot) = self.try_peer_slot() else {
            self.refused("slots");
            return;
        };
        if !self.seeds(&ih) && !self.describe(&cluster, from, ih).await {
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
                    let ask = Frame::new("describe").with_bytes("ih", ih.to_vec());
                    match cluster.ask(&sibling, &ask).await {
                        Ok(answer) => seeder.learn(&answer),
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

    /// A sibling's `describe`: the torrent as [`torrent_frame`] gives it, or one without a
    /// seed when it is not seeded here.
    pub fn description(&self, frame: &Frame) -> Frame {
        let ih = frame.bytes("ih").and_then(|h| <[u8; 20]>::try_from(h).ok());
        match ih.and_then(|ih| self.registry.get(&ih)) {
            Some(seed) => torrent_frame(&seed.ids(), Some(&seed)),
            None => Frame::new("torrent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let frame = torrent_frame(&torrent.swarm_ids(), Some(&seed));
        let learned = seed_of(&frame).expect("a v2 seed with its layers");
        assert_eq!(learned.info_hash, torrent.swarm_id());
        assert_eq!(learned.v2_id, seed.v2_id);
        let root = torrent.info.file_tree.as_ref().unwrap().pieces_root;
        assert_eq!(
            learned.v2_file(&root).map(|f| f.layer.clone()),
            Some(Bytes::from(hashes.layer.concat()))
        );
    }
}
