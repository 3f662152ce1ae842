//! Hashing a body as it streams past: chunks go to a blocking thread over a bounded channel,
//! so hashing never runs on the proxy's async threads and never buffers more than a few
//! chunks (a slow hasher slows the upload down a little, it never grows memory).

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::torrent::{Format, PieceHasher, PieceHashes};

/// Chunks in flight between the proxy and the hashing thread.
const QUEUE_CHUNKS: usize = 16;

pub struct BodyHasher {
    tx: mpsc::Sender<Bytes>,
    thread: JoinHandle<(u64, PieceHashes)>,
}

impl BodyHasher {
    pub fn start(piece_length: u64, expected: u64, format: Format) -> BodyHasher {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
        let thread = tokio::task::spawn_blocking(move || {
            let mut h = PieceHasher::new(piece_length, expected, format);
            while let Some(chunk) = rx.blocking_recv() {
                h.update(&chunk);
            }
            (h.total(), h.finish())
        });
        BodyHasher { tx, thread }
    }

    /// Hands a chunk over; `false` if the hashing thread is gone (the upload goes on).
    pub async fn feed(&self, chunk: Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// Bytes hashed and their hashes, once every fed chunk is hashed.
    pub async fn finish(self) -> Option<(u64, PieceHashes)> {
        drop(self.tx);
        self.thread.await.ok()
    }
}
