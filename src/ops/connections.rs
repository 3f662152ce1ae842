//! The S3 listener's gate, around pingora's HTTP app: what one client can make the sidecar
//! hold with connections that never send anything.
//!
//! - A connection must send its first byte within `server.header_timeout`; while
//!   `server.max_silent_connections` are already waiting, a new one gets a quarter of a
//!   second. A client sends its request as it connects, so honest requests pass whatever
//!   the flood, and silent connections stay few however many arrive.
//! - At most `server.max_connections` that have spoken are served at once; past it a new
//!   one is closed at once.
//!
//! Only then does pingora read the request (its own read timeouts apply from there).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::telemetry::metrics::ConnectionMetrics;

/// A new connection's time to speak while many are silent already.
const CROWDED_GRACE: Duration = Duration::from_millis(250);

pub struct Gate<A> {
    app: Arc<A>,
    open: Arc<Semaphore>,
    silent: Arc<Semaphore>,
    header_timeout: Duration,
    metrics: Arc<ConnectionMetrics>,
}

impl<A> Gate<A> {
    pub fn new(app: A, config: &ServerConfig, metrics: Arc<ConnectionMetrics>) -> Gate<A> {
        Gate {
            app: Arc::new(app),
            open: Arc::new(Semaphore::new(config.max_connections)),
            silent: Arc::new(Semaphore::new(config.max_silent_connections)),
            header_timeout: config.header_timeout.get(),
            metrics,
        }
    }

    /// Whether `stream` sent a byte in time (it stays unread, for the app).
    async fn speaks(&self, stream: &mut Stream) -> bool {
        let waiting = self.silent.clone().try_acquire_owned().ok();
        let grace = match waiting {
            Some(_) => self.header_timeout,
            None => CROWDED_GRACE,
        };
        self.metrics.silent.inc();
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(grace, stream.try_peek(&mut first)).await;
        self.metrics.silent.dec();
        drop(waiting);
        // `false` from `try_peek`: a stream that cannot peek (none here); let the app read.
        matches!(peeked, Ok(Ok(_)))
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Gate<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if !self.speaks(&mut stream).await {
            self.metrics.refused_silent.inc();
            return None;
        }
        let Ok(_open) = self.open.clone().try_acquire_owned() else {
            self.metrics.refused_limit.inc();
            return None;
        };
        self.metrics.open.inc();
        // The app serves the connection's requests (keep-alive included) before it returns.
        let mut reused = self.app.process_new(stream, shutdown).await;
        while let Some(stream) = reused {
            reused = self.app.process_new(stream, shutdown).await;
        }
        self.metrics.open.dec();
        None
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}
