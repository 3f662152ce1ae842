//! Piece geometry: where each file lies in a torrent's byte stream, how long a piece is, and
//! which file bytes each piece covers. The only place that knows it; the hasher, the
//! generator, the store entry and the seeder all ask a [`Layout`].
//!
//! A torrent's bytes are its files end to end. When files are piece-aligned (hybrid, BEP 47),
//! every file that does not end on a piece boundary — the last one too, as libtorrent 2.0.8
//! writes them — is followed by a pad of zeros up to the next one; a pad belongs to no
//! object and is never read.

use std::ops::Range;

use super::merkle::BLOCK;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    piece_length: u64,
    /// Each file's place in the torrent's bytes, in order; pads lie between them.
    files: Vec<Range<u64>>,
    /// The end of the last file, or of the pad after it.
    length: u64,
}

/// Part of a piece that lies in one file: `file`'s bytes `range` (offsets in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub file: usize,
    pub range: Range<u64>,
}

impl Layout {
    /// One file of `length` bytes.
    pub fn single(length: u64, piece_length: u64) -> Layout {
        Layout::of_files(&[length], piece_length, false)
    }

    /// Files of these lengths end to end; with `aligned` (v2 and hybrid: BEP 52 pieces
    /// never span files), each begins and ends on a piece boundary (padded).
    pub fn of_files(lengths: &[u64], piece_length: u64, aligned: bool) -> Layout {
        assert!(piece_length >= BLOCK && piece_length.is_power_of_two());
        let mut at = 0u64;
        let files = lengths
            .iter()
            .map(|&len| {
                if aligned {
                    at = at.next_multiple_of(piece_length);
                }
                let file = at..at + len;
                at += len;
                file
            })
            .collect();
        if aligned {
            at = at.next_multiple_of(piece_length);
        }
        Layout {
            piece_length,
            files,
            length: at,
        }
    }

    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Bytes of the torrent, pads between files included.
    pub fn length(&self) -> u64 {
        self.length
    }

    pub fn files(&self) -> &[Range<u64>] {
        &self.files
    }

    pub fn piece_count(&self) -> u32 {
        u32::try_from(self.length.div_ceil(self.piece_length)).unwrap_or(u32::MAX)
    }

    /// The torrent bytes of piece `index` (the last one may be short).
    pub fn piece_range(&self, index: u32) -> Range<u64> {
        let start = (u64::from(index) * self.piece_length).min(self.length);
        start..(start + self.piece_length).min(self.length)
    }

    pub fn piece_size(&self, index: u32) -> u32 {
        let r = self.piece_range(index);
        (r.end - r.start) as u32
    }

    /// BEP 52 blocks in the last piece.
    pub fn last_piece_blocks(&self) -> u64 {
        match self.piece_count() {
            0 => 0,
            n => u64::from(self.piece_size(n - 1)).div_ceil(BLOCK),
        }
    }

    /// Zeros after file `i` up to the next file (or the end).
    pub fn pad_after(&self, i: usize) -> u64 {
        let next = self.files.get(i + 1).map_or(self.length, |f| f.start);
        self.files.get(i).map_or(0, |f| next - f.end)
    }

    /// Pieces holding any of the bytes `first..=last` (clamped to the torrent).
    pub fn pieces_touching(&self, first: u64, last: u64) -> Range<u32> {
        let n = self.piece_count();
        if n == 0 || first >= self.length {
            return n..n;
        }
        let from = (first / self.piece_length) as u32;
        let to = (last.min(self.length - 1) / self.piece_length) as u32;
        from..to + 1
    }

    /// Pieces lying wholly inside the bytes `range`.
    pub fn pieces_within(&self, range: Range<u64>) -> impl Iterator<Item = u32> + '_ {
        let end = range.end.min(self.length);
        let from = range.start.div_ceil(self.piece_length);
        let to = end.div_ceil(self.piece_length);
        (from..to)
            .map(|i| i as u32)
            .filter(move |&i| self.piece_range(i).end <= end)
    }

    /// The file bytes piece `index` covers, file by file; pads are left out.
    pub fn segments(&self, index: u32) -> Vec<Segment> {
        self.segments_in(self.piece_range(index))
    }

    /// The file bytes the torrent bytes `range` cover, file by file; pads and empty files
    /// are left out.
    pub fn segments_in(&self, range: Range<u64>) -> Vec<Segment> {
        let first = self.files.partition_point(|f| f.end <= range.start);
        self.files[first..]
            .iter()
            .enumerate()
            .take_while(|(_, f)| f.start < range.end)
            .filter_map(|(i, f)| {
                let (start, end) = (range.start.max(f.start), range.end.min(f.end));
                (start < end).then(|| Segment {
                    file: first + i,
                    range: start - f.start..end - f.start,
                })
            })
            .collect()
    }

    /// Piece-aligned stretches of at most `streams` (fewer below `min_parallel_bytes`),
    /// covering the torrent: each can be read and hashed on its own.
    pub fn stretches(&self, streams: usize, min_parallel_bytes: u64) -> Vec<Range<u64>> {
        let pieces = u64::from(self.piece_count());
        let streams = if self.length < min_parallel_bytes {
            1
        } else {
            (streams.max(1) as u64).min(pieces)
        };
        let per_stream = pieces.div_ceil(streams.max(1)) * self.piece_length;
        (0..streams)
            .map(|i| (i * per_stream).min(self.length)..((i + 1) * per_stream).min(self.length))
            .filter(|r| !r.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 16_384;

    #[test]
    fn one_file() {
        let l = Layout::single(3 * P + 5, P);
        assert_eq!((l.piece_count(), l.length()), (4, 3 * P + 5));
        assert_eq!(l.piece_size(0), P as u32);
        assert_eq!(l.piece_size(3), 5);
        assert_eq!(l.piece_range(3), 3 * P..3 * P + 5);
        assert_eq!(l.last_piece_blocks(), 1);
        assert_eq!(
            l.segments(1),
            vec![Segment {
                file: 0,
                range: P..2 * P
            }]
        );
        let exact = Layout::single(2 * P, P);
        assert_eq!((exact.piece_count(), exact.piece_size(1)), (2, P as u32));
    }

    #[test]
    fn pieces_touching_and_within_a_byte_range() {
        let l = Layout::single(3 * P + 5, P);
        assert_eq!(l.pieces_touching(0, u64::MAX), 0..4);
        assert_eq!(l.pieces_touching(P - 1, P), 0..2);
        assert_eq!(l.pieces_touching(5 * P, u64::MAX), 4..4);
        let within = |r: Range<u64>| l.pieces_within(r).collect::<Vec<_>>();
        assert_eq!(within(0..3 * P + 5), vec![0, 1, 2, 3]);
        assert_eq!(within(1..2 * P), vec![1]);
        assert_eq!(within(P..2 * P - 1), Vec::<u32>::new());
        assert_eq!(within(3 * P..u64::MAX), vec![3]);
    }

    #[test]
    fn unaligned_files_share_pieces() {
        let l = Layout::of_files(&[P + 10, 0, 20, P], P, false);
        assert_eq!(l.length(), 2 * P + 30);
        assert_eq!(l.piece_count(), 3);
        assert_eq!(
            l.segments(1),
            vec![
                Segment {
                    file: 0,
                    range: P..P + 10
                },
                Segment {
                    file: 2,
                    range: 0..20
                },
                Segment {
                    file: 3,
                    range: 0..P - 30
                },
            ]
        );
        assert_eq!(
            l.segments(2),
            vec![Segment {
                file: 3,
                range: P - 30..P
            }]
        );
    }

    #[test]
    fn aligned_files_start_on_piece_boundaries_and_pads_are_never_read() {
        let l = Layout::of_files(&[10, 2 * P, 1], P, true);
        assert_eq!(l.files(), &[0..10, P..3 * P, 3 * P..3 * P + 1]);
        assert_eq!(l.length(), 4 * P, "the last file is padded too");
        assert_eq!(l.piece_count(), 4);
        assert_eq!(
            (l.pad_after(0), l.pad_after(1), l.pad_after(2)),
            (P - 10, 0, P - 1)
        );
        assert_eq!(
            l.segments(0),
            vec![Segment {
                file: 0,
                range: 0..10
            }]
        );
        assert_eq!(l.segments(3)[0].file, 2);
    }

    #[test]
    fn stretches_cover_the_torrent_on_piece_boundaries() {
        for (length, streams) in [(10 * P + 7, 4usize), (10 * P, 3), (P / 2, 8), (P, 4)] {
            let l = Layout::single(length, P);
            let s = l.stretches(streams, 1000);
            assert!(s.len() <= streams);
            assert_eq!((s[0].start, s.last().unwrap().end), (0, length));
            for w in s.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            assert!(s.iter().all(|r| r.start % P == 0), "{length}: {s:?}");
        }
        assert_eq!(Layout::single(999, P).stretches(4, 1000), vec![0..999]);
        assert_eq!(Layout::single(4 * P, P).stretches(1, 1000), vec![0..4 * P]);
    }
}
