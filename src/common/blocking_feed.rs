//! Bytes from async code to work done on the blocking pool (hashing), without a thread held
//! for the stream's whole life: chunks queue up and are taken in batches; a batch and what
//! queued behind it meanwhile are one `spawn_blocking`, so a thread is busy only while there
//! is work. At most `max_behind` bytes wait at any time: [`BlockingFeed::feed`] waits for
//! room (a reader slows to the hasher's pace), [`BlockingFeed::try_feed`] never waits (a
//! body passing through must not).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

pub struct BlockingFeed<S> {
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// One permit per byte that may wait; a batch hashed gives its bytes back.
    room: Arc<Semaphore>,
    max_behind: usize,
    task: Option<JoinHandle<Option<S>>>,
}

impl<S: Send + 'static> BlockingFeed<S> {
    /// Feeds `state` with `update`, in batches of at least `batch` bytes (the last may be
    /// shorter); `batch` ≤ `max_behind`.
    pub fn spawn(state: S, update: fn(&mut S, &[u8]), batch: usize, max_behind: usize) -> Self {
        assert!(batch <= max_behind && max_behind <= Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(max_behind));
        let task = tokio::spawn(run(rx, state, update, batch, room.clone(), max_behind));
        BlockingFeed {
            tx: Some(tx),
            room,
            max_behind,
            task: Some(task),
        }
    }

    /// Queues `chunk` if there is room now; `false` if the work fell behind or stopped.
    pub fn try_feed(&self, chunk: Bytes) -> bool {
        let Ok(permits) = self.room.try_acquire_many(self.cost(&chunk)) else {
            return false;
        };
        permits.forget();
        self.send(chunk)
    }

    /// Queues `chunk` once there is room; `false` if the work stopped.
    pub async fn feed(&self, chunk: Bytes) -> bool {
        let Ok(permits) = self.room.acquire_many(self.cost(&chunk)).await else {
            return false;
        };
        permits.forget();
        self.send(chunk)
    }

    /// The state once every queued chunk went through `update`.
    pub async fn finish(mut self) -> Option<S> {
        drop(self.tx.take());
        self.task.take()?.await.ok().flatten()
    }

    /// A chunk larger than the room takes all of it (it cannot wait for more).
    fn cost(&self, chunk: &Bytes) -> u32 {
        chunk.len().min(self.max_behind) as u32
    }

    fn send(&self, chunk: Bytes) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(chunk).is_ok())
    }
}

/// Work given up on stops at once (what it holds is freed with it).
impl<S> Drop for BlockingFeed<S> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run<S: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    mut state: S,
    update: fn(&mut S, &[u8]),
    batch_bytes: usize,
    room: Arc<Semaphore>,
    max_behind: usize,
) -> Option<S> {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0;
    loop {
        let next = rx.recv().await;
        let mut done = next.is_none();
        if let Some(chunk) = next {
            batched += chunk.len();
            batch.push(chunk);
        }
        if batched >= batch_bytes || (done && !batch.is_empty()) {
            let work = std::mem::take(&mut batch);
            let room = room.clone();
            let ended;
            (rx, state, ended) = tokio::task::spawn_blocking(move || {
                let mut take = |chunk: Bytes| {
                    update(&mut state, &chunk);
                    room.add_permits(chunk.len().min(max_behind));
                };
                work.into_iter().for_each(&mut take);
                // Then whatever is queued already: one thread per run of work. A new batch
                // per `spawn_blocking` came back before its thread was idle again, and tokio
                // started another (14 threads for one 256 MiB generation).
                let ended = loop {
                    match rx.try_recv() {
                        Ok(chunk) => take(chunk),
                        Err(mpsc::error::TryRecvError::Empty) => break false,
                        Err(mpsc::error::TryRecvError::Disconnected) => break true,
                    }
                };
                (rx, state, ended)
            })
            .await
            .ok()?;
            done |= ended;
            batched = 0;
        }
        if done {
            return Some(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(sum: &mut (usize, u64), data: &[u8]) {
        sum.0 += data.len();
        sum.1 += data.iter().map(|&b| u64::from(b)).sum::<u64>();
    }

    #[tokio::test]
    async fn every_byte_reaches_the_state_in_order_of_feeding() {
        let feed = BlockingFeed::spawn((0usize, 0u64), add, 1000, 4000);
        for i in 0..100u8 {
            assert!(feed.feed(Bytes::from(vec![i; 333])).await);
        }
        let expected: u64 = (0..100u64).map(|i| i * 333).sum();
        assert_eq!(feed.finish().await, Some((33_300, expected)));
    }

    #[tokio::test]
    async fn try_feed_refuses_past_the_room_and_never_waits() {
        fn slow(n: &mut usize, data: &[u8]) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            *n += data.len();
        }
        let feed = BlockingFeed::spawn(0usize, slow, 10, 100);
        let mut refused = false;
        for _ in 0..50 {
            refused |= !feed.try_feed(Bytes::from(vec![0; 10]));
        }
        assert!(refused, "500 bytes offered at once into a room of 100");
        assert!(feed.finish().await.is_some_and(|n| n >= 100));
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_room_still_goes_through() {
        let feed = BlockingFeed::spawn((0usize, 0u64), add, 10, 100);
        assert!(feed.feed(Bytes::from(vec![1; 1000])).await);
        assert!(feed.feed(Bytes::from(vec![1; 5])).await);
        assert_eq!(feed.finish().await, Some((1005, 1005)));
    }
}
