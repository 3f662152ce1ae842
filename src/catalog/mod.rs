//! The catalog: where a torrent comes from once the caller may have it. It alone owns the
//! path cache → single-flight → store (shared by every replica) → lease → generation →
//! assembly, behind three calls: [`Catalog::get_or_make`] (a `?torrent`),
//! [`Catalog::ensure_stored`] (`warm`) and [`Catalog::adopt`] (hash on upload).
//!
//! - [`facts`] — what the backend says an object is (the one-byte probe).
//! - [`directory`] — a prefix's objects as one torrent: the plan from the listing, the
//!   facts from the READ checks; [`hash_files`] generates it.
//! - [`cache`] — generated torrents, LRU bounded in bytes, keyed by the torrent's identity.
//! - [`generate`] — fetch the object and stream it through piece hashing.
//! - [`assemble`] — piece hashes → the torrent, with this replica's trackers and web seeds.
//! - [`produce`] — a torrent missing from the cache: the store, the lease, a generation.
//! - [`webseed_index`] — which object a renamed directory's web-seed URL names.

mod adoptions;
mod assemble;
mod cache;
pub mod directory;
mod facts;
mod generate;
mod hash_files;
mod produce;
mod webseed_index;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::common::flight::{Joined, SingleFlight};
use crate::config::{Config, WebseedMode};
use crate::s3::forwarded::Forwarded;
use crate::s3::upstream::Upstream;
use crate::s3::{ObjectRef, S3Error};
use crate::store::{EntryKey, Store};
use crate::telemetry::metrics::Metrics;
use crate::torrent::Torrent;

pub use adoptions::Adopting;
use cache::{torrent_cache, TorrentCache};
use directory::DirectoryFacts;
pub use facts::ObjectFacts;
pub use produce::{Upload, Warmed};
use webseed_index::{DirectoryFiles, WebseedIndex};

/// How a torrent request was served, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheStatus {
    /// Refused before the cache was consulted.
    #[default]
    None,
    Hit,
    Miss,
    /// Joined a generation another request had started.
    Coalesced,
}

/// What a torrent is made of: one object, or the objects under a prefix.
#[derive(Debug, Clone)]
pub enum Subject {
    Object {
        object: ObjectRef,
        facts: ObjectFacts,
    },
    Directory(Arc<DirectoryFacts>),
}

impl Subject {
    /// Bytes of content (a directory's files in all).
    fn length(&self) -> u64 {
        match self {
            Subject::Object { facts, .. } => facts.length,
            Subject::Directory(d) => d.length(),
        }
    }
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::None => "-",
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Coalesced => "coalesced",
        }
    }
}

pub struct Catalog {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    upstream: Arc<Upstream>,
    /// Tracker tiers for every torrent: the built-in tracker first, then `[torrent] announce`.
    announce: Vec<Vec<String>>,
    /// The shared store in the backend, behind the in-memory cache (`[store]`).
    store: Option<Arc<Store>>,
    cache: TorrentCache,
    flights: Arc<SingleFlight<EntryKey, Arc<Torrent>, S3Error>>,
    /// Generations running or waiting for a slot; past its permits, 503 SlowDown.
    admission: Arc<Semaphore>,
    /// Generations running.
    slots: Semaphore,
    /// Renamed directories' files by path, for their web seed.
    webseed_index: WebseedIndex,
    /// Uploads whose hashes are on their way into the cache.
    adoptions: adoptions::Adoptions,
}

impl Catalog {
    /// `builtin_tracker`: the built-in tracker's public URL, when it runs here.
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        upstream: Arc<Upstream>,
        builtin_tracker: Option<String>,
    ) -> Catalog {
        let secret = config.upstream.secret_access_key.expose();
        let store =
            Store::new(&config.store, secret, upstream.clone(), metrics.clone()).map(Arc::new);
        let configured = config.torrent.announce.iter();
        let announce = builtin_tracker
            .map(|url| vec![url])
            .into_iter()
            .chain(configured.map(|tier| tier.iter().map(|u| u.0.clone()).collect()))
            .collect();
        let limits = &config.limits;
        Catalog {
            announce,
            store,
            cache: torrent_cache(config.cache.max_bytes),
            flights: Arc::new(SingleFlight::new()),
            admission: Arc::new(Semaphore::new(
                limits.max_concurrent_generations + limits.max_queued_generations,
            )),
            slots: Semaphore::new(limits.max_concurrent_generations),
            webseed_index: WebseedIndex::new(config.cache.max_directory_index_bytes),
            adoptions: Default::default(),
            upstream,
            metrics,
            config,
        }
    }

    /// An upload of `object` was accepted by the backend: a `?torrent` for it waits for its
    /// adoption until the guard drops.
    pub fn adoption_begins(&self, object: &crate::s3::ObjectRef) -> Adopting {
        self.adoptions.begin(object)
    }

    /// The shared store, when configured.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// The torrent of `object` as `facts` describe it (the caller was authorized against
    /// them): from the cache, or made once however many ask at the same time.
    pub async fn get_or_make(
        self: &Arc<Self>,
        object: &ObjectRef,
        facts: &ObjectFacts,
        forwarded: &Forwarded,
        status: &mut CacheStatus,
    ) -> Result<Arc<Torrent>, S3Error> {
        self.check_eligible(facts)?;
        let subject = Subject::Object {
            object: object.clone(),
            facts: facts.clone(),
        };
        self.get_or_make_subject(subject, forwarded, status).await
    }

    /// The torrent of a directory as its files' facts describe it (the caller was
    /// authorized for every one).
    pub async fn get_or_make_directory(
        self: &Arc<Self>,
        directory: Arc<DirectoryFacts>,
        forwarded: &Forwarded,
        status: &mut CacheStatus,
    ) -> Result<Arc<Torrent>, S3Error> {
        if directory.length() == 0 {
            return Err(S3Error::invalid_request(
                "Torrent creation is not supported for a prefix of empty objects only: BitTorrent clients reject a length of 0.",
            ));
        }
        let subject = Subject::Directory(directory.clone());
        let torrent = self.get_or_make_subject(subject, forwarded, status).await?;
        if directory.renamed && self.config.torrent.webseed == WebseedMode::Public {
            let identity = self
                .identity(&Subject::Directory(directory.clone()))
                .digest();
            self.webseed_index.remember(&identity, || {
                DirectoryFiles::new(&directory.name, &directory.files)
            });
        }
        Ok(torrent)
    }

    /// The object a renamed directory's web seed names by `path` (`{name}/{path}`): the
    /// directory `identity` of `bucket`, as this replica served it or the store holds it.
    pub async fn directory_file(
        &self,
        bucket: &str,
        identity: &str,
        path: &str,
    ) -> Result<ObjectRef, S3Error> {
        let unknown = || {
            S3Error::new(
                crate::s3::Code::NoSuchKey,
                "No directory torrent of that identity is known here, or it has no such file.",
            )
        };
        let files = match self.webseed_index.get(identity) {
            Some(files) => files,
            None => {
                let store = self.store.as_ref().ok_or_else(unknown)?;
                let entry = store
                    .get_directory(bucket, identity)
                    .await
                    .ok_or_else(unknown)?;
                let (name, _) = directory::directory_name(bucket, &entry.key.key);
                self.webseed_index
                    .remember(identity, || DirectoryFiles::new(&name, &entry.files))
            }
        };
        files.object(bucket, path).ok_or_else(unknown)
    }

    async fn get_or_make_subject(
        self: &Arc<Self>,
        subject: Subject,
        forwarded: &Forwarded,
        status: &mut CacheStatus,
    ) -> Result<Arc<Torrent>, S3Error> {
        let key = self.identity(&subject);
        if let Some(t) = self.cache.get(&key) {
            self.metrics.cache.hits.inc();
            *status = CacheStatus::Hit;
            return Ok(t);
        }
        self.metrics.cache.misses.inc();
        *status = CacheStatus::Miss;
        let start = || {
            let admitted = self.admit()?;
            let catalog = self.clone();
            let key = key.clone();
            let forwarded = forwarded.clone();
            Ok(async move {
                // Uploaded just now, through this replica: its hashes are coming, or came
                // since the cache was looked at.
                if let Subject::Object { object, .. } = &subject {
                    let bound = catalog.config.uploads.adoption_wait.get();
                    catalog.adoptions.settled(object, bound).await;
                    if let Some(t) = catalog.cache.get(&key) {
                        return Ok(t);
                    }
                }
                let torrent = catalog
                    .produce(admitted, &key, &subject, &forwarded)
                    .await
                    .map(Arc::new)?;
                catalog.cache_insert(key, torrent.clone());
                Ok(torrent)
            })
        };
        let (result, joined) = self.flights.run(key.clone(), start).await;
        if joined == Joined::Coalesced {
            self.metrics.generation.coalesced.inc();
            *status = CacheStatus::Coalesced;
        }
        result
    }

    /// The torrent's identity: the object (or every file) as the backend reports it now,
    /// at the piece length its torrent has here.
    fn identity(&self, subject: &Subject) -> EntryKey {
        let torrent = &self.config.torrent;
        match subject {
            Subject::Object { object, facts } => {
                EntryKey::of(object, &facts.etag, facts.length, torrent)
            }
            Subject::Directory(d) => {
                EntryKey::of_directory(&d.bucket, &d.prefix, d.digest(), d.length(), torrent)
            }
        }
    }

    /// Generations read whole objects: cap how many run and how many may wait, so a burst
    /// of cold requests turns into 503 SlowDown instead of unbounded backend load.
    fn admit(&self) -> Result<OwnedSemaphorePermit, S3Error> {
        self.admission.clone().try_acquire_owned().map_err(|_| {
            self.metrics.generation.rejected.inc();
            S3Error::slow_down()
        })
    }

    fn cache_insert(&self, key: EntryKey, torrent: Arc<Torrent>) {
        let inserted = self.cache.insert(key, torrent);
        let m = &self.metrics.cache;
        m.evictions.inc_by(inserted.evicted as u64);
        m.bytes.set(inserted.bytes as i64);
        m.entries.set(inserted.entries as i64);
    }

    fn check_eligible(&self, facts: &ObjectFacts) -> Result<(), S3Error> {
        if facts.length == 0 {
            return Err(S3Error::invalid_request(
                "Torrent creation is not supported for empty objects: BitTorrent clients reject a length of 0.",
            ));
        }
        let max = self.config.torrent.max_object_size;
        if facts.length > max {
            return Err(S3Error::invalid_request(format!(
                "Torrent creation is not supported for objects larger than {max}"
            )));
        }
        Ok(())
    }
}
