//! A generated torrent, immutable and shared between the cache and responses. `info` and
//! `meta` are kept so per-response parts (a presigned web seed) can be added without touching
//! `info`: the infohash never changes with them.

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::{Info, Metainfo};

#[derive(Debug)]
pub struct Torrent {
    pub bytes: Bytes,
    /// SHA-1 of `info` (v1 and hybrid torrents are known by it).
    pub info_hash: [u8; 20],
    /// SHA-256 of `info` (v2 and hybrid torrents).
    pub info_hash_v2: Option<[u8; 32]>,
    /// Strong HTTP validator for the torrent file itself (quoted SHA-1 of its bytes).
    pub etag: String,
    /// The object's Last-Modified, which the torrent file also carries as `creation date`.
    pub last_modified: Option<String>,
    pub info: Info,
    pub meta: Metainfo,
}

impl Torrent {
    pub fn new(info: Info, meta: Metainfo, last_modified: Option<String>) -> Torrent {
        let encoded = meta.encode(&info);
        Torrent {
            etag: etag_of(&encoded.bytes),
            bytes: Bytes::from(encoded.bytes),
            info_hash: encoded.info_hash,
            info_hash_v2: encoded.info_hash_v2,
            last_modified,
            info,
            meta,
        }
    }

    /// The same torrent with other web seeds: (bytes, etag).
    pub fn with_url_list(&self, url_list: Vec<String>) -> (Bytes, String) {
        let meta = Metainfo {
            url_list,
            ..self.meta.clone()
        };
        let bytes = meta.encode(&self.info).bytes;
        let etag = etag_of(&bytes);
        (Bytes::from(bytes), etag)
    }

    /// The one id it is kept under (seeded, owned in a cluster): the v1 infohash, or for a
    /// v2-only torrent the v2 one truncated.
    pub fn swarm_id(&self) -> [u8; 20] {
        match (self.info.format().has_v1(), self.info_hash_v2) {
            (false, Some(v2)) => v2[..20].try_into().expect("20 bytes"),
            _ => self.info_hash,
        }
    }

    /// The hashes peers and trackers know this torrent by: the v1 infohash, and the v2
    /// infohash truncated to 20 bytes (BEP 52: what v2 peers announce), as the format has.
    pub fn swarm_ids(&self) -> Vec<[u8; 20]> {
        let format = self.info.format();
        let mut ids = Vec::new();
        if format.has_v1() {
            ids.push(self.info_hash);
        }
        if let Some(v2) = self.info_hash_v2 {
            let mut truncated = [0; 20];
            truncated.copy_from_slice(&v2[..20]);
            ids.push(truncated);
        }
        ids
    }

    /// Bytes this torrent holds in memory, for the cache's byte budget.
    pub fn weight(&self) -> usize {
        let info = &self.info;
        let meta = &self.meta;
        self.bytes.len()
            + self.etag.len()
            + self.last_modified.as_ref().map_or(0, String::len)
            + info.name.len()
            + info.pieces.len()
            + info
                .file_tree
                .as_ref()
                .map_or(0, |t| 32 + t.piece_layer.len())
            + info
                .files
                .iter()
                .map(|f| {
                    let path: usize = f.path.iter().map(|s| s.len() + 24).sum();
                    64 + path + f.tree.as_ref().map_or(0, |t| 32 + t.piece_layer.len())
                })
                .sum::<usize>()
            + info
                .s3_location
                .as_ref()
                .map_or(0, |(b, k)| b.len() + k.len())
            + meta
                .announce
                .iter()
                .flatten()
                .map(String::len)
                .sum::<usize>()
            + meta.url_list.iter().map(String::len).sum::<usize>()
            + meta.comment.as_ref().map_or(0, String::len)
            + meta.created_by.len()
    }
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha1::digest(bytes)))
}
