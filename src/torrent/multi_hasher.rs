//! Hashing many files as one torrent, file by file in layout order: v1 pieces run over the
//! files end to end (and, in a hybrid torrent, over the pad zeros between them); each file's
//! v2 Merkle tree is its own, over its bytes alone. Memory is one piece hasher of each kind
//! and 20 + 32 bytes per piece, whatever the number or size of the files.

use super::{FileTree, Format, InfoFile, Layout, PieceHasher};

pub struct MultiHasher {
    layout: Layout,
    format: Format,
    /// v1: the whole stream (files and pads).
    v1: Option<PieceHasher>,
    /// v2: the file being hashed.
    v2: Option<PieceHasher>,
    /// The file being hashed, and its bytes so far.
    file: usize,
    in_file: u64,
    trees: Vec<Option<FileTree>>,
}

impl MultiHasher {
    pub fn new(layout: Layout, format: Format) -> MultiHasher {
        let v1 = format
            .has_v1()
            .then(|| PieceHasher::new(&layout, layout.length(), Format::V1));
        MultiHasher {
            v1,
            v2: None,
            file: 0,
            in_file: 0,
            trees: Vec::with_capacity(layout.files().len()),
            layout,
            format,
        }
    }

    /// Bytes of the current file (files of length 0 take none: `next_file` passes them).
    pub fn update(&mut self, data: &[u8]) {
        if let Some(v1) = &mut self.v1 {
            v1.update(data);
        }
        if self.format.has_v2() {
            let (len, piece_length) = (self.file_length(self.file), self.layout.piece_length());
            let v2 = self.v2.get_or_insert_with(|| {
                PieceHasher::new(&Layout::single(len.max(1), piece_length), len, Format::V2)
            });
            v2.update(data);
        }
        self.in_file += data.len() as u64;
    }

    /// Ends the current file; `false` if it did not get exactly its length.
    pub fn next_file(&mut self) -> bool {
        let length = self.file_length(self.file);
        if self.in_file != length {
            return false;
        }
        let tree = self
            .v2
            .take()
            .map(|h| FileTree::from_hashes(&h.finish(), self.layout.piece_length()));
        if self.format.has_v2() {
            self.trees.push(tree);
        }
        // The pad up to the next file (or the end) is zeros in the v1 stream.
        let mut pad = self.layout.pad_after(self.file);
        if let Some(v1) = &mut self.v1 {
            let zeros = [0u8; 16 * 1024];
            while pad > 0 {
                let n = pad.min(zeros.len() as u64) as usize;
                v1.update(&zeros[..n]);
                pad -= n as u64;
            }
        }
        self.file += 1;
        self.in_file = 0;
        true
    }

    fn file_length(&self, i: usize) -> u64 {
        self.layout.files().get(i).map_or(0, |r| r.end - r.start)
    }

    /// The v1 pieces and each file's v2 tree (in layout order), once every file ended.
    pub fn finish(self, paths: Vec<Vec<String>>) -> Option<(Vec<u8>, Vec<InfoFile>)> {
        if self.file != self.layout.files().len() || paths.len() != self.file {
            return None;
        }
        let pieces = self.v1.map(|h| h.finish().v1).unwrap_or_default();
        let mut trees = self.trees.into_iter();
        let files = paths
            .into_iter()
            .zip(self.layout.files())
            .map(|(path, r)| InfoFile {
                path,
                length: r.end - r.start,
                tree: trees.next().flatten(),
            })
            .collect();
        Some((pieces, files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};

    const P: u64 = 16_384;

    #[test]
    fn v1_pieces_run_across_files_and_hybrid_pads_are_zeros() {
        let (a, b) = (vec![1u8; (P + 100) as usize], vec![2u8; 50]);
        let stream: Vec<u8> = [a.clone(), b.clone()].concat();
        let v1 = |layout: Layout| {
            let mut h = MultiHasher::new(layout, Format::V1);
            for f in [&a, &b] {
                h.update(f);
                assert!(h.next_file());
            }
            h.finish(vec![vec!["a".into()], vec!["b".into()]])
                .unwrap()
                .0
        };
        let expected: Vec<u8> = stream
            .chunks(P as usize)
            .flat_map(|c| Sha1::digest(c).to_vec())
            .collect();
        assert_eq!(v1(Layout::of_files(&[P + 100, 50], P, false)), expected);
        // Hybrid: `a`'s tail piece is padded with zeros before `b` begins, and `b` after.
        let mut h = MultiHasher::new(Layout::of_files(&[P + 100, 50], P, true), Format::Hybrid);
        for f in [&a, &b] {
            h.update(f);
            assert!(h.next_file());
        }
        let (pieces, files) = h.finish(vec![vec!["a".into()], vec!["b".into()]]).unwrap();
        let mut padded = a.clone();
        padded.resize(2 * P as usize, 0);
        padded.extend_from_slice(&b);
        padded.resize(3 * P as usize, 0);
        let expected: Vec<u8> = padded
            .chunks(P as usize)
            .flat_map(|c| Sha1::digest(c).to_vec())
            .collect();
        assert_eq!(pieces, expected);
        assert!(files.iter().all(|f| f.tree.is_some()));
    }

    #[test]
    fn a_file_short_or_long_of_its_length_is_refused() {
        let mut h = MultiHasher::new(Layout::of_files(&[10, 0], P, false), Format::V2);
        h.update(&[0; 9]);
        assert!(!h.next_file(), "short");
        h.update(&[0; 1]);
        assert!(h.next_file());
        assert!(
            h.finish(vec![vec!["a".into()]]).is_none(),
            "one file never ended"
        );
        let mut h = MultiHasher::new(Layout::of_files(&[10, 0], P, false), Format::V2);
        h.update(&[0; 10]);
        assert!(h.next_file() && h.next_file());
        let (_, files) = h.finish(vec![vec!["a".into()], vec!["e".into()]]).unwrap();
        assert!(
            files[0].tree.is_some() && files[1].tree.is_none(),
            "an empty file has no root"
        );
    }
}
