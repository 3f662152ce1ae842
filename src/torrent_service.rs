//! One `?torrent` request, after routing and signature verification:
//! authorize (ask the backend as the caller) → cache → generate → response.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{watch, Semaphore};

use crate::authorize::{Authorizer, Forwarded};
use crate::cache::{CacheKey, TorrentCache};
use crate::config::{Config, WebseedMode};
use crate::generate::{FetchPlan, Generation, ObjectFacts, Torrent};
use crate::metrics::Metrics;
use crate::probe_cache::ProbeCache;
use crate::response::{magnet_link, reply, Rendered, Reply};
use crate::route::{ObjectRef, TorrentRequest};
use crate::s3_error::S3Error;
use crate::signing::{presign_url, SigningKey};
use crate::sigv4::Caller;
use crate::tracker::Tracker;
use crate::upstream::Upstream;
use crate::uri_encoding::{encode, encode_path};

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
    /// Tracker tiers for every torrent: the built-in tracker first, then `[torrent] announce`.
    announce: Vec<Vec<String>>,
    upstream: Upstream,
    cache: TorrentCache,
    probes: ProbeCache,
    generation_slots: Semaphore,
    /// Generations running or waiting for a slot.
    generations_admitted: AtomicUsize,
    /// Single-flight: one generation per cache key, whoever else asks waits for it.
    flights: Mutex<HashMap<CacheKey, Flight>>,
}

type FlightResult = Result<Arc<Torrent>, S3Error>;
type Flight = watch::Receiver<Option<FlightResult>>;

impl TorrentService {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>, tracker: Option<Arc<Tracker>>) -> Self {
        let builtin = tracker
            .as_ref()
            .and(config.tracker.public_url.clone())
            .map(|url| vec![url]);
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
        TorrentService {
            tracker,
            announce,
            upstream: Upstream::new(&config.upstream, metrics.clone()),
            metrics,
            cache: TorrentCache::new(config.cache.max_bytes),
            probes: ProbeCache::new(std::time::Duration::from_secs(
                config.cache.revalidate_after,
            )),
            generation_slots: Semaphore::new(config.limits.max_concurrent_generations),
            generations_admitted: AtomicUsize::new(0),
            flights: Mutex::new(HashMap::new()),
            config,
        }
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
        let authorizer = Authorizer {
            upstream: &self.upstream,
            probes: &self.probes,
        };
        let facts = authorizer.authorize(object, caller, forwarded).await?;
        self.check_eligible(&facts)?;

        let key = CacheKey {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            version_id: object.version_id.clone(),
            etag: facts.etag.clone(),
            length: facts.length,
        };
        let torrent = match self.cache.get(&key) {
            Some(t) => {
                self.metrics.cache.hits.inc();
                *cache_status = CacheStatus::Hit;
                t
            }
            None => {
                self.metrics.cache.misses.inc();
                *cache_status = CacheStatus::Miss;
                self.join_or_start_flight(key, object, &facts, forwarded, cache_status)
                    .await?
            }
        };
        if let Some(tracker) = &self.tracker {
            tracker.register(torrent.info_hash);
        }
        let rendered = self.render(object, &torrent)?;
        Ok(reply(object, &torrent, rendered, &facts, if_none_match))
    }

    /// This response's bytes: a presigned web seed is signed now, for this response only, so
    /// a cached torrent never carries an expired URL.
    fn render(&self, object: &ObjectRef, torrent: &Torrent) -> Result<Rendered, S3Error> {
        if self.config.torrent.webseed != WebseedMode::Presigned {
            return Ok(Rendered {
                bytes: torrent.bytes.clone(),
                etag: torrent.etag.clone(),
                magnet: magnet_link(torrent, &torrent.meta.url_list),
            });
        }
        let up = &self.config.upstream;
        let key = SigningKey {
            access_key_id: &up.access_key_id,
            secret_access_key: up.secret_access_key.expose(),
            region: &up.region,
        };
        let expiry = std::time::Duration::from_secs(self.config.torrent.presign_expiry);
        let url = presign_url(
            &key,
            "GET",
            &self.webseed_url(object),
            SystemTime::now(),
            expiry,
        )
        .map_err(|e| internal(&e.to_string()))?;
        let webseeds = vec![url];
        let (bytes, etag) = torrent.with_url_list(webseeds.clone());
        Ok(Rendered {
            bytes,
            etag,
            magnet: magnet_link(torrent, &webseeds),
        })
    }

    /// `{public_base_url}/{bucket}/{key}`, path-style, without a trailing `/` (so clients use
    /// it as-is for a single-file torrent).
    fn webseed_url(&self, object: &ObjectRef) -> String {
        let base = self
            .config
            .torrent
            .public_base_url
            .as_deref()
            .unwrap_or_default();
        let mut url = format!(
            "{}/{}/{}",
            base.trim_end_matches('/'),
            encode(&object.bucket),
            encode_path(&object.key)
        );
        if let Some(v) = &object.version_id {
            url.push_str("?versionId=");
            url.push_str(&encode(v));
        }
        url
    }

    /// Single-flight: the first request for an uncached key starts the generation as its
    /// own task, so a caller that disconnects cancels nothing; later requests for the same
    /// key wait for that task's result. The result goes into the cache before the flight is
    /// removed, so a newcomer finds one or the other. Failures are reported to every waiter
    /// and cached nowhere.
    async fn join_or_start_flight(
        self: &Arc<Self>,
        key: CacheKey,
        object: &ObjectRef,
        facts: &ObjectFacts,
        forwarded: &Forwarded,
        cache_status: &mut CacheStatus,
    ) -> FlightResult {
        let mut flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(&key) {
                Some(existing) => {
                    self.metrics.generation.coalesced.inc();
                    *cache_status = CacheStatus::Coalesced;
                    existing.clone()
                }
                None => {
                    let admission = self.admit()?;
                    let (tx, rx) = watch::channel(None);
                    flights.insert(key.clone(), rx.clone());
                    let service = self.clone();
                    let (object, facts) = (object.clone(), facts.clone());
                    let forwarded = Forwarded(forwarded.0.clone());
                    tokio::spawn(async move {
                        let result = service
                            .generate_admitted(admission, &object, &facts, &forwarded)
                            .await
                            .map(Arc::new);
                        if let Ok(t) = &result {
                            service.cache_insert(key.clone(), t.clone());
                        }
                        service
                            .flights
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&key);
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let outcome = flight
            .wait_for(Option::is_some)
            .await
            .map_err(|_| internal("the generation task ended without a result"))?
            .clone();
        outcome.unwrap_or_else(|| Err(internal("the generation task ended without a result")))
    }

    /// Generations read whole objects: cap how many run and how many may wait, so a burst
    /// of cold requests turns into 503 SlowDown instead of unbounded backend load.
    fn admit(self: &Arc<Self>) -> Result<Admission, S3Error> {
        let limits = &self.config.limits;
        let cap = limits.max_concurrent_generations + limits.max_queued_generations;
        let admitted = self.generations_admitted.fetch_add(1, Ordering::SeqCst);
        let admission = Admission(self.clone());
        if admitted >= cap {
            self.metrics.generation.rejected.inc();
            return Err(
                S3Error::new(503, "SlowDown", "Please reduce your request rate.")
                    .with_header("retry-after", "1"),
            );
        }
        Ok(admission)
    }

    async fn generate_admitted(
        &self,
        _admission: Admission,
        object: &ObjectRef,
        facts: &ObjectFacts,
        forwarded: &Forwarded,
    ) -> Result<Torrent, S3Error> {
        let metrics = &self.metrics.generation;
        metrics.queued.inc();
        let slot = self.generation_slots.acquire().await;
        metrics.queued.dec();
        let _slot =
            slot.map_err(|_| S3Error::service_unavailable("The sidecar is shutting down."))?;
        metrics.in_flight.inc();
        let started = std::time::Instant::now();
        let limits = &self.config.limits;
        let result = Generation {
            upstream: &self.upstream,
            config: &self.config.torrent,
            plan: FetchPlan {
                streams: limits.fetch_streams,
                min_parallel_bytes: limits.parallel_fetch_min_bytes,
            },
            object,
            facts,
            forwarded: &forwarded.as_pairs(),
            metrics,
            announce: &self.announce,
            url_list: &match self.config.torrent.webseed {
                WebseedMode::Public => vec![self.webseed_url(object)],
                WebseedMode::None | WebseedMode::Presigned => Vec::new(),
            },
        }
        .run()
        .await;
        metrics.in_flight.dec();
        metrics.duration.observe(started.elapsed().as_secs_f64());
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics.generations.with_label_values(&[label]).inc();
        result
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

/// Releases an admission when the generation ends, however it ends.
struct Admission(Arc<TorrentService>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.generations_admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

fn internal(message: &str) -> S3Error {
    S3Error::new(500, "InternalError", message.to_string())
}
