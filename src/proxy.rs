//! The pingora `ProxyHttp`: `?torrent` is answered here; everything else streams to the
//! backend untouched (method, path, `Host`, headers and body), so callers' own SigV4
//! signatures still verify there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorSource;

use crate::catalog::{CacheStatus, Catalog};
use crate::cluster::{Cluster, Member, Message};
use crate::common::in_flight::{InFlight, InFlightGuard};
use crate::config::Config;
use crate::s3::client_addr::{client_ip, forwarded_for};
use crate::s3::forwarded::Forwarded;
use crate::s3::request_id::new_request_id;
use crate::s3::route::{
    bucket_of, is_virtual_hosted, route, DirectoryRequest, Route, TorrentRequest,
};
use crate::s3::sigv4::{Caller, SignedRequest, Verifier};
use crate::s3::upstream::backend_peer;
use crate::s3::{Code, S3Error};
use crate::seeder::{Admission, Seeder, WebseedTicket};
use crate::service::response::Reply;
use crate::service::TorrentService;
use crate::swarm::Swarm;
use crate::telemetry::metrics::Metrics;
use crate::tracker::{Tracker, TrackerEndpoint};
use crate::upload::{Tap, Uploads};
use crate::webseed::{delivered_from, WebseedRequest};

pub struct S3TorrentProxy {
    config: Arc<Config>,
    torrents: Arc<TorrentService>,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    in_flight: Arc<InFlight>,
    tracker: Option<Arc<Tracker>>,
    seeder: Option<Arc<Seeder>>,
    cluster: Option<Arc<Cluster>>,
    uploads: Arc<Uploads>,
    peer: HttpPeer,
}

/// Facts learned early in a request and used later.
pub struct RequestCtx {
    pub started: Instant,
    /// Ours (torrent requests and errors we answer); pass-through keeps the backend's.
    pub request_id: String,
    /// `passthrough`, `torrent`, `tracker` or `rejected`: the metrics label and log field.
    pub route: &'static str,
    pub cache: CacheStatus,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// An upload being hashed on its way through.
    upload: Option<Tap>,
    /// A request on the web-seed route, proxied as an unsigned read of its object.
    webseed: Option<Webseed>,
    _in_flight: InFlightGuard,
}

struct Webseed {
    request: WebseedRequest,
    /// A slot (and its pieces' reservation) when the object is seeded, until the end.
    ticket: Option<WebseedTicket>,
    /// Where the backend's bytes start in the object, once it answered with some.
    from: Option<u64>,
    /// The client connection's `tcpi_bytes_acked` when the response began.
    acked_before: Option<u64>,
    /// The replica that owns the object's torrent, which shapes it: the request is handed
    /// there (with a one-use token) instead of to the backend.
    owner: Option<Member>,
}

/// The header a web-seed request handed to its owner carries: a one-use sibling token.
const SIBLING_HEADER: &str = "x-s3torrent-sibling";

impl S3TorrentProxy {
    pub fn new(
        config: Arc<Config>,
        torrents: Arc<TorrentService>,
        catalog: Arc<Catalog>,
        metrics: Arc<Metrics>,
        in_flight: Arc<InFlight>,
        swarm: Swarm,
    ) -> Self {
        let Swarm {
            tracker,
            seeder,
            cluster,
        } = swarm;
        let peer = backend_peer(&config.upstream.endpoint, config.upstream.timeout.get());
        let uploads = Arc::new(Uploads::new(
            config.clone(),
            metrics.clone(),
            catalog.clone(),
        ));
        S3TorrentProxy {
            uploads,
            config,
            torrents,
            catalog,
            metrics,
            in_flight,
            tracker,
            seeder,
            cluster,
            peer,
        }
    }

    async fn torrent_reply(
        &self,
        session: &Session,
        request: TorrentRequest,
        cache: &mut CacheStatus,
    ) -> Result<Reply, S3Error> {
        let bucket_in_host = request
            .virtual_hosted
            .then_some(request.object.bucket.as_str());
        let (caller, forwarded, if_none_match) = self.caller(session, bucket_in_host)?;
        self.torrents
            .handle(&request, &caller, &forwarded, if_none_match, cache)
            .await
    }

    async fn directory_reply(
        &self,
        session: &Session,
        request: DirectoryRequest,
        cache: &mut CacheStatus,
    ) -> Result<Reply, S3Error> {
        let bucket_in_host = request.virtual_hosted.then_some(request.bucket.as_str());
        let (caller, forwarded, if_none_match) = self.caller(session, bucket_in_host)?;
        self.torrents
            .handle_directory(&request, &caller, &forwarded, if_none_match, cache)
            .await
    }

    /// Who is asking (the signature verified), the headers that travel on their behalf,
    /// and their `If-None-Match`.
    fn caller<'s>(
        &self,
        session: &'s Session,
        bucket_in_host: Option<&str>,
    ) -> Result<(Caller, Forwarded, Option<&'s str>), S3Error> {
        let req = session.req_header();
        let verifier = Verifier::of(&self.config, bucket_in_host);
        let caller = verifier.authenticate(&SignedRequest {
            method: req.method.as_str(),
            path: req.uri.path(),
            query: req.uri.query(),
            headers: &req.headers,
        })?;
        let (xff, fwd) = self.client_headers(session);
        let forwarded = Forwarded::from_headers(&req.headers)
            .covered_by(&caller)
            .with_client(xff, fwd);
        let if_none_match = req
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok());
        Ok((caller, forwarded, if_none_match))
    }

    /// Whether a request names the store bucket, path-style or virtual-hosted on a
    /// configured domain (`server.domains` must list every domain the backend serves
    /// buckets on). Store objects are the sidecar's alone: no caller writes or reads them.
    fn names_store_bucket(&self, req: &RequestHeader, host: Option<&str>) -> bool {
        let Some(store) = self.catalog.store() else {
            return false;
        };
        let domains = &self.config.server.domains;
        bucket_of(req.uri.path(), host, domains).is_some_and(|b| store.is_store_bucket(&b))
    }

    /// The client's address: the peer, or behind a trusted proxy the one it reports.
    fn client_ip(&self, session: &Session) -> std::net::IpAddr {
        client_ip(
            peer_ip(session),
            &session.req_header().headers,
            &self.config.server.trusted_proxies,
        )
    }

    /// `X-Forwarded-For` and `Forwarded` for the backend: the peer, or behind a trusted
    /// proxy the chain it reports.
    fn client_headers(&self, session: &Session) -> (String, String) {
        forwarded_for(
            peer_ip(session),
            &session.req_header().headers,
            &self.config.server.trusted_proxies,
        )
    }

    /// A web-seed request: refused if malformed, deferred (503 SlowDown, Retry-After) when
    /// shaping says the swarm has its pieces, else proxied (`Ok(false)`).
    async fn webseed(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        request: Result<WebseedRequest, S3Error>,
    ) -> Result<bool> {
        let mut request = match request {
            Ok(r) => r,
            Err(e) => return answer(session, ctx, "webseed", Err(e)).await,
        };
        ctx.route = "webseed";
        if let Some(file) = &request.in_directory {
            let found = self
                .catalog
                .directory_file(&request.object.bucket, &file.identity, &file.path)
                .await;
            match found {
                Ok(object) => request.object = object,
                Err(e) => return answer(session, ctx, "webseed", Err(e)).await,
            }
        }
        match self.webseed_owner(session, &request).await {
            Ok(Some(owner)) => {
                ctx.webseed = Some(Webseed {
                    request,
                    ticket: None,
                    from: None,
                    acked_before: None,
                    owner: Some(owner),
                });
                return Ok(false);
            }
            Ok(None) => {}
            Err(e) => return answer(session, ctx, "webseed", Err(e)).await,
        }
        let admission = self
            .seeder
            .as_ref()
            .map(|seeder| seeder.admit_webseed(&request.object, request.first, request.last));
        let ticket = match admission {
            None | Some(Admission::NotSeeded) => None,
            Some(Admission::Admitted(ticket)) => Some(ticket),
            Some(Admission::Deferred(retry_after)) => {
                let e = S3Error::of(Code::SlowDown)
                    .with_header("retry-after", retry_after.as_secs().to_string());
                return answer(session, ctx, "webseed", Err(e)).await;
            }
        };
        ctx.webseed = Some(Webseed {
            request,
            ticket,
            from: None,
            acked_before: None,
            owner: None,
        });
        Ok(false)
    }

    /// With `[cluster]`: the replica that shapes this web-seed request, when it is another
    /// (the one owning the object's torrent). A request a sibling handed here is served
    /// here, if its token is good; one with a forged or used token is refused.
    async fn webseed_owner(
        &self,
        session: &Session,
        request: &WebseedRequest,
    ) -> Result<Option<Member>, S3Error> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let req = session.req_header();
        if let Some(token) = req.headers.get(SIBLING_HEADER) {
            let token = token.to_str().unwrap_or("");
            return match cluster.check_token(token, &webseed_target(req)).await {
                Ok(()) => Ok(None),
                Err(_) => Err(S3Error::new(
                    Code::AccessDenied,
                    "The sibling token is not valid.",
                )),
            };
        }
        let seeded = self
            .seeder
            .as_ref()
            .and_then(|s| s.seeded_as(&request.object));
        Ok(seeded.and_then(|ih| cluster.owner_of(&ih)))
    }

    /// The tracker's answer: from the replica that owns the torrent (with `[cluster]`), or
    /// from this one's tracker.
    async fn track(
        &self,
        tracker: &Tracker,
        endpoint: TrackerEndpoint,
        query: &str,
        ip: std::net::IpAddr,
    ) -> Vec<u8> {
        let local = || match endpoint {
            TrackerEndpoint::Announce => tracker.announce(query, ip),
            TrackerEndpoint::Scrape => tracker.scrape(query),
        };
        let Some(cluster) = &self.cluster else {
            return local();
        };
        let owner = crate::tracker::swarm_of(endpoint, query).and_then(|ih| cluster.owner_of(&ih));
        let Some(owner) = owner else {
            return local();
        };
        let query = query.to_string();
        let ask = match endpoint {
            TrackerEndpoint::Announce => Message::Announce { query, ip },
            TrackerEndpoint::Scrape => Message::Scrape { query },
        };
        match cluster.ask(&owner, &ask).await {
            Ok(Message::Answer { body }) => {
                cluster.forwarded(ask.kind());
                body
            }
            Ok(_) => {
                cluster.fell_back("owner answered nothing", &owner.name);
                local()
            }
            Err(e) => {
                cluster.fell_back("owner unreachable", &e);
                local()
            }
        }
    }
}

/// A request the sidecar answers itself (or shapes, for the web seed), as classified.
enum Own {
    Rejected(S3Error),
    Webseed(Result<WebseedRequest, S3Error>),
    Tracker(Arc<Tracker>, TrackerEndpoint),
    Torrent(TorrentRequest),
    Directory(DirectoryRequest),
    Refused(S3Error),
}

impl S3TorrentProxy {
    /// What the sidecar does with a request: `None` streams it to the backend (with its
    /// upload tapped), anything else is its own.
    fn classify(&self, session: &Session, ctx: &mut RequestCtx) -> Option<Own> {
        let req = session.req_header();
        // S3 requests are origin-form (`/bucket/key?…`). An absolute-form or other target
        // would be read one way here and maybe another by the backend: refuse it outright.
        // (pingora normalizes `uri` — `http://h/b/k` loses its scheme, `b/k` becomes `/` —
        // so the raw target is what tells.)
        let uri = &req.uri;
        if req.raw_path().first() != Some(&b'/') || uri.scheme().is_some() {
            let e = S3Error::invalid_request("The request target must be a path (origin-form).");
            return Some(Own::Rejected(e));
        }
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let domains = &self.config.server.domains;
        let vhost = is_virtual_hosted(host, domains);
        let store_refused = || {
            let e = S3Error::new(
                Code::AccessDenied,
                "The sidecar's torrent store is not reachable through the sidecar.",
            );
            Some(Own::Rejected(e))
        };
        if self.names_store_bucket(req, host) {
            return store_refused();
        }
        if let Some(request) = crate::webseed::parse(req, vhost) {
            let store = self.catalog.store();
            let in_store =
                |r: &WebseedRequest| store.is_some_and(|s| s.is_store_bucket(&r.object.bucket));
            if request.as_ref().is_ok_and(in_store) {
                return store_refused();
            }
            return Some(Own::Webseed(request));
        }
        if let Some(tracker) = &self.tracker {
            if let Some(endpoint) = crate::tracker::endpoint(&req.method, uri.path(), vhost) {
                return Some(Own::Tracker(tracker.clone(), endpoint));
            }
        }
        match route(&req.method, uri.path(), uri.query(), host, domains) {
            Route::PassThrough => {
                ctx.upload = self.uploads.tap(req, domains);
                None
            }
            Route::Reject(e) => Some(Own::Refused(e)),
            Route::Torrent(t) => Some(Own::Torrent(t)),
            Route::Directory(d) => Some(Own::Directory(d)),
        }
    }

    /// Answers (or, for the web seed, shapes) a request the sidecar owns.
    async fn serve_own(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        own: Own,
    ) -> Result<bool> {
        let result = match own {
            Own::Rejected(e) => return answer(session, ctx, "rejected", Err(e)).await,
            Own::Webseed(request) => return self.webseed(session, ctx, request).await,
            Own::Tracker(tracker, endpoint) => {
                let query = session.req_header().uri.query().unwrap_or("").to_string();
                let body = self
                    .track(&tracker, endpoint, &query, self.client_ip(session))
                    .await;
                let reply = Reply {
                    status: 200,
                    headers: vec![("content-type", "text/plain".to_string())],
                    body: Bytes::from(body),
                };
                return answer(session, ctx, "tracker", Ok(reply)).await;
            }
            Own::Refused(e) => Err(e),
            Own::Torrent(t) => self.torrent_reply(session, t, &mut ctx.cache).await,
            Own::Directory(d) => self.directory_reply(session, d, &mut ctx.cache).await,
        };
        answer(session, ctx, "torrent", result).await
    }
}

/// Bytes of this connection the client's TCP has acknowledged (Linux `tcpi_bytes_acked`).
fn bytes_acked(session: &Session) -> Option<u64> {
    let socket = session.digest()?.socket_digest.as_ref()?;
    socket.tcp_info().map(|info| info.tcpi_bytes_acked)
}

/// A web-seed request's target as the client sent it (path and query): what a sibling
/// token is for.
fn webseed_target(req: &RequestHeader) -> String {
    match req.uri.query() {
        Some(q) => format!("{}?{q}", req.uri.path()),
        None => req.uri.path().to_string(),
    }
}

/// Dialing a sibling on the pod network: it answers at once, or it is gone.
const SIBLING_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn peer_ip(session: &Session) -> std::net::IpAddr {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

#[async_trait]
impl ProxyHttp for S3TorrentProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: String::new(),
            route: "passthrough",
            cache: CacheStatus::None,
            bytes_in: 0,
            bytes_out: 0,
            upload: None,
            webseed: None,
            _in_flight: self.in_flight.enter(),
        }
    }

    /// Pass-through returns at once; what the sidecar answers itself is handled in a future
    /// of its own (boxed), so the one every pass-through request builds stays small (moving
    /// the `?torrent` state machine into its box cost ~12k instructions a request).
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // HTTP/1.1 pipelining, as the backend allows it: libtorrent sends its next web-seed
        // request while an answer is still streaming, and pingora, by default, cut that
        // answer off ("Sent data after end of body") and closed the connection.
        session.set_pipelining_enabled(true);
        match self.classify(session, ctx) {
            None => Ok(false),
            Some(own) => Box::pin(self.serve_own(session, ctx, own)).await,
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        if let Some(owner) = ctx.webseed.as_ref().and_then(|w| w.owner.as_ref()) {
            let mut peer = HttpPeer::new(owner.server_addr(), false, String::new());
            peer.options.connection_timeout = Some(SIBLING_CONNECT_TIMEOUT);
            return Ok(Box::new(peer));
        }
        Ok(Box::new(self.peer.clone()))
    }

    /// A web-seed owner that cannot be reached: the request goes to the backend from here,
    /// shaped by this replica (the origin may pay more; the client does not wait).
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<pingora::Error>,
    ) -> Box<pingora::Error> {
        if let Some(webseed) = ctx.webseed.as_mut().filter(|w| w.owner.is_some()) {
            let owner = webseed.owner.take().map(|o| o.name).unwrap_or_default();
            if let Some(cluster) = &self.cluster {
                cluster.fell_back("owner unreachable", &owner);
            }
            if let Some(seeder) = &self.seeder {
                let r = &webseed.request;
                if let Admission::Admitted(t) = seeder.admit_webseed(&r.object, r.first, r.last) {
                    webseed.ticket = Some(t);
                }
            }
            e.set_retry(true);
        }
        e
    }

    /// The backend learns who the client is from the sidecar, never from the client.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(webseed) = &ctx.webseed {
            let endpoint = &self.config.upstream.endpoint;
            let req = session.req_header();
            *upstream_request = webseed.request.upstream_request(req, endpoint)?;
            if let (Some(owner), Some(cluster)) = (&webseed.owner, &self.cluster) {
                // To the owner: the web-seed route itself, with a token for it.
                let target = webseed_target(req);
                upstream_request.set_uri(
                    target
                        .parse()
                        .map_err(|_| pingora::Error::new(pingora::ErrorType::InternalError))?,
                );
                upstream_request
                    .insert_header(http::header::HOST, owner.server_addr().to_string())?;
                upstream_request.insert_header(SIBLING_HEADER, cluster.token(owner, &target))?;
                cluster.forwarded("webseed");
            }
        }
        let (xff, fwd) = self.client_headers(session);
        upstream_request.insert_header("x-forwarded-for", xff)?;
        upstream_request.insert_header("forwarded", fwd)?;
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.bytes_in += body.as_ref().map_or(0, |b| b.len() as u64);
        if let (Some(tap), Some(chunk)) = (&mut ctx.upload, body.as_ref()) {
            self.uploads.request_body(tap, chunk);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(tap) = &mut ctx.upload {
            self.uploads.response(tap, upstream_response);
        }
        if let Some(webseed) = &mut ctx.webseed {
            let range = upstream_response
                .headers
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok());
            webseed.from = delivered_from(upstream_response.status.as_u16(), range);
            webseed.acked_before = bytes_acked(session);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        ctx.bytes_out += body.as_ref().map_or(0, |b| b.len() as u64);
        if let (Some(tap), Some(chunk)) = (&mut ctx.upload, body.as_ref()) {
            self.uploads.response_body(tap, chunk);
        }
        // The client takes what is written: its web-seed slot is in use.
        if let Some(ticket) = ctx.webseed.as_ref().and_then(|w| w.ticket.as_ref()) {
            ticket.moved();
        }
        Ok(None)
    }

    async fn logging(
        &self,
        session: &mut Session,
        e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        if let Some(tap) = ctx.upload.take().filter(|_| e.is_none()) {
            self.uploads.finish(tap);
        }
        // Only what reached the client left the origin: all of a response that ended well;
        // of one that broke off, what the client's TCP acknowledged (what we wrote may still
        // sit in kernel buffers, megabytes of it, and be thrown away).
        if let Some(Webseed {
            ticket: Some(ticket),
            from: Some(from),
            acked_before,
            ..
        }) = &ctx.webseed
        {
            let delivered = match e {
                None => Some(ctx.bytes_out),
                Some(_) => acked_before.zip(bytes_acked(session)).map(|(before, now)| {
                    // Less the response head, well under 1 KiB.
                    (now.saturating_sub(before).saturating_sub(1024)).min(ctx.bytes_out)
                }),
            };
            if let Some(bytes) =
                delivered.filter(|_| session.req_header().method == http::Method::GET)
            {
                ticket.delivered(*from, bytes);
            }
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.route;
        let method = session.req_header().method.as_str();
        self.metrics
            .proxy
            .observe(route, method, status, ctx.started.elapsed().as_secs_f64());
        if route == "passthrough" {
            let bytes = &self.metrics.proxy.bytes;
            bytes.with_label_values(&["in"]).inc_by(ctx.bytes_in);
            bytes.with_label_values(&["out"]).inc_by(ctx.bytes_out);
        }
        // Pass-through requests carry the backend's request id.
        let request_id = match ctx.request_id.as_str() {
            "" => session
                .response_written()
                .and_then(|r| r.headers.get("x-amz-request-id"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string(),
            id => id.to_string(),
        };
        tracing::info!(
            target: "s3torrent::access",
            request_id = %request_id,
            route,
            method,
            path = ?session.req_header().uri.path(),
            status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            cache = ctx.cache.as_str(),
            bytes_in = ctx.bytes_in,
            bytes_out = ctx.bytes_out,
            "request"
        );
    }

    /// What pingora's own error lines say about a request: never the query string, which
    /// may be a presigned URL's signature (a bearer token); the path and `Host` quoted and
    /// escaped, so a client's bytes cannot forge fields of a text log line.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default();
        format!("{} {:?}, Host: {host:?}", req.method, req.uri.path())
    }

    /// Failures of pass-through traffic still answer in S3's XML, so SDKs retry them.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let error = match (e.esource(), e.etype()) {
            (_, pingora::ErrorType::HTTPStatus(code)) if *code < 500 => {
                S3Error::invalid_request(format!("The request could not be handled ({code})."))
            }
            (ErrorSource::Downstream, _) => {
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                }
            }
            (ErrorSource::Upstream, pingora::ErrorType::ConnectTimedout)
            | (ErrorSource::Upstream, pingora::ErrorType::ConnectRefused)
            | (ErrorSource::Upstream, pingora::ErrorType::ConnectError) => {
                S3Error::service_unavailable("The backend is unreachable. Please retry.")
            }
            (ErrorSource::Upstream, _) => {
                S3Error::upstream_broke("The backend broke off the exchange. Please retry.")
            }
            _ => S3Error::new(
                Code::InternalError,
                "We encountered an internal error. Please try again.",
            ),
        };
        if ctx.request_id.is_empty() {
            ctx.request_id = new_request_id();
        }
        let status = error.status;
        // Once response bytes went out there is nothing well-formed left to say.
        if session.response_written().is_none() {
            let reply = error_reply(&error, session.req_header().uri.path(), &ctx.request_id);
            let _ = write_reply(session, reply, &ctx.request_id).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }
}

/// Writes a reply the sidecar makes itself (an S3 XML error for `Err`), under a request id of
/// its own, and ends the request.
async fn answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: &'static str,
    result: Result<Reply, S3Error>,
) -> Result<bool> {
    ctx.route = route;
    ctx.request_id = new_request_id();
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => error_reply(&e, session.req_header().uri.path(), &ctx.request_id),
    };
    ctx.bytes_out = write_reply(session, reply, &ctx.request_id).await?;
    Ok(true)
}

fn error_reply(e: &S3Error, resource: &str, request_id: &str) -> Reply {
    let mut headers = vec![("content-type", "application/xml".to_string())];
    headers.extend(e.headers.iter().cloned());
    Reply {
        status: e.status,
        headers,
        body: Bytes::from(e.to_xml(resource, request_id)),
    }
}

/// Writes the reply; the body bytes sent (none for `HEAD` and 304), for the access log.
async fn write_reply(session: &mut Session, reply: Reply, request_id: &str) -> Result<u64> {
    let head_only = session.req_header().method == http::Method::HEAD || reply.status == 304;
    let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 3))?;
    for (name, value) in reply.headers {
        header.insert_header(name, value)?;
    }
    header.insert_header("x-amz-request-id", request_id)?;
    if reply.status != 304 {
        header.insert_header("content-length", reply.body.len().to_string())?;
    }
    session
        .write_response_header(Box::new(header), head_only || reply.body.is_empty())
        .await?;
    if head_only || reply.body.is_empty() {
        return Ok(0);
    }
    let sent = reply.body.len() as u64;
    session.write_response_body(Some(reply.body), true).await?;
    Ok(sent)
}
