//! `[cache]` and `[limits]`: how much the sidecar keeps and how much it takes on at once.

use serde::{Deserialize, Serialize};

use super::values::Seconds;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Upper bound on the bytes of cached torrents.
    pub max_bytes: u64,
    /// How long a caller's successful authorization probe (and the ETag it saw) is reused
    /// before the backend is asked again. 0 (default): ask on every request, so an overwrite
    /// or a revoked permission shows at once.
    pub revalidate_after: Seconds,
    /// Upper bound on the bytes of the paths → keys kept for renamed directories' web seeds.
    pub max_directory_index_bytes: u64,
    /// How long a caller's READ checks of a directory's objects are reused for the same
    /// listing (asked again as the caller every time). 0: every request checks every object.
    pub directory_checks_window: Seconds,
    /// Upper bound on the bytes of the directory checks kept.
    pub max_directory_checks_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 64 * 1024 * 1024,
            revalidate_after: Seconds(0),
            max_directory_index_bytes: 16 * 1024 * 1024,
            directory_checks_window: Seconds(10),
            max_directory_checks_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Torrent generations (object reads) running at once.
    pub max_concurrent_generations: usize,
    /// Generations allowed to wait for a slot; past that, 503 SlowDown.
    pub max_queued_generations: usize,
    /// Ranged GETs, aligned to piece boundaries, used to read one large object.
    pub fetch_streams: usize,
    /// Objects smaller than this are read with one GET.
    pub parallel_fetch_min_bytes: u64,
    /// READ checks of a directory torrent's objects made at once, per request.
    pub directory_probes: usize,
    /// Directory requests (their listing and READ checks) handled at once; past that, 503
    /// SlowDown. A directory costs the backend up to `torrent.max_files` checks per
    /// request, cached or not: this bounds what callers can make it do.
    pub max_concurrent_directories: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_concurrent_generations: 8,
            max_queued_generations: 64,
            fetch_streams: 4,
            parallel_fetch_min_bytes: 64 * 1024 * 1024,
            directory_probes: 16,
            max_concurrent_directories: 4,
        }
    }
}
