//! One replica generates a given object at a time: the first to create
//! `{prefix}.leases/{bucket}/{digest}` with `If-None-Match: *` holds the lease; the others
//! wait for its entry. The holder renews the lease every third of `[store] lease`; a lease
//! not renewed for that long (its holder died) is taken over with `If-Match` on its ETag, so
//! only one waiter takes it. (`.leases` cannot collide with entries: no bucket name starts
//! with a dot.)
//!
//! Whether the backend honors `If-None-Match: *` is asked once (two conditional writes of
//! one probe object); where it does not, each replica generates on its own, once.
//!
//! Leases are sealed like every store object: one this sidecar's key did not seal (a
//! squatter's) is taken over at once, and no wait lasts longer than `store.lease_wait`;
//! after it the waiter generates the object itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Entry, EntryKey, Store, StoreError};
use crate::s3::ObjectRef;

pub enum Claim {
    /// This replica generates; the lease is released when the guard drops (after the entry
    /// was written).
    Mine(LeaseGuard),
    /// Another replica generated it meanwhile.
    Theirs(Entry),
    /// No coordination (no conditional writes, or the store failed): generate.
    Unavailable,
}

pub struct LeaseGuard {
    store: Arc<Store>,
    object: ObjectRef,
    renewal: tokio::task::JoinHandle<()>,
    released: bool,
}

impl LeaseGuard {
    /// Deletes the lease (after the entry was written), so waiting replicas move on now.
    pub async fn release(mut self) {
        self.renewal.abort();
        self.released = true;
        if let Err(e) = self.store.delete(&self.object).await {
            self.store.failed("lease", &e);
        }
    }
}

/// A generation that failed or was dropped still lets go of its lease, in the background.
impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.released {
            return;
        }
        let (store, object) = (self.store.clone(), self.object.clone());
        tokio::spawn(async move {
            if let Err(e) = store.delete(&object).await {
                store.failed("lease", &e);
            }
        });
    }
}

impl Store {
    fn lease_object(&self, key: &EntryKey) -> ObjectRef {
        self.object(format!(
            "{}.leases/{}/{}",
            self.config.prefix,
            key.bucket,
            key.digest()
        ))
    }

    /// Takes the lease for `key`, or waits for the replica that holds it.
    pub async fn claim(self: &Arc<Self>, key: &EntryKey) -> Claim {
        match self.conditional_writes().await {
            Ok(true) => {}
            Ok(false) => return Claim::Unavailable,
            Err(e) => {
                self.failed("lease", &e);
                return Claim::Unavailable;
            }
        }
        let lease = self.lease_object(key);
        match self.try_claim(key, &lease).await {
            Ok(claim) => claim,
            Err(e) => {
                self.failed("lease", &e);
                Claim::Unavailable
            }
        }
    }

    async fn try_claim(
        self: &Arc<Self>,
        key: &EntryKey,
        lease: &ObjectRef,
    ) -> Result<Claim, StoreError> {
        let deadline = tokio::time::Instant::now() + self.config.lease_wait.get();
        loop {
            match self
                .write(lease, self.lease_body(lease), &[("if-none-match", "*")])
                .await?
            {
                200..=299 => return Ok(Claim::Mine(self.hold(lease.clone()))),
                409 | 412 => {}
                s => return Err(StoreError(format!("the backend answered {s} to a lease"))),
            }
            let mut pause = Duration::from_millis(100);
            loop {
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(target: "s3torrent::store", lease = %lease.key, "waited store.lease_wait on another replica's lease; generating here");
                    return Ok(Claim::Unavailable);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                if let Some(entry) = self.read(key).await? {
                    self.metrics.store.lease_waits.inc();
                    return Ok(Claim::Theirs(entry));
                }
                match self.lease_state(lease).await? {
                    LeaseState::Gone => break,
                    LeaseState::Live => {}
                    LeaseState::Stale(etag) | LeaseState::Forged(etag) => {
                        let status = self
                            .write(lease, self.lease_body(lease), &[("if-match", &etag)])
                            .await?;
                        if (200..300).contains(&status) {
                            tracing::warn!(target: "s3torrent::store", lease = %lease.key, "took over a lease its holder stopped renewing, or that no sidecar sealed");
                            return Ok(Claim::Mine(self.hold(lease.clone())));
                        }
                    }
                }
            }
        }
    }

    /// Starts renewing `lease`; the guard stops it and deletes the lease.
    fn hold(self: &Arc<Self>, lease: ObjectRef) -> LeaseGuard {
        let every = self.config.lease.get() / 3;
        let (store, object) = (self.clone(), lease.clone());
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = store.write(&object, store.lease_body(&object), &[]).await {
                    store.failed("lease", &e);
                }
            }
        });
        LeaseGuard {
            store: self.clone(),
            object: lease,
            renewal,
            released: false,
        }
    }

    async fn lease_state(&self, lease: &ObjectRef) -> Result<LeaseState, StoreError> {
        let response = self.send("GET", lease, &[], None).await?;
        let status = response.status();
        let header = |name: &str| response.header_str(name).map(str::to_string);
        let (etag, modified, now) = (header("etag"), header("last-modified"), header("date"));
        let body = response.small_body(LEASE_BODY_LIMIT).await;
        match status {
            404 => return Ok(LeaseState::Gone),
            200 => {}
            s => {
                return Err(StoreError(format!(
                    "the backend answered {s} to a lease check"
                )))
            }
        }
        // Both times are the backend's own clock: replicas' clocks may disagree.
        let parse = |t: Option<String>| t.and_then(|t| httpdate::parse_http_date(&t).ok());
        let age = match (parse(modified), parse(now)) {
            (Some(m), Some(n)) => n.duration_since(m).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let sealed = self.seal.open(&lease.key, &body).is_some();
        if !sealed {
            self.forged(&lease.key);
        }
        Ok(match etag {
            Some(etag) if !sealed => LeaseState::Forged(etag),
            Some(etag) if age > self.config.lease.get() => LeaseState::Stale(etag),
            _ => LeaseState::Live,
        })
    }

    /// Who holds the lease, for an operator looking at the store; sealed.
    fn lease_body(&self, lease: &ObjectRef) -> Bytes {
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let text = format!(
            "host={host} pid={} at={}\n",
            std::process::id(),
            now.as_millis()
        );
        Bytes::from(self.seal.seal(&lease.key, text.into_bytes()))
    }

    /// Whether the backend refuses a second `If-None-Match: *` write of one object.
    async fn conditional_writes(&self) -> Result<bool, StoreError> {
        self.conditional
            .get_or_try_init(|| async {
                let probe = self.object(format!(
                    "{}.leases/.probe-{:016x}",
                    self.config.prefix,
                    rand::random::<u64>()
                ));
                let once = [("if-none-match", "*")];
                let first = self.write(&probe, self.lease_body(&probe), &once).await?;
                if !(200..300).contains(&first) {
                    return Err(StoreError(format!("the backend answered {first} to a lease")));
                }
                let second = self.write(&probe, self.lease_body(&probe), &once).await?;
                let _ = self.delete(&probe).await;
                let supported = matches!(second, 409 | 412);
                tracing::info!(target: "s3torrent::store", supported, "backend support for conditional writes (If-None-Match: *)");
                Ok(supported)
            })
            .await
            .copied()
    }

    pub(super) async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError> {
        let response = self.send("DELETE", object, &[], None).await?;
        let status = response.status();
        response.finish().await;
        match status {
            200..=299 | 404 => Ok(()),
            s => Err(StoreError(format!(
                "the backend answered {s} to a lease delete"
            ))),
        }
    }
}

enum LeaseState {
    Gone,
    Live,
    /// Not renewed within the lease time; its ETag, to take it over conditionally.
    Stale(String),
    /// Not sealed by a sidecar with our key: a squatter's, taken over at once.
    Forged(String),
}

/// Lease bodies are a line of text and a MAC.
const LEASE_BODY_LIMIT: usize = 4096;
