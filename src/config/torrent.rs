//! `[torrent]`: what goes into the torrents the sidecar generates.

use serde::{Deserialize, Serialize};

use crate::torrent::{Format, PieceLength};

use super::values::{HttpUrl, Seconds, TrackerUrl};

/// The sidecar's own web-seed route, which torrents with `webseed = "public"` name (the
/// `webseed` room serves it): `{WEBSEED_PATH}{bucket}/{key}`.
pub const WEBSEED_PATH: &str = "/_s3torrent/webseed/";

/// Under [`WEBSEED_PATH`], a directory torrent whose names were made safe:
/// `{WEBSEED_PATH}{DIRECTORY_ROUTE}/{bucket}/{digest}/{name}/{path}` (no bucket is named
/// `_dir`).
pub const DIRECTORY_ROUTE: &str = "_dir";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(default, deny_unknown_fields)]
pub struct TorrentConfig {
    /// `v1` (default: every client), `hybrid` (v1 and v2 clients in one swarm) or `v2`.
    pub format: Format,
    pub piece_length: PieceLength,
    /// Tracker tiers (BEP 12): `[["http://t1/announce"], ["http://t2/announce"]]`.
    pub announce: Vec<Vec<TrackerUrl>>,
    pub max_object_size: u64,
    /// A directory torrent (`?torrent&prefix=`) holds at most this many files…
    pub max_files: usize,
    /// …of at most this many bytes in all (each file also under `max_object_size`).
    pub max_directory_size: u64,
    /// Sets `private: 1` in `info` (BEP 27): peers only from the trackers.
    pub private: bool,
    /// Puts `x-amz-bucket` / `x-amz-key` inside `info`, as Amazon S3 did. Off by default
    /// because it changes the infohash: the same bytes under two keys become two swarms.
    pub s3_info_keys: bool,
    pub comment: Option<String>,
    /// BEP 19 web seeds (`url-list`): none, a public URL, or a presigned GET URL.
    pub webseed: WebseedMode,
    /// Base of web-seed URLs: `{public_base_url}/{bucket}/{key}` (path-style), e.g. the
    /// sidecar's public address. Required for `public` and `presigned`.
    pub public_base_url: Option<HttpUrl>,
    /// How long a presigned web-seed URL stays valid (SigV4 allows at most 7 days); never
    /// longer than the caller's own presigned `?torrent` URL.
    pub presign_expiry: Seconds,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        TorrentConfig {
            format: Format::V1,
            piece_length: PieceLength::Auto,
            announce: Vec::new(),
            max_object_size: 5_368_709_120,
            max_files: 10_000,
            max_directory_size: 53_687_091_200,
            private: false,
            s3_info_keys: false,
            comment: None,
            webseed: WebseedMode::None,
            public_base_url: None,
            presign_expiry: Seconds(3600),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum WebseedMode {
    #[default]
    None,
    /// `{public_base_url}/{bucket}/{key}`: for anonymously readable objects.
    Public,
    /// The same URL presigned with the sidecar's credentials, for callers who passed READ.
    Presigned,
}
