//! The `?torrent` service: one request, after routing and signature verification, goes
//! authorize (ask the backend as the caller) → cache → store (shared by every replica) →
//! generate (single-flight, bounded; one replica at a time under the store's lease) →
//! assemble → respond. `warm` and hash on upload feed the same store and cache.
//!
//! - [`authorize`] — the READ check; yields the [`ObjectFacts`] the torrent is built on.
//! - [`probe_cache`] — optional short reuse of a caller's READ check.
//! - [`cache`] — generated torrents, LRU bounded in bytes, keyed by object and ETag.
//! - [`generate`] — fetch the object and stream it through piece hashing.
//! - [`assemble`] — piece hashes → the torrent, with this replica's trackers and web seeds.
//! - [`response`] — the torrent response's headers, `If-None-Match`, the magnet link.

mod assemble;
mod authorize;
mod cache;
mod generate;
mod object_facts;
mod probe_cache;
mod produce;
pub mod response;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, SeedObjects, WebseedMode};
use crate::s3::forwarded::Forwarded;
use crate::s3::route::TorrentRequest;
use crate::s3::sigv4::{presign_url, Caller, SigningKey};
use crate::s3::upstream::Upstream;
use crate::s3::uri::{encode, encode_path};
use crate::s3::{ObjectRef, S3Error};
use crate::seeder::public::readable_by_anyone;
use crate::seeder::Seeder;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use crate::torrent::{Format, Info, Torrent};
use crate::tracker::Tracker;

use crate::common::flight::{Joined, SingleFlight};
use authorize::Authorizer;
use cache::{torrent_cache, CacheKey, TorrentCache};
pub use object_facts::ObjectFacts;
use probe_cache::ProbeCache;
pub use produce::Warmed;
use response::{magnet_link, reply, Rendered, Reply};

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

pub struct TorrentService {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    tracker: Option<Arc<Tracker>>,
    seeder: Option<Arc<Seeder>>,
    /// Tracker tiers for every torrent: the built-in tracker first, then `[torrent] announce`.
    announce: Vec<Vec<String>>,
    upstream: Arc<Upstream>,
    /// The shared store in the backend, behind the in-memory cache (`[store]`).
    store: Option<Arc<Store>>,
    cache: TorrentCache,
    probes: ProbeCache,
    flights: Arc<SingleFlight<CacheKey, Arc<Torrent>, S3Error>>,
    /// Generations running or waiting for a slot; past its permits, 503 SlowDown.
    admission: Arc<Semaphore>,
    /// Generations running.
    slots: Arc<Semaphore>,
}

impl TorrentService {
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        upstream: Arc<Upstream>,
        tracker: Option<Arc<Tracker>>,
        seeder: Option<Arc<Seeder>>,
    ) -> Self {
        let secret = config.upstream.secret_access_key.expose();
        let store =
            Store::new(&config.store, secret, upstream.clone(), metrics.clone()).map(Arc::new);
        let builtin = tracker
            .as_ref()
            .and(config.tracker.public_url.as_ref())
            .map(|url| vec![url.to_string()]);
        let announce = builtin
            .into_iter()
            .chain(
                config
                    .torrent
                    .announce
                    .iter()
                    .map(|tier| tier.iter().map(|u| u.0.clone()).collect()),
            )
            .collect();
        let limits = &config.limits;
        TorrentService {
            tracker,
            seeder,
            announce,
            upstream,
            store,
            metrics,
            cache: torrent_cache(config.cache.max_bytes),
            probes: ProbeCache::new(config.cache.revalidate_after.get()),
            flights: Arc::new(SingleFlight::new()),
            admission: Arc::new(Semaphore::new(
                limits.max_concurrent_generations + limits.max_queued_generations,
            )),
            slots: Arc::new(Semaphore::new(limits.max_concurrent_generations)),
            config,
        }
    }

    /// The shared store, when configured.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// READ checks and object facts, asked of the backend (probes reused per the cache).
    fn authorizer(&self) -> Authorizer<'_> {
        Authorizer {
            upstream: &self.upstream,
            probes: &self.probes,
        }
    }

    /// The store, for an object of `length` bytes: not below `store.min_bytes`.
    fn store_for(&self, length: u64) -> Option<&Arc<Store>> {
        self.store
            .as_ref()
            .filter(|_| length >= self.config.store.min_bytes)
    }

    pub async fn handle(
        self: &Arc<Self>,
        request: &TorrentRequest,
        caller: &Caller,
        forwarded: &Forwarded,
        if_none_match: Option<&str>,
        cache_status: &mut CacheStatus,
    ) -> Result<Reply, S3Error> {
        let object = &request.object;
        let authorizer = self.authorizer();
        let facts = authorizer.authorize(object, caller, forwarded).await?;
        self.check_eligible(&facts)?;

        let key = self.cache_key(object, &facts);
        let torrent = match self.cache.get(&key) {
            Some(t) => {
                self.metrics.cache.hits.inc();
                *cache_status = CacheStatus::Hit;
                t
            }
            None => {
                self.metrics.cache.misses.inc();
                *cache_status = CacheStatus::Miss;
                self.generate_once(key, object, &facts, forwarded, cache_status)
                    .await?
            }
        };
        if let Some(tracker) = &self.tracker {
            for id in torrent.swarm_ids() {
                tracker.register(id);
            }
        }
        self.offer_to_seeder(object, &torrent, &facts, caller).await;
        let rendered = self.render(object, &torrent, caller, &facts)?;
        Ok(reply(object, &torrent, rendered, &facts, if_none_match))
    }

    /// Hands the torrent to the seeder: always with `objects = "all"`; with `"public"` only
    /// if anyone may read the object: an anonymous check with no caller's context (not this
    /// caller's authorization, which carried its address). For an anonymous caller it is
    /// made before answering, so the seed is there when its client dials; for a signed
    /// one in the background.
    async fn offer_to_seeder(
        self: &Arc<Self>,
        object: &ObjectRef,
        torrent: &Arc<Torrent>,
        facts: &ObjectFacts,
        caller: &Caller,
    ) {
        // Every request for a seeded torrent comes here: once it is seeded, nothing to do
        // (no copy of its pieces, no background probe).
        let Some(seeder) = self.seeder.clone().filter(|s| !s.seeds(&torrent.info_hash)) else {
            return;
        };
        let pinned = object.pinned_to(facts.version_id.as_deref());
        if seeder.config().objects != SeedObjects::Public {
            seeder.offer(torrent, &pinned, &facts.etag);
            return;
        }
        let (service, torrent, etag) = (self.clone(), torrent.clone(), facts.etag.clone());
        let check = async move {
            if readable_by_anyone(&service.upstream, &pinned, &etag).await == Some(true) {
                seeder.offer(&torrent, &pinned, &etag);
            }
        };
        match caller {
            Caller::Anonymous => check.await,
            Caller::Signed { .. } => drop(tokio::spawn(check)),
        }
    }

    /// This response's bytes: a presigned web seed is signed now, for this response only, so
    /// a cached torrent never carries an expired URL. It never outlives the caller's own
    /// grant (a presigned `?torrent` URL's remaining validity), and it names the version the
    /// caller was authorized for, so it can never serve other bytes.
    fn render(
        &self,
        object: &ObjectRef,
        torrent: &Torrent,
        caller: &Caller,
        facts: &ObjectFacts,
    ) -> Result<Rendered, S3Error> {
        if self.config.torrent.webseed != WebseedMode::Presigned {
            return Ok(Rendered {
                bytes: torrent.bytes.clone(),
                etag: torrent.etag.clone(),
                magnet: magnet_link(torrent, &torrent.meta.url_list, self.seed_addr(torrent)),
            });
        }
        let up = &self.config.upstream;
        let key = SigningKey {
            access_key_id: &up.access_key_id,
            secret_access_key: up.secret_access_key.expose(),
            region: &up.region,
        };
        let now = SystemTime::now();
        let mut expiry = self.config.torrent.presign_expiry.get();
        if let Caller::Signed {
            valid_until: Some(until),
            ..
        } = caller
        {
            let remaining = until.duration_since(now).unwrap_or_default();
            expiry = expiry.min(remaining).max(std::time::Duration::from_secs(1));
        }
        let pinned = object.pinned_to(facts.version_id.as_deref());
        let url =
            presign_url(&key, "GET", &self.webseed_url(&pinned), now, expiry).map_err(|e| {
                tracing::error!(error = %e, "presigning a web seed failed");
                S3Error::internal("We encountered an internal error. Please try again.")
            })?;
        let webseeds = vec![url];
        let (bytes, etag) = torrent.with_url_list(webseeds.clone());
        Ok(Rendered {
            bytes,
            etag,
            magnet: magnet_link(torrent, &webseeds, self.seed_addr(torrent)),
        })
    }

    /// Where the seeder takes peers for this torrent (magnet `x.pe`), when it seeds it.
    fn seed_addr(&self, torrent: &Torrent) -> Option<String> {
        let seeder = self.seeder.as_ref()?;
        torrent.info.format().has_v1().then(|| seeder.public_addr())
    }

    /// `{public_base_url}/{bucket}/{key}`, path-style, without a trailing `/` (so clients use
    /// it as-is for a single-file torrent).
    fn webseed_url(&self, object: &ObjectRef) -> String {
        let base = self.config.torrent.public_base_url.as_ref();
        let base = base.map_or("", |u| u.as_str()).trim_end_matches('/');
        format!("{base}{}", object.path_and_query())
    }

    /// The public web seed as clients of this format use it: the sidecar's own web-seed
    /// route for the object (`{public_base_url}/_s3torrent/webseed/{bucket}/{key}`), which
    /// alone is shaped when the object is seeded. libtorrent (2.0.8) gives a v2-only
    /// single-file torrent a tail pad file, treats it as multi-file and requests
    /// `{url}/{name}`; so for v2 the URL names the key's folder, with a trailing `/`, whenever
    /// appending the torrent's name gives the key back (no `versionId`, a name equal to the
    /// key's last segment). Hybrid and v1 clients take the object's own URL.
    fn public_webseed_url(&self, object: &ObjectRef) -> String {
        let base = self.config.torrent.public_base_url.as_ref();
        let base = base.map_or("", |u| u.as_str()).trim_end_matches('/');
        let route = crate::webseed::PREFIX.trim_end_matches('/');
        let exact = format!("{base}{route}{}", object.path_and_query());
        if self.config.torrent.format != Format::V2 || object.version_id.is_some() {
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

    /// One generation per cache key at a time; the result is cached before the flight lands.
    async fn generate_once(
        self: &Arc<Self>,
        key: CacheKey,
        object: &ObjectRef,
        facts: &ObjectFacts,
        forwarded: &Forwarded,
        cache_status: &mut CacheStatus,
    ) -> Result<Arc<Torrent>, S3Error> {
        let start = || {
            let admitted = self.admit()?;
            let service = self.clone();
            let (key, object, facts) = (key.clone(), object.clone(), facts.clone());
            let forwarded = forwarded.clone();
            Ok(async move {
                let torrent = service
                    .produce(admitted, &key, &object, &facts, &forwarded)
                    .await
                    .map(Arc::new)?;
                service.cache_insert(key, torrent.clone());
                Ok(torrent)
            })
        };
        let (result, joined) = self.flights.run(key.clone(), start).await;
        if joined == Joined::Coalesced {
            self.metrics.generation.coalesced.inc();
            *cache_status = CacheStatus::Coalesced;
        }
        result
    }

    /// Generations read whole objects: cap how many run and how many may wait, so a burst
    /// of cold requests turns into 503 SlowDown instead of unbounded backend load.
    fn admit(&self) -> Result<OwnedSemaphorePermit, S3Error> {
        self.admission.clone().try_acquire_owned().map_err(|_| {
            self.metrics.generation.rejected.inc();
            S3Error::slow_down()
        })
    }

    /// The object as the backend reports it now, at the piece length its torrent has here.
    fn cache_key(&self, object: &ObjectRef, facts: &ObjectFacts) -> CacheKey {
        CacheKey::of(object, &facts.etag, facts.length, &self.config.torrent)
    }

    fn cache_insert(&self, key: CacheKey, torrent: Arc<Torrent>) {
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
