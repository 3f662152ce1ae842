//! The `.torrent` file around `info` (BEP 3 metainfo, BEP 12 tiers, BEP 19 web seeds),
//! encoded deterministically: the same object and configuration give the same bytes on every
//! replica and after restarts.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use super::bencode::Value;
use super::Info;

/// Everything around `info`.
#[derive(Debug, Clone, Default)]
pub struct Metainfo {
    /// Tracker tiers; the first URL of the first tier is also `announce`.
    pub announce: Vec<Vec<String>>,
    pub url_list: Vec<String>,
    pub comment: Option<String>,
    pub created_by: String,
    /// Unix seconds; the object's Last-Modified, so the output does not depend on when it
    /// was generated.
    pub creation_date: Option<i64>,
}

/// An encoded torrent file and the hashes of its exact `info` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// SHA-1 of `info`: the v1 infohash (also computed for v2-only torrents, unused there).
    pub info_hash: [u8; 20],
    /// SHA-256 of `info`: the v2 infohash, for v2 and hybrid torrents.
    pub info_hash_v2: Option<[u8; 32]>,
}

impl Metainfo {
    pub fn encode(&self, info: &Info) -> Encoded {
        let info_bytes = info.to_value().encode();
        let info_hash: [u8; 20] = Sha1::digest(&info_bytes).into();
        let info_hash_v2 = info
            .format()
            .has_v2()
            .then(|| super::merkle::sha256(&info_bytes));

        let mut top = BTreeMap::new();
        if info.format().has_v2() {
            // A file of one piece has no layer entry; the dictionary is still there, empty,
            // as libtorrent writes it.
            let trees = info
                .file_tree
                .iter()
                .chain(info.files.iter().filter_map(|f| f.tree.as_ref()));
            let mut layers = BTreeMap::new();
            for tree in trees.filter(|t| !t.piece_layer.is_empty()) {
                layers.insert(
                    tree.pieces_root.to_vec(),
                    Value::bytes(tree.piece_layer.clone()),
                );
            }
            top.insert(b"piece layers".to_vec(), Value::Dict(layers));
        }
        if let Some(first) = self.announce.first().and_then(|t| t.first()) {
            top.insert(b"announce".to_vec(), Value::bytes(first.as_bytes()));
            let tiers = self
                .announce
                .iter()
                .map(|tier| Value::List(tier.iter().map(|u| Value::bytes(u.as_bytes())).collect()))
                .collect();
            top.insert(b"announce-list".to_vec(), Value::List(tiers));
        }
        if let Some(c) = &self.comment {
            top.insert(b"comment".to_vec(), Value::bytes(c.as_bytes()));
        }
        if !self.created_by.is_empty() {
            top.insert(
                b"created by".to_vec(),
                Value::bytes(self.created_by.as_bytes()),
            );
        }
        if let Some(t) = self.creation_date {
            top.insert(b"creation date".to_vec(), Value::Int(t));
        }
        if !self.url_list.is_empty() {
            let urls = self
                .url_list
                .iter()
                .map(|u| Value::bytes(u.as_bytes()))
                .collect();
            top.insert(b"url-list".to_vec(), Value::List(urls));
        }

        // Splice the already-encoded info in place so the hashed bytes are the served bytes.
        let mut out = Vec::with_capacity(info_bytes.len() + 256);
        out.push(b'd');
        let mut info_written = false;
        for (k, v) in &top {
            if !info_written && k.as_slice() > b"info".as_slice() {
                write_info(&mut out, &info_bytes);
                info_written = true;
            }
            Value::bytes(k.clone()).encode_into(&mut out);
            v.encode_into(&mut out);
        }
        if !info_written {
            write_info(&mut out, &info_bytes);
        }
        out.push(b'e');
        Encoded {
            bytes: out,
            info_hash,
            info_hash_v2,
        }
    }
}

fn write_info(out: &mut Vec<u8>, info_bytes: &[u8]) {
    out.extend_from_slice(b"4:info");
    out.extend_from_slice(info_bytes);
}

#[cfg(test)]
mod tests {
    use super::super::bencode;
    use super::*;

    fn fixture_info() -> Info {
        Info::fixture()
    }

    #[test]
    fn minimal_torrent_is_byte_exact() {
        let bytes = Metainfo::default().encode(&fixture_info()).bytes;
        let mut expected =
            b"d4:infod6:lengthi5e4:name5:a.bin12:piece lengthi16384e6:pieces20:".to_vec();
        expected.extend_from_slice(&[0xab; 20]);
        expected.extend_from_slice(b"ee");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn full_torrent_is_sorted_and_infohash_is_of_info_bytes() {
        let m = Metainfo {
            announce: vec![
                vec!["http://t1/a".into()],
                vec!["http://t2/a".into(), "udp://t3:1".into()],
            ],
            url_list: vec!["http://seed/b/a.bin".into()],
            comment: Some("hi".into()),
            created_by: "s3torrent/0.1.0".into(),
            creation_date: Some(1_700_000_000),
        };
        let mut info = fixture_info();
        info.private = true;
        info.s3_location = Some(("b".into(), "dir/a.bin".into()));
        let Encoded {
            bytes,
            info_hash: hash,
            ..
        } = m.encode(&info);
        // The strict decoder accepts only canonical (sorted) dictionaries.
        let v = bencode::decode(&bytes).unwrap();
        assert_eq!(
            v.get("announce").unwrap().as_bytes().unwrap(),
            b"http://t1/a"
        );
        assert_eq!(
            v.get("creation date").unwrap().as_int(),
            Some(1_700_000_000)
        );
        let info_v = v.get("info").unwrap();
        assert_eq!(info_v.get("private").unwrap().as_int(), Some(1));
        assert_eq!(
            info_v.get("x-amz-key").unwrap().as_bytes().unwrap(),
            b"dir/a.bin"
        );
        assert_eq!(hash, <[u8; 20]>::from(Sha1::digest(info_v.encode())));
        // Bencode re-encoding of the decoded value reproduces the file exactly.
        assert_eq!(v.encode(), bytes);
    }

    #[test]
    fn infohash_ignores_everything_outside_info() {
        let a = Metainfo::default().encode(&fixture_info()).info_hash;
        let b = Metainfo {
            comment: Some("x".into()),
            url_list: vec!["http://x/".into()],
            ..Default::default()
        }
        .encode(&fixture_info())
        .info_hash;
        assert_eq!(a, b);
    }
}
