//! What the store keeps for one object: everything a torrent is built from that does not
//! depend on the request or on the replica's settings for the outer metainfo (trackers, web
//! seeds, comment, `private`): the object's identity and facts, and its piece hashes.
//!
//! Encoded as a bencoded dictionary of our own. Decoding checks every count against the
//! length and piece length, so a truncated or foreign object is a miss, never a torrent.

use std::collections::BTreeMap;

use crate::torrent::bencode::{self, Value};
use crate::torrent::merkle::{Hash, BLOCK};
use crate::torrent::{Format, PieceHashes};

use super::EntryKey;

/// The entry format; a reader ignores entries of another.
const VERSION: i64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: EntryKey,
    pub last_modified: Option<String>,
    pub hashes: PieceHashes,
}

impl Entry {
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
        Value::Dict(d).encode()
    }

    /// One hash per piece (and per block of the last piece) of what the format asks for.
    pub fn is_complete(&self) -> bool {
        complete(&self.key, &self.hashes)
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
        };
        if int("s3torrent store")? != VERSION {
            return None;
        }
        let hashes = PieceHashes {
            v1: v.get("pieces")?.as_bytes()?.to_vec(),
            layer: hash_list(v.get("piece layer")?.as_bytes()?)?,
            last_piece_leaves: hash_list(v.get("last piece leaves")?.as_bytes()?)?,
        };
        complete(&stored, &hashes).then(|| Entry {
            key: stored,
            last_modified: text("last modified"),
            hashes,
        })
    }
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
        }
    }

    fn entry(format: Format, length: u64) -> Entry {
        let mut h = PieceHasher::new(&Layout::single(length, 32 * 1024), length, format);
        h.update(&vec![7u8; length as usize]);
        Entry {
            key: key(format, length),
            last_modified: Some("Mon, 23 Nov 2026 02:15:43 GMT".into()),
            hashes: h.finish(),
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
