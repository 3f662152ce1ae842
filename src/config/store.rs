//! `[store]`: torrents kept in the backend itself, shared by every replica; and `[uploads]`:
//! hashing objects as they are uploaded through the sidecar.

use serde::{Deserialize, Serialize};

use super::auth::Secret;
use super::values::Seconds;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// A bucket private to the sidecar (piece hashes describe private content). Off when
    /// absent.
    pub bucket: Option<String>,
    /// Prepended to every store object's key, e.g. `"torrents/"`.
    pub prefix: String,
    /// How long a replica's claim to generate an object holds without being renewed; the
    /// holder renews it every third of that. Others wait for its result meanwhile.
    pub lease: Seconds,
    /// Store objects larger than this are ignored (a torrent is ~20 bytes per piece).
    pub max_entry_bytes: u64,
    /// Smaller objects bypass the store: each replica reads them itself, which costs less
    /// than the store's lookup, lease and write.
    pub min_bytes: u64,
    /// The key that authenticates store objects (HMAC); by default one derived from
    /// `upstream.secret_access_key`. Every replica must share it. Environment:
    /// `S3TORRENT_STORE_KEY`.
    pub key: Secret,
    /// Sent as `x-amz-expected-bucket-owner` on every store request: the backend refuses
    /// them if someone else owns the bucket (a tenant who created it first).
    pub expected_bucket_owner: Option<String>,
    /// How long a replica waits on another's lease (renewed or not) before it generates
    /// the object itself.
    pub lease_wait: Seconds,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            bucket: None,
            prefix: String::new(),
            lease: Seconds(30),
            max_entry_bytes: 64 << 20,
            min_bytes: 1 << 20,
            key: Secret::default(),
            expected_bucket_owner: None,
            lease_wait: Seconds(120),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadsConfig {
    /// Hash `PutObject` bodies (and piece-aligned multipart parts) while they stream to the
    /// backend, so the object's first `?torrent` reads nothing.
    pub hash: bool,
    /// Smaller uploads are left to lazy generation: reading them back costs little, while
    /// adopting one costs a facts check and a store write per upload.
    pub min_bytes: u64,
    /// Multipart parts whose hashes are kept until `CompleteMultipartUpload` (oldest dropped
    /// first; a dropped part only means lazy generation for its object).
    pub max_pending_parts: usize,
    /// Uploads hashed at once. Uploads are watched before anyone is authenticated, so past
    /// this an upload is not hashed (skipped as `busy`) rather than waited for.
    pub max_hashers: usize,
    /// How long a `?torrent` for an object whose upload is being adopted waits for it
    /// (instead of reading the object again) at most.
    pub adoption_wait: Seconds,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            hash: true,
            min_bytes: 1 << 20,
            max_pending_parts: 10_000,
            max_hashers: 8,
            adoption_wait: Seconds(5),
        }
    }
}
