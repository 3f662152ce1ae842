//! Prometheus metrics, one struct per component, all in one registry served by the admin
//! listener at `/metrics`. Label values come from small fixed sets — never a bucket, key or
//! access key — so series stay bounded whatever the traffic.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub proxy: ProxyMetrics,
    pub generation: GenerationMetrics,
    pub cache: CacheMetrics,
    pub upstream: UpstreamMetrics,
    pub tracker: TrackerMetrics,
    pub seeder: std::sync::Arc<SeederMetrics>,
    pub store: StoreMetrics,
    pub uploads: UploadMetrics,
    pub warm: WarmMetrics,
    pub cluster: std::sync::Arc<ClusterMetrics>,
    pub connections: std::sync::Arc<ConnectionMetrics>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        Metrics {
            proxy: ProxyMetrics::register(&registry),
            generation: GenerationMetrics::register(&registry),
            cache: CacheMetrics::register(&registry),
            upstream: UpstreamMetrics::register(&registry),
            tracker: TrackerMetrics::register(&registry),
            seeder: std::sync::Arc::new(SeederMetrics::register(&registry)),
            store: StoreMetrics::register(&registry),
            uploads: UploadMetrics::register(&registry),
            warm: WarmMetrics::register(&registry),
            cluster: std::sync::Arc::new(ClusterMetrics::register(&registry)),
            connections: std::sync::Arc::new(ConnectionMetrics::register(&registry)),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn histogram(registry: &Registry, opts: HistogramOpts) -> Histogram {
    let h = Histogram::with_opts(opts).expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

fn histogram_vec(registry: &Registry, opts: HistogramOpts, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(opts, labels).expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

/// Requests and bytes at the listener.
pub struct ProxyMetrics {
    /// route: passthrough | torrent | tracker; method: GET | HEAD | PUT | POST | DELETE | OTHER;
    /// status: 1xx … 5xx, or "none" when no response was sent.
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    /// Pass-through body bytes: direction in (client → backend) | out (backend → client).
    pub bytes: IntCounterVec,
}

impl ProxyMetrics {
    fn register(registry: &Registry) -> Self {
        ProxyMetrics {
            requests: counter_vec(
                registry,
                "s3torrent_requests_total",
                "Requests by route, method and status class.",
                &["route", "method", "status"],
            ),
            request_duration: histogram_vec(
                registry,
                HistogramOpts::new(
                    "s3torrent_request_duration_seconds",
                    "Time from request header to the end of the response, by route.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ]),
                &["route"],
            ),
            bytes: counter_vec(
                registry,
                "s3torrent_passthrough_body_bytes_total",
                "Body bytes proxied for pass-through requests, by direction.",
                &["direction"],
            ),
        }
    }

    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = match method {
            "GET" | "HEAD" | "PUT" | "POST" | "DELETE" => method,
            _ => "OTHER",
        };
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "none",
        };
        self.requests
            .with_label_values(&[route, method, class])
            .inc();
        self.request_duration
            .with_label_values(&[route])
            .observe(seconds);
    }
}

/// Torrent generations: reading and hashing whole objects.
pub struct GenerationMetrics {
    /// result: ok | error
    pub generations: IntCounterVec,
    pub duration: Histogram,
    pub bytes_hashed: IntCounter,
    pub in_flight: IntGauge,
    /// Admitted generations waiting for a slot.
    pub queued: IntGauge,
    /// Requests that joined a generation already under way instead of starting one.
    pub coalesced: IntCounter,
    /// Requests refused with 503 SlowDown.
    pub rejected: IntCounter,
}

impl GenerationMetrics {
    fn register(registry: &Registry) -> Self {
        GenerationMetrics {
            generations: counter_vec(
                registry,
                "s3torrent_generations_total",
                "Torrent generations by result.",
                &["result"],
            ),
            duration: histogram(
                registry,
                HistogramOpts::new(
                    "s3torrent_generation_duration_seconds",
                    "Time to read and hash an object and encode its torrent.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0,
                ]),
            ),
            bytes_hashed: counter(
                registry,
                "s3torrent_generation_hashed_bytes_total",
                "Object bytes read from the backend and hashed.",
            ),
            in_flight: gauge(
                registry,
                "s3torrent_generations_in_flight",
                "Generations reading and hashing now.",
            ),
            queued: gauge(
                registry,
                "s3torrent_generations_queued",
                "Generations admitted and waiting for a slot.",
            ),
            coalesced: counter(
                registry,
                "s3torrent_generation_coalesced_waiters_total",
                "Requests that waited on a generation another request started.",
            ),
            rejected: counter(
                registry,
                "s3torrent_generation_rejected_total",
                "Requests refused with 503 SlowDown because too many generations were admitted.",
            ),
        }
    }
}

pub struct SeederMetrics {
    pub peers: IntGauge,
    pub uploaded_bytes: IntCounter,
    pub pieces_served: IntCounter,
    pub backend_bytes: IntCounter,
    pub piece_cache_hits: IntCounter,
    pub webseed_deferred: IntCounter,
    pub accept_errors: IntCounter,
    pub handshakes: Handshakes,
    pub hash_requests: HashRequests,
    /// Peer connections refused or cut off, by why (`slots`, `address`, `relay share`,
    /// `idle`).
    pub refused_peers: IntCounterVec,
}

/// BEP 52 hash requests by answer.
pub struct HashRequests {
    pub answered: IntCounter,
    pub rejected: IntCounter,
}

/// Peer handshakes by kind, resolved once.
pub struct Handshakes {
    pub plaintext: IntCounter,
    pub rc4: IntCounter,
    pub mse_plaintext: IntCounter,
    pub refused: IntCounter,
}

impl SeederMetrics {
    fn register(registry: &Registry) -> Self {
        SeederMetrics {
            peers: gauge(
                registry,
                "s3torrent_seeder_peers",
                "Peers connected to the seeder.",
            ),
            uploaded_bytes: counter(
                registry,
                "s3torrent_seeder_uploaded_bytes_total",
                "Block bytes the seeder sent to peers.",
            ),
            pieces_served: counter(
                registry,
                "s3torrent_seeder_pieces_served_total",
                "Whole pieces the seeder finished sending to a peer.",
            ),
            backend_bytes: counter(
                registry,
                "s3torrent_seeder_backend_bytes_total",
                "Object bytes the seeder read from the backend.",
            ),
            piece_cache_hits: counter(
                registry,
                "s3torrent_seeder_piece_cache_hits_total",
                "Piece reads served from the seeder's piece cache.",
            ),
            accept_errors: counter(
                registry,
                "s3torrent_seeder_accept_errors_total",
                "Peer connections the seeder could not accept (out of descriptors, say).",
            ),
            handshakes: {
                let vec = counter_vec(
                    registry,
                    "s3torrent_seeder_handshakes_total",
                    "Peer handshakes the seeder completed, by kind (plaintext; MSE with an rc4 or a plaintext payload), or refused (encryption policy, malformed, unknown torrent).",
                    &["kind"],
                );
                Handshakes {
                    plaintext: vec.with_label_values(&["plaintext"]),
                    rc4: vec.with_label_values(&["rc4"]),
                    mse_plaintext: vec.with_label_values(&["mse_plaintext"]),
                    refused: vec.with_label_values(&["refused"]),
                }
            },
            hash_requests: {
                let vec = counter_vec(
                    registry,
                    "s3torrent_seeder_hash_requests_total",
                    "BEP 52 hash requests from v2 peers, by answer: hashes, or a reject (a range outside the file's tree, or below its piece layer).",
                    &["answer"],
                );
                HashRequests {
                    answered: vec.with_label_values(&["hashes"]),
                    rejected: vec.with_label_values(&["reject"]),
                }
            },
            refused_peers: counter_vec(
                registry,
                "s3torrent_seeder_refused_peers_total",
                "Peer connections the seeder refused or cut off, by reason: no slot free (slots), its address's share used (address), its sibling's share of relayed peers used (relay share), or dropped to make room as a peer that took nothing (idle).",
                &["reason"],
            ),
            webseed_deferred: counter(
                registry,
                "s3torrent_seeder_webseed_deferred_total",
                "Web-seed range requests answered 503 so the client takes from the swarm.",
            ),
        }
    }
}

pub struct TrackerMetrics {
    pub peers: IntGauge,
}

impl TrackerMetrics {
    fn register(registry: &Registry) -> Self {
        TrackerMetrics {
            peers: gauge(
                registry,
                "s3torrent_tracker_peers",
                "Peers the built-in tracker holds, in all torrents (bounded by tracker.max_peers).",
            ),
        }
    }
}

pub struct CacheMetrics {
    pub hits: IntCounter,
    pub misses: IntCounter,
    pub evictions: IntCounter,
    pub bytes: IntGauge,
    pub entries: IntGauge,
}

impl CacheMetrics {
    fn register(registry: &Registry) -> Self {
        CacheMetrics {
            hits: counter(
                registry,
                "s3torrent_cache_hits_total",
                "Torrents served from the cache.",
            ),
            misses: counter(
                registry,
                "s3torrent_cache_misses_total",
                "Torrent requests that found no cached torrent for the object's current ETag.",
            ),
            evictions: counter(
                registry,
                "s3torrent_cache_evictions_total",
                "Cached torrents evicted to stay within cache.max_bytes.",
            ),
            bytes: gauge(
                registry,
                "s3torrent_cache_bytes",
                "Bytes held by cached torrents.",
            ),
            entries: gauge(registry, "s3torrent_cache_entries", "Cached torrents."),
        }
    }
}

pub struct UpstreamMetrics {
    /// kind: probe (a one-byte GET: authorization as the caller, or facts as the sidecar) | fetch (object GET) | seed (a piece for the seeder) | store (the shared store) | lookup (listing for warm)
    pub requests: IntCounterVec,
    /// kind: connect | timeout | status_5xx | broken_body | changed
    pub errors: IntCounterVec,
}

impl UpstreamMetrics {
    fn register(registry: &Registry) -> Self {
        UpstreamMetrics {
            requests: counter_vec(
                registry,
                "s3torrent_upstream_requests_total",
                "The sidecar's own requests to the backend, by kind.",
                &["kind"],
            ),
            errors: counter_vec(
                registry,
                "s3torrent_upstream_errors_total",
                "Failures of the sidecar's own requests to the backend, by kind.",
                &["kind"],
            ),
        }
    }
}

pub struct StoreMetrics {
    pub hits: IntCounter,
    pub misses: IntCounter,
    pub writes: IntCounter,
    /// op: get | put | lease | delete
    pub errors: IntCounterVec,
    /// Generations this replica left to another that held the lease, and got the result of.
    pub lease_waits: IntCounter,
}

impl StoreMetrics {
    fn register(registry: &Registry) -> Self {
        StoreMetrics {
            hits: counter(
                registry,
                "s3torrent_store_hits_total",
                "Torrents built from the shared store instead of reading the object.",
            ),
            misses: counter(
                registry,
                "s3torrent_store_misses_total",
                "Store lookups that found no torrent for the object's current ETag.",
            ),
            writes: counter(
                registry,
                "s3torrent_store_writes_total",
                "Torrents written to the shared store.",
            ),
            errors: counter_vec(
                registry,
                "s3torrent_store_errors_total",
                "Store requests that failed (the torrent was generated anyway), by operation.",
                &["op"],
            ),
            lease_waits: counter(
                registry,
                "s3torrent_store_lease_waits_total",
                "Generations left to another replica holding the lease, whose result was used.",
            ),
        }
    }
}

pub struct UploadMetrics {
    /// kind: put | multipart
    pub hashed: IntCounterVec,
    /// reason: small | encrypted | unknown_length | too_large | piece_length_auto (multipart) | misaligned | incomplete | changed | failed
    pub skipped: IntCounterVec,
}

impl UploadMetrics {
    fn register(registry: &Registry) -> Self {
        UploadMetrics {
            hashed: counter_vec(
                registry,
                "s3torrent_uploads_hashed_total",
                "Objects whose torrent was made from their upload through the sidecar, by kind.",
                &["kind"],
            ),
            skipped: counter_vec(
                registry,
                "s3torrent_uploads_skipped_total",
                "Uploads left to lazy generation, by reason.",
                &["reason"],
            ),
        }
    }
}

pub struct WarmMetrics {
    /// result: stored | skipped | failed
    pub objects: IntCounterVec,
    pub bytes_hashed: IntCounter,
}

impl WarmMetrics {
    fn register(registry: &Registry) -> Self {
        WarmMetrics {
            objects: counter_vec(
                registry,
                "s3torrent_warm_objects_total",
                "Objects `s3torrent warm` went through, by result.",
                &["result"],
            ),
            bytes_hashed: counter(
                registry,
                "s3torrent_warm_bytes_hashed_total",
                "Object bytes `s3torrent warm` read and hashed.",
            ),
        }
    }
}

/// Connections to the S3 listener.
pub struct ConnectionMetrics {
    pub open: IntGauge,
    /// Connections that have not sent a byte yet.
    pub silent: IntGauge,
    /// Closed unserved: past `max_connections` (`limit`), or silent too long (`silent`).
    pub refused_limit: IntCounter,
    pub refused_silent: IntCounter,
}

impl ConnectionMetrics {
    fn register(registry: &Registry) -> Self {
        let refused = counter_vec(
            registry,
            "s3torrent_connections_refused_total",
            "S3 listener connections closed unserved: past server.max_connections (limit), or without a byte within server.header_timeout (or a quarter second, while server.max_silent_connections are waiting) (silent).",
            &["reason"],
        );
        ConnectionMetrics {
            open: gauge(
                registry,
                "s3torrent_connections_open",
                "Connections to the S3 listener being served.",
            ),
            silent: gauge(
                registry,
                "s3torrent_connections_silent",
                "Connections to the S3 listener that have not sent a byte yet.",
            ),
            refused_limit: refused.with_label_values(&["limit"]),
            refused_silent: refused.with_label_values(&["silent"]),
        }
    }
}

/// `[cluster]`: who the siblings are and what passes between them.
pub struct ClusterMetrics {
    pub members: IntGauge,
    /// Sibling frames received, by kind and result (`ok`, `forged`, `replayed`, `stale`,
    /// `malformed`).
    pub frames: IntCounterVec,
    /// Bytes of sibling frames taken, by kind (a relayed peer's frame is a few hundred).
    pub frame_bytes: IntCounterVec,
    /// Work sent to the sibling that owns it: `announce`, `scrape`, `peer`, `webseed`.
    pub forwarded: IntCounterVec,
    /// Work done here because the owner could not be reached, by cause.
    pub fallbacks: IntCounterVec,
}

impl ClusterMetrics {
    fn register(registry: &Registry) -> Self {
        ClusterMetrics {
            members: gauge(
                registry,
                "s3torrent_cluster_members",
                "Live replicas this one knows of, itself included.",
            ),
            frames: counter_vec(
                registry,
                "s3torrent_cluster_frames_total",
                "Sibling messages received, by kind and result (forged, replayed and stale ones are refused).",
                &["kind", "result"],
            ),
            frame_bytes: counter_vec(
                registry,
                "s3torrent_cluster_frame_bytes_total",
                "Bytes of sibling messages taken (authenticated), by kind.",
                &["kind"],
            ),
            forwarded: counter_vec(
                registry,
                "s3torrent_cluster_forwarded_total",
                "Work handed to the replica that owns it.",
                &["what"],
            ),
            fallbacks: counter_vec(
                registry,
                "s3torrent_cluster_fallbacks_total",
                "Work done here because its owner could not be reached, by cause.",
                &["cause"],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help() {
        let m = Metrics::new();
        m.proxy.observe("torrent", "GET", 200, 0.01);
        m.proxy.observe("passthrough", "PROPFIND", 0, 0.01);
        m.upstream.requests.with_label_values(&["probe"]).inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(
            "s3torrent_requests_total{method=\"GET\",route=\"torrent\",status=\"2xx\"} 1"
        ));
        assert!(text.contains(
            "s3torrent_requests_total{method=\"OTHER\",route=\"passthrough\",status=\"none\"} 1"
        ));
        for family in [
            "s3torrent_cache_hits_total",
            "s3torrent_generations_in_flight",
        ] {
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        }
    }
}
