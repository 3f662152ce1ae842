//! Generated torrents, kept in an LRU bounded in bytes, under the torrent's identity (the
//! store's key). The key includes the object's ETag (and version), so an overwritten object
//! is a different entry: a stale torrent is never served, and the old entry ages out.

use std::sync::Arc;

use crate::common::byte_lru::ByteLru;
use crate::store::EntryKey as CacheKey;
use crate::torrent::Torrent;

/// What an entry costs the budget: the torrent and everything kept beside it, and the key.
fn weight(key: &CacheKey, torrent: &Torrent) -> u64 {
    let key_bytes = key.bucket.len()
        + key.key.len()
        + key.etag.len()
        + key.version_id.as_ref().map_or(0, String::len);
    // Fixed overhead per entry: the LRU node, the Arc, the struct headers.
    (torrent.weight() + key_bytes + 256) as u64
}

/// Generated torrents by key, bounded in bytes ([`weight`]).
pub type TorrentCache = ByteLru<CacheKey, Arc<Torrent>>;

pub fn torrent_cache(max_bytes: u64) -> TorrentCache {
    ByteLru::new(max_bytes, |key, torrent| weight(key, torrent))
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
            directory: false,
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
        let cache = torrent_cache(3 * one);
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
        let cache = torrent_cache(1 << 20);
        cache.insert(key("a", "\"v1\""), torrent(10));
        assert!(cache.get(&key("a", "\"v2\"")).is_none());
    }

    #[test]
    fn oversized_entries_are_not_cached_and_replacing_keeps_accounting() {
        let cache = torrent_cache(2500);
        assert_eq!(cache.insert(key("big", "e"), torrent(5000)).entries, 0);
        let before = cache.insert(key("a", "e"), torrent(100));
        let after = cache.insert(key("a", "e"), torrent(100));
        assert_eq!((after.bytes, after.entries), (before.bytes, 1));
    }
}
