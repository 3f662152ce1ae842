//! The seeder among replicas (`[cluster]`): a peer connection for a torrent another replica
//! owns is relayed to that owner whole (its seeder alone then sees the torrent's peers and
//! reads each piece from the origin once); a torrent offered here is described to every
//! sibling, so whichever becomes its owner can seed it.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::cluster::{Cluster, Frame, Member};
use crate::s3::ObjectRef;
use crate::torrent::bencode::Value;

use super::peer;
use super::torrents::{SeedFile, SeedTorrent};
use super::Seeder;

/// Bytes buffered each way in a relayed peer connection.
const RELAY_BUFFER: usize = 256 * 1024;

/// How a torrent is described to siblings: `ids` (what the tracker knows it by), and, when
/// it is seeded, what seeding it takes (`ih`, the object, its ETag and `info`).
pub fn torrent_frame(ids: &[[u8; 20]], seed: Option<&SeedTorrent>) -> Frame {
    let ids = ids.iter().map(|id| Value::Bytes(id.to_vec())).collect();
    let frame = Frame::new("torrent").with("ids", Value::List(ids));
    // A one-object seed is described; a directory's owner seeds it once a request for its
    // torrent reaches it.
    match seed.and_then(|t| Some((t, t.single()?))) {
        Some((t, file)) => with_seed(frame, t, file),
        None => frame,
    }
}

fn with_seed(frame: Frame, t: &SeedTorrent, file: &SeedFile) -> Frame {
    let frame = frame
        .with_bytes("ih", t.info_hash.to_vec())
        .with_bytes("bucket", file.object.bucket.as_bytes())
        .with_bytes("key", file.object.key.as_bytes())
        .with_bytes("etag", file.etag.as_bytes())
        .with_bytes("info", t.info.to_vec());
    match &file.object.version_id {
        Some(v) => frame.with_bytes("version", v.as_bytes()),
        None => frame,
    }
}

/// The seed a sibling described, if its `info` is one and hashes to its `ih`.
fn seed_of(frame: &Frame) -> Option<SeedTorrent> {
    let object = ObjectRef {
        bucket: frame.text("bucket")?.to_string(),
        key: frame.text("key")?.to_string(),
        version_id: frame.text("version").map(str::to_string),
    };
    let info = Bytes::copy_from_slice(frame.bytes("info")?);
    let etag = frame.text("etag")?.to_string();
    let seed = SeedTorrent::from_info(info, object, etag)?;
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
        let info_hash = seed.info_hash;
        if self.registry.insert(seed) {
            if let (Some(tracker), Some(addr)) = (&self.tracker, self.public_addr) {
                tracker.add_seed(info_hash, addr);
            }
        }
    }

    /// Hands a peer connection to the torrent's owner: `head` (the handshake up to the
    /// infohash) and everything after it. `Err` gives the connection back when the owner
    /// cannot be reached, for this replica to serve.
    pub(super) async fn relay(
        &self,
        cluster: &Cluster,
        owner: &Member,
        mut client: TcpStream,
        head: [u8; 48],
        info_hash: [u8; 20],
    ) -> Result<(), TcpStream> {
        let frame = Frame::new("peer")
            .with_bytes("ih", info_hash.to_vec())
            .with_bytes("head", head.to_vec());
        let seed = self.registry.get(&info_hash);
        let frame = match seed.as_ref().and_then(|t| Some((t, t.single()?))) {
            Some((t, file)) => with_seed(frame, t, file),
            None => frame,
        };
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

    /// A peer a sibling relayed: learns the torrent if the frame describes it, then serves
    /// the connection as if the peer had dialed here.
    pub async fn serve_relayed(self: Arc<Self>, stream: TcpStream, frame: Frame) {
        self.learn(&frame);
        let Some(head) = frame
            .bytes("head")
            .and_then(|h| <[u8; 48]>::try_from(h).ok())
        else {
            return;
        };
        // Relayed peers count against `max_peers` like any.
        let Some(_slot) = self.try_peer_slot() else {
            return;
        };
        self.metrics.peers.inc();
        if let Err(e) = peer::serve_after_head(stream, head, self.clone()).await {
            tracing::debug!(target: "s3torrent::seeder", error = %e, "relayed peer closed");
        }
        self.metrics.peers.dec();
    }
}
