//! Graceful shutdown. On SIGTERM pingora stops accepting connections on every listener; the
//! [`Drain`] service then marks the sidecar not-ready, waits (woken by the last request
//! leaving, not polling) until no request is in flight or the grace period ends, and reports
//! [`Drained`]. The main thread, which waits for that, then returns from `main` normally —
//! instead of sitting out pingora's fixed sleep of the whole grace period, which stays only
//! as the backstop.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::in_flight::InFlight;
use crate::ops::admin::Readiness;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Set once draining is over (or the server stopped); the main thread waits for it.
#[derive(Default)]
pub struct Drained {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Drained {
    pub fn set(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
    }

    pub fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = self.changed.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

pub struct Drain {
    pub readiness: Arc<Readiness>,
    pub in_flight: Arc<InFlight>,
    pub drained: Arc<Drained>,
    pub grace_period: Duration,
}

/// A connection accepted just before the signal may not have a request CTX yet; the sidecar
/// must be idle for this long in a row before it exits.
const IDLE_CONFIRMATION: Duration = Duration::from_millis(300);

impl Drain {
    /// Idle, and still idle `IDLE_CONFIRMATION` later.
    async fn until_settled(&self) {
        loop {
            self.in_flight.until_idle().await;
            tokio::time::sleep(IDLE_CONFIRMATION).await;
            if self.in_flight.count() == 0 {
                return;
            }
        }
    }
}

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
        if tokio::time::timeout(self.grace_period, self.until_settled())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.in_flight.count(),
                "grace period over; exiting with requests still in flight"
            );
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "drained; exiting"
        );
        self.drained.set();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_wakes_when_the_last_request_leaves() {
        let in_flight = Arc::new(InFlight::default());
        let (a, b) = (in_flight.enter(), in_flight.enter());
        let waiter = {
            let in_flight = in_flight.clone();
            tokio::spawn(async move { in_flight.until_idle().await })
        };
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one request still in flight");
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
