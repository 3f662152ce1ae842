//! The v2 (BEP 52) description of the one file: the root of its block tree, and the piece
//! layer that clients fetch to verify pieces (`piece layers`, outside `info`).

use super::merkle::{self, Hash, BLOCK};
use super::piece_hasher::PieceHashes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTree {
    pub pieces_root: Hash,
    /// One 32-byte subtree root per piece, concatenated; empty for a file of one piece,
    /// whose root says everything (BEP 52 leaves it out of `piece layers`, which is then an
    /// empty dictionary).
    pub piece_layer: Vec<u8>,
}

impl FileTree {
    pub fn from_hashes(hashes: &PieceHashes, piece_length: u64) -> FileTree {
        let layer = &hashes.layer;
        if layer.len() <= 1 {
            // One piece: the tree is as wide as the file's own blocks, not a whole piece.
            let leaves = &hashes.last_piece_leaves;
            let width = leaves.len().next_power_of_two();
            return FileTree {
                pieces_root: merkle::root(leaves, width, 0),
                piece_layer: Vec::new(),
            };
        }
        let height = (piece_length / BLOCK).trailing_zeros();
        FileTree {
            pieces_root: merkle::root(layer, layer.len().next_power_of_two(), height),
            piece_layer: layer.concat(),
        }
    }
}
