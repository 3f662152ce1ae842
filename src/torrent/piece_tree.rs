//! One file's BEP 52 hash tree above its piece layer, for answering peers' `hash request`s
//! (a v2 magnet link brings no `piece layers`; libtorrent asks for them, 512 pieces at a
//! time, with the uncle hashes that tie them to the file's `pieces root`).
//!
//! Layers are numbered from the leaves: layer 0 holds the 16 KiB block hashes, layer
//! `log2(piece length / 16 KiB)` the piece layer. Only the piece layer and the layers above
//! it are known (block hashes would take reading the file), so requests below it are
//! refused.

use super::merkle::{self, Hash, BLOCK};

/// A `hash request`: `count` hashes of layer `base` from `index` on, and the uncles of up to
/// `proof_layers` layers above it that are not implied by the hashes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRange {
    pub base: u32,
    pub index: u32,
    pub count: u32,
    pub proof_layers: u32,
}

/// Hashes answered at most per request (libtorrent's own bound: 512 pieces are asked for at
/// once; 8192 block hashes are a 128 MiB piece).
pub const MAX_HASHES: u32 = 8192;

#[derive(Debug)]
pub struct PieceTree {
    /// Layer `piece_layer + i` of the tree, padded to a power of two; the last is the root.
    layers: Vec<Vec<Hash>>,
    /// The piece layer's number (see the module's doc).
    piece_layer: u32,
}

impl PieceTree {
    /// The tree of a file of `length` bytes in pieces of `piece_length`, from its piece
    /// layer (one 32-byte hash per piece, concatenated), if it hashes up to `root`. `None`
    /// for a file of one piece or less (its root is all there is: nothing to ask for) or a
    /// layer that does not match.
    pub fn new(length: u64, piece_length: u64, root: &Hash, layer: &[u8]) -> Option<PieceTree> {
        let pieces = length.div_ceil(piece_length);
        if pieces <= 1 || layer.len() as u64 != 32 * pieces {
            return None;
        }
        let piece_layer = (piece_length / BLOCK).trailing_zeros();
        let hashes: Vec<Hash> = layer
            .chunks_exact(32)
            .map(|h| h.try_into().expect("32 bytes"))
            .collect();
        let width = hashes.len().next_power_of_two();
        let mut level = hashes;
        level.resize(width, merkle::pad(piece_layer));
        let mut layers = vec![level];
        while layers.last().expect("one").len() > 1 {
            let below = layers.last().expect("one");
            let above = below
                .chunks_exact(2)
                .map(|p| merkle::parent(&p[0], &p[1]))
                .collect();
            layers.push(above);
        }
        (layers.last().expect("one")[0] == *root).then_some(PieceTree {
            layers,
            piece_layer,
        })
    }

    /// Layers in the whole tree, the leaves' not counted (the root is at this height).
    fn height(&self) -> u32 {
        self.piece_layer + self.layers.len() as u32 - 1
    }

    /// The answer to `r`: its hashes, then the uncles proving them; `None` (a `hash reject`)
    /// for a range outside the tree, below the piece layer, or too long.
    pub fn hashes(&self, r: &HashRange) -> Option<Vec<Hash>> {
        let height = self.height();
        let valid = r.count > 0
            && r.count <= MAX_HASHES
            && r.base >= self.piece_layer
            && r.base < height
            && r.proof_layers < height - r.base;
        if !valid {
            return None;
        }
        let layer = &self.layers[(r.base - self.piece_layer) as usize];
        let end = r.index.checked_add(r.count)? as usize;
        if end > layer.len() {
            return None;
        }
        let mut out = layer[r.index as usize..end].to_vec();
        // The hashes themselves give the subtree they fill; above it, one uncle per layer
        // (as libtorrent counts them: a single hash brings no sibling of its own).
        let implied = r.count.next_power_of_two().trailing_zeros().max(1);
        for up in implied..=r.proof_layers {
            let level = (r.base + up - self.piece_layer) as usize;
            let ancestor = (r.index >> up) as usize;
            out.push(self.layers[level][ancestor ^ 1]);
        }
        Some(out)
    }

    /// The root a file of `length` bytes whose block hashes are `leaves` has, when it is one
    /// piece or less (its tree is as wide as its blocks).
    pub fn small_file_root(leaves: &[Hash]) -> Hash {
        merkle::root(leaves, leaves.len().next_power_of_two().max(1), 0)
    }
}

/// The hash of one piece's bytes as v2 knows it: the root of its blocks' tree, padded to a
/// whole piece (`piece_length / 16 KiB` leaves), or only to its own blocks (`small`: a file
/// of one piece, whose root this is).
pub fn piece_root(data: &[u8], piece_length: u64, small: bool) -> Hash {
    let leaves: Vec<Hash> = data.chunks(BLOCK as usize).map(merkle::sha256).collect();
    match small {
        true => PieceTree::small_file_root(&leaves),
        false => merkle::root(&leaves, (piece_length / BLOCK) as usize, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4 * BLOCK;

    fn file(pieces: u64) -> (Vec<u8>, Hash, Vec<u8>) {
        let data: Vec<u8> = (0..pieces * P - 100).map(|i| (i * 7 % 251) as u8).collect();
        let layer: Vec<u8> = data
            .chunks(P as usize)
            .flat_map(|p| piece_root(p, P, false))
            .collect();
        let hashes: Vec<Hash> = layer.chunks(32).map(|h| h.try_into().unwrap()).collect();
        let width = hashes.len().next_power_of_two();
        let root = merkle::root(&hashes, width, 2);
        (data, root, layer)
    }

    /// What a requester does with an answer (an aligned range): fold the hashes into the
    /// subtree they fill, then climb with the uncles; true if that reaches `root`.
    fn proves(r: &HashRange, got: &[Hash], root: &Hash) -> bool {
        let mut level: Vec<Hash> = got[..r.count as usize].to_vec();
        let mut index = r.index as usize;
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|p| merkle::parent(&p[0], &p[1]))
                .collect();
            index >>= 1;
        }
        let mut node = level[0];
        for uncle in &got[r.count as usize..] {
            node = match index & 1 {
                0 => merkle::parent(&node, uncle),
                _ => merkle::parent(uncle, &node),
            };
            index >>= 1;
        }
        node == *root
    }

    #[test]
    fn piece_layer_ranges_come_with_the_uncles_that_prove_them() {
        let (_, root, layer) = file(11);
        let tree = PieceTree::new(11 * P - 100, P, &root, &layer).expect("a matching layer");
        // 11 pieces: a piece layer 16 wide at layer 2, the root at layer 6.
        assert_eq!(tree.height(), 6);
        for (index, count) in [(0, 16), (0, 8), (8, 8), (4, 4), (10, 2), (0, 2)] {
            let r = HashRange {
                base: 2,
                index,
                count,
                proof_layers: 3,
            };
            let got = tree.hashes(&r).expect("a valid range");
            let implied = count.trailing_zeros().max(1);
            assert_eq!(
                got.len() as u32,
                count + (r.proof_layers + 1).saturating_sub(implied)
            );
            if index + count <= 11 {
                let want: Vec<Hash> = layer[index as usize * 32..(index + count) as usize * 32]
                    .chunks(32)
                    .map(|h| h.try_into().unwrap())
                    .collect();
                assert_eq!(got[..count as usize], want[..]);
            }
            // Proof up to the root's children: it must fold to the root.
            assert!(proves(&r, &got, &root), "{index}+{count}");
        }
        // Beyond the real pieces: pad hashes of whole pieces.
        let pads = tree
            .hashes(&HashRange {
                base: 2,
                index: 12,
                count: 4,
                proof_layers: 0,
            })
            .unwrap();
        assert!(pads.iter().all(|h| *h == merkle::pad(2)));
    }

    #[test]
    fn bad_ranges_and_layers_are_refused() {
        let (_, root, layer) = file(5);
        let tree = PieceTree::new(5 * P - 100, P, &root, &layer).unwrap();
        let r = |base, index, count, proof_layers| HashRange {
            base,
            index,
            count,
            proof_layers,
        };
        for bad in [
            r(0, 0, 4, 0),        // block hashes: not known
            r(2, 0, 0, 0),        // nothing
            r(2, 7, 2, 0),        // past the layer (8 wide)
            r(2, u32::MAX, 2, 0), // overflow
            r(2, 0, 8, 3),        // proof past the root's children
            r(5, 0, 1, 0),        // the root's layer
            r(2, 0, MAX_HASHES + 1, 0),
        ] {
            assert_eq!(tree.hashes(&bad), None, "{bad:?}");
        }
        assert!(tree.hashes(&r(2, 0, 8, 2)).is_some());
        // A layer that is not the file's, or a file of one piece: no tree.
        let mut forged = layer.clone();
        forged[0] ^= 1;
        assert!(PieceTree::new(5 * P - 100, P, &root, &forged).is_none());
        assert!(PieceTree::new(5 * P - 100, P, &root, &layer[..128]).is_none());
        assert!(PieceTree::new(P, P, &root, &layer[..32]).is_none());
    }
}
