//! Graceful shutdown. On SIGTERM pingora stops accepting connections on every listener; this
//! service then marks the sidecar not-ready, waits until no request is in flight (or the
//! grace period ends) and exits 0 — instead of pingora's fixed wait of the whole period.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::admin::Readiness;

/// Requests between header and end of response, counted by guards held in the request CTX.
#[derive(Default)]
pub struct InFlight(AtomicUsize);

pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Drain {
    pub readiness: Arc<Readiness>,
    pub in_flight: Arc<InFlight>,
    pub grace_period: Duration,
}

/// A connection accepted just before the signal may not have a request CTX yet; the sidecar
/// must be idle for this long in a row before it exits.
const IDLE_CONFIRMATION: Duration = Duration::from_millis(300);

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        self.readiness.start_draining();
        let started = Instant::now();
        tracing::info!(
            in_flight = self.in_flight.count(),
            grace_period_secs = self.grace_period.as_secs(),
            "SIGTERM: stopped accepting, draining"
        );
        let mut idle_since: Option<Instant> = None;
        loop {
            if self.in_flight.count() == 0 {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= IDLE_CONFIRMATION {
                    break;
                }
            } else {
                idle_since = None;
            }
            if started.elapsed() >= self.grace_period {
                tracing::warn!(
                    in_flight = self.in_flight.count(),
                    "grace period over; exiting with requests still in flight"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "drained; exiting"
        );
        std::process::exit(0);
    }
}
