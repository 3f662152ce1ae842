//! Hashes → torrent: the `info` dictionary from an object's (or a directory's) piece hashes, and the metainfo
//! around it from this replica's settings. The same for a fresh generation, a store entry
//! and an upload, so all three give byte-identical torrents.

use crate::config::{TorrentConfig, WebseedMode, DIRECTORY_ROUTE, WEBSEED_PATH};
use crate::s3::uri::{encode, encode_path};
use crate::s3::ObjectRef;
use crate::store::Entry;
use crate::torrent::{FileTree, Format, Info, InfoFile, Metainfo, Torrent};

pub struct Assembler<'a> {
    pub config: &'a TorrentConfig,
    /// Tracker tiers (the built-in tracker first, when enabled).
    pub announce: &'a [Vec<String>],
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
            files: Vec::new(),
        };
        let meta = self.meta(self.url_list(object), entry.last_modified.as_deref());
        Torrent::new(info, meta, entry.last_modified)
    }

    /// A directory's torrent: its files in the entry's order, under `name`. With
    /// `webseed = "public"`, one BEP 19 multi-file web seed (a URL ending in `/`, which
    /// clients extend with `{name}/{path}`): the prefix's parent folder on the web-seed
    /// route, so `{name}/{path}` spells each key; when some segment was made safe
    /// (`renamed`), the directory's own route (`_dir/{bucket}/{identity}/`), which finds each
    /// file's object by its path (`webseed_index`).
    pub fn directory(&self, name: &str, renamed: bool, entry: Entry) -> Torrent {
        let config = self.config;
        let layout = entry.layout();
        let url_list = match config.webseed {
            WebseedMode::Public => vec![self.directory_webseed_url(&entry, renamed)],
            WebseedMode::None | WebseedMode::Presigned => Vec::new(),
        };
        let files = entry
            .files
            .into_iter()
            .map(|f| InfoFile {
                path: f.path,
                length: f.length,
                tree: f.tree,
            })
            .collect();
        let info = Info {
            name: name.to_string(),
            length: layout.length(),
            piece_length: entry.key.piece_length,
            pieces: entry.hashes.v1,
            file_tree: None,
            private: config.private,
            s3_location: None,
            files,
        };
        let meta = self.meta(url_list, entry.last_modified.as_deref());
        Torrent::new(info, meta, entry.last_modified)
    }

    fn directory_webseed_url(&self, entry: &Entry, renamed: bool) -> String {
        let base = self.config.public_base_url.as_ref();
        let base = base.map_or("", |u| u.as_str()).trim_end_matches('/');
        let route = WEBSEED_PATH.trim_end_matches('/');
        let bucket = encode(&entry.key.bucket);
        if renamed {
            return format!(
                "{base}{route}/{DIRECTORY_ROUTE}/{bucket}/{}/",
                entry.key.digest()
            );
        }
        // The prefix without its last segment (the torrent's name).
        let prefix = entry.key.key.trim_end_matches('/');
        match prefix.rsplit_once('/') {
            Some((parent, _)) => format!("{base}{route}/{bucket}/{}/", encode_path(parent)),
            // A top-level folder, or the whole bucket (named after it): `{bucket}/{path}`.
            None if prefix.is_empty() => format!("{base}{route}/"),
            None => format!("{base}{route}/{bucket}/"),
        }
    }

    fn meta(&self, url_list: Vec<String>, last_modified: Option<&str>) -> Metainfo {
        Metainfo {
            announce: self.announce.to_vec(),
            url_list,
            comment: self.config.comment.clone(),
            created_by: concat!("s3torrent/", env!("CARGO_PKG_VERSION")).to_string(),
            creation_date: last_modified
                .and_then(|lm| httpdate::parse_http_date(lm).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64),
        }
    }

    /// Web seeds that do not change per response (`public` mode; presigned ones are made
    /// per response, by the service).
    fn url_list(&self, object: &ObjectRef) -> Vec<String> {
        match self.config.webseed {
            WebseedMode::Public => vec![self.public_webseed_url(object)],
            WebseedMode::None | WebseedMode::Presigned => Vec::new(),
        }
    }

    /// The public web seed as clients of this format use it: the sidecar's own web-seed
    /// route for the object (`{public_base_url}/_s3torrent/webseed/{bucket}/{key}`), which
    /// alone is shaped when the object is seeded. libtorrent (2.0.8) gives a v2-only
    /// single-file torrent a tail pad file, treats it as multi-file and requests
    /// `{url}/{name}`; so for v2 the URL names the key's folder, with a trailing `/`, whenever
    /// appending the torrent's name gives the key back (no `versionId`, a name equal to the
    /// key's last segment). Hybrid and v1 clients take the object's own URL.
    fn public_webseed_url(&self, object: &ObjectRef) -> String {
        let base = self.config.public_base_url.as_ref();
        let base = base.map_or("", |u| u.as_str()).trim_end_matches('/');
        let route = WEBSEED_PATH.trim_end_matches('/');
        let exact = format!("{base}{route}{}", object.path_and_query());
        if self.config.format != Format::V2 || object.version_id.is_some() {
            return exact;
        }
        let (folder, last) = match object.key.rsplit_once('/') {
            Some((folder, last)) => (Some(folder), last),
            None => (None, object.key.as_str()),
        };
        if Info::name_for_key(&object.bucket, &object.key) != last {
            return exact;
        }
        let folder = folder.map_or(String::new(), |f| format!("{}/", encode_path(f)));
        format!("{base}{route}/{}/{folder}", encode(&object.bucket))
    }
}
