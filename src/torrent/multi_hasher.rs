//! Hashing many files as one torrent, a piece-aligned stretch of its bytes at a time, so
//! stretches can be hashed side by side: v1 pieces run over the files end to end (and, in a
//! hybrid torrent, over the pad zeros between them); each file's v2 Merkle tree is its own,
//! over its bytes alone, and its piece layer is the pieces of its stretches joined. Memory is
//! one piece hasher of each kind and 20 + 32 bytes per piece, whatever the number or size of
//! the files.

use std::ops::Range;

use super::{FileTree, Format, Layout, PieceHasher, PieceHashes, Segment};

pub struct MultiHasher {
    layout: Layout,
    format: Format,
    /// The file bytes this hasher takes, in order (pads and empty files left out).
    segments: Vec<Segment>,
    /// The segment being hashed, and its bytes so far.
    at: usize,
    in_segment: u64,
    /// v1: the stretch's stream (files and pads).
    v1: Option<PieceHasher>,
    /// v2: the segment being hashed.
    v2: Option<PieceHasher>,
    /// v2: each segment's pieces, by file.
    done: Vec<(usize, PieceHashes)>,
    /// More bytes came than the segments hold.
    overflow: bool,
}

/// What one stretch hashed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StretchHashes {
    /// v1: 20-byte SHA-1 per piece of the stretch.
    pub v1: Vec<u8>,
    /// v2: by file, the hashes of its pieces in the stretch.
    pub files: Vec<(usize, PieceHashes)>,
}

impl MultiHasher {
    /// The whole torrent.
    pub fn new(layout: Layout, format: Format) -> MultiHasher {
        let all = 0..layout.length();
        MultiHasher::stretch(layout, all, format)
    }

    /// The torrent bytes `range` (starting on a piece boundary, as [`Layout::stretches`]
    /// cuts them).
    pub fn stretch(layout: Layout, range: Range<u64>, format: Format) -> MultiHasher {
        let v1 = format
            .has_v1()
            .then(|| PieceHasher::new(&layout, range.end - range.start, Format::V1));
        MultiHasher {
            segments: layout.segments_in(range),
            at: 0,
            in_segment: 0,
            v1,
            v2: None,
            done: Vec::new(),
            overflow: false,
            layout,
            format,
        }
    }

    /// The file bytes this stretch takes, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The next file bytes of the stretch, in order, across segments (a segment ends when
    /// its length is reached).
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.at == self.segments.len() {
                self.overflow = true;
                return;
            }
            let room = self.segment_length() - self.in_segment;
            let (now, rest) = data.split_at((room as usize).min(data.len()));
            self.take(now);
            data = rest;
            if self.in_segment == self.segment_length() {
                self.end_segment();
            }
        }
    }

    fn take(&mut self, data: &[u8]) {
        if let Some(v1) = &mut self.v1 {
            v1.update(data);
        }
        if self.format.has_v2() {
            let (len, piece_length) = (self.segment_length(), self.layout.piece_length());
            let v2 = self.v2.get_or_insert_with(|| {
                PieceHasher::new(&Layout::single(len.max(1), piece_length), len, Format::V2)
            });
            v2.update(data);
        }
        self.in_segment += data.len() as u64;
    }

    fn end_segment(&mut self) {
        let segment = &self.segments[self.at];
        let (file, ends_file) = (
            segment.file,
            segment.range.end == self.file_length(segment.file),
        );
        if let Some(v2) = self.v2.take() {
            self.done.push((file, v2.finish()));
        }
        // The pad up to the next file (or the end) is zeros in the v1 stream; it lies in the
        // file's last piece, so in this stretch.
        if let (Some(v1), true) = (&mut self.v1, ends_file) {
            let zeros = [0u8; 16 * 1024];
            let mut pad = self.layout.pad_after(file);
            while pad > 0 {
                let n = pad.min(zeros.len() as u64) as usize;
                v1.update(&zeros[..n]);
                pad -= n as u64;
            }
        }
        self.at += 1;
        self.in_segment = 0;
    }

    fn segment_length(&self) -> u64 {
        self.segments
            .get(self.at)
            .map_or(0, |s| s.range.end - s.range.start)
    }

    fn file_length(&self, i: usize) -> u64 {
        self.layout.files().get(i).map_or(0, |r| r.end - r.start)
    }

    /// The stretch's hashes; `None` unless it got exactly its bytes.
    pub fn finish(self) -> Option<StretchHashes> {
        if self.at != self.segments.len() || self.overflow {
            return None;
        }
        Some(StretchHashes {
            v1: self.v1.map(|h| h.finish().v1).unwrap_or_default(),
            files: self.done,
        })
    }
}

impl StretchHashes {
    /// Stretches in order, as one torrent: the v1 pieces, and each file's v2 tree (`None` for
    /// v1, and for an empty file).
    pub fn join(
        parts: Vec<StretchHashes>,
        layout: &Layout,
        format: Format,
    ) -> (Vec<u8>, Vec<Option<FileTree>>) {
        let mut v1 = Vec::new();
        let mut by_file: Vec<Vec<PieceHashes>> = vec![Vec::new(); layout.files().len()];
        for part in parts {
            v1.extend_from_slice(&part.v1);
            for (file, hashes) in part.files {
                if let Some(f) = by_file.get_mut(file) {
                    f.push(hashes);
                }
            }
        }
        let trees = by_file
            .into_iter()
            .map(|parts| {
                let whole = PieceHashes::concat(parts);
                (format.has_v2() && !whole.layer.is_empty())
                    .then(|| FileTree::from_hashes(&whole, layout.piece_length()))
            })
            .collect();
        (v1, trees)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};

    const P: u64 = 16_384;

    type Hashed = (Vec<u8>, Vec<Option<FileTree>>);

    fn hash(layout: &Layout, files: &[Vec<u8>], format: Format, streams: usize) -> Hashed {
        let parts = layout
            .stretches(streams, 0)
            .into_iter()
            .map(|range| {
                let mut h = MultiHasher::stretch(layout.clone(), range, format);
                let stream: Vec<u8> = h
                    .segments()
                    .iter()
                    .flat_map(|s| &files[s.file][s.range.start as usize..s.range.end as usize])
                    .copied()
                    .collect();
                for chunk in stream.chunks(1000) {
                    h.update(chunk);
                }
                h.finish().unwrap()
            })
            .collect::<Vec<_>>();
        StretchHashes::join(parts, layout, format)
    }

    #[test]
    fn v1_pieces_run_across_files_and_hybrid_pads_are_zeros() {
        let (a, b) = (vec![1u8; (P + 100) as usize], vec![2u8; 50]);
        let files = vec![a.clone(), b.clone()];
        let stream: Vec<u8> = [a.clone(), b.clone()].concat();
        let expected: Vec<u8> = stream
            .chunks(P as usize)
            .flat_map(|c| Sha1::digest(c).to_vec())
            .collect();
        let unaligned = Layout::of_files(&[P + 100, 50], P, false);
        assert_eq!(hash(&unaligned, &files, Format::V1, 1).0, expected);
        // Hybrid: `a`'s tail piece is padded with zeros before `b` begins, and `b` after.
        let aligned = Layout::of_files(&[P + 100, 50], P, true);
        let got = hash(&aligned, &files, Format::Hybrid, 1);
        let mut padded = a.clone();
        padded.resize(2 * P as usize, 0);
        padded.extend_from_slice(&b);
        padded.resize(3 * P as usize, 0);
        let expected: Vec<u8> = padded
            .chunks(P as usize)
            .flat_map(|c| Sha1::digest(c).to_vec())
            .collect();
        assert_eq!(got.0, expected);
        assert!(
            got.1.iter().all(Option::is_some),
            "both files have a v2 root"
        );
    }

    #[test]
    fn stretches_side_by_side_hash_as_one_pass() {
        let lengths = [3 * P + 7, 0, 5, 4 * P, P, 2 * P + 1];
        let files: Vec<Vec<u8>> = lengths
            .iter()
            .enumerate()
            .map(|(i, &l)| (0..l).map(|x| (x as usize * 7 + i) as u8).collect())
            .collect();
        for (format, aligned) in [
            (Format::V1, false),
            (Format::Hybrid, true),
            (Format::V2, true),
        ] {
            let layout = Layout::of_files(&lengths, P, aligned);
            let one = hash(&layout, &files, format, 1);
            for streams in [2, 3, 5, 64] {
                assert_eq!(
                    hash(&layout, &files, format, streams),
                    one,
                    "{format:?} {streams}"
                );
            }
        }
    }

    #[test]
    fn a_stretch_short_or_long_of_its_bytes_is_refused() {
        let layout = Layout::of_files(&[10, 0, 3], P, false);
        let h = MultiHasher::new(layout.clone(), Format::V2);
        assert_eq!(h.segments().len(), 2, "the empty file has no segment");
        for (fed, whole) in [(12, false), (13, true), (14, false)] {
            let mut h = MultiHasher::new(layout.clone(), Format::V2);
            h.update(&vec![0; fed]);
            assert_eq!(h.finish().is_some(), whole, "{fed} bytes");
        }
    }
}
