//! Hashing a body as it streams past, without ever slowing it down or holding a thread for
//! it: chunks are handed to an async task (never awaited), which hashes them in batches on
//! the blocking pool, so a thread is busy only while there are bytes to hash. A hasher that
//! falls behind (more than [`MAX_BEHIND`] bytes not hashed yet) or whose upload the backend
//! refused is abandoned: the object is then generated lazily.
//!
//! Each hasher holds one of `uploads.max_hashers` permits for its whole life, so slow or
//! abandoned uploads bound what they hold: a permit and at most `MAX_BEHIND` bytes each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use crate::torrent::{Format, Layout, PieceHasher, PieceHashes};

/// Bytes handed over and not hashed yet; past it the hasher is abandoned.
const MAX_BEHIND: usize = 8 << 20;
/// Bytes gathered before they go to the blocking pool as one batch.
const BATCH_BYTES: usize = 1 << 20;

pub struct BodyHasher {
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    behind: Arc<AtomicUsize>,
    task: Option<JoinHandle<Option<(u64, PieceHashes)>>>,
}

impl BodyHasher {
    pub fn start(layout: &Layout, format: Format, permit: OwnedSemaphorePermit) -> BodyHasher {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let hasher = PieceHasher::new(layout, layout.length(), format);
        let behind = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(hash_all(rx, hasher, behind.clone(), permit));
        BodyHasher {
            tx: Some(tx),
            behind,
            task: Some(task),
        }
    }

    /// Hands a chunk over without waiting; `false` if the hasher fell behind or is gone, in
    /// which case it must be dropped (the upload goes on, unhashed).
    pub fn feed(&self, chunk: Bytes) -> bool {
        let len = chunk.len();
        if self.behind.fetch_add(len, Ordering::SeqCst) + len > MAX_BEHIND {
            return false;
        }
        self.tx.as_ref().is_some_and(|tx| tx.send(chunk).is_ok())
    }

    /// Bytes hashed and their hashes, once every fed chunk is hashed.
    pub async fn finish(mut self) -> Option<(u64, PieceHashes)> {
        drop(self.tx.take());
        self.task.take()?.await.ok().flatten()
    }
}

/// An abandoned hasher stops at once and gives its permit back.
impl Drop for BodyHasher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn hash_all(
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    mut hasher: PieceHasher,
    behind: Arc<AtomicUsize>,
    _permit: OwnedSemaphorePermit,
) -> Option<(u64, PieceHashes)> {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0;
    loop {
        let next = rx.recv().await;
        let done = next.is_none();
        if let Some(chunk) = next {
            batched += chunk.len();
            batch.push(chunk);
        }
        if batched >= BATCH_BYTES || (done && !batch.is_empty()) {
            let work = std::mem::take(&mut batch);
            hasher = tokio::task::spawn_blocking(move || {
                for chunk in work {
                    hasher.update(&chunk);
                }
                hasher
            })
            .await
            .ok()?;
            behind.fetch_sub(batched, Ordering::SeqCst);
            batched = 0;
        }
        if done {
            return Some((hasher.total(), hasher.finish()));
        }
    }
}
