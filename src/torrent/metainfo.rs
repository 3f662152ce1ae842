//! The `.torrent` file (BEP 3 metainfo, v1 single-file), encoded deterministically: the
//! same object and configuration give the same bytes on every replica and after restarts.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use super::bencode::Value;

/// The `info` dictionary; its encoded bytes define the infohash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub length: u64,
    pub piece_length: u64,
    pub pieces: Vec<u8>,
    pub private: bool,
    /// `x-amz-bucket` / `x-amz-key`, as Amazon S3 put them (opt-in: changes the infohash).
    pub s3_location: Option<(String, String)>,
}

impl Info {
    /// The file name a client will save to: the key's last segment, never containing `/`
    /// and never a path-traversal name.
    pub fn name_for_key(bucket: &str, key: &str) -> String {
        let base = key.rsplit('/').find(|s| !s.is_empty()).unwrap_or(bucket);
        match base {
            "." | ".." => "_".to_string(),
            b => b.to_string(),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut d = BTreeMap::new();
        d.insert(b"length".to_vec(), Value::Int(self.length as i64));
        d.insert(b"name".to_vec(), Value::bytes(self.name.as_bytes()));
        d.insert(
            b"piece length".to_vec(),
            Value::Int(self.piece_length as i64),
        );
        d.insert(b"pieces".to_vec(), Value::bytes(self.pieces.clone()));
        if self.private {
            d.insert(b"private".to_vec(), Value::Int(1));
        }
        if let Some((bucket, key)) = &self.s3_location {
            d.insert(b"x-amz-bucket".to_vec(), Value::bytes(bucket.as_bytes()));
            d.insert(b"x-amz-key".to_vec(), Value::bytes(key.as_bytes()));
        }
        Value::Dict(d)
    }
}

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

impl Metainfo {
    /// Returns the encoded torrent and its infohash.
    pub fn encode(&self, info: &Info) -> (Vec<u8>, [u8; 20]) {
        let info_bytes = info.to_value().encode();
        let info_hash: [u8; 20] = Sha1::digest(&info_bytes).into();

        let mut top = BTreeMap::new();
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
        (out, info_hash)
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

    pub fn fixture_info() -> Info {
        Info {
            name: "a.bin".into(),
            length: 5,
            piece_length: 16384,
            pieces: vec![0xab; 20],
            private: false,
            s3_location: None,
        }
    }

    #[test]
    fn minimal_torrent_is_byte_exact() {
        let (bytes, _) = Metainfo::default().encode(&fixture_info());
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
        let (bytes, hash) = m.encode(&info);
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
        let a = Metainfo::default().encode(&fixture_info()).1;
        let b = Metainfo {
            comment: Some("x".into()),
            url_list: vec!["http://x/".into()],
            ..Default::default()
        }
        .encode(&fixture_info())
        .1;
        assert_eq!(a, b);
    }

    #[test]
    fn names_come_from_the_last_key_segment() {
        assert_eq!(Info::name_for_key("b", "dir/sub/file.iso"), "file.iso");
        assert_eq!(Info::name_for_key("b", "file"), "file");
        assert_eq!(Info::name_for_key("b", "dir/"), "dir");
        assert_eq!(Info::name_for_key("b", "///"), "b");
        assert_eq!(Info::name_for_key("b", "x/.."), "_");
        assert_eq!(Info::name_for_key("b", "ü ß+%.txt"), "ü ß+%.txt");
    }
}
