//! `[cache] directory_checks`: a directory torrent asked again by the same caller, shortly
//! after, for the same listing, reuses that caller's READ checks of its objects instead of
//! asking the backend once per object again (10,000 objects: 10,009 backend requests per
//! request before). The listing is still made as the caller on every request, and it is the
//! key: a changed, added or removed object (another ETag or size) is another listing, checked
//! anew. Within the window a permission revoked on one object is not seen: that is the trade,
//! kept short (`cache.directory_checks_window`, 10 s), and bounded in bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::catalog::ObjectFacts;
use crate::common::byte_lru::ByteLru;
use crate::s3::forwarded::Forwarded;
use crate::s3::listing::Listed;
use crate::s3::sigv4::Caller;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChecksKey {
    /// Empty for anonymous callers.
    access_key_id: String,
    forwarded: Forwarded,
    bucket: String,
    prefix: String,
    /// Every listed key, size and ETag, in the listing's order.
    listing: [u8; 32],
}

impl ChecksKey {
    pub fn new(
        caller: &Caller,
        forwarded: &Forwarded,
        bucket: &str,
        prefix: &str,
        listed: &[Listed],
    ) -> ChecksKey {
        let mut h = Sha256::new();
        for l in listed {
            for field in [l.key.as_bytes(), l.etag.as_bytes()] {
                h.update((field.len() as u64).to_be_bytes());
                h.update(field);
            }
            h.update(l.size.to_be_bytes());
        }
        ChecksKey {
            access_key_id: caller.key_id().to_string(),
            forwarded: forwarded.clone(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            listing: h.finalize().into(),
        }
    }
}

type Checked = (Arc<Vec<ObjectFacts>>, Instant);

pub struct DirectoryChecks {
    window: Duration,
    kept: ByteLru<ChecksKey, Checked>,
}

impl DirectoryChecks {
    pub fn new(window: Duration, max_bytes: u64) -> DirectoryChecks {
        DirectoryChecks {
            window,
            kept: ByteLru::new(max_bytes, weigh),
        }
    }

    /// The checks this key passed within the window.
    pub fn get(&self, key: &ChecksKey) -> Option<Arc<Vec<ObjectFacts>>> {
        if self.window.is_zero() {
            return None;
        }
        let (facts, at) = self.kept.get(key)?;
        (at.elapsed() < self.window).then_some(facts)
    }

    /// Keeps checks that all passed.
    pub fn insert(&self, key: ChecksKey, facts: Arc<Vec<ObjectFacts>>) {
        if !self.window.is_zero() {
            self.kept.insert(key, (facts, Instant::now()));
        }
    }
}

/// What an entry holds, roughly: its key's strings and each object's facts.
fn weigh(key: &ChecksKey, (facts, _): &Checked) -> u64 {
    let strings = |f: &ObjectFacts| {
        f.etag.len()
            + f.last_modified.as_ref().map_or(0, String::len)
            + f.version_id.as_ref().map_or(0, String::len)
    };
    let per_object: usize = facts
        .iter()
        .map(|f| strings(f) + std::mem::size_of::<ObjectFacts>())
        .sum();
    (key.bucket.len() + key.prefix.len() + key.access_key_id.len() + 256 + per_object) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, etag: &str) -> Listed {
        Listed {
            key: key.into(),
            size: 10,
            etag: etag.into(),
        }
    }

    fn facts(n: usize) -> Arc<Vec<ObjectFacts>> {
        let f = ObjectFacts {
            etag: "\"e\"".into(),
            length: 10,
            last_modified: None,
            version_id: None,
            request_charged: false,
        };
        Arc::new(vec![f; n])
    }

    fn key(caller: &Caller, listing: &[Listed]) -> ChecksKey {
        ChecksKey::new(caller, &Forwarded::default(), "b", "p/", listing)
    }

    #[test]
    fn checks_are_reused_only_by_their_caller_for_the_same_listing_within_the_window() {
        let checks = DirectoryChecks::new(Duration::from_secs(60), 1 << 20);
        let one = [listed("p/a", "\"1\""), listed("p/b", "\"2\"")];
        let anonymous = Caller::Anonymous;
        checks.insert(key(&anonymous, &one), facts(2));
        assert!(checks.get(&key(&anonymous, &one)).is_some());
        let changed = [listed("p/a", "\"1\""), listed("p/b", "\"3\"")];
        assert!(
            checks.get(&key(&anonymous, &changed)).is_none(),
            "another ETag"
        );
        let grown = [one[0].clone(), one[1].clone(), listed("p/c", "\"4\"")];
        assert!(
            checks.get(&key(&anonymous, &grown)).is_none(),
            "another object"
        );
        let signed = ChecksKey {
            access_key_id: "AK".into(),
            ..key(&anonymous, &one)
        };
        assert!(checks.get(&signed).is_none(), "another caller");
    }

    #[test]
    fn nothing_is_kept_past_the_window_or_the_budget_or_when_off() {
        let expired = DirectoryChecks::new(Duration::from_millis(1), 1 << 20);
        let one = [listed("p/a", "\"1\"")];
        expired.insert(key(&Caller::Anonymous, &one), facts(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.get(&key(&Caller::Anonymous, &one)).is_none());
        let small = DirectoryChecks::new(Duration::from_secs(60), 4096);
        small.insert(key(&Caller::Anonymous, &one), facts(10_000));
        assert!(
            small.get(&key(&Caller::Anonymous, &one)).is_none(),
            "over budget"
        );
        let off = DirectoryChecks::new(Duration::ZERO, 1 << 20);
        off.insert(key(&Caller::Anonymous, &one), facts(1));
        assert!(off.get(&key(&Caller::Anonymous, &one)).is_none());
    }
}
