//! An LRU bounded in bytes rather than entries: each entry weighs what its weigher says, and
//! inserting evicts least-recently-used entries until the total fits. An entry heavier than
//! the whole budget is not kept. Thread-safe (one lock).

use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

pub struct ByteLru<K: Hash + Eq, V> {
    max_bytes: u64,
    weigh: fn(&K, &V) -> u64,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K: Hash + Eq, V> {
    lru: LruCache<K, V>,
    bytes: u64,
}

/// What an insert did, and the size after it (for metrics, read under the same lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub evicted: usize,
    pub bytes: u64,
    pub entries: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> ByteLru<K, V> {
    pub fn new(max_bytes: u64, weigh: fn(&K, &V) -> u64) -> Self {
        ByteLru {
            max_bytes,
            weigh,
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// The entry, now the most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock().lru.get(key).cloned()
    }

    /// The keys `pick` takes, most recently used first, without touching their recency.
    pub fn keys_where(&self, pick: impl Fn(&K) -> bool) -> Vec<K> {
        let inner = self.lock();
        inner
            .lru
            .iter()
            .map(|(k, _)| k)
            .filter(|k| pick(k))
            .cloned()
            .collect()
    }

    pub fn insert(&self, key: K, value: V) -> Inserted {
        let cost = (self.weigh)(&key, &value);
        let mut inner = self.lock();
        let mut evicted = 0;
        if cost <= self.max_bytes {
            if let Some(old) = inner.lru.put(key.clone(), value) {
                inner.bytes -= (self.weigh)(&key, &old);
            }
            inner.bytes += cost;
            while inner.bytes > self.max_bytes {
                let Some((k, v)) = inner.lru.pop_lru() else {
                    break;
                };
                inner.bytes -= (self.weigh)(&k, &v);
                evicted += 1;
            }
        }
        Inserted {
            evicted,
            bytes: inner.bytes,
            entries: inner.lru.len(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that
        // matters more than losing the cache, so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values are their own weight.
    fn own(_: &&str, v: &u64) -> u64 {
        *v
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let lru = ByteLru::new(30, own);
        lru.insert("a", 10);
        lru.insert("b", 10);
        assert_eq!(lru.insert("c", 10).entries, 3);
        assert!(lru.get(&"a").is_some()); // now the most recent
        let inserted = lru.insert("d", 10);
        assert_eq!(
            (inserted.evicted, inserted.entries, inserted.bytes),
            (1, 3, 30)
        );
        assert!(lru.get(&"b").is_none(), "b was least recent");
    }

    #[test]
    fn too_heavy_is_not_kept_and_replacing_keeps_accounting() {
        let lru = ByteLru::new(25, own);
        assert_eq!(lru.insert("big", 26).entries, 0);
        lru.insert("a", 10);
        let after = lru.insert("a", 12);
        assert_eq!((after.bytes, after.entries), (12, 1));
        assert_eq!(lru.get(&"a"), Some(12));
    }
}
