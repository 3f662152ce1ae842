//! The torrent format: bencode, piece hashing, piece length choice, and the metainfo file.

pub mod bencode;
mod metainfo;
mod piece_hasher;
mod piece_length;

pub use metainfo::{Info, Metainfo};
pub use piece_hasher::PieceHasher;
pub use piece_length::PieceLength;
