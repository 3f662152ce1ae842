//! The shared torrent store: torrents kept as objects in a bucket of the backend itself, so
//! every replica (and a restarted one) finds what any replica generated, `warm` can fill it
//! ahead of time, and uploads through the sidecar can leave their torrent there.
//!
//! - [`key`] — a torrent's identity: the key of the cache, the store and the single-flight.
//! - [`entry`] — what is kept per object, and its strict decoding.
//! - [`lease`] — one replica generates an object at a time, where the backend honors
//!   `If-None-Match: *`.
//! - [`parts`] — multipart parts' hashes, for whichever replica sees the completion.
//! - [`seal`] — every store object is authenticated (HMAC under the sidecar's key).
//! - [`records`] — small sealed records of the sidecar's own (cluster membership).
//!
//! The store is never in the way: a lookup or write that fails is logged, counted
//! (`s3torrent_store_errors_total`) and the torrent is generated as if there were no store.
//! Store objects never reach callers as themselves; they are read with the sidecar's own
//! credentials, after the caller's authorization, and only rebuilt into torrents; callers
//! cannot reach the store bucket through the sidecar at all (403).

mod entry;
mod key;
pub mod lease;
pub mod parts;
mod records;
mod seal;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::StoreConfig;
use crate::s3::error::parse_upstream_error;
use crate::s3::upstream::{Identity, Purpose, Upstream, UpstreamResponse};
use crate::s3::ObjectRef;
use crate::telemetry::metrics::Metrics;

pub use entry::{Entry, EntryFile};
pub use key::EntryKey;
use seal::SealKey;

pub struct Store {
    upstream: Arc<Upstream>,
    metrics: Arc<Metrics>,
    config: StoreConfig,
    bucket: String,
    seal: SealKey,
    conditional: tokio::sync::OnceCell<bool>,
    warned: crate::telemetry::logging::WarnOnce,
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
        sidecar_secret: &str,
        upstream: Arc<Upstream>,
        metrics: Arc<Metrics>,
    ) -> Option<Store> {
        Some(Store {
            bucket: config.bucket.clone()?,
            seal: SealKey::new(config.key.expose(), sidecar_secret),
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

    /// The stored directory entry of `bucket` named `identity` ([`EntryKey::digest`]), for
    /// a web-seed URL that names it; only an entry sealed here under that very name, whose
    /// own key gives the name back, is taken.
    pub async fn get_directory(&self, bucket: &str, identity: &str) -> Option<Entry> {
        let object = self.object(format!("{}{bucket}/{identity}", self.config.prefix));
        let body = match self.fetch(&object).await {
            Ok(body) => body?,
            Err(e) => {
                self.failed("get", &e);
                return None;
            }
        };
        let entry = Entry::parse(&body)?;
        let key = &entry.key;
        (key.directory && key.bucket == bucket && key.digest() == identity && entry.is_complete())
            .then_some(entry)
    }

    async fn read(&self, key: &EntryKey) -> Result<Option<Entry>, StoreError> {
        let object = self.entry_object(key);
        let Some(body) = self.fetch(&object).await? else {
            return Ok(None);
        };
        Ok(Entry::decode(&body, key).or_else(|| {
            tracing::warn!(target: "s3torrent::store", object = %object.key, "a store object is not a valid entry for its key; ignored");
            None
        }))
    }

    /// A store object's body, if this sidecar's key sealed it under its name; `None` when
    /// there is none, or it is forged (counted as `verify` errors, logged once).
    async fn fetch(&self, object: &ObjectRef) -> Result<Option<Vec<u8>>, StoreError> {
        self.fetch_at_most(object, self.config.max_entry_bytes as usize)
            .await
    }

    /// [`Store::fetch`] of an object of at most `limit` bytes: only that much is asked of
    /// the backend (a ranged `GET`), and a larger one is an error.
    async fn fetch_at_most(
        &self,
        object: &ObjectRef,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(stored) = self.fetch_raw(object, limit).await? else {
            return Ok(None);
        };
        match self.seal.open(&object.key, &stored) {
            Some(body) => Ok(Some(body.to_vec())),
            None => {
                self.forged(&object.key);
                Ok(None)
            }
        }
    }

    /// A store object that this sidecar's key did not seal: someone else wrote it.
    fn forged(&self, name: &str) {
        let e = StoreError(format!(
            "a store object was not written by a sidecar with this key (forged, or another store.key); ignored: {name}"
        ));
        self.metrics
            .store
            .errors
            .with_label_values(&["verify"])
            .inc();
        if self.warned.first("verify") {
            tracing::warn!(target: "s3torrent::store", error = %e, "store object failed verification (logged once; counted in s3torrent_store_errors_total{{op=\"verify\"}})");
        }
    }

    /// A store object's bytes as stored; `None` when there is none. A missing bucket is an
    /// error, not a miss: the store is misconfigured, and counting it as misses would hide
    /// that.
    async fn fetch_raw(
        &self,
        object: &ObjectRef,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // One byte past the limit tells a larger object from one of exactly the limit.
        let range = format!("bytes=0-{limit}");
        let response = self.send("GET", object, &[("range", &range)], None).await?;
        let status = response.status();
        let body = response.small_body(limit + 1).await;
        let code = || {
            parse_upstream_error(&body)
                .map(|(code, _)| code)
                .unwrap_or_default()
        };
        match status {
            200 | 206 if body.len() > limit => Err(StoreError(format!(
                "a store object is larger than its limit ({limit} bytes)"
            ))),
            200 | 206 => Ok(Some(body)),
            404 if code() != "NoSuchBucket" => Ok(None),
            s => Err(StoreError(format!(
                "the backend refused a store read: {s} {}",
                code()
            ))),
        }
    }

    /// Writes `entry`; a failure is counted and logged as well as returned.
    pub async fn put(&self, entry: &Entry) -> Result<(), StoreError> {
        self.put_at(&self.entry_object(&entry.key), entry).await?;
        self.metrics.store.writes.inc();
        Ok(())
    }

    /// Writes `entry` as `object`; a failure is counted and logged as well as returned.
    async fn put_at(&self, object: &ObjectRef, entry: &Entry) -> Result<(), StoreError> {
        let body = Bytes::from(self.seal.seal(&object.key, entry.encode()));
        let e = match self.write(object, body, &[]).await {
            Ok(200..=299) => return Ok(()),
            Ok(s) => StoreError(format!("the backend answered {s}")),
            Err(e) => e,
        };
        self.failed("put", &e);
        Err(e)
    }

    /// A `PUT` of a small body; the status, or the transport failure.
    async fn write(
        &self,
        object: &ObjectRef,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<u16, StoreError> {
        let response = self.send("PUT", object, headers, Some(body)).await?;
        let status = response.status();
        response.finish().await;
        Ok(status)
    }

    /// One request for a store object, as the sidecar.
    async fn send(
        &self,
        method: &str,
        object: &ObjectRef,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<UpstreamResponse<'_>, StoreError> {
        let path = object.path_and_query();
        let owner = self.config.expected_bucket_owner.as_deref();
        let owner = owner.map(|o| ("x-amz-expected-bucket-owner", o));
        let headers: Vec<(&str, &str)> = headers.iter().copied().chain(owner).collect();
        self.upstream
            .call(
                Purpose::Store,
                method,
                &path,
                &Identity::Sidecar,
                &headers,
                body,
            )
            .await
            .map_err(|e| StoreError(e.message))
    }

    /// Whether a request names the store bucket (callers never reach it through us). Any
    /// case: some backends fold it.
    pub fn is_store_bucket(&self, bucket: &str) -> bool {
        self.bucket.eq_ignore_ascii_case(bucket)
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
