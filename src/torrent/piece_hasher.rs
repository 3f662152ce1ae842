//! Streaming SHA-1 over fixed-length pieces: memory is one hasher plus 20 bytes per piece,
//! whatever the object's size.

use sha1::{Digest, Sha1};

pub struct PieceHasher {
    piece_length: u64,
    current: Sha1,
    in_piece: u64,
    total: u64,
    pieces: Vec<u8>,
}

impl PieceHasher {
    /// `expected_length` only sizes the output buffer; the hasher accepts any stream.
    pub fn new(piece_length: u64, expected_length: u64) -> Self {
        assert!(piece_length > 0);
        let count = expected_length.div_ceil(piece_length);
        PieceHasher {
            piece_length,
            current: Sha1::new(),
            in_piece: 0,
            total: 0,
            pieces: Vec::with_capacity(usize::try_from(count * 20).unwrap_or(0)),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let room = (self.piece_length - self.in_piece) as usize;
            let take = room.min(data.len());
            self.current.update(&data[..take]);
            self.in_piece += take as u64;
            data = &data[take..];
            if self.in_piece == self.piece_length {
                let digest = std::mem::take(&mut self.current).finalize();
                self.pieces.extend_from_slice(&digest);
                self.in_piece = 0;
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The concatenated 20-byte piece hashes, the last piece short if the data is.
    pub fn finish(mut self) -> Vec<u8> {
        if self.in_piece > 0 {
            self.pieces.extend_from_slice(&self.current.finalize());
        }
        self.pieces
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

    #[test]
    fn matches_whole_piece_hashing_for_any_chunking() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for piece in [16_384usize, 32_768] {
            for chunk in [1usize, 1000, 16_384, 16_385, 99_999, 100_000] {
                let mut h = PieceHasher::new(piece as u64, data.len() as u64);
                for c in data.chunks(chunk) {
                    h.update(c);
                }
                assert_eq!(h.total(), data.len() as u64);
                assert_eq!(
                    h.finish(),
                    reference(&data, piece),
                    "piece {piece} chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn exact_multiple_has_no_empty_tail_piece() {
        let data = vec![7u8; 32_768];
        let mut h = PieceHasher::new(16_384, 32_768);
        h.update(&data);
        assert_eq!(h.finish().len(), 40);
    }

    #[test]
    fn known_digest() {
        let mut h = PieceHasher::new(16_384, 3);
        h.update(b"abc");
        assert_eq!(
            hex::encode(h.finish()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
