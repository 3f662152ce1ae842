//! The v2 (BEP 52) description of the one file: the root of its block tree, and the piece
//! layer that clients fetch to verify pieces (`piece layers`, outside `info`).

use super::bencode::Value;
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

/// The files an `info`'s `file tree` lists, in its (BEP 52: byte-wise path) order: each
/// one's length and `pieces root` (none for an empty file). `None` if it is not a file tree.
pub fn listed_files(tree: &Value) -> Option<Vec<(u64, Option<Hash>)>> {
    let mut out = Vec::new();
    walk(tree, 0, &mut out)?;
    Some(out)
}

/// Deeper than any path a torrent needs: a forged tree cannot recurse without end.
const MAX_DEPTH: usize = 64;

fn walk(node: &Value, depth: usize, out: &mut Vec<(u64, Option<Hash>)>) -> Option<()> {
    let Value::Dict(children) = node else {
        return None;
    };
    if depth > MAX_DEPTH || children.is_empty() {
        return None;
    }
    for (name, child) in children {
        if !name.is_empty() {
            walk(child, depth + 1, out)?;
            continue;
        }
        // `""` marks a file: this node is one, and has nothing else.
        if children.len() != 1 || depth == 0 {
            return None;
        }
        let length = u64::try_from(child.get("length")?.as_int()?).ok()?;
        let root = match child.get("pieces root") {
            Some(r) => Some(Hash::try_from(r.as_bytes()?).ok()?),
            None if length == 0 => None,
            None => return None,
        };
        out.push((length, root));
    }
    Some(())
}
