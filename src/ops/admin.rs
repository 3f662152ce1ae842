//! The admin listener, separate from S3 traffic: `/healthz` (the process serves),
//! `/readyz` (configuration loaded, backend reachable, not draining) and `/metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::config::Endpoint;
use crate::telemetry::metrics::Metrics;

/// How long a reachability verdict is reused: probes stay cheap however often they come.
const READY_CACHE: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Readiness {
    endpoint: Endpoint,
    draining: AtomicBool,
    last: Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    pub fn new(endpoint: Endpoint) -> Self {
        Readiness {
            endpoint,
            draining: AtomicBool::new(false),
            last: Mutex::new(None),
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// `Err` says why not ready.
    pub async fn check(&self) -> Result<(), &'static str> {
        if self.is_draining() {
            return Err("draining");
        }
        let cached = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        let reachable = match cached {
            Some((at, ok)) if at.elapsed() < READY_CACHE => ok,
            _ => {
                let ok = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect(self.endpoint.address()),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), ok));
                ok
            }
        };
        if reachable {
            Ok(())
        } else {
            Err("upstream unreachable")
        }
    }
}

pub struct AdminApp {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, content_type, body) = match session.req_header().uri.path() {
            "/healthz" => (200, "text/plain; charset=utf-8", b"ok\n".to_vec()),
            "/readyz" => match self.readiness.check().await {
                Ok(()) => (200, "text/plain; charset=utf-8", b"ready\n".to_vec()),
                Err(why) => (
                    503,
                    "text/plain; charset=utf-8",
                    format!("not ready: {why}\n").into_bytes(),
                ),
            },
            "/metrics" => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            ),
            _ => (404, "text/plain; charset=utf-8", b"not found\n".to_vec()),
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .body(body)
            .expect("static response parts are valid")
    }
}
