//! Building blocks every room may use, knowing nothing of S3 or BitTorrent: a leaf.
//!
//! - [`flight`] — single-flight: concurrent requests for one key share one run of the work.

pub mod flight;
