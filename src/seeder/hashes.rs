//! What the seeder knows of a torrent's v2 (BEP 52) hashes: each file's `pieces root` and
//! piece layer. It checks piece data read from the backend when there are no v1 hashes
//! (a v2-only torrent), and answers peers' hash requests (a v2 magnet link brings no piece
//! layers).

use std::sync::OnceLock;

use bytes::Bytes;

use crate::torrent::merkle::Hash;
use crate::torrent::piece_tree::{piece_root, HashRange, PieceTree};
use crate::torrent::Torrent;

/// One file's v2 description.
pub struct V2File {
    pub root: Hash,
    /// One 32-byte hash per piece; empty for a file of one piece or less.
    pub layer: Bytes,
    length: u64,
    /// Built when a peer first asks for hashes of this file.
    tree: OnceLock<Option<PieceTree>>,
}

impl V2File {
    pub fn new(root: Hash, layer: Bytes, length: u64) -> V2File {
        V2File {
            root,
            layer,
            length,
            tree: OnceLock::new(),
        }
    }

    /// Whether the layer (if any) hashes up to the root: a described layer must.
    pub fn is_consistent(&self, piece_length: u64) -> bool {
        match self.length.div_ceil(piece_length) {
            0 | 1 => self.layer.is_empty(),
            _ => PieceTree::new(self.length, piece_length, &self.root, &self.layer).is_some(),
        }
    }

    /// Whether `data`, this file's bytes of its piece `at` (its `at`-th), are that piece.
    pub fn verifies(&self, at: u64, data: &[u8], piece_length: u64) -> bool {
        let small = self.length <= piece_length;
        let got = piece_root(data, piece_length, small);
        match small {
            true => got == self.root,
            false => {
                let at = at as usize * 32;
                self.layer.get(at..at + 32) == Some(&got[..])
            }
        }
    }

    /// The hashes (then uncles) for `range`, or `None` for a reject.
    pub fn answer(&self, range: &HashRange, piece_length: u64) -> Option<Vec<Hash>> {
        let tree = self
            .tree
            .get_or_init(|| PieceTree::new(self.length, piece_length, &self.root, &self.layer));
        tree.as_ref()?.hashes(range)
    }
}

/// The v2 description of each of `torrent`'s files, in layout order; empty for v1.
pub fn of_torrent(torrent: &Torrent) -> Vec<Option<V2File>> {
    let info = &torrent.info;
    let describe = |tree: Option<&crate::torrent::FileTree>, length: u64| {
        tree.map(|t| V2File::new(t.pieces_root, Bytes::from(t.piece_layer.clone()), length))
    };
    if !info.format().has_v2() {
        return Vec::new();
    }
    match info.files.is_empty() {
        true => vec![describe(info.file_tree.as_ref(), info.length)],
        false => info
            .files
            .iter()
            .map(|f| describe(f.tree.as_ref(), f.length))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use sha1::Digest;

    use super::super::torrents::{Registry, SeedTorrent};
    use crate::s3::ObjectRef;
    use crate::torrent::piece_tree::HashRange;
    use crate::torrent::{FileTree, Format, Info, Layout, PieceHasher, Torrent};

    const P: u64 = 32 * 1024;

    fn made(data: &[u8], format: Format) -> Torrent {
        let length = data.len() as u64;
        let mut hasher = PieceHasher::new(&Layout::single(length, P), length, format);
        hasher.update(data);
        let hashes = hasher.finish();
        let info = Info {
            length,
            piece_length: P,
            pieces: hashes.v1.clone(),
            file_tree: Some(FileTree::from_hashes(&hashes, P)),
            ..Info::fixture()
        };
        Torrent::new(info, Default::default(), None)
    }

    fn seed(torrent: &Torrent) -> SeedTorrent {
        let object = ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
        };
        SeedTorrent::new(torrent, object, "\"e\"".into())
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    /// Piece `i` as a peer gets it: the file's bytes, then zeros to the piece's end.
    fn piece(t: &SeedTorrent, data: &[u8], i: u32) -> Vec<u8> {
        let r = t.layout.piece_range(i);
        let mut p = data[r.start as usize..(r.end as usize).min(data.len())].to_vec();
        p.resize((r.end - r.start) as usize, 0);
        p
    }

    #[test]
    fn a_v2_only_seed_is_known_by_its_v2_id_and_checks_pieces_by_their_tree() {
        let bytes = data(5 * P as usize - 1000);
        let torrent = made(&bytes, Format::V2);
        let t = seed(&torrent);
        let v2: [u8; 32] = sha2::Sha256::digest(&t.info).into();
        assert_eq!(t.info_hash, v2[..20]);
        assert_eq!(t.ids(), vec![t.info_hash]);
        // libtorrent pads a v2 file to a whole last piece.
        assert_eq!(t.layout.piece_size(4), P as u32);
        for i in 0..5 {
            let mut p = piece(&t, &bytes, i);
            assert!(t.verifies(i, &p), "piece {i}");
            p[100] ^= 1;
            assert!(!t.verifies(i, &p), "a changed byte in {i}");
        }
        let mut padded = piece(&t, &bytes, 4);
        *padded.last_mut().unwrap() = 1;
        assert!(!t.verifies(4, &padded), "the pad must be zeros");
        // A sibling's description (info and layers) is the same seed; a forged layer is none.
        let layers = vec![t.v2[0].as_ref().unwrap().layer.clone()];
        let again = SeedTorrent::from_info(t.info.clone(), t.files.clone(), layers.clone())
            .expect("a v2 info with its layer");
        assert_eq!(
            (again.info_hash, again.layout.clone()),
            (t.info_hash, t.layout.clone())
        );
        assert!(again.verifies(2, &piece(&t, &bytes, 2)));
        let mut forged = layers[0].to_vec();
        forged[40] ^= 1;
        let forged = vec![bytes::Bytes::from(forged)];
        assert!(SeedTorrent::from_info(t.info.clone(), t.files.clone(), forged).is_none());
        assert!(SeedTorrent::from_info(t.info.clone(), t.files.clone(), Vec::new()).is_none());
    }

    #[test]
    fn a_small_v2_file_is_checked_against_its_root() {
        let bytes = data(20_000);
        let t = seed(&made(&bytes, Format::V2));
        assert_eq!(t.num_pieces(), 1);
        assert!(t.verifies(0, &piece(&t, &bytes, 0)));
        let mut p = piece(&t, &bytes, 0);
        p[0] ^= 1;
        assert!(!t.verifies(0, &p));
    }

    #[test]
    fn a_hybrid_is_found_by_either_id_and_answers_hash_requests() {
        let bytes = data(9 * P as usize + 5);
        let torrent = made(&bytes, Format::Hybrid);
        let t = seed(&torrent);
        let [v1, v2] = t.ids()[..] else {
            panic!("two ids")
        };
        assert_eq!(v1, torrent.info_hash);
        assert_eq!(Some(v2), t.v2_id);
        // v1 geometry (no pad after the one file), checked by SHA-1.
        assert_eq!(t.layout.length(), bytes.len() as u64);
        assert!(t.verifies(9, &piece(&t, &bytes, 9)));
        let root = torrent.info.file_tree.as_ref().unwrap().pieces_root;
        let file = t.v2_file(&root).expect("its file");
        // The piece layer (16 wide at layer 1) with proof up to the root's children.
        let range = HashRange {
            base: 1,
            index: 0,
            count: 16,
            proof_layers: 3,
        };
        let got = file.answer(&range, P).expect("hashes");
        assert_eq!(got.concat()[..10 * 32], file.layer[..]);
        let below = HashRange { base: 0, ..range };
        assert_eq!(file.answer(&below, P), None, "block hashes are not known");
        let registry = Registry::new();
        assert!(registry.insert(t));
        assert_eq!(registry.get(&v2).map(|t| t.info_hash), Some(v1));
        let named = |id: &[u8; 20]| registry.named_by(&super::super::mse::obfuscated(id));
        assert_eq!((named(&v1), named(&v2)), (Some(v1), Some(v2)));
    }
}
