//! Building blocks every room may use, knowing nothing of S3 or BitTorrent: a leaf.
//!
//! - [`flight`] — single-flight: concurrent requests for one key share one run of the work.
//! - [`byte_lru`] — an LRU bounded in bytes.
//! - [`blocking_feed`] — bytes from async code to work on the blocking pool, in batches,
//!   bounded in bytes waiting.
//! - [`in_flight`] — work in flight, counted by guards, with a wake-up at zero.
//! - [`shares`] — at most so many of a resource per holder (an address, a sibling).

pub mod blocking_feed;
pub mod byte_lru;
pub mod flight;
pub mod in_flight;
pub mod shares;
