//! Streaming piece hashing in one pass over the bytes: SHA-1 per piece (v1) and/or the
//! SHA-256 block tree per piece (v2), as the format asks. Memory is one hasher of each kind,
//! the current piece's block leaves, and 20 + 32 bytes per piece, whatever the object's size.

use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::merkle::{self, Hash, BLOCK};
use super::{Format, Layout};

pub struct PieceHasher {
    piece_length: u64,
    format: Format,
    total: u64,
    in_piece: u64,
    v1_piece: Sha1,
    v1: Vec<u8>,
    v2_block: Sha256,
    in_block: u64,
    /// Leaves of the piece being hashed.
    leaves: Vec<Hash>,
    layer: Vec<Hash>,
    last_piece_leaves: Vec<Hash>,
}

/// What a stretch of whole pieces hashed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PieceHashes {
    /// v1: 20-byte SHA-1 per piece, concatenated.
    pub v1: Vec<u8>,
    /// v2: the root of each piece's block subtree, padded to a whole piece.
    pub layer: Vec<Hash>,
    /// v2: the leaves of the last piece, for a file of one piece, whose root is taken over
    /// its blocks alone.
    pub last_piece_leaves: Vec<Hash>,
}

impl PieceHashes {
    /// Hashes of consecutive stretches, in order, as one.
    pub fn concat(parts: Vec<PieceHashes>) -> PieceHashes {
        let mut all = PieceHashes::default();
        for p in parts {
            all.v1.extend_from_slice(&p.v1);
            all.layer.extend_from_slice(&p.layer);
            all.last_piece_leaves = p.last_piece_leaves;
        }
        all
    }
}

impl PieceHasher {
    /// Hashes a piece-aligned stretch of `layout`'s bytes; `expected_length` only sizes
    /// the output buffers (the hasher accepts any stream).
    pub fn new(layout: &Layout, expected_length: u64, format: Format) -> Self {
        let piece_length = layout.piece_length();
        let count = usize::try_from(expected_length.div_ceil(piece_length)).unwrap_or(0);
        PieceHasher {
            piece_length,
            format,
            total: 0,
            in_piece: 0,
            v1_piece: Sha1::new(),
            v1: Vec::with_capacity(if format.has_v1() { count * 20 } else { 0 }),
            v2_block: Sha256::new(),
            in_block: 0,
            leaves: Vec::new(),
            layer: Vec::with_capacity(if format.has_v2() { count } else { 0 }),
            last_piece_leaves: Vec::new(),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let room = (self.piece_length - self.in_piece).min(BLOCK - self.in_block);
            let take = (room as usize).min(data.len());
            let (now, rest) = data.split_at(take);
            if self.format.has_v1() {
                self.v1_piece.update(now);
            }
            if self.format.has_v2() {
                self.v2_block.update(now);
            }
            self.in_piece += take as u64;
            self.in_block += take as u64;
            data = rest;
            if self.in_block == BLOCK {
                self.end_block();
            }
            if self.in_piece == self.piece_length {
                self.end_piece();
            }
        }
    }

    fn end_block(&mut self) {
        if self.format.has_v2() {
            let leaf = std::mem::take(&mut self.v2_block).finalize().into();
            self.leaves.push(leaf);
        }
        self.in_block = 0;
    }

    fn end_piece(&mut self) {
        if self.format.has_v1() {
            let digest = std::mem::take(&mut self.v1_piece).finalize();
            self.v1.extend_from_slice(&digest);
        }
        if self.format.has_v2() {
            let blocks = (self.piece_length / BLOCK) as usize;
            self.layer.push(merkle::root(&self.leaves, blocks, 0));
            self.last_piece_leaves = std::mem::take(&mut self.leaves);
        }
        self.in_piece = 0;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The hashes, the last block and piece short if the data is.
    pub fn finish(mut self) -> PieceHashes {
        if self.in_block > 0 {
            self.end_block();
        }
        if self.in_piece > 0 {
            self.end_piece();
        }
        PieceHashes {
            v1: self.v1,
            layer: self.layer,
            last_piece_leaves: self.last_piece_leaves,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8], piece: usize) -> Vec<u8> {
        data.chunks(piece)
            .flat_map(|c| Sha1::digest(c).to_vec())
            .collect()
    }

    fn hash(data: &[u8], piece: u64, chunk: usize, format: Format) -> PieceHashes {
        let layout = Layout::single(data.len().max(1) as u64, piece);
        let mut h = PieceHasher::new(&layout, data.len() as u64, format);
        for c in data.chunks(chunk) {
            h.update(c);
        }
        assert_eq!(h.total(), data.len() as u64);
        h.finish()
    }

    #[test]
    fn matches_whole_piece_hashing_for_any_chunking() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for piece in [16_384usize, 32_768] {
            for chunk in [1usize, 1000, 16_384, 16_385, 99_999, 100_000] {
                let h = hash(&data, piece as u64, chunk, Format::V1);
                assert_eq!(h.v1, reference(&data, piece), "piece {piece} chunk {chunk}");
                assert!(h.layer.is_empty());
            }
        }
    }

    #[test]
    fn v2_layer_is_the_padded_block_tree_of_each_piece() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 241) as u8).collect();
        let piece = 65_536u64;
        let leaves: Vec<Hash> = data.chunks(BLOCK as usize).map(merkle::sha256).collect();
        let expected = vec![
            merkle::root(&leaves[..4], 4, 0),
            merkle::root(&leaves[4..], 4, 0),
        ];
        for chunk in [1000usize, 16_384, 100_000] {
            let h = hash(&data, piece, chunk, Format::Hybrid);
            assert_eq!(h.layer, expected, "chunk {chunk}");
            assert_eq!(h.last_piece_leaves, leaves[4..].to_vec());
            assert_eq!(h.v1, reference(&data, piece as usize));
        }
        assert!(hash(&data, piece, 4096, Format::V2).v1.is_empty());
    }

    #[test]
    fn exact_multiple_has_no_empty_tail_piece() {
        let h = hash(&[7u8; 32_768], 16_384, 32_768, Format::Hybrid);
        assert_eq!((h.v1.len(), h.layer.len()), (40, 2));
    }

    #[test]
    fn known_digest() {
        let h = hash(b"abc", 16_384, 3, Format::V1);
        assert_eq!(
            hex::encode(h.v1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
