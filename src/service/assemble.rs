//! Hashes → torrent: the `info` dictionary from an object's piece hashes, and the metainfo
//! around it from this replica's settings. The same for a fresh generation, a store entry
//! and an upload, so all three give byte-identical torrents.

use crate::config::TorrentConfig;
use crate::s3::ObjectRef;
use crate::store::Entry;
use crate::torrent::{FileTree, Info, Metainfo, Torrent};

pub struct Assembler<'a> {
    pub config: &'a TorrentConfig,
    /// Tracker tiers (the built-in tracker first, when enabled).
    pub announce: &'a [Vec<String>],
    /// Web seeds that do not change per response (`public` mode).
    pub url_list: Vec<String>,
}

impl Assembler<'_> {
    pub fn torrent(&self, object: &ObjectRef, entry: Entry) -> Torrent {
        let config = self.config;
        let (length, piece_length) = (entry.key.length, entry.key.piece_length);
        let hashes = entry.hashes;
        let file_tree = config
            .format
            .has_v2()
            .then(|| FileTree::from_hashes(&hashes, piece_length));
        let info = Info {
            name: Info::name_for_key(&object.bucket, &object.key),
            length,
            piece_length,
            pieces: hashes.v1,
            file_tree,
            private: config.private,
            s3_location: config
                .s3_info_keys
                .then(|| (object.bucket.clone(), object.key.clone())),
        };
        let meta = Metainfo {
            announce: self.announce.to_vec(),
            url_list: self.url_list.clone(),
            comment: config.comment.clone(),
            created_by: concat!("s3torrent/", env!("CARGO_PKG_VERSION")).to_string(),
            creation_date: entry
                .last_modified
                .as_deref()
                .and_then(|lm| httpdate::parse_http_date(lm).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64),
        };
        Torrent::new(info, meta, entry.last_modified)
    }
}
