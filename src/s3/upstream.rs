//! The sidecar's own requests to the backend, over pingora's connector (pooled connections,
//! the same HTTP stack as the proxy): requests for one object (or a bucket listing, or a
//! small store object with a body), signed as the caller, as the sidecar, or not at all.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use sha2::Digest;

use crate::config::{Endpoint, UpstreamConfig};
use crate::telemetry::metrics::Metrics;

use super::error::S3Error;
use super::object::ObjectRef;
use super::sigv4::{sign_headers_with_payload, SigningKey, EMPTY_SHA256};

/// Whose authority a request to the backend carries.
pub enum Identity<'a> {
    Anonymous,
    /// A caller whose signature we verified, re-signed with their key.
    Caller {
        access_key_id: &'a str,
        secret_access_key: &'a str,
    },
    /// The sidecar's configured credentials.
    Sidecar,
}

pub struct Upstream {
    connector: Connector,
    peer: HttpPeer,
    config: UpstreamConfig,
    metrics: Arc<Metrics>,
    warned: crate::telemetry::logging::WarnOnce,
}

/// Why the sidecar is asking the backend (a metrics label).
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// Authorization probe (a one-byte `GET`) as the caller; or the same as the sidecar, for
    /// an object's facts (`warm`, uploads).
    Probe,
    /// Object `GET` (or range) as the sidecar.
    Fetch,
    /// One piece for the seeder, as the sidecar.
    Seed,
    /// The shared torrent store (read, write, lease), as the sidecar.
    Store,
    /// A bucket listing, as the sidecar (`warm`).
    Lookup,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Probe => "probe",
            Purpose::Fetch => "fetch",
            Purpose::Seed => "seed",
            Purpose::Store => "store",
            Purpose::Lookup => "lookup",
        }
    }
}

/// The backend as a pingora peer. Connecting is bounded by `connect_timeout`; reads are
/// bounded by the caller (a slow client on a large pass-through download is normal).
pub fn backend_peer(endpoint: &Endpoint, connect_timeout: Duration) -> HttpPeer {
    let mut peer = HttpPeer::new(endpoint.address(), endpoint.tls, endpoint.host.clone());
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.total_connection_timeout = Some(connect_timeout);
    peer
}

/// What a read pinned to an ETag found. Matched right where it is returned, so the size of
/// its variants does not matter (boxing would cost an allocation per read).
#[allow(clippy::large_enum_variant)]
pub enum IfMatch<'a> {
    /// The object is still the one named: the backend's answer (any status).
    Same(UpstreamResponse<'a>),
    /// The object changed: nothing of it may be used.
    Changed,
}

/// A response whose body has not been read yet.
pub struct UpstreamResponse<'a> {
    upstream: &'a Upstream,
    session: HttpSession,
    pub header: ResponseHeader,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig, metrics: Arc<Metrics>) -> Upstream {
        let timeout = config.timeout.get();
        let mut peer = backend_peer(&config.endpoint, timeout);
        peer.options.read_timeout = Some(timeout);
        peer.options.write_timeout = Some(timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Upstream {
            connector: Connector::new(None),
            peer,
            config: config.clone(),
            metrics,
            warned: Default::default(),
        }
    }

    /// The backend refused the sidecar's own credentials (an operator's misconfiguration):
    /// one WARN per cause, however many requests it fails.
    pub fn warn_once(&self, cause: &str, message: &str) {
        if self.warned.first(cause) {
            tracing::warn!(target: "s3torrent::upstream", cause, "{message}");
        }
    }

    pub fn count_error(&self, kind: &str) {
        self.metrics
            .upstream
            .errors
            .with_label_values(&[kind])
            .inc();
    }

    /// Sends a body-less request for `object` and reads the response header.
    pub async fn send(
        &self,
        purpose: Purpose,
        method: &str,
        object: &ObjectRef,
        identity: &Identity<'_>,
        extra_headers: &[(&str, &str)],
    ) -> Result<UpstreamResponse<'_>, S3Error> {
        let path = object.path_and_query();
        self.call(purpose, method, &path, identity, extra_headers, None)
            .await
    }

    /// A `GET` as the sidecar of `object` as it was at `etag` (`If-Match`, plus `extra`):
    /// [`IfMatch::Changed`] on a 412, or when a backend that ignores `If-Match` reports
    /// another ETag for what it sends (counted as `changed`); any other answer as it came.
    pub async fn get_if_match(
        &self,
        purpose: Purpose,
        object: &ObjectRef,
        etag: &str,
        extra: &[(&str, &str)],
    ) -> Result<IfMatch<'_>, S3Error> {
        let mut headers = vec![("if-match", etag)];
        headers.extend_from_slice(extra);
        let response = self
            .send(purpose, "GET", object, &Identity::Sidecar, &headers)
            .await?;
        let moved = response.header_str("etag").is_some_and(|e| e != etag);
        if response.status() == 412 || moved {
            response.finish().await;
            self.count_error("changed");
            return Ok(IfMatch::Changed);
        }
        Ok(IfMatch::Same(response))
    }

    /// Sends a request for any path-style target (already percent-encoded), with a small
    /// body if given, and reads the response header.
    pub async fn call(
        &self,
        purpose: Purpose,
        method: &str,
        path: &str,
        identity: &Identity<'_>,
        extra_headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<UpstreamResponse<'_>, S3Error> {
        let request = self.build_request(method, path, identity, extra_headers, body.as_ref())?;
        self.metrics
            .upstream
            .requests
            .with_label_values(&[purpose.label()])
            .inc();
        // The detail (addresses, error chains) goes to the log; the caller gets a plain
        // message and the request id.
        let failed = |e: pingora::BError, what: &str| {
            self.count_error(transport_error_kind(&e));
            tracing::warn!(target: "s3torrent::upstream", purpose = purpose.label(), error = %e, "{what}");
            unavailable()
        };
        let (mut session, _reused) = self
            .connector
            .get_http_session(&self.peer)
            .await
            .map_err(|e| failed(e, "cannot connect to the backend"))?;
        session
            .write_request_header(Box::new(request))
            .await
            .map_err(|e| failed(e, "backend request failed"))?;
        if let Some(body) = body {
            session
                .write_request_body(body, true)
                .await
                .map_err(|e| failed(e, "backend request failed"))?;
            session
                .finish_request_body()
                .await
                .map_err(|e| failed(e, "backend request failed"))?;
        }
        session
            .read_response_header()
            .await
            .map_err(|e| failed(e, "backend did not answer"))?;
        let header = session.response_header().cloned().ok_or_else(unavailable)?;
        if header.status.is_server_error() {
            self.count_error("status_5xx");
        }
        Ok(UpstreamResponse {
            upstream: self,
            session,
            header,
        })
    }

    fn build_request(
        &self,
        method: &str,
        path: &str,
        identity: &Identity<'_>,
        extra_headers: &[(&str, &str)],
        body: Option<&Bytes>,
    ) -> Result<RequestHeader, S3Error> {
        let endpoint = &self.config.endpoint;
        let payload_hash = match body {
            Some(b) => hex::encode(sha2::Sha256::digest(b)),
            None => EMPTY_SHA256.into(),
        };
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), endpoint.authority()),
            ("x-amz-content-sha256".into(), payload_hash.clone()),
        ];
        if let Some(b) = body {
            headers.push(("content-length".into(), b.len().to_string()));
        }
        headers.extend(
            extra_headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
        );
        let key = match identity {
            Identity::Anonymous => None,
            Identity::Caller {
                access_key_id,
                secret_access_key,
            } => Some((*access_key_id, *secret_access_key)),
            Identity::Sidecar => Some((
                self.config.access_key_id.as_str(),
                self.config.secret_access_key.expose(),
            )),
        };
        if let Some((access_key_id, secret_access_key)) = key {
            let key = SigningKey {
                access_key_id,
                secret_access_key,
                region: &self.config.region,
            };
            let url = format!("{}{}", endpoint.url(), path);
            let signed = sign_headers_with_payload(
                &key,
                method,
                &url,
                &headers,
                &payload_hash,
                SystemTime::now(),
            )
            .map_err(|e| internal("signing a backend request failed", e))?;
            headers.extend(signed);
        }
        let mut request = RequestHeader::build(method, path.as_bytes(), Some(headers.len()))
            .map_err(|e| internal("building a backend request failed", e))?;
        for (k, v) in headers {
            request.insert_header(k, v).map_err(|_| {
                S3Error::invalid_request("A header forwarded to the backend has an invalid value.")
            })?;
        }
        Ok(request)
    }
}

impl UpstreamResponse<'_> {
    pub fn status(&self) -> u16 {
        self.header.status.as_u16()
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next body chunk; `None` at the end, after which the connection returns to the pool.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        self.session.read_response_body().await.map_err(|e| {
            self.upstream.count_error(match transport_error_kind(&e) {
                "timeout" => "timeout",
                _ => "broken_body",
            });
            tracing::warn!(target: "s3torrent::upstream", error = %e, "the backend broke off a body");
            S3Error::upstream_broke("The backend broke off the object. Please retry.")
        })
    }

    /// Reads at most `limit` body bytes (an error document), then releases or drops the
    /// connection.
    pub async fn small_body(mut self, limit: usize) -> Vec<u8> {
        let mut body = Vec::new();
        while body.len() < limit {
            match self.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        self.finish().await;
        body
    }

    /// Returns the connection to the pool if the exchange completed cleanly.
    pub async fn finish(mut self) {
        if self.session.response_done() {
            self.upstream
                .connector
                .release_http_session(self.session, &self.upstream.peer, None)
                .await;
        } else {
            self.session.shutdown().await;
        }
    }
}

fn transport_error_kind(e: &pingora::Error) -> &'static str {
    use pingora::ErrorType::*;
    match e.etype() {
        ConnectTimedout | ReadTimedout | WriteTimedout => "timeout",
        _ => "connect",
    }
}

fn unavailable() -> S3Error {
    S3Error::service_unavailable(
        "The backend could not be reached. Please retry; the torrent was not generated.",
    )
}

/// A fault of our own in building a request; the detail is logged, never sent.
fn internal(what: &str, e: impl std::fmt::Display) -> S3Error {
    tracing::error!(target: "s3torrent::upstream", error = %e, "{what}");
    S3Error::internal("We encountered an internal error. Please try again.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn upstream() -> Upstream {
        let config = Config::from_toml(
            "[upstream]\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"SIDECAR\"\nsecret_access_key = \"s\"\n",
            |_| None,
        )
        .unwrap();
        Upstream::new(&config.upstream, Arc::new(Metrics::new()))
    }

    fn object(key: &str, version: Option<&str>) -> ObjectRef {
        ObjectRef {
            bucket: "b".into(),
            key: key.into(),
            version_id: version.map(Into::into),
        }
    }

    #[test]
    fn paths_are_byte_exact_and_versions_travel() {
        let u = upstream();
        let r = u
            .build_request(
                "GET",
                &object("a/../b c+ü", Some("v+1")).path_and_query(),
                &Identity::Anonymous,
                &[],
                None,
            )
            .unwrap();
        assert_eq!(r.uri.to_string(), "/b/a/../b%20c%2B%C3%BC?versionId=v%2B1");
        assert_eq!(r.headers["host"], "127.0.0.1:9000");
        assert!(
            r.headers.get("authorization").is_none(),
            "anonymous stays unsigned"
        );
    }

    #[test]
    fn forwarded_headers_are_sent_and_signed_as_the_caller() {
        let u = upstream();
        let caller = Identity::Caller {
            access_key_id: "CALLER",
            secret_access_key: "secret",
        };
        let headers = [
            ("x-amz-expected-bucket-owner", "123456789012"),
            ("x-amz-request-payer", "requester"),
        ];
        let r = u
            .build_request(
                "HEAD",
                &object("k", None).path_and_query(),
                &caller,
                &headers,
                None,
            )
            .unwrap();
        assert_eq!(r.headers["x-amz-expected-bucket-owner"], "123456789012");
        assert_eq!(r.headers["x-amz-request-payer"], "requester");
        let auth = r.headers["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=CALLER/"),
            "{auth}"
        );
        assert!(
            auth.contains("x-amz-expected-bucket-owner") && auth.contains("x-amz-request-payer"),
            "{auth}"
        );
        let sidecar = u
            .build_request(
                "GET",
                &object("k", None).path_and_query(),
                &Identity::Sidecar,
                &[],
                None,
            )
            .unwrap();
        let auth = sidecar.headers["authorization"].to_str().unwrap();
        assert!(auth.contains("Credential=SIDECAR/"), "{auth}");
    }
}
