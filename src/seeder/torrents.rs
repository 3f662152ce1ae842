//! The torrents this sidecar seeds, by infohash, and how far each piece has spread.
//!
//! Pieces are revealed to peers one at a time in the spirit of BEP 16 (super-seeding): each
//! peer is shown the pieces that have left the origin least and that the swarm has least,
//! so every piece leaves the origin about once and peers trade the rest among themselves.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;
use sha1::Digest;

use crate::s3::ObjectRef;
use crate::torrent::{Layout, Torrent};

use super::bitset::BitSet;
use super::hashes::{self, V2File};

/// Torrents seeded at most (least recently offered go first).
const MAX_TORRENTS: usize = 10_000;

/// One file of a seeded torrent: the object as it was when the torrent was made (its
/// version, when the backend keeps versions), read with `If-Match: etag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFile {
    pub object: ObjectRef,
    pub etag: String,
}

pub struct SeedTorrent {
    /// What it is known by: the v1 infohash, or for a v2-only torrent the v2 one truncated.
    pub info_hash: [u8; 20],
    /// The v2 infohash truncated to 20 bytes (what v2 peers say), for v2 and hybrid ones.
    pub v2_id: Option<[u8; 20]>,
    /// The torrent's files in layout order (one object, or a directory's).
    pub files: Vec<SeedFile>,
    /// Its piece geometry.
    pub layout: Layout,
    /// v1 piece hashes, 20 bytes each: what is read from the backend is checked against them.
    pub pieces: Vec<u8>,
    /// Each file's v2 hashes (v2 and hybrid), in layout order: what v2-only pieces are
    /// checked against, and what hash requests are answered from.
    pub v2: Vec<Option<V2File>>,
    /// The exact `info` bytes, for BEP 9 metadata requests.
    pub info: Bytes,
    retired: AtomicBool,
    /// When the backend last confirmed the ETag (a piece read, or a check).
    confirmed: Mutex<Instant>,
    /// Pieces that have left the origin (read by the seeder, or delivered whole by the web
    /// seed): they are in the swarm.
    left_origin: Mutex<BitSet>,
    /// Web-seed range requests for this object under way, with the pieces they reserve.
    webseeds: Mutex<Webseeds>,
    spread: Mutex<Spread>,
}

#[derive(Default)]
struct Webseeds {
    next: u64,
    live: Vec<Reservation>,
}

/// A web-seed request's claim on pieces `from..=to` while it runs, for at most the slot
/// term, and only while its client reads: one whose response has not moved for
/// [`WEBSEED_STALLED`] holds nothing (its slot goes to clients that read).
struct Reservation {
    id: u64,
    at: Instant,
    /// When bytes of its response last went out.
    moved: Instant,
    from: u32,
    to: u32,
}

/// A web-seed response that has not moved for this long no longer holds its slot.
const WEBSEED_STALLED: Duration = Duration::from_secs(5);

impl Reservation {
    fn holds(&self, term: Duration) -> bool {
        self.at.elapsed() < term && self.moved.elapsed() < WEBSEED_STALLED
    }
}

/// Per piece: how often it left the origin, and how many peers said they have it.
struct Spread {
    uploaded: Vec<u32>,
    seen: Vec<u32>,
}

impl Spread {
    /// How spread piece `i` is; reveals go to the least (uploads count double).
    fn rank(&self, i: u32) -> u32 {
        2 * self.uploaded[i as usize] + self.seen[i as usize]
    }
}

/// The layout a multi-file v1 `files` list describes: its files' lengths, and pads (BEP 47,
/// `attr` `p`) exactly where an aligned layout of them puts them, or none at all.
fn layout_of_files(
    files: &crate::torrent::bencode::Value,
    piece_length: u64,
    aligned: bool,
) -> Option<Layout> {
    let crate::torrent::bencode::Value::List(entries) = files else {
        return None;
    };
    let mut listed = Vec::with_capacity(entries.len());
    for entry in entries {
        let length = u64::try_from(entry.get("length")?.as_int()?).ok()?;
        let pad = entry
            .get("attr")
            .and_then(|a| a.as_bytes())
            .is_some_and(|a| a.contains(&b'p'));
        listed.push((length, pad));
    }
    let lengths: Vec<u64> = listed.iter().filter(|f| !f.1).map(|f| f.0).collect();
    let layout = Layout::of_files(&lengths, piece_length, aligned);
    let mut expected = Vec::with_capacity(listed.len());
    for (i, &length) in lengths.iter().enumerate() {
        expected.push((length, false));
        match layout.pad_after(i) {
            0 => {}
            pad => expected.push((pad, true)),
        }
    }
    (expected == listed).then_some(layout)
}

/// A seeded torrent's description, whichever way it came.
struct Described {
    info_hash: [u8; 20],
    v2_id: Option<[u8; 20]>,
    files: Vec<SeedFile>,
    layout: Layout,
    pieces: Vec<u8>,
    v2: Vec<Option<V2File>>,
    info: Bytes,
}

/// The v2 files `listed` in a file tree, given their piece layers: as many files as
/// `layout`, of the same lengths, each layer hashing up to its root. A hybrid described
/// without layers is seeded without them (hash requests are then refused).
fn v2_of(
    listed: &[(u64, Option<crate::torrent::merkle::Hash>)],
    layout: &Layout,
    layers: Vec<Bytes>,
    hybrid: bool,
) -> Option<Vec<Option<V2File>>> {
    let same_files = listed.len() == layout.files().len()
        && listed
            .iter()
            .zip(layout.files())
            .all(|(f, r)| f.0 == r.end - r.start);
    if !same_files {
        return None;
    }
    if layers.is_empty() && hybrid {
        return Some(Vec::new());
    }
    if layers.len() != listed.len() {
        return None;
    }
    let piece_length = layout.piece_length();
    let mut v2 = Vec::with_capacity(listed.len());
    for (&(length, root), layer) in listed.iter().zip(layers) {
        let file = root.map(|r| V2File::new(r, layer, length));
        if file
            .as_ref()
            .is_some_and(|f| !f.is_consistent(piece_length))
        {
            return None;
        }
        v2.push(file);
    }
    Some(v2)
}

impl SeedTorrent {
    /// Seeds `torrent` of `object` as it was at `etag`.
    pub fn new(torrent: &Torrent, object: ObjectRef, etag: String) -> SeedTorrent {
        Self::of_files(torrent, vec![SeedFile { object, etag }])
    }

    /// Seeds `torrent` (v1, hybrid or v2) whose files, in layout order, are `files`.
    pub fn of_files(torrent: &Torrent, files: Vec<SeedFile>) -> SeedTorrent {
        let info = &torrent.info;
        let encoded = Bytes::from(info.to_value().encode());
        let ids = torrent.swarm_ids();
        let v2_id = info
            .format()
            .has_v2()
            .then(|| *ids.last().expect("a v2 id"));
        Self::of(Described {
            info_hash: ids[0],
            v2_id,
            files,
            layout: info.layout(),
            pieces: info.pieces.clone(),
            v2: hashes::of_torrent(torrent),
            info: encoded,
        })
    }

    /// The object, for a torrent of one.
    pub fn single(&self) -> Option<&SeedFile> {
        match &self.files[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Seeds the torrent whose `info` dictionary is `info` (v1, hybrid or v2; one file or a
    /// directory's), whose files in layout order are `files` and, for v2, piece layers
    /// `layers` (one per file, empty for a file of one piece), as a sibling described it.
    /// `None` if `info` is not one, does not have as many files, or a layer does not hash
    /// up to its file's root.
    pub fn from_info(info: Bytes, files: Vec<SeedFile>, layers: Vec<Bytes>) -> Option<SeedTorrent> {
        let v = crate::torrent::bencode::decode(&info).ok()?;
        let piece_length = u64::try_from(v.get("piece length")?.as_int()?).ok()?;
        if piece_length < crate::torrent::merkle::BLOCK || !piece_length.is_power_of_two() {
            return None;
        }
        let pieces = match v.get("pieces") {
            Some(p) => p.as_bytes()?.to_vec(),
            None => Vec::new(),
        };
        // BEP 52: `meta version` 2 has a file tree (and aligned files).
        let listed = match v.get("meta version") {
            Some(_) => Some(crate::torrent::listed_files(v.get("file tree")?)?),
            None => None,
        };
        let layout = match (v.get("pieces"), v.get("length"), &listed) {
            (Some(_), Some(length), _) => {
                Layout::single(u64::try_from(length.as_int()?).ok()?, piece_length)
            }
            (Some(_), None, _) => layout_of_files(v.get("files")?, piece_length, listed.is_some())?,
            // v2 alone: every file piece-aligned, the last one too (as libtorrent sees it).
            (None, _, Some(listed)) => {
                let lengths: Vec<u64> = listed.iter().map(|f| f.0).collect();
                Layout::of_files(&lengths, piece_length, true)
            }
            (None, _, None) => return None,
        };
        let v2 = match listed {
            None => Vec::new(),
            Some(listed) => v2_of(&listed, &layout, layers, !pieces.is_empty())?,
        };
        let valid = layout.length() > 0
            && files.len() == layout.files().len()
            && (pieces.is_empty() || pieces.len() as u64 == 20 * u64::from(layout.piece_count()));
        if !valid {
            return None;
        }
        let sha256: [u8; 32] = sha2::Sha256::digest(&info).into();
        let v2_id = (!v2.is_empty()).then(|| sha256[..20].try_into().expect("20 bytes"));
        let info_hash = match pieces.is_empty() {
            true => v2_id?,
            false => sha1::Sha1::digest(&info).into(),
        };
        Some(Self::of(Described {
            info_hash,
            v2_id,
            files,
            layout,
            pieces,
            v2,
            info,
        }))
    }

    fn of(d: Described) -> SeedTorrent {
        let count = d.layout.piece_count();
        let n = (count as usize).max(1);
        SeedTorrent {
            info_hash: d.info_hash,
            v2_id: d.v2_id,
            files: d.files,
            layout: d.layout,
            pieces: d.pieces,
            v2: d.v2,
            info: d.info,
            retired: AtomicBool::new(false),
            confirmed: Mutex::new(Instant::now()),
            left_origin: Mutex::new(BitSet::new(count)),
            webseeds: Mutex::default(),
            spread: Mutex::new(Spread {
                uploaded: vec![0; n],
                seen: vec![0; n],
            }),
        }
    }

    /// Every id peers may name it by: the primary one, then the v2 one if it differs.
    pub fn ids(&self) -> Vec<[u8; 20]> {
        let mut ids = vec![self.info_hash];
        ids.extend(self.v2_id.filter(|v2| *v2 != self.info_hash));
        ids
    }

    /// The v2 description of the file whose `pieces root` is `root`.
    pub fn v2_file(&self, root: &[u8; 32]) -> Option<&V2File> {
        self.v2.iter().flatten().find(|f| f.root == *root)
    }

    /// Whether `data` is piece `index`: its SHA-1, or without v1 hashes, its v2 tree.
    pub fn verifies(&self, index: u32, data: &[u8]) -> bool {
        if !self.pieces.is_empty() {
            return sha1::Sha1::digest(data).as_slice() == self.piece_hash(index);
        }
        // A v2 piece lies in one file (then zeros up to the piece's end).
        let piece_length = self.layout.piece_length();
        let mut segments = self.layout.segments(index).into_iter();
        let (Some(segment), None) = (segments.next(), segments.next()) else {
            return false;
        };
        let Some(Some(file)) = self.v2.get(segment.file) else {
            return false;
        };
        let len = (segment.range.end - segment.range.start) as usize;
        let (bytes, pad) = data.split_at(len.min(data.len()));
        let at = segment.range.start / piece_length;
        file.verifies(at, bytes, piece_length) && pad.iter().all(|b| *b == 0)
    }

    pub fn num_pieces(&self) -> u32 {
        self.layout.piece_count()
    }

    /// Bytes in piece `index` (the last one may be short).
    pub fn piece_size(&self, index: u32) -> u32 {
        self.layout.piece_size(index)
    }

    pub fn piece_hash(&self, index: u32) -> &[u8] {
        let at = index as usize * 20;
        &self.pieces[at..at + 20]
    }

    /// The object changed: none of its pieces may be served again.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    pub fn note_left_origin(&self, index: u32) {
        self.left_origin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(index);
    }

    /// Whether piece `index` has left the origin (so a peer may have it from another).
    pub fn has_left_origin(&self, index: u32) -> bool {
        let left = self.left_origin.lock().unwrap_or_else(|p| p.into_inner());
        left.get(index)
    }

    /// Web-seed shaping: a slot for a request for bytes `first..=last`, if fewer than
    /// `limit` (0: any number) requests hold one (a slot lapses after `term`), and none of
    /// the pieces it touches has left the origin or is reserved by another: it reserves
    /// them until it ends. Only what it delivers counts as gone ([`WebseedTicket::delivered`]).
    pub fn enter_webseed(
        self: &Arc<Self>,
        limit: usize,
        term: Duration,
        first: u64,
        last: u64,
    ) -> Option<WebseedTicket> {
        let touched = self.layout.pieces_touching(first, last);
        let (from, to) = (touched.start, touched.end.saturating_sub(1));
        let mut webseeds = self.webseeds.lock().unwrap_or_else(|p| p.into_inner());
        webseeds.live.retain(|r| r.holds(term));
        if limit != 0 && webseeds.live.len() >= limit {
            return None;
        }
        let left = self.left_origin.lock().unwrap_or_else(|p| p.into_inner());
        let reserved = |i: u32| webseeds.live.iter().any(|r| (r.from..=r.to).contains(&i));
        if (from..=to).any(|i| left.get(i) || reserved(i)) {
            return None;
        }
        drop(left);
        webseeds.next += 1;
        let id = webseeds.next;
        let now = Instant::now();
        webseeds.live.push(Reservation {
            id,
            at: now,
            moved: now,
            from,
            to,
        });
        Some(WebseedTicket {
            torrent: self.clone(),
            id,
        })
    }

    pub fn confirm(&self) {
        *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long since the backend last confirmed the object is unchanged.
    pub fn unconfirmed_for(&self) -> Duration {
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    fn spread(&self) -> std::sync::MutexGuard<'_, Spread> {
        self.spread.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn note_uploaded(&self, index: u32) {
        if let Some(u) = self.spread().uploaded.get_mut(index as usize) {
            *u += 1;
        }
    }

    pub fn note_seen(&self, index: u32) {
        if let Some(s) = self.spread().seen.get_mut(index as usize) {
            *s += 1;
        }
    }

    /// A peer that had these pieces left: they are that much rarer now.
    pub fn note_gone(&self, had: &BitSet) {
        let mut spread = self.spread();
        for (i, seen) in spread.seen.iter_mut().enumerate() {
            if had.get(i as u32) {
                *seen = seen.saturating_sub(1);
            }
        }
    }

    /// The next piece to show a peer that has `has` and was shown `shown`: first the pieces
    /// that have not left the origin and no web-seed response is delivering, least spread
    /// first (uploads count double); then pieces in the piece cache (`cached`: sending them
    /// again costs the origin nothing, and keeps the seed's upload busy while peers trade);
    /// after that only pieces no connected peer has (nor is being delivered), so the swarm trades what it holds instead of the
    /// origin sending it again — unless the peer is `starved` (the swarm is not feeding it):
    /// then any piece it lacks, whatever others claim. Ties are broken by `salt`, so peers
    /// see different pieces.
    pub fn pick_reveal(
        &self,
        has: &BitSet,
        shown: &BitSet,
        salt: u32,
        starved: bool,
        cached: impl FnOnce() -> BitSet,
    ) -> Option<u32> {
        let n = self.num_pieces();
        let left = self
            .left_origin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Pieces a web-seed response is delivering now are on their way into the swarm:
        // reading them for a peer as well would take them from the origin twice.
        let reserved: Vec<(u32, u32)> = {
            let webseeds = self.webseeds.lock().unwrap_or_else(|p| p.into_inner());
            let moving = webseeds
                .live
                .iter()
                .filter(|r| r.moved.elapsed() < WEBSEED_STALLED);
            moving.map(|r| (r.from, r.to)).collect()
        };
        let coming = |i: u32| reserved.iter().any(|&(from, to)| (from..=to).contains(&i));
        let spread = self.spread();
        let rank = |i: u32| spread.rank(i);
        let candidates = || {
            (0..n)
                .map(move |k| (k + salt) % n)
                .filter(|&i| !has.get(i) && !shown.get(i))
        };
        candidates()
            .filter(|&i| !left.get(i) && !coming(i))
            .min_by_key(|&i| rank(i))
            .or_else(|| {
                // Asked for only here: the cache is looked through once the origin's first
                // copy is out, not on every reveal.
                let cached = cached();
                candidates()
                    .filter(|&i| cached.get(i))
                    .min_by_key(|&i| rank(i))
            })
            .or_else(|| {
                candidates()
                    .filter(|&i| spread.seen[i as usize] == 0 && !coming(i))
                    .min_by_key(|&i| rank(i))
            })
            .or_else(|| candidates().filter(|_| starved).min_by_key(|&i| rank(i)))
    }
}

/// One web-seed range request under way for a seeded object; its reservation ends with it.
pub struct WebseedTicket {
    torrent: Arc<SeedTorrent>,
    id: u64,
}

impl WebseedTicket {
    /// Bytes of the response went out: its client reads.
    pub fn moved(&self) {
        let mut webseeds = self
            .torrent
            .webseeds
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(r) = webseeds.live.iter_mut().find(|r| r.id == self.id) {
            r.moved = Instant::now();
        }
    }

    /// `bytes` of the object, from offset `start`, reached the client: the pieces they
    /// cover whole are in the swarm now.
    pub fn delivered(&self, start: u64, bytes: u64) {
        let t = &self.torrent;
        let mut left = t.left_origin.lock().unwrap_or_else(|p| p.into_inner());
        for i in t.layout.pieces_within(start..start.saturating_add(bytes)) {
            left.set(i);
        }
    }
}

impl Drop for WebseedTicket {
    fn drop(&mut self) {
        let mut webseeds = self
            .torrent
            .webseeds
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        webseeds.live.retain(|r| r.id != self.id);
    }
}

/// Seeded torrents by infohash, and by object (for web-seed shaping).
pub struct Registry {
    inner: Mutex<Index>,
}

struct Index {
    by_hash: LruCache<[u8; 20], Arc<SeedTorrent>>,
    by_object: HashMap<(String, String), [u8; 20]>,
    /// By `HASH('req2', id)`: how an encrypted (MSE) handshake names a torrent (by any of
    /// its ids: the one it names is the one its keys are made from).
    by_obfuscated: HashMap<[u8; 20], [u8; 20]>,
    /// A hybrid's v2 id, to the v1 infohash it is kept under.
    aliases: HashMap<[u8; 20], [u8; 20]>,
}

impl Index {
    /// The id `id` is kept under.
    fn primary(&self, id: &[u8; 20]) -> [u8; 20] {
        *self.aliases.get(id).unwrap_or(id)
    }
}

impl Registry {
    pub fn new() -> Registry {
        Self::with_capacity(MAX_TORRENTS)
    }

    fn with_capacity(torrents: usize) -> Registry {
        Registry {
            inner: Mutex::new(Index {
                by_hash: LruCache::new(NonZeroUsize::new(torrents.max(1)).expect("non-zero")),
                by_object: HashMap::new(),
                by_obfuscated: HashMap::new(),
                aliases: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a torrent unless the same infohash is already seeded; returns whether it is new.
    pub fn insert(&self, torrent: SeedTorrent) -> bool {
        let mut index = self.lock();
        if index
            .by_hash
            .get(&torrent.info_hash)
            .is_some_and(|t| !t.is_retired())
        {
            return false;
        }
        // Web-seed shaping knows one-object torrents by their object.
        let object = torrent
            .single()
            .map(|f| (f.object.bucket.clone(), f.object.key.clone()));
        let hash = torrent.info_hash;
        let ids = torrent.ids();
        if let Some((old_hash, old)) = index.by_hash.push(hash, Arc::new(torrent)) {
            // Pushed out of the LRU: no longer seeded, so nothing may go on announcing it.
            if old_hash != hash {
                old.retire();
                for id in old.ids() {
                    index.by_obfuscated.remove(&super::mse::obfuscated(&id));
                    index.aliases.remove(&id);
                }
            }
            if let Some(f) = old.single() {
                let old_object = (f.object.bucket.clone(), f.object.key.clone());
                if index.by_object.get(&old_object) == Some(&old.info_hash) {
                    index.by_object.remove(&old_object);
                }
            }
        }
        if let Some(object) = object {
            index.by_object.insert(object, hash);
        }
        for id in ids {
            index.by_obfuscated.insert(super::mse::obfuscated(&id), id);
            if id != hash {
                index.aliases.insert(id, hash);
            }
        }
        true
    }

    /// The id of a live seeded torrent an encrypted handshake names by `HASH('req2', id)`.
    pub fn named_by(&self, obfuscated: &[u8; 20]) -> Option<[u8; 20]> {
        let index = self.lock();
        let id = *index.by_obfuscated.get(obfuscated)?;
        let live = index
            .by_hash
            .peek(&index.primary(&id))
            .is_some_and(|t| !t.is_retired());
        live.then_some(id)
    }

    /// The live torrent known by `id` (either of a hybrid's ids).
    pub fn get(&self, id: &[u8; 20]) -> Option<Arc<SeedTorrent>> {
        let mut index = self.lock();
        let primary = index.primary(id);
        index
            .by_hash
            .get(&primary)
            .filter(|t| !t.is_retired())
            .cloned()
    }

    /// The live seeded torrent that describes `object`: the latest one offered for its
    /// bucket and key, and, when `object` names a version, only if it is of that version.
    pub fn for_object(&self, object: &ObjectRef) -> Option<Arc<SeedTorrent>> {
        let index = self.lock();
        let name = (object.bucket.clone(), object.key.clone());
        let hash = index.by_object.get(&name)?;
        index
            .by_hash
            .peek(hash)
            .filter(|t| !t.is_retired())
            .filter(|t| {
                let version = t.single().and_then(|f| f.object.version_id.as_ref());
                object.version_id.is_none() || version == object.version_id.as_ref()
            })
            .cloned()
    }

    /// Every live seeded torrent (for the periodic public-access check).
    pub fn all(&self) -> Vec<Arc<SeedTorrent>> {
        let index = self.lock();
        index
            .by_hash
            .iter()
            .map(|(_, t)| t.clone())
            .filter(|t| !t.is_retired())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn torrent(pieces: usize) -> SeedTorrent {
        let object = ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
        };
        let info = crate::torrent::Info {
            length: pieces as u64 * P,
            piece_length: P,
            pieces: vec![0; 20 * pieces],
            ..crate::torrent::Info::fixture()
        };
        let torrent = Torrent::new(info, Default::default(), None);
        SeedTorrent::new(&torrent, object, "\"e\"".into())
    }

    const P: u64 = 16_384;

    /// Offsets in hundredths of a piece: `at(150)` is half-way through piece 1.
    fn at(x: u64) -> u64 {
        if x == u64::MAX {
            return x;
        }
        x * P / 100
    }

    const TERM: Duration = Duration::from_secs(30);

    #[test]
    fn a_torrent_pushed_out_of_the_registry_is_retired() {
        let registry = Registry::with_capacity(2);
        let seeds: Vec<SeedTorrent> = (1..=3u8)
            .map(|i| {
                let info = crate::torrent::Info {
                    name: format!("{i}.bin"),
                    ..crate::torrent::Info::fixture()
                };
                let t = Torrent::new(info, Default::default(), None);
                let object = ObjectRef {
                    bucket: "b".into(),
                    key: format!("{i}"),
                    version_id: None,
                };
                SeedTorrent::new(&t, object, "\"e\"".into())
            })
            .collect();
        let hashes: Vec<[u8; 20]> = seeds.iter().map(|s| s.info_hash).collect();
        for s in seeds {
            assert!(registry.insert(s));
        }
        assert!(registry.get(&hashes[0]).is_none(), "the oldest went");
        assert!(registry.get(&hashes[1]).is_some() && registry.get(&hashes[2]).is_some());
        // Encrypted handshakes find the seeded ones by their obfuscated name, and only those.
        let named = |h: &[u8; 20]| registry.named_by(&crate::seeder::mse::obfuscated(h));
        assert_eq!(named(&hashes[2]), Some(hashes[2]));
        assert_eq!(named(&hashes[0]), None);
        assert_eq!(registry.lock().by_obfuscated.len(), 2);
        // Whoever still holds the evicted torrent (its announce loop) sees it retired.
        let index = registry.lock();
        assert!(index
            .by_hash
            .peek(&hashes[1])
            .is_some_and(|t| !t.is_retired()));
    }

    #[test]
    fn a_seed_described_by_its_info_is_the_same_seed() {
        let t = torrent(5);
        let files = t.files.clone();
        let again =
            SeedTorrent::from_info(t.info.clone(), files.clone(), Vec::new()).expect("a v1 info");
        assert_eq!(again.info_hash, t.info_hash);
        assert_eq!(
            (again.layout.clone(), again.pieces.clone()),
            (t.layout.clone(), t.pieces.clone())
        );
        // Pieces that do not match the length are not an info to seed.
        let mut v = crate::torrent::bencode::decode(&t.info).unwrap();
        if let crate::torrent::bencode::Value::Dict(d) = &mut v {
            d.insert(
                b"length".to_vec(),
                crate::torrent::bencode::Value::Int(10 * P as i64),
            );
        }
        let bad = Bytes::from(v.encode());
        assert!(SeedTorrent::from_info(bad, files.clone(), Vec::new()).is_none());
        assert!(
            SeedTorrent::from_info(Bytes::from_static(b"garbage"), files.clone(), Vec::new())
                .is_none()
        );
        let two = vec![files[0].clone(), files[0].clone()];
        assert!(
            SeedTorrent::from_info(t.info.clone(), two, Vec::new()).is_none(),
            "one file, two objects"
        );
    }

    /// A directory's torrent, v1 (files end to end) and hybrid (pads between them), as a
    /// sibling describes it: the same layout and pieces; pads where no aligned layout has
    /// them, or a file fewer, are no seed.
    #[test]
    fn a_directory_seed_described_by_its_info_is_the_same_seed() {
        let lengths = [P + 5, 0, 3 * P, 7];
        for aligned in [false, true] {
            let layout = Layout::of_files(&lengths, P, aligned);
            let tree = aligned.then(|| crate::torrent::FileTree {
                pieces_root: [1; 32],
                piece_layer: Vec::new(),
            });
            let info = crate::torrent::Info {
                name: "dir".into(),
                length: layout.length(),
                piece_length: P,
                pieces: vec![7; 20 * layout.piece_count() as usize],
                files: lengths
                    .iter()
                    .enumerate()
                    .map(|(i, &length)| crate::torrent::InfoFile {
                        path: vec![format!("f{i}")],
                        length,
                        tree: tree.clone().filter(|_| length > 0),
                    })
                    .collect(),
                ..crate::torrent::Info::fixture()
            };
            let torrent = Torrent::new(info, Default::default(), None);
            let files: Vec<SeedFile> = (0..lengths.len())
                .map(|i| SeedFile {
                    object: ObjectRef {
                        bucket: "b".into(),
                        key: format!("dir/f{i}"),
                        version_id: None,
                    },
                    etag: format!("\"{i}\""),
                })
                .collect();
            let made = SeedTorrent::of_files(&torrent, files.clone());
            let described = SeedTorrent::from_info(made.info.clone(), files.clone(), Vec::new())
                .expect("a directory's info");
            assert_eq!(described.info_hash, made.info_hash, "aligned: {aligned}");
            assert_eq!(
                (described.layout, described.pieces, described.files),
                (made.layout.clone(), made.pieces.clone(), made.files.clone())
            );
            assert!(
                SeedTorrent::from_info(made.info.clone(), files[1..].to_vec(), Vec::new())
                    .is_none()
            );
            // The other layout's reading of the same files list: pads missing or stray.
            let mut v = crate::torrent::bencode::decode(&made.info).unwrap();
            if let crate::torrent::bencode::Value::Dict(d) = &mut v {
                match aligned {
                    true => d.remove(&b"meta version"[..]),
                    false => d.insert(
                        b"meta version".to_vec(),
                        crate::torrent::bencode::Value::Int(2),
                    ),
                };
            }
            let other = Bytes::from(v.encode());
            assert!(
                SeedTorrent::from_info(other, files, Vec::new()).is_none(),
                "{aligned}"
            );
        }
    }

    #[test]
    fn pieces_a_web_seed_is_delivering_are_not_revealed() {
        let t = Arc::new(torrent(3));
        let none = BitSet::new(3);
        let nothing = BitSet::new(3);
        let ticket = t
            .enter_webseed(0, TERM, at(0), at(199))
            .expect("0-1 are new");
        let mut shown = BitSet::new(3);
        for _ in 0..3 {
            if let Some(i) = t.pick_reveal(&none, &shown, 0, false, || nothing.clone()) {
                shown.set(i);
            }
        }
        assert_eq!(
            (shown.get(0), shown.get(1), shown.get(2)),
            (false, false, true)
        );
        assert!(
            t.pick_reveal(&none, &shown, 0, true, || nothing.clone())
                .is_some(),
            "unless starved"
        );
        drop(ticket);
        assert!(
            t.pick_reveal(&none, &shown, 0, false, || nothing.clone())
                .is_some(),
            "once it ended"
        );
    }

    #[test]
    fn each_piece_leaves_the_origin_once_when_delivered() {
        let t = Arc::new(torrent(10));
        let a = t
            .enter_webseed(0, TERM, at(0), at(299))
            .expect("pieces 0-2 are new");
        assert!(
            t.enter_webseed(0, TERM, at(150), at(250)).is_none(),
            "1-2 are reserved"
        );
        assert!(
            t.enter_webseed(0, TERM, at(250), at(450)).is_none(),
            "2 is reserved: the whole range waits"
        );
        let b = t
            .enter_webseed(0, TERM, at(300), at(u64::MAX))
            .expect("3.. are new");
        // A dropped read delivers only part: what it did not deliver is free again.
        a.delivered(at(0), at(150));
        drop(a);
        assert!(
            t.enter_webseed(0, TERM, at(0), at(99)).is_none(),
            "piece 0 went out"
        );
        let c = t
            .enter_webseed(0, TERM, at(100), at(299))
            .expect("1-2 were never delivered");
        drop(c);
        // An open-ended read delivered to its end: every piece it covered.
        b.delivered(at(300), at(700));
        drop(b);
        assert!(t.enter_webseed(0, TERM, at(900), at(999)).is_none());
        let fresh = torrent(3);
        fresh.note_left_origin(1);
        let fresh = Arc::new(fresh);
        assert!(
            fresh.enter_webseed(0, TERM, at(100), at(250)).is_none(),
            "piece 1 is out"
        );
        assert!(
            fresh.enter_webseed(0, TERM, at(200), at(250)).is_some(),
            "piece 2 is new"
        );
    }

    #[test]
    fn webseed_slots_are_bounded_and_lapse() {
        let t = Arc::new(torrent(10));
        let a = t.enter_webseed(2, TERM, at(0), at(99));
        let b = t.enter_webseed(2, TERM, at(100), at(199));
        assert!(a.is_some() && b.is_some());
        assert!(
            t.enter_webseed(2, TERM, at(200), at(299)).is_none(),
            "both slots held"
        );
        // Slow readers keep running, but hold their slot (and pieces) only for the term.
        let lapsed = t.enter_webseed(2, Duration::ZERO, at(0), at(99));
        assert!(lapsed.is_some(), "lapsed slots and reservations are free");
        drop((a, b));
    }

    #[test]
    fn reveals_go_to_the_least_spread_piece() {
        let t = torrent(4);
        for i in [0, 1, 3] {
            t.note_uploaded(i);
        }
        let none = BitSet::new(4);
        let nothing = BitSet::new(4);
        assert_eq!(
            t.pick_reveal(&none, &none, 0, false, || nothing.clone()),
            Some(2)
        );
        // Once every piece is out, only what no peer has is shown again.
        for i in 0..4 {
            t.note_left_origin(i);
        }
        let mut shown = BitSet::new(4);
        shown.set(2);
        t.note_seen(0);
        t.note_seen(3);
        assert_eq!(
            t.pick_reveal(&none, &shown, 0, false, || nothing.clone()),
            Some(1)
        );
        let mut holder = BitSet::new(4);
        holder.set(1);
        t.note_seen(1);
        assert_eq!(
            t.pick_reveal(&none, &shown, 0, false, || nothing.clone()),
            None,
            "the swarm has it all"
        );
        t.note_gone(&holder);
        assert_eq!(
            t.pick_reveal(&none, &shown, 0, false, || nothing.clone()),
            Some(1),
            "its holder left"
        );
        t.note_seen(1);
        assert_eq!(
            t.pick_reveal(&none, &shown, 0, false, || nothing.clone()),
            None
        );
        // A piece still in the piece cache costs the origin nothing: it is shown again.
        let mut cached = BitSet::new(4);
        cached.set(3);
        assert_eq!(
            t.pick_reveal(&none, &shown, 0, false, || cached.clone()),
            Some(3)
        );
        assert!(
            t.pick_reveal(&none, &shown, 0, true, || nothing.clone())
                .is_some(),
            "a starved peer is shown what others (say they) have"
        );
    }
}
