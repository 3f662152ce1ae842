//! `[cache] revalidate_after`: reuse a caller's successful authorization probe (and the ETag
//! it reported) for a few seconds instead of asking the backend on every request. Off by
//! default. Entries are per caller — anonymous, or one access key — and per forwarded
//! headers, so nobody inherits someone else's READ check; only successes are kept. Within the
//! window an overwrite or a revoked permission is not seen: that is the trade.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::s3::forwarded::Forwarded;
use crate::s3::sigv4::Caller;
use crate::s3::ObjectRef;

use crate::catalog::ObjectFacts;

/// Entries kept at most; the window is short, so this only bounds memory under key floods.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    object: ObjectRef,
    /// Empty for anonymous callers.
    access_key_id: String,
    forwarded: Forwarded,
}

impl ProbeKey {
    pub fn new(object: &ObjectRef, caller: &Caller, forwarded: &Forwarded) -> Self {
        ProbeKey {
            object: object.clone(),
            access_key_id: caller.key_id().to_string(),
            forwarded: forwarded.clone(),
        }
    }
}

pub struct ProbeCache {
    window: Duration,
    entries: Mutex<LruCache<ProbeKey, (ObjectFacts, Instant)>>,
}

impl ProbeCache {
    pub fn new(window: Duration) -> Self {
        ProbeCache {
            window,
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_ENTRIES).expect("non-zero"),
            )),
        }
    }

    fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    pub fn get(&self, key: &ProbeKey, now: Instant) -> Option<ObjectFacts> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((facts, at)) if now.duration_since(*at) < self.window => Some(facts.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: ProbeKey, facts: ObjectFacts, now: Instant) {
        if self.enabled() {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.put(key, (facts, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn facts(etag: &str) -> ObjectFacts {
        ObjectFacts {
            etag: etag.into(),
            length: 1,
            last_modified: None,
            version_id: None,
            request_charged: false,
        }
    }

    fn object() -> ObjectRef {
        ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
        }
    }

    #[test]
    fn reuses_within_the_window_per_caller_only() {
        let cache = ProbeCache::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let alice = Caller::Signed {
            access_key_id: "ALICE".into(),
            secret_access_key: Secret::new("s"),
            signed_headers: vec!["host".into(), "x-amz-request-payer".into()],
            valid_until: None,
        };
        let key = ProbeKey::new(&object(), &alice, &Forwarded::default());
        cache.put(key.clone(), facts("\"1\""), t0);
        assert_eq!(
            cache.get(&key, t0 + Duration::from_secs(4)),
            Some(facts("\"1\""))
        );
        assert_eq!(
            cache.get(&key, t0 + Duration::from_secs(6)),
            None,
            "expired"
        );
        cache.put(key.clone(), facts("\"1\""), t0);
        let anonymous = ProbeKey::new(&object(), &Caller::Anonymous, &Forwarded::default());
        assert_eq!(
            cache.get(&anonymous, t0),
            None,
            "another caller asks the backend"
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-request-payer", "requester".parse().unwrap());
        let payer = ProbeKey::new(&object(), &alice, &Forwarded::from_headers(&headers));
        assert_eq!(
            cache.get(&payer, t0),
            None,
            "other forwarded headers ask the backend"
        );
    }

    #[test]
    fn disabled_by_a_zero_window() {
        let cache = ProbeCache::new(Duration::ZERO);
        let key = ProbeKey::new(&object(), &Caller::Anonymous, &Forwarded::default());
        cache.put(key.clone(), facts("\"1\""), Instant::now());
        assert_eq!(cache.get(&key, Instant::now()), None);
    }
}
