//! The torrent format: bencode, the `info` dictionary (v1, v2 or hybrid), the metainfo file
//! around it, piece geometry (`Layout`), piece hashing (SHA-1 pieces, BEP 52 Merkle trees), piece length choice, and
//! the generated torrent as served.

pub mod bencode;
mod file_tree;
mod format;
mod generated;
mod info;
mod layout;
pub mod merkle;
mod metainfo;
mod multi_hasher;
pub mod paths;
mod piece_hasher;
mod piece_length;
pub mod piece_tree;

pub use file_tree::{listed_files, FileTree};
pub use format::Format;
pub use generated::Torrent;
pub use info::{Info, InfoFile};
pub use layout::{Layout, Segment};
pub use metainfo::{Encoded, Metainfo};
pub use multi_hasher::{MultiHasher, StretchHashes};
pub use piece_hasher::{PieceHasher, PieceHashes};
pub use piece_length::PieceLength;
