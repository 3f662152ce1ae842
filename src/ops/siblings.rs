//! The sibling port (`[cluster] listen`): what replicas hand each other. Every connection
//! begins with one authenticated frame, read within a few seconds; a forged, stale or
//! replayed one closes the connection having done nothing. Connections are bounded before
//! `accept` (`cluster.max_connections`).
//!
//! Each [`Message`] is matched here, every variant:
//! - `Torrent`: a sibling served this torrent; the tracker learns it, the seeder may seed it.
//! - `Announce`, `Scrape`: the tracker's `Answer`, for a peer that announced to a sibling
//!   (the peer's address travels in the message).
//! - `Peer`: a peer connection relayed whole; the BitTorrent stream follows the frame.
//! - `Describe`: what seeding a torrent takes, asked by an owner that was relayed a peer of
//!   a torrent it does not know yet (once per torrent).
//! - `Answer` and `Webseed` never arrive here (answers come back on the asker's stream,
//!   web-seed tokens over HTTP).

use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::cluster::{Cluster, Message};
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
        let Ok((from, message)) = self.cluster.receive(&mut stream).await else {
            return;
        };
        let tracker = self.swarm.tracker.as_ref();
        let answer = match &message {
            Message::Torrent { .. } => {
                self.swarm.learned(&message);
                None
            }
            Message::Announce { query, ip } => tracker.map(|t| t.announce(query, *ip)),
            Message::Scrape { query } => tracker.map(|t| t.scrape(query)),
            Message::Peer { info_hash, head } => {
                if let Some(seeder) = self.swarm.seeder {
                    seeder.serve_relayed(stream, from, *info_hash, *head).await;
                }
                return;
            }
            Message::Describe { info_hash } => {
                if let Some(seeder) = &self.swarm.seeder {
                    let answer = seeder.description(info_hash);
                    let _ = self.cluster.answer(&mut stream, &from, &answer).await;
                }
                return;
            }
            // Answers come back on the asker's own stream; tokens travel over HTTP.
            Message::Answer { .. } | Message::Webseed { .. } => None,
        };
        if let Some(body) = answer {
            let answer = Message::Answer { body };
            let _ = self.cluster.answer(&mut stream, &from, &answer).await;
        }
    }
}
