//! One `?torrent` request, after routing and signature verification:
//! authorize (ask the backend as the caller) → cache → generate → response.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::{watch, Semaphore};

use crate::cache::{CacheKey, TorrentCache};
use crate::config::{Config, WebseedMode};
use crate::generate::{FetchPlan, Generation, ObjectFacts, Torrent};
use crate::metrics::Metrics;
use crate::probe_cache::{ProbeCache, ProbeKey};
use crate::route::{ObjectRef, TorrentRequest};
use crate::s3_error::{parse_upstream_error, S3Error};
use crate::signing::{presign_url, SigningKey};
use crate::sigv4::Caller;
use crate::tracker::Tracker;
use crate::upstream::{Identity, Purpose, Upstream, UpstreamResponse};
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

/// A response the proxy writes as is (plus `x-amz-request-id`).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Sent unless the request was `HEAD`; `Content-Length` is always its length.
    pub body: Bytes,
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

/// Caller request headers that travel with the sidecar's requests on the caller's behalf.
pub struct Forwarded(pub Vec<(&'static str, String)>);

impl Forwarded {
    fn as_pairs(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

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

    pub fn cache(&self) -> &TorrentCache {
        &self.cache
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
        let facts = self.authorize(object, caller, forwarded).await?;
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
        let evicted = self.cache.insert(key, torrent);
        let m = &self.metrics.cache;
        m.evictions.inc_by(evicted as u64);
        m.bytes.set(self.cache.bytes() as i64);
        m.entries.set(self.cache.len() as i64);
    }

    /// READ check: the backend decides, asked as this caller (anonymous stays anonymous;
    /// a verified caller is re-signed with their own key). Never the sidecar's credentials.
    async fn authorize(
        &self,
        object: &ObjectRef,
        caller: &Caller,
        forwarded: &Forwarded,
    ) -> Result<ObjectFacts, S3Error> {
        let identity = match caller {
            Caller::Anonymous => Identity::Anonymous,
            Caller::Signed {
                access_key_id,
                secret_access_key,
            } => Identity::Caller {
                access_key_id,
                secret_access_key: secret_access_key.expose(),
            },
        };
        let probe_key = ProbeKey::new(object, caller, &forwarded.0);
        let now = std::time::Instant::now();
        if let Some(facts) = self.probes.get(&probe_key, now) {
            return Ok(facts);
        }
        let headers = forwarded.as_pairs();
        let head = self
            .upstream
            .send(Purpose::Probe, "HEAD", object, &identity, &headers)
            .await?;
        if head.status() != 200 {
            let status = head.status();
            head.finish().await;
            return Err(self
                .explain_refusal(status, object, &identity, &headers)
                .await);
        }
        let facts = facts_from(&head);
        head.finish().await;
        if let Ok(f) = &facts {
            self.probes.put(probe_key, f.clone(), now);
        }
        facts
    }

    /// A refused HEAD has no body to say why; repeat it as a one-byte GET to learn the
    /// backend's error code (`NoSuchKey` vs `NoSuchBucket`, ...), and pass that on.
    async fn explain_refusal(
        &self,
        head_status: u16,
        object: &ObjectRef,
        identity: &Identity<'_>,
        headers: &[(&str, &str)],
    ) -> S3Error {
        if head_status >= 500 {
            return S3Error::service_unavailable(format!(
                "The backend answered {head_status}. Please retry."
            ));
        }
        let mut with_range = headers.to_vec();
        with_range.push(("range", "bytes=0-0"));
        let detail = match self
            .upstream
            .send(Purpose::Explain, "GET", object, identity, &with_range)
            .await
        {
            Ok(resp) if resp.status() == head_status => {
                parse_upstream_error(&resp.small_body(64 * 1024).await)
            }
            Ok(resp) => {
                resp.finish().await;
                None
            }
            Err(_) => None,
        };
        if head_status == 400 && detail.as_ref().is_some_and(|(_, m)| mentions_sse_c(m)) {
            return sse_c_error();
        }
        let (default_code, default_message) = default_error(head_status);
        let (code, message) = match detail {
            Some((code, message)) if !message.is_empty() => (leak_code(&code), message),
            Some((code, _)) => (leak_code(&code), default_message),
            None => (default_code, default_message),
        };
        S3Error::new(head_status, code, message)
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

fn facts_from(head: &UpstreamResponse<'_>) -> Result<ObjectFacts, S3Error> {
    if head
        .header_str("x-amz-server-side-encryption-customer-algorithm")
        .is_some()
    {
        return Err(sse_c_error());
    }
    let etag = head
        .header_str("etag")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| S3Error::bad_gateway("The backend did not report the object's ETag."))?;
    let length = head
        .header_str("content-length")
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| S3Error::bad_gateway("The backend did not report the object's length."))?;
    Ok(ObjectFacts {
        etag: etag.to_string(),
        length,
        last_modified: head.header_str("last-modified").map(str::to_string),
        request_charged: head.header_str("x-amz-request-charged") == Some("requester"),
    })
}

fn sse_c_error() -> S3Error {
    S3Error::invalid_request(
        "Torrent creation is not supported for objects encrypted with a customer-provided key (SSE-C): the sidecar cannot read them.",
    )
}

/// S3 refuses a HEAD of an SSE-C object without the key (400); its GET error says why.
fn mentions_sse_c(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("customer") || m.contains("server side encryption")
}

/// Error codes are `&'static str` everywhere else; backend codes are a small, closed set
/// in practice, so map the known ones and fall back by status for the rest.
fn leak_code(code: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "NoSuchKey",
        "NoSuchBucket",
        "NoSuchVersion",
        "AccessDenied",
        "InvalidRequest",
        "InvalidArgument",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "PermanentRedirect",
        "InvalidObjectState",
        "AuthorizationHeaderMalformed",
        "RequestTimeTooSkewed",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == code)
        .unwrap_or("AccessDenied")
}

fn default_error(status: u16) -> (&'static str, String) {
    match status {
        404 => ("NoSuchKey", "The specified key does not exist.".into()),
        403 => ("AccessDenied", "Access Denied".into()),
        301 | 307 => (
            "PermanentRedirect",
            "The bucket must be addressed using the specified endpoint.".into(),
        ),
        _ => (
            "InvalidRequest",
            format!("The backend refused the request ({status})."),
        ),
    }
}

/// What one response carries of a torrent: its bytes (with this response's web seeds).
struct Rendered {
    bytes: Bytes,
    etag: String,
    magnet: String,
}

fn reply(
    object: &ObjectRef,
    torrent: &Torrent,
    rendered: Rendered,
    facts: &ObjectFacts,
    if_none_match: Option<&str>,
) -> Reply {
    let mut headers = vec![("etag", rendered.etag.clone())];
    if let Some(lm) = &torrent.last_modified {
        headers.push(("last-modified", lm.clone()));
    }
    if facts.request_charged {
        headers.push(("x-amz-request-charged", "requester".to_string()));
    }
    headers.push(("link", format!("<{}>; rel=\"alternate\"", rendered.magnet)));
    if if_none_match.is_some_and(|inm| etag_matches(inm, &rendered.etag)) {
        return Reply {
            status: 304,
            headers,
            body: Bytes::new(),
        };
    }
    headers.push(("content-type", "application/x-bittorrent".to_string()));
    headers.push((
        "content-disposition",
        content_disposition(&object.bucket, &object.key),
    ));
    Reply {
        status: 200,
        headers,
        body: rendered.bytes,
    }
}

/// `magnet:?xt=urn:btih:…&dn=…&tr=…&ws=…` (BEP 9, with BEP 19 web seeds).
fn magnet_link(torrent: &Torrent, webseeds: &[String]) -> String {
    let mut m = format!(
        "magnet:?xt=urn:btih:{}&dn={}",
        hex::encode(torrent.info_hash),
        encode(&torrent.info.name)
    );
    for tr in torrent.meta.announce.iter().flatten() {
        m.push_str("&tr=");
        m.push_str(&encode(tr));
    }
    for ws in webseeds {
        m.push_str("&ws=");
        m.push_str(&encode(ws));
    }
    m
}

/// `If-None-Match` per RFC 9110: `*` or a list of (weakly compared) entity tags.
fn etag_matches(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// `attachment; filename="x.torrent"`, plus RFC 6266 `filename*` for non-ASCII names.
fn content_disposition(bucket: &str, key: &str) -> String {
    let name = format!(
        "{}.torrent",
        crate::torrent::Info::name_for_key(bucket, key)
    );
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == name {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!(
            "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
            encode(&name)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_has_ascii_fallback() {
        assert_eq!(
            content_disposition("b", "dir/Nelson"),
            "attachment; filename=\"Nelson.torrent\""
        );
        assert_eq!(
            content_disposition("b", "dir/ü ß.iso"),
            "attachment; filename=\"_ _.iso.torrent\"; filename*=UTF-8''%C3%BC%20%C3%9F.iso.torrent"
        );
        assert_eq!(
            content_disposition("b", "a\"b"),
            "attachment; filename=\"a_b.torrent\"; filename*=UTF-8''a%22b.torrent"
        );
    }

    #[test]
    fn if_none_match_forms() {
        let etag = "\"abc\"";
        assert!(etag_matches("\"abc\"", etag));
        assert!(etag_matches("\"x\", \"abc\"", etag));
        assert!(etag_matches("W/\"abc\"", etag));
        assert!(etag_matches("*", etag));
        assert!(!etag_matches("\"abcd\"", etag));
    }
}
