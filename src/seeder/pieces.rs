//! Piece data for the seeder: read from the backend with the sidecar's credentials, one
//! ranged GET per piece with `If-Match` on the ETag the torrent describes, checked against the
//! torrent's hashes (SHA-1, or v2's tree) before it is served, kept in an LRU bounded in bytes, and fetched once for
//! any number of peers asking at the same time. A changed object retires its torrent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::common::byte_lru::ByteLru;
use crate::common::flight::{Joined, SingleFlight};
use crate::s3::upstream::{IfMatch, Purpose, Upstream, UpstreamResponse};
use crate::s3::S3Error;
use crate::telemetry::metrics::SeederMetrics;

use super::bitset::BitSet;
use super::torrents::{SeedFile, SeedTorrent};

type Key = ([u8; 20], u32);

/// Cached pieces are served without asking the backend for at most this long; then one
/// `If-Match` read confirms the object is unchanged (or retires the torrent).
const RECONFIRM_AFTER: Duration = Duration::from_secs(10);
/// The single-flight key of a confirmation (no piece has this index).
const CONFIRM: u32 = u32::MAX;

pub struct PieceStore {
    upstream: Arc<Upstream>,
    cache: ByteLru<Key, Bytes>,
    flights: Arc<SingleFlight<Key, Bytes, S3Error>>,
    metrics: Arc<SeederMetrics>,
}

impl PieceStore {
    pub fn new(upstream: Arc<Upstream>, max_bytes: u64, metrics: Arc<SeederMetrics>) -> Self {
        PieceStore {
            upstream,
            cache: ByteLru::new(max_bytes, |_, data| data.len() as u64),
            flights: Arc::new(SingleFlight::new()),
            metrics,
        }
    }

    /// The bytes of piece `index`, verified, and whether this call read them from the
    /// backend (the asking peer is charged for that read).
    pub async fn piece(
        self: &Arc<Self>,
        torrent: &Arc<SeedTorrent>,
        index: u32,
    ) -> Result<(Bytes, bool), S3Error> {
        let key = (torrent.info_hash, index);
        let hit = self.cache.get(&key);
        if let Some(hit) = hit {
            if torrent.unconfirmed_for() > RECONFIRM_AFTER {
                self.confirm(torrent, index).await?;
            }
            self.metrics.piece_cache_hits.inc();
            return Ok((hit, false));
        }
        let (store, torrent) = (self.clone(), torrent.clone());
        let (result, joined) = self
            .flights
            .run(key, || {
                Ok(async move {
                    let data = store.fetch(&torrent, index).await?;
                    store.cache.insert(key, data.clone());
                    Ok(data)
                })
            })
            .await;
        result.map(|data| (data, joined == Joined::Started))
    }

    /// The pieces of `torrent` in the more recently used half of the cache: revealing them
    /// costs the origin nothing, and they are the ones least likely to be evicted before
    /// the peer they are shown to asks for them (the older half could be, and be read again).
    pub fn cached(&self, torrent: &SeedTorrent) -> BitSet {
        let mut cached = BitSet::new(torrent.num_pieces());
        let recent = self.cache.keys_where(|k| k.0 == torrent.info_hash);
        for (_, index) in recent.iter().take(recent.len().div_ceil(2)) {
            cached.set(*index);
        }
        cached
    }

    /// Reads the first byte of the object holding piece `index` with `If-Match`: still
    /// the same object, or retired.
    async fn confirm(
        self: &Arc<Self>,
        torrent: &Arc<SeedTorrent>,
        index: u32,
    ) -> Result<(), S3Error> {
        let (store, t) = (self.clone(), torrent.clone());
        let file = torrent.layout.segments(index).first().map_or(0, |s| s.file);
        let (result, _) = self
            .flights
            .run((torrent.info_hash, CONFIRM), || {
                Ok(async move {
                    let response = store.read(&t, file, "bytes=0-0").await?;
                    let status = response.status();
                    drop(response.small_body(16).await);
                    match status {
                        200 | 206 => {
                            t.confirm();
                            Ok(Bytes::new())
                        }
                        s => Err(S3Error::service_unavailable(format!(
                            "The backend answered {s} to a check."
                        ))),
                    }
                })
            })
            .await;
        result.map(drop)
    }

    /// A ranged read of file `file`'s object as the torrent knows it; a changed object
    /// retires the torrent.
    async fn read(
        &self,
        torrent: &SeedTorrent,
        file: usize,
        range: &str,
    ) -> Result<UpstreamResponse<'_>, S3Error> {
        let SeedFile { object, etag } = &torrent.files[file];
        let range = [("range", range)];
        let read = self
            .upstream
            .get_if_match(Purpose::Seed, object, etag, &range);
        match read.await? {
            IfMatch::Same(response) => Ok(response),
            IfMatch::Changed => {
                torrent.retire();
                Err(S3Error::service_unavailable("The object changed."))
            }
        }
    }

    /// The piece from its objects: one ranged read per object segment, pads as zeros.
    ///
    /// A piece lives in its own anonymous mapping, not on the heap: an evicted piece gives
    /// its pages back when its last reader drops it, whatever the allocator keeps (8 peers
    /// on 256 MiB, 64 MiB cache: peak RSS 99-104 MiB, 99-119 with pieces on the heap).
    async fn fetch(&self, torrent: &SeedTorrent, index: u32) -> Result<Bytes, S3Error> {
        let piece = torrent.layout.piece_range(index);
        let size = (piece.end - piece.start) as usize;
        let mut data = memmap2::MmapMut::map_anon(size)
            .map_err(|e| S3Error::service_unavailable(format!("No memory for a piece: {e}")))?;
        for segment in torrent.layout.segments(index) {
            let at = (torrent.layout.files()[segment.file].start + segment.range.start
                - piece.start) as usize;
            let end = at + (segment.range.end - segment.range.start) as usize;
            self.read_segment(torrent, segment.file, segment.range, &mut data[at..end])
                .await?;
        }
        torrent.confirm();
        torrent.note_left_origin(index);
        // A backend that ignored If-Match can still not make us serve other bytes.
        if !torrent.verifies(index, &data) {
            torrent.retire();
            return Err(S3Error::service_unavailable("The object changed."));
        }
        Ok(Bytes::from_owner(data))
    }

    /// Fills `into` with bytes `range` of file `file` (as long as `into`).
    async fn read_segment(
        &self,
        torrent: &SeedTorrent,
        file: usize,
        range: std::ops::Range<u64>,
        into: &mut [u8],
    ) -> Result<(), S3Error> {
        let len = range.end - range.start;
        let header = format!("bytes={}-{}", range.start, range.end - 1);
        let mut response = self.read(torrent, file, &header).await?;
        let status = response.status();
        let f = &torrent.layout.files()[file];
        let whole = range.start == 0 && len == f.end - f.start;
        if status != 206 && !(status == 200 && whole) {
            response.finish().await;
            return Err(S3Error::service_unavailable(format!(
                "The backend answered {status} to a piece read."
            )));
        }
        let mut filled = 0;
        while let Some(chunk) = response.chunk().await? {
            let Some(to) = into.get_mut(filled..filled + chunk.len()) else {
                return Err(S3Error::upstream_broke(
                    "The backend sent more than the piece.",
                ));
            };
            to.copy_from_slice(&chunk);
            filled += chunk.len();
        }
        response.finish().await;
        self.metrics.backend_bytes.inc_by(len);
        if filled != into.len() {
            torrent.retire();
            return Err(S3Error::service_unavailable("The object changed."));
        }
        Ok(())
    }
}
