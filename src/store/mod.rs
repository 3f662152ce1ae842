//! The shared torrent store: torrents kept as objects in a bucket of the backend itself, so
//! every replica (and a restarted one) finds what any replica generated, `warm` can fill it
//! ahead of time, and uploads through the sidecar can leave their torrent there.
//!
//! - [`entry`] — what is kept per object, and its strict decoding.
//! - [`lease`] — one replica generates an object at a time, where the backend honors
//!   `If-None-Match: *`.
//! - [`parts`] — multipart parts' hashes, for whichever replica sees the completion.
//!
//! The store is never in the way: a lookup or write that fails is logged, counted
//! (`s3torrent_store_errors_total`) and the torrent is generated as if there were no store.
//! Store objects never reach callers as themselves; they are read with the sidecar's own
//! credentials, after the caller's authorization, and only rebuilt into torrents.

mod entry;
pub mod lease;
pub mod parts;

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::s3::upstream::{Identity, Purpose, Upstream};
use crate::s3::ObjectRef;
use crate::torrent::Format;

pub use entry::Entry;

/// What an entry is for: the object (as the request named it), what the backend says it is
/// now, and the settings that change its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryKey {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: String,
    pub length: u64,
    pub format: Format,
    pub piece_length: u64,
}

impl EntryKey {
    /// A fixed-length name: keys up to 1024 bytes and ETags would not fit in one key
    /// otherwise. Every field is length-prefixed, so no two keys share a name.
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        let version = self.version_id.as_deref().unwrap_or("");
        let length = self.length.to_string();
        let piece_length = self.piece_length.to_string();
        for field in [
            self.bucket.as_str(),
            &self.key,
            version,
            &self.etag,
            &length,
            self.format.as_str(),
            &piece_length,
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        h.update([self.version_id.is_some() as u8]);
        hex::encode(h.finalize())
    }
}

pub struct Store {
    upstream: Arc<Upstream>,
    metrics: Arc<Metrics>,
    config: StoreConfig,
    bucket: String,
    conditional: tokio::sync::OnceCell<bool>,
    warned: crate::logging::WarnOnce,
}

/// What a failed store request was, for the log.
#[derive(Debug)]
pub struct StoreError(String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Store {
    /// `None` unless `[store] bucket` is set.
    pub fn new(
        config: &StoreConfig,
        upstream: Arc<Upstream>,
        metrics: Arc<Metrics>,
    ) -> Option<Store> {
        Some(Store {
            bucket: config.bucket.clone()?,
            upstream,
            metrics,
            config: config.clone(),
            conditional: tokio::sync::OnceCell::new(),
            warned: Default::default(),
        })
    }

    /// `{prefix}{bucket}/{digest}`: grouped by bucket, so an operator can drop one bucket's
    /// torrents with one prefix delete.
    fn entry_object(&self, key: &EntryKey) -> ObjectRef {
        self.object(format!(
            "{}{}/{}",
            self.config.prefix,
            key.bucket,
            key.digest()
        ))
    }

    fn object(&self, key: String) -> ObjectRef {
        ObjectRef {
            bucket: self.bucket.clone(),
            key,
            version_id: None,
        }
    }

    /// The stored entry for `key`; `None` when there is none or the store failed (counted).
    pub async fn get(&self, key: &EntryKey) -> Option<Entry> {
        match self.read(key).await {
            Ok(Some(entry)) => {
                self.metrics.store.hits.inc();
                Some(entry)
            }
            Ok(None) => {
                self.metrics.store.misses.inc();
                None
            }
            Err(e) => {
                self.failed("get", &e);
                None
            }
        }
    }

    async fn read(&self, key: &EntryKey) -> Result<Option<Entry>, StoreError> {
        let object = self.entry_object(key);
        let response = self
            .upstream
            .send(Purpose::Store, "GET", &object, &Identity::Sidecar, &[])
            .await
            .map_err(|e| StoreError(e.message.clone()))?;
        let status = response.status();
        let limit = self.config.max_entry_bytes as usize;
        let body = response.small_body(limit + 1).await;
        match status {
            200 if body.len() > limit => Err(StoreError(format!(
                "a store object is larger than store.max_entry_bytes ({limit})"
            ))),
            200 => Ok(Entry::decode(&body, key).or_else(|| {
                tracing::warn!(target: "s3torrent::store", object = %object.key, "a store object is not a valid entry for its key; ignored");
                None
            })),
            404 if !error_code_is(&body, "NoSuchBucket") => Ok(None),
            s => Err(StoreError(refused("read", s, &body))),
        }
    }

    /// Writes `entry`; a failure is counted and logged as well as returned.
    pub async fn put(&self, entry: &Entry) -> Result<(), StoreError> {
        let object = self.entry_object(&entry.key);
        let body = Bytes::from(entry.encode());
        let result = match self.write(&object, body, &[]).await {
            Ok(200..=299) => {
                self.metrics.store.writes.inc();
                return Ok(());
            }
            Ok(s) => StoreError(format!("the backend answered {s}")),
            Err(e) => e,
        };
        self.failed("put", &result);
        Err(result)
    }

    /// A `PUT` of a small body; the status, or the transport failure.
    async fn write(
        &self,
        object: &ObjectRef,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<u16, StoreError> {
        let path = object.path_and_query();
        let response = self
            .upstream
            .call(
                Purpose::Store,
                "PUT",
                &path,
                &Identity::Sidecar,
                headers,
                Some(body),
            )
            .await
            .map_err(|e| StoreError(e.message.clone()))?;
        let status = response.status();
        response.finish().await;
        Ok(status)
    }

    /// Counted every time; logged once per distinct failure (a store the sidecar may not
    /// write fails the same way on every request).
    fn failed(&self, op: &str, e: &StoreError) {
        self.metrics.store.errors.with_label_values(&[op]).inc();
        if self.warned.first(&format!("{op}: {e}")) {
            tracing::warn!(target: "s3torrent::store", op, error = %e, "store request failed (logged once; counted in s3torrent_store_errors_total); generating without it");
        }
    }
}

fn error_code_is(body: &[u8], code: &str) -> bool {
    let needle = format!("<Code>{code}</Code>");
    body.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn refused(what: &str, status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(c, _)| c);
    format!("the backend refused a store {what}: {status} {code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EntryKey {
        EntryKey {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            etag: "\"e\"".into(),
            length: 10,
            format: Format::V1,
            piece_length: 16384,
        }
    }

    #[test]
    fn every_field_changes_the_name() {
        let base = key().digest();
        let changes: [fn(&mut EntryKey); 7] = [
            |k| k.bucket = "c".into(),
            |k| k.key = "k2".into(),
            |k| k.version_id = Some(String::new()),
            |k| k.etag = "\"f\"".into(),
            |k| k.length = 11,
            |k| k.format = Format::Hybrid,
            |k| k.piece_length = 32768,
        ];
        for change in changes {
            let mut k = key();
            change(&mut k);
            assert_ne!(k.digest(), base, "{k:?}");
        }
        // Field boundaries are part of the name: "b"+"kk" is not "bk"+"k".
        let (mut a, mut b) = (key(), key());
        (a.bucket, a.key) = ("b".into(), "kk".into());
        (b.bucket, b.key) = ("bk".into(), "k".into());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn error_codes_are_read_from_the_body() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code></Error>";
        assert!(error_code_is(body, "NoSuchBucket"));
        assert!(!error_code_is(body, "NoSuchKey"));
        assert_eq!(
            refused("read", 403, b"<Error><Code>AccessDenied</Code>"),
            "the backend refused a store read: 403 AccessDenied"
        );
    }
}
