//! Generated torrents, kept in an LRU bounded in bytes. The key includes the object's
//! ETag (and version), so an overwritten object is a different entry: a stale torrent is
//! never served, and the old entry simply ages out.

use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::torrent::Torrent;

/// The same key as the store's: the object, what the backend says it is now, and the
/// settings that change its torrent (format, piece length).
pub use crate::store::EntryKey as CacheKey;

/// What an entry costs the budget: the torrent and everything kept beside it, and the key.
fn weight(key: &CacheKey, torrent: &Torrent) -> u64 {
    let key_bytes = key.bucket.len()
        + key.key.len()
        + key.etag.len()
        + key.version_id.as_ref().map_or(0, String::len);
    // Fixed overhead per entry: the LRU node, the Arc, the struct headers.
    (torrent.weight() + key_bytes + 256) as u64
}

pub struct TorrentCache {
    max_bytes: u64,
    inner: Mutex<Inner>,
}

struct Inner {
    lru: LruCache<CacheKey, Arc<Torrent>>,
    bytes: u64,
}

/// What an insert did, and the cache's size after it (for the metrics, under one lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub evicted: usize,
    pub bytes: u64,
    pub entries: usize,
}

impl Inner {
    fn report(&self, evicted: usize) -> Inserted {
        Inserted {
            evicted,
            bytes: self.bytes,
            entries: self.lru.len(),
        }
    }
}

impl TorrentCache {
    pub fn new(max_bytes: u64) -> Self {
        TorrentCache {
            max_bytes,
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<Torrent>> {
        self.lock().lru.get(key).cloned()
    }

    /// Inserts, evicting least-recently-used entries until the total fits. An entry larger
    /// than the whole budget is not cached.
    pub fn insert(&self, key: CacheKey, torrent: Arc<Torrent>) -> Inserted {
        let cost = weight(&key, &torrent);
        let mut inner = self.lock();
        if cost > self.max_bytes {
            return inner.report(0);
        }
        if let Some(old) = inner.lru.put(key.clone(), torrent) {
            inner.bytes -= weight(&key, &old);
        }
        inner.bytes += cost;
        let mut evicted = 0;
        while inner.bytes > self.max_bytes {
            match inner.lru.pop_lru() {
                Some((k, t)) => {
                    inner.bytes -= weight(&k, &t);
                    evicted += 1;
                }
                None => break,
            }
        }
        inner.report(evicted)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that
        // matters more than losing the cache, so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::Format;

    fn key(k: &str, etag: &str) -> CacheKey {
        CacheKey {
            bucket: "b".into(),
            key: k.into(),
            version_id: None,
            etag: etag.into(),
            length: 1,
            format: Format::V1,
            piece_length: 16384,
        }
    }

    /// A torrent whose encoding is `size` bytes longer than a minimal one.
    fn torrent(size: usize) -> Arc<Torrent> {
        let info = crate::torrent::Info::fixture();
        let meta = crate::torrent::Metainfo {
            comment: Some("c".repeat(size)),
            ..Default::default()
        };
        Arc::new(Torrent::new(info, meta, None))
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let one = weight(&key("a", "e1"), &torrent(1000));
        let cache = TorrentCache::new(3 * one);
        cache.insert(key("a", "e1"), torrent(1000));
        cache.insert(key("b", "e1"), torrent(1000));
        assert_eq!(cache.insert(key("c", "e1"), torrent(1000)).entries, 3);
        assert!(cache.get(&key("a", "e1")).is_some()); // a is now most recent
        let inserted = cache.insert(key("d", "e1"), torrent(1000));
        assert_eq!((inserted.evicted, inserted.entries), (1, 3));
        assert!(inserted.bytes <= 3 * one);
        assert!(cache.get(&key("b", "e1")).is_none(), "b was least recent");
        assert!(cache.get(&key("a", "e1")).is_some());
    }

    #[test]
    fn weight_counts_everything_an_entry_holds() {
        // The encoded bytes, and beside them the piece list and strings kept to re-render.
        let mut info = crate::torrent::Info::fixture();
        info.pieces = vec![1; 20 * 1000];
        let meta = crate::torrent::Metainfo {
            comment: Some("c".repeat(500)),
            url_list: vec!["u".repeat(300)],
            ..Default::default()
        };
        let t = Torrent::new(info, meta, Some("Tue, 15 Nov 1994 08:12:31 GMT".into()));
        let held = t.bytes.len() + t.info.pieces.len() + 500 + 300 + t.etag.len() + 29;
        assert!(weight(&key("k", "e"), &t) as usize >= held);
    }

    #[test]
    fn a_new_etag_is_a_miss() {
        let cache = TorrentCache::new(1 << 20);
        cache.insert(key("a", "\"v1\""), torrent(10));
        assert!(cache.get(&key("a", "\"v2\"")).is_none());
    }

    #[test]
    fn oversized_entries_are_not_cached_and_replacing_keeps_accounting() {
        let cache = TorrentCache::new(2500);
        assert_eq!(cache.insert(key("big", "e"), torrent(5000)).entries, 0);
        let before = cache.insert(key("a", "e"), torrent(100));
        let after = cache.insert(key("a", "e"), torrent(100));
        assert_eq!((after.bytes, after.entries), (before.bytes, 1));
    }
}
