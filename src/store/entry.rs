//! What the store keeps for one object or one directory: everything a torrent is built from
//! that does not depend on the request or on the replica's settings for the outer metainfo
//! (trackers, web seeds, comment, `private`): the identity and facts, the piece hashes, and
//! for a directory each file's object, path and v2 tree.
//!
//! Encoded as a bencoded dictionary of our own. Decoding checks every count against the
//! length and piece length, so a truncated or foreign object is a miss, never a torrent.

use std::collections::BTreeMap;

use crate::torrent::bencode::{self, Value};
use crate::torrent::merkle::{Hash, BLOCK};
use crate::torrent::{FileTree, Format, Layout, PieceHashes};

use super::EntryKey;

/// The entry format; a reader ignores entries of another.
const VERSION: i64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: EntryKey,
    pub last_modified: Option<String>,
    /// One object: all of them. A directory: the v1 pieces only (trees are per file).
    pub hashes: PieceHashes,
    /// A directory's files, in the torrent's order; empty for one object.
    pub files: Vec<EntryFile>,
}

/// One file of a directory torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFile {
    pub key: String,
    /// The version the caller was authorized for, when the backend keeps versions.
    pub version_id: Option<String>,
    pub etag: String,
    pub length: u64,
    /// Its path under the torrent's name, already safe.
    pub path: Vec<String>,
    /// v2: its tree, once hashed (`None` for v1 and for an empty file).
    pub tree: Option<FileTree>,
}

impl Entry {
    /// Its piece geometry: the object's, or the directory's files end to end.
    pub fn layout(&self) -> Layout {
        layout_of(&self.key, &self.files)
    }

    pub fn encode(&self) -> Vec<u8> {
        let k = &self.key;
        let mut d: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        let mut put = |name: &str, v: Value| {
            d.insert(name.as_bytes().to_vec(), v);
        };
        put("s3torrent store", Value::Int(VERSION));
        put("bucket", Value::bytes(k.bucket.as_bytes()));
        put("key", Value::bytes(k.key.as_bytes()));
        if let Some(v) = &k.version_id {
            put("version id", Value::bytes(v.as_bytes()));
        }
        put("etag", Value::bytes(k.etag.as_bytes()));
        put("length", Value::Int(k.length as i64));
        put("format", Value::bytes(k.format.as_str()));
        put("piece length", Value::Int(k.piece_length as i64));
        if let Some(lm) = &self.last_modified {
            put("last modified", Value::bytes(lm.as_bytes()));
        }
        put("pieces", Value::bytes(self.hashes.v1.clone()));
        put("piece layer", Value::bytes(self.hashes.layer.concat()));
        put(
            "last piece leaves",
            Value::bytes(self.hashes.last_piece_leaves.concat()),
        );
        if k.directory {
            put(
                "files",
                Value::List(self.files.iter().map(encode_file).collect()),
            );
        }
        Value::Dict(d).encode()
    }

    /// One hash per piece (and per block of the last piece) of what the format asks for;
    /// for a directory, files that add up to its length, each with its tree.
    pub fn is_complete(&self) -> bool {
        match self.key.directory {
            false => self.files.is_empty() && complete(&self.key, &self.hashes),
            true => complete_directory(self),
        }
    }

    /// The entry in `bytes`, if it is one for exactly `key` and its hashes are complete.
    pub fn decode(bytes: &[u8], key: &EntryKey) -> Option<Entry> {
        Entry::parse(bytes).filter(|e| &e.key == key)
    }

    /// Whatever complete entry `bytes` holds (the caller checks what it is for).
    pub fn parse(bytes: &[u8]) -> Option<Entry> {
        let v = bencode::decode(bytes).ok()?;
        let text = |name: &str| -> Option<String> {
            String::from_utf8(v.get(name)?.as_bytes()?.to_vec()).ok()
        };
        let int = |name: &str| v.get(name)?.as_int();
        let stored = EntryKey {
            bucket: text("bucket")?,
            key: text("key")?,
            version_id: text("version id"),
            etag: text("etag")?,
            length: u64::try_from(int("length")?).ok()?,
            format: match text("format")?.as_str() {
                "v1" => Format::V1,
                "hybrid" => Format::Hybrid,
                "v2" => Format::V2,
                _ => return None,
            },
            piece_length: u64::try_from(int("piece length")?).ok()?,
            directory: v.get("files").is_some(),
        };
        if int("s3torrent store")? != VERSION {
            return None;
        }
        let hashes = PieceHashes {
            v1: v.get("pieces")?.as_bytes()?.to_vec(),
            layer: hash_list(v.get("piece layer")?.as_bytes()?)?,
            last_piece_leaves: hash_list(v.get("last piece leaves")?.as_bytes()?)?,
        };
        let files = match v.get("files") {
            Some(Value::List(files)) => files.iter().map(decode_file).collect::<Option<_>>()?,
            Some(_) => return None,
            None => Vec::new(),
        };
        let entry = Entry {
            key: stored,
            last_modified: text("last modified"),
            hashes,
            files,
        };
        entry.is_complete().then_some(entry)
    }
}

fn encode_file(f: &EntryFile) -> Value {
    let mut d: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
    let mut put = |name: &str, v: Value| {
        d.insert(name.as_bytes().to_vec(), v);
    };
    put("key", Value::bytes(f.key.as_bytes()));
    if let Some(v) = &f.version_id {
        put("version id", Value::bytes(v.as_bytes()));
    }
    put("etag", Value::bytes(f.etag.as_bytes()));
    put("length", Value::Int(f.length as i64));
    let path = f.path.iter().map(|s| Value::bytes(s.as_bytes())).collect();
    put("path", Value::List(path));
    if let Some(tree) = &f.tree {
        put("pieces root", Value::bytes(tree.pieces_root.to_vec()));
        put("piece layer", Value::bytes(tree.piece_layer.clone()));
    }
    Value::Dict(d)
}

fn decode_file(v: &Value) -> Option<EntryFile> {
    let text = |name: &str| -> Option<String> {
        String::from_utf8(v.get(name)?.as_bytes()?.to_vec()).ok()
    };
    let path = match v.get("path")? {
        Value::List(segments) => segments
            .iter()
            .map(|s| String::from_utf8(s.as_bytes()?.to_vec()).ok())
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    let tree = match v.get("pieces root") {
        Some(root) => Some(FileTree {
            pieces_root: root.as_bytes()?.try_into().ok()?,
            piece_layer: v.get("piece layer")?.as_bytes()?.to_vec(),
        }),
        None => None,
    };
    Some(EntryFile {
        key: text("key")?,
        version_id: text("version id"),
        etag: text("etag")?,
        length: u64::try_from(v.get("length")?.as_int()?).ok()?,
        path,
        tree,
    })
}

fn layout_of(key: &EntryKey, files: &[EntryFile]) -> Layout {
    match key.directory {
        false => key.layout(),
        true => {
            let lengths: Vec<u64> = files.iter().map(|f| f.length).collect();
            Layout::of_files(&lengths, key.piece_length, key.format.has_v2())
        }
    }
}

fn complete_directory(e: &Entry) -> bool {
    let (key, p) = (&e.key, e.key.piece_length);
    if e.files.is_empty() || !p.is_power_of_two() || p < BLOCK {
        return false;
    }
    let total = e
        .files
        .iter()
        .try_fold(0u64, |sum, f| sum.checked_add(f.length));
    if total != Some(key.length) || key.length == 0 {
        return false;
    }
    let pieces = e.layout().piece_count() as usize;
    let v1 = e.hashes.v1.len() == if key.format.has_v1() { 20 * pieces } else { 0 };
    let files = e
        .files
        .iter()
        .all(|f| match (&f.tree, key.format.has_v2()) {
            (None, v2) => !v2 || f.length == 0,
            (Some(t), true) => {
                let file_pieces = f.length.div_ceil(p) as usize;
                f.length > 0
                    && t.piece_layer.len() == if file_pieces > 1 { 32 * file_pieces } else { 0 }
            }
            (Some(_), false) => false,
        });
    v1 && files && e.hashes.layer.is_empty() && e.hashes.last_piece_leaves.is_empty()
}

fn hash_list(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32-byte chunks"))
            .collect(),
    )
}

/// Whether `hashes` has exactly one hash per piece (and per block of the last piece) of
/// what the format asks for.
fn complete(key: &EntryKey, hashes: &PieceHashes) -> bool {
    // A stored piece length is checked before a layout is made of it.
    let p = key.piece_length;
    if key.length == 0 || !p.is_power_of_two() || p < BLOCK {
        return false;
    }
    let layout = key.layout();
    let pieces = layout.piece_count() as usize;
    let (v1, v2) = (key.format.has_v1(), key.format.has_v2());
    hashes.v1.len() == if v1 { 20 * pieces } else { 0 }
        && hashes.layer.len() == if v2 { pieces } else { 0 }
        && hashes.last_piece_leaves.len()
            == if v2 {
                layout.last_piece_blocks() as usize
            } else {
                0
            }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::{Layout, PieceHasher};

    fn key(format: Format, length: u64) -> EntryKey {
        EntryKey {
            bucket: "b".into(),
            key: "dir/ü k".into(),
            version_id: None,
            etag: "\"e1\"".into(),
            length,
            format,
            piece_length: 32 * 1024,
            directory: false,
        }
    }

    fn entry(format: Format, length: u64) -> Entry {
        let mut h = PieceHasher::new(&Layout::single(length, 32 * 1024), length, format);
        h.update(&vec![7u8; length as usize]);
        Entry {
            key: key(format, length),
            last_modified: Some("Mon, 23 Nov 2026 02:15:43 GMT".into()),
            hashes: h.finish(),
            files: Vec::new(),
        }
    }

    fn directory(format: Format) -> Entry {
        let p = 32 * 1024u64;
        let lengths = [3 * p + 1, 0, 10];
        let layout = Layout::of_files(&lengths, p, format.has_v2());
        let data: Vec<Vec<u8>> = lengths.iter().map(|&l| vec![9u8; l as usize]).collect();
        let mut h = crate::torrent::MultiHasher::new(layout.clone(), format);
        for file in &data {
            h.update(file);
        }
        let (v1, trees) =
            crate::torrent::StretchHashes::join(vec![h.finish().unwrap()], &layout, format);
        let files = trees
            .into_iter()
            .enumerate()
            .map(|(i, tree)| EntryFile {
                key: format!("set/{i}"),
                version_id: (i == 0).then(|| "v1".to_string()),
                etag: format!("\"e{i}\""),
                length: lengths[i],
                path: vec!["sub".into(), format!("{i}.bin")],
                tree,
            })
            .collect();
        let mut key = key(format, lengths.iter().sum());
        (key.key, key.directory, key.piece_length) = ("set/".into(), true, p);
        Entry {
            key,
            last_modified: None,
            hashes: PieceHashes {
                v1,
                ..Default::default()
            },
            files,
        }
    }

    #[test]
    fn a_directory_round_trips_and_a_damaged_one_is_a_miss() {
        for format in [Format::V1, Format::Hybrid, Format::V2] {
            let e = directory(format);
            assert!(e.is_complete(), "{format:?}");
            assert_eq!(Entry::decode(&e.encode(), &e.key).as_ref(), Some(&e));
            let mut short = e.clone();
            short.files[2].length += 1;
            assert!(
                Entry::decode(&short.encode(), &e.key).is_none(),
                "lengths must add up"
            );
            let mut lost = e.clone();
            lost.hashes.v1.truncate(20);
            assert!(
                format == Format::V2 || !lost.is_complete(),
                "v1 pieces cover the files"
            );
            if format.has_v2() {
                let mut cut = e.clone();
                cut.files[0].tree.as_mut().unwrap().piece_layer.pop();
                assert!(Entry::decode(&cut.encode(), &e.key).is_none());
            }
            let mut single = e.clone();
            single.key.directory = false;
            assert!(!single.is_complete(), "an object's entry has no files");
        }
    }

    #[test]
    fn round_trips_in_every_format() {
        for format in [Format::V1, Format::Hybrid, Format::V2] {
            for length in [1, 16 * 1024 + 1, 32 * 1024, 100_000] {
                let e = entry(format, length);
                let decoded = Entry::decode(&e.encode(), &e.key);
                assert_eq!(decoded.as_ref(), Some(&e), "{format:?} {length}");
            }
        }
    }

    #[test]
    fn another_objects_entry_is_a_miss() {
        let e = entry(Format::V1, 100_000);
        let bytes = e.encode();
        let mut other = e.key.clone();
        other.etag = "\"e2\"".into();
        assert!(Entry::decode(&bytes, &other).is_none());
        other = e.key.clone();
        other.version_id = Some("v1".into());
        assert!(Entry::decode(&bytes, &other).is_none());
        other = e.key.clone();
        other.format = Format::Hybrid;
        assert!(Entry::decode(&bytes, &other).is_none());
    }

    #[test]
    fn incomplete_hashes_are_a_miss() {
        let mut e = entry(Format::Hybrid, 100_000);
        e.hashes.v1.truncate(40);
        assert!(Entry::decode(&e.encode(), &e.key).is_none());
        let mut e = entry(Format::Hybrid, 100_000);
        e.hashes.layer.pop();
        assert!(Entry::decode(&e.encode(), &e.key).is_none());
        let mut e = entry(Format::V2, 100_000);
        e.hashes.last_piece_leaves.push([0; 32]);
        assert!(Entry::decode(&e.encode(), &e.key).is_none());
        let e = entry(Format::V1, 100_000);
        let bytes = e.encode();
        assert!(Entry::decode(&bytes[..bytes.len() - 1], &e.key).is_none());
        assert!(Entry::decode(b"not bencode", &e.key).is_none());
    }
}
