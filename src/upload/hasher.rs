//! Hashing a body as it streams past, without ever slowing it down or holding a thread for
//! it: chunks are handed to an async task (never awaited), which hashes them in batches on
//! the blocking pool, so a thread is busy only while there are bytes to hash. A hasher that
//! falls behind (more than [`MAX_BEHIND`] bytes not hashed yet) or whose upload the backend
//! refused is abandoned: the object is then generated lazily.
//!
//! Each hasher holds one of `uploads.max_hashers` permits for its whole life, so slow or
//! abandoned uploads bound what they hold: a permit and at most `MAX_BEHIND` bytes each.

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::common::blocking_feed::BlockingFeed;
use crate::torrent::{Format, Layout, PieceHasher, PieceHashes};

/// Bytes handed over and not hashed yet; past it the hasher is abandoned.
const MAX_BEHIND: usize = 8 << 20;
/// Bytes gathered before they go to the blocking pool as one batch.
const BATCH_BYTES: usize = 1 << 20;

pub struct BodyHasher {
    feed: BlockingFeed<PieceHasher>,
    /// Held for the hasher's whole life; an abandoned one gives it back when dropped.
    _permit: OwnedSemaphorePermit,
}

impl BodyHasher {
    pub fn start(layout: &Layout, format: Format, permit: OwnedSemaphorePermit) -> BodyHasher {
        let hasher = PieceHasher::new(layout, layout.length(), format);
        BodyHasher {
            feed: BlockingFeed::spawn(hasher, PieceHasher::update, BATCH_BYTES, MAX_BEHIND),
            _permit: permit,
        }
    }

    /// Hands a chunk over without waiting; `false` if the hasher fell behind or is gone, in
    /// which case it must be dropped (the upload goes on, unhashed).
    pub fn feed(&self, chunk: Bytes) -> bool {
        self.feed.try_feed(chunk)
    }

    /// Bytes hashed and their hashes, once every fed chunk is hashed.
    pub async fn finish(self) -> Option<(u64, PieceHashes)> {
        let hasher = self.feed.finish().await?;
        Some((hasher.total(), hasher.finish()))
    }
}
