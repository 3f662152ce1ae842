//! BEP 52 Merkle trees: SHA-256 leaves over 16 KiB blocks, padded to a power of two with
//! zero hashes (32 zero bytes for a missing leaf, the hash of two pads above it), never with
//! hashes of zero bytes.

use sha2::{Digest, Sha256};

/// v2 leaves cover this many bytes each (the last block of a file may be shorter).
pub const BLOCK: u64 = 16 * 1024;

pub type Hash = [u8; 32];

pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

pub fn parent(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash standing for a missing subtree of `2^height` leaves.
pub fn pad(height: u32) -> Hash {
    (0..height).fold([0; 32], |p, _| parent(&p, &p))
}

/// The root over `layer` (hashes of subtrees `2^height` leaves tall), padded with `pad(height)`
/// to `width` entries, a power of two at least `layer.len()`.
pub fn root(layer: &[Hash], width: usize, height: u32) -> Hash {
    debug_assert!(width.is_power_of_two() && width >= layer.len());
    let mut level: Vec<Hash> = layer.to_vec();
    let mut filler = pad(height);
    let mut width = width;
    while width > 1 {
        level = (0..width / 2)
            .map(|i| {
                let at = |j: usize| level.get(j).copied().unwrap_or(filler);
                parent(&at(2 * i), &at(2 * i + 1))
            })
            .take(level.len().div_ceil(2).max(1))
            .collect();
        filler = parent(&filler, &filler);
        width /= 2;
    }
    level.first().copied().unwrap_or(filler)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leaf_is_its_own_root() {
        let leaf = sha256(b"abc");
        assert_eq!(root(&[leaf], 1, 0), leaf);
    }

    #[test]
    fn missing_leaves_are_zero_hashes() {
        let (a, b, c) = (sha256(b"a"), sha256(b"b"), sha256(b"c"));
        let expected = parent(&parent(&a, &b), &parent(&c, &[0; 32]));
        assert_eq!(root(&[a, b, c], 4, 0), expected);
        // Padding a layer of piece hashes uses the pad of a whole piece's subtree.
        let p = pad(2);
        assert_eq!(
            p,
            parent(&parent(&[0; 32], &[0; 32]), &parent(&[0; 32], &[0; 32]))
        );
        assert_eq!(root(&[a], 2, 2), parent(&a, &p));
    }
}
