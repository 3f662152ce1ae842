//! Where a torrent missing from the cache comes from: the shared store, the replica holding
//! the object's lease, or a generation here (stored for the others); and the two other ways
//! in: `warm` ([`Catalog::ensure_stored`]) and hash on upload ([`Catalog::adopt`]).

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use futures_util::{StreamExt, TryStreamExt};

use crate::s3::forwarded::Forwarded;
use crate::s3::listing::Asked;
use crate::s3::upstream::Identity;
use crate::s3::{ObjectRef, S3Error};
use crate::store::lease::{Claim, LeaseGuard};
use crate::store::{Entry, EntryKey, Store, StoreError};
use crate::torrent::{PieceHashes, Torrent};

use super::assemble::Assembler;
use super::directory::{list_directory, DirectoryFacts, DirectoryPlan};
use super::facts::ObjectFacts;
use super::generate::{FetchPlan, Generation};
use super::hash_files::FilesGeneration;
use super::{Catalog, Subject};

/// What `warm` did for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warmed {
    /// Read, hashed and stored.
    Stored { bytes: u64 },
    /// The store already held its torrent (or another replica made it meanwhile).
    AlreadyStored,
    /// Under `store.min_bytes`: replicas read it themselves.
    Small,
}

/// Hashes an upload made from its own bytes, for [`Catalog::adopt`].
pub struct Upload {
    /// The ETag the backend answered the upload with.
    pub etag: String,
    pub length: u64,
    pub piece_length: u64,
    pub hashes: PieceHashes,
}

/// Why an upload's hashes were not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAdopted {
    /// The backend now holds other bytes (another write came after it).
    Changed,
    /// The object could not be checked, is not eligible, or the hashes do not fit it.
    Failed,
}

impl NotAdopted {
    /// The metric label (`s3torrent_upload_skipped_total{reason}`).
    pub fn reason(self) -> &'static str {
        match self {
            NotAdopted::Changed => "changed",
            NotAdopted::Failed => "failed",
        }
    }
}

/// One generation's inputs: its admission, and what the caller was authorized for.
struct Generated<'a> {
    admitted: OwnedSemaphorePermit,
    subject: &'a Subject,
    forwarded: &'a Forwarded,
}

impl Catalog {
    /// The torrent for an object missing from the cache: from the store when a replica (or
    /// `warm`, or an upload) left it there, else generated — by this replica, or by the one
    /// holding the object's lease — and stored for the others.
    pub(super) async fn produce(
        &self,
        admitted: OwnedSemaphorePermit,
        key: &EntryKey,
        subject: &Subject,
        forwarded: &Forwarded,
    ) -> Result<Torrent, S3Error> {
        let entry_key = key.clone();
        let generation = Generated {
            admitted,
            subject,
            forwarded,
        };
        let Some(store) = self.store_for(subject.length()) else {
            let entry = self.generate(generation, entry_key).await?;
            return Ok(self.assemble(subject, entry));
        };
        if let Some(entry) = store.get(&entry_key).await {
            return Ok(self.assemble(subject, entry));
        }
        let lease = match store.claim(&entry_key).await {
            Claim::Theirs(entry) => return Ok(self.assemble(subject, entry)),
            Claim::Mine(lease) => Some(lease),
            Claim::Unavailable => None,
        };
        let (entry, _) = self
            .generate_and_store(generation, entry_key, store, lease)
            .await?;
        Ok(self.assemble(subject, entry))
    }

    /// Generates, and writes the entry before letting go of the lease, so a replica waiting
    /// on it finds the entry; the store's verdict is returned beside the entry.
    async fn generate_and_store(
        &self,
        g: Generated<'_>,
        key: EntryKey,
        store: &Store,
        lease: Option<LeaseGuard>,
    ) -> Result<(Entry, Result<(), StoreError>), S3Error> {
        let entry = self.generate(g, key).await?;
        let stored = store.put(&entry).await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        Ok((entry, stored))
    }

    fn entry(&self, key: EntryKey, facts: &ObjectFacts, hashes: PieceHashes) -> Entry {
        Entry {
            key,
            last_modified: facts.last_modified.clone(),
            hashes,
            files: Vec::new(),
        }
    }

    fn assemble(&self, subject: &Subject, entry: Entry) -> Torrent {
        let assembler = Assembler {
            config: &self.config.torrent,
            announce: &self.announce,
        };
        match subject {
            Subject::Object { object, .. } => assembler.torrent(object, entry),
            Subject::Directory(d) => assembler.directory(&d.name, d.renamed, entry),
        }
    }

    /// The store, for an object of `length` bytes: not below `store.min_bytes`.
    fn store_for(&self, length: u64) -> Option<&Arc<Store>> {
        self.store
            .as_ref()
            .filter(|_| length >= self.config.store.min_bytes)
    }

    /// `s3torrent warm`: makes sure the store holds the torrent of `object` as it is now.
    pub async fn ensure_stored(self: &Arc<Self>, object: &ObjectRef) -> Result<Warmed, S3Error> {
        let store = self
            .store
            .clone()
            .ok_or_else(|| S3Error::invalid_request("`warm` needs a store: set [store] bucket."))?;
        let facts = ObjectFacts::of_sidecar(&self.upstream, object).await?;
        self.check_eligible(&facts)?;
        let subject = Subject::Object {
            object: object.clone(),
            facts,
        };
        self.ensure_subject_stored(&store, subject).await
    }

    /// `warm --directory`: makes sure the store holds the torrent of the objects under
    /// `prefix` as they are now (listed and read as the sidecar, the same identity a
    /// caller's request computes), so the first caller waits for no read.
    pub async fn ensure_directory_stored(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
    ) -> Result<Warmed, S3Error> {
        let store = self
            .store
            .clone()
            .ok_or_else(|| S3Error::invalid_request("`warm` needs a store: set [store] bucket."))?;
        let asked = Asked {
            identity: &Identity::Sidecar,
            headers: &[],
            bucket,
            prefix,
        };
        let listed = list_directory(&self.upstream, &asked, &self.config.torrent).await?;
        let plan = DirectoryPlan::new(bucket, prefix, listed, self.config.torrent.format)?;
        let upstream = &self.upstream;
        let facts = futures_util::stream::iter(plan.objects())
            .map(|object| async move { ObjectFacts::of_sidecar(upstream, &object).await })
            .buffered(self.config.limits.directory_probes)
            .try_collect()
            .await?;
        let directory = DirectoryFacts::of(plan, facts)?;
        if directory.length() == 0 {
            return Err(S3Error::invalid_request(
                "The prefix holds empty objects only: no torrent.",
            ));
        }
        let subject = Subject::Directory(Arc::new(directory));
        self.ensure_subject_stored(&store, subject).await
    }

    async fn ensure_subject_stored(
        &self,
        store: &Arc<Store>,
        subject: Subject,
    ) -> Result<Warmed, S3Error> {
        let length = subject.length();
        if self.store_for(length).is_none() {
            return Ok(Warmed::Small);
        }
        let entry_key = self.identity(&subject);
        if store.get(&entry_key).await.is_some() {
            return Ok(Warmed::AlreadyStored);
        }
        let lease = match store.claim(&entry_key).await {
            Claim::Theirs(_) => return Ok(Warmed::AlreadyStored),
            Claim::Mine(lease) => Some(lease),
            Claim::Unavailable => None,
        };
        let admitted = self
            .admission
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| S3Error::service_unavailable("The sidecar is shutting down."))?;
        let generation = Generated {
            admitted,
            subject: &subject,
            forwarded: &Forwarded::default(),
        };
        let (_, stored) = self
            .generate_and_store(generation, entry_key, store, lease)
            .await?;
        stored.map_err(|e| {
            S3Error::service_unavailable(format!("The store refused the torrent: {e}"))
        })?;
        Ok(Warmed::Stored { bytes: length })
    }

    /// Hash on upload: takes hashes made from an upload's own bytes, if the object the
    /// backend now holds is that upload (its ETag and length, seen as the sidecar sees it),
    /// hashed at the piece length a generation would use.
    pub async fn adopt(&self, object: &ObjectRef, upload: Upload) -> Result<(), NotAdopted> {
        let facts = ObjectFacts::of_sidecar(&self.upstream, object)
            .await
            .map_err(|_| NotAdopted::Failed)?;
        if facts.etag != upload.etag || facts.length != upload.length {
            return Err(NotAdopted::Changed);
        }
        let subject = Subject::Object {
            object: object.clone(),
            facts: facts.clone(),
        };
        let key = self.identity(&subject);
        if self.check_eligible(&facts).is_err() || upload.piece_length != key.piece_length {
            return Err(NotAdopted::Failed);
        }
        let entry = self.entry(key.clone(), &facts, upload.hashes);
        if !entry.is_complete() {
            tracing::error!(target: "s3torrent::upload", "upload hashes do not cover the object; not used");
            return Err(NotAdopted::Failed);
        }
        if let Some(store) = self.store_for(facts.length) {
            let _ = store.put(&entry).await;
        }
        self.cache_insert(key, Arc::new(self.assemble(&subject, entry)));
        Ok(())
    }

    /// Reads and hashes what the caller was authorized for, within a generation slot.
    async fn generate(&self, g: Generated<'_>, key: EntryKey) -> Result<Entry, S3Error> {
        let _admitted = g.admitted;
        let metrics = &self.metrics.generation;
        metrics.queued.inc();
        let slot = self.slots.acquire().await;
        metrics.queued.dec();
        let _slot =
            slot.map_err(|_| S3Error::service_unavailable("The sidecar is shutting down."))?;
        metrics.in_flight.inc();
        let started = std::time::Instant::now();
        let limits = &self.config.limits;
        let plan = FetchPlan {
            streams: limits.fetch_streams,
            min_parallel_bytes: limits.parallel_fetch_min_bytes,
        };
        let result = match g.subject {
            Subject::Object { object, facts } => Generation {
                upstream: &self.upstream,
                config: &self.config.torrent,
                plan,
                object,
                facts,
                forwarded: g.forwarded,
                metrics,
            }
            .run(&key.layout())
            .await
            .map(|hashes| self.entry(key, facts, hashes)),
            Subject::Directory(d) => self.generate_files(d, key, plan, g.forwarded).await,
        };
        metrics.in_flight.dec();
        metrics.duration.observe(started.elapsed().as_secs_f64());
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics.generations.with_label_values(&[label]).inc();
        result
    }

    async fn generate_files(
        &self,
        directory: &DirectoryFacts,
        key: EntryKey,
        plan: FetchPlan,
        forwarded: &Forwarded,
    ) -> Result<Entry, S3Error> {
        let mut entry = Entry {
            key,
            last_modified: directory.last_modified.clone(),
            hashes: PieceHashes::default(),
            files: directory.files.clone(),
        };
        let (v1, trees) = FilesGeneration {
            upstream: &self.upstream,
            format: entry.key.format,
            plan,
            directory,
            forwarded,
            metrics: &self.metrics.generation,
        }
        .run(&entry.layout())
        .await?;
        entry.hashes.v1 = v1;
        for (file, tree) in entry.files.iter_mut().zip(trees) {
            file.tree = tree;
        }
        Ok(entry)
    }
}
