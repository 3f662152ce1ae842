//! The sibling port (`[cluster] listen`): what replicas hand each other. Every connection
//! begins with one authenticated frame, read within a few seconds; a forged, stale or
//! replayed one closes the connection having done nothing. Connections are bounded before
//! `accept` (`cluster.max_connections`).
//!
//! - `torrent`: a sibling served this torrent; the tracker learns it, the seeder may seed it.
//! - `announce`, `scrape`: the tracker's answer, for a peer that announced to a sibling (the
//!   peer's address travels in the frame).
//! - `peer`: a peer connection relayed whole; the BitTorrent stream follows the frame.
//! - `describe`: what seeding a torrent takes, asked by an owner that was relayed a peer of
//!   a torrent it does not know yet (once per torrent).

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::cluster::{Cluster, Frame};
use crate::swarm::Swarm;

pub struct SiblingService {
    pub cluster: Arc<Cluster>,
    pub listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    pub max_connections: usize,
    pub swarm: Swarm,
}

#[async_trait]
impl BackgroundService for SiblingService {
    async fn start(&self, shutdown: ShutdownWatch) {
        tokio::spawn(self.cluster.clone().run(shutdown.clone()));
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(listener) = listener.and_then(|l| tokio::net::TcpListener::from_std(l).ok())
        else {
            tracing::error!(target: "s3torrent::cluster", "cannot listen on the sibling port");
            return;
        };
        self.accept_loop(listener, shutdown).await;
    }
}

impl SiblingService {
    async fn accept_loop(&self, listener: tokio::net::TcpListener, mut shutdown: ShutdownWatch) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        loop {
            // A slot before `accept`: past the bound, connections wait in the backlog.
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("never closed"),
                _ = shutdown.changed() => return,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(_) => {
                        // Out of descriptors, say: do not spin.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let handler = Handler {
                cluster: self.cluster.clone(),
                swarm: self.swarm.clone(),
            };
            tokio::spawn(async move {
                handler.serve(stream).await;
                drop(permit);
            });
        }
    }
}

struct Handler {
    cluster: Arc<Cluster>,
    swarm: Swarm,
}

impl Handler {
    async fn serve(self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let Ok(frame) = self.cluster.receive(&mut stream).await else {
            return;
        };
        match frame.kind.as_str() {
            "torrent" => self.swarm.learned(&frame),
            "announce" | "scrape" => self.track(stream, &frame).await,
            "peer" => {
                if let Some(seeder) = self.swarm.seeder {
                    seeder.serve_relayed(stream, frame).await;
                }
            }
            "describe" => {
                if let Some(seeder) = &self.swarm.seeder {
                    let answer = seeder.description(&frame);
                    let _ = self.cluster.answer(&mut stream, &frame, &answer).await;
                }
            }
            _ => {}
        }
    }

    async fn track(&self, mut stream: TcpStream, frame: &Frame) {
        let Some(tracker) = &self.swarm.tracker else {
            return;
        };
        let query = frame.text("q").unwrap_or("");
        let body = match frame.kind.as_str() {
            "announce" => {
                let Some(ip) = frame.text("ip").and_then(|ip| ip.parse::<IpAddr>().ok()) else {
                    return;
                };
                tracker.announce(query, ip)
            }
            _ => tracker.scrape(query),
        };
        let answer = Frame::new("answer").with_bytes("body", body);
        let _ = self.cluster.answer(&mut stream, frame, &answer).await;
    }
}
