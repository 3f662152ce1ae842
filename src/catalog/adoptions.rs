//! Uploads being adopted (hash on upload): from the backend's 2xx to the upload until its
//! hashes are in the cache. A client's natural next step, `?torrent` right after the `PUT`'s
//! response, arrives inside that window; it waits for the adoption (briefly, bounded by
//! `uploads.adoption_wait`) instead of reading the whole object again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::s3::ObjectRef;

type Pending = Arc<Mutex<HashMap<(String, String), watch::Receiver<()>>>>;

#[derive(Default)]
pub struct Adoptions {
    pending: Pending,
}

/// One upload being adopted; the adoption is over when this drops.
pub struct Adopting {
    key: (String, String),
    /// Dropped with the guard: waiters wake.
    _done: watch::Sender<()>,
    /// Its own entry in `pending`, to tell it from a later upload's.
    mine: watch::Receiver<()>,
    pending: Pending,
}

impl Adoptions {
    /// An upload of `object` was accepted; its adoption follows.
    pub fn begin(&self, object: &ObjectRef) -> Adopting {
        let key = (object.bucket.clone(), object.key.clone());
        let (done, mine) = watch::channel(());
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.insert(key.clone(), mine.clone());
        Adopting {
            key,
            _done: done,
            mine,
            pending: self.pending.clone(),
        }
    }

    /// Waits, at most `bound`, for an adoption of `object` under way; whether there was one
    /// (one that ended just before may have left its torrent all the same).
    pub async fn settled(&self, object: &ObjectRef, bound: Duration) -> bool {
        let rx = {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .get(&(object.bucket.clone(), object.key.clone()))
                .cloned()
        };
        let Some(mut rx) = rx else {
            return false;
        };
        // Never sent on: `changed` ends when the adoption's sender drops.
        let _ = tokio::time::timeout(bound, rx.changed()).await;
        true
    }
}

impl Drop for Adopting {
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // A later upload of the same key may have taken the entry: leave that one.
        if pending
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.mine))
        {
            pending.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> ObjectRef {
        ObjectRef {
            bucket: "b".into(),
            key: key.into(),
            version_id: None,
        }
    }

    #[tokio::test]
    async fn a_request_waits_for_the_adoption_under_way_and_no_longer() {
        let adoptions = Arc::new(Adoptions::default());
        let long = Duration::from_secs(30);
        assert!(
            !adoptions.settled(&object("k"), long).await,
            "none under way"
        );
        let adopting = adoptions.begin(&object("k"));
        let waiter = {
            let adoptions = adoptions.clone();
            tokio::spawn(async move { adoptions.settled(&object("k"), long).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits while it is under way");
        drop(adopting);
        let waited = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(waited.unwrap().unwrap());
        assert!(adoptions.pending.lock().unwrap().is_empty());
        // Bounded: an adoption that never ends holds a request only so long.
        let _stuck = adoptions.begin(&object("k"));
        let k = object("k");
        let bounded = adoptions.settled(&k, Duration::from_millis(20));
        assert!(tokio::time::timeout(Duration::from_secs(5), bounded)
            .await
            .unwrap());
    }

    #[test]
    fn an_older_adoption_ending_leaves_a_newer_one_pending() {
        let adoptions = Adoptions::default();
        let first = adoptions.begin(&object("k"));
        let _second = adoptions.begin(&object("k"));
        drop(first);
        assert_eq!(adoptions.pending.lock().unwrap().len(), 1);
    }
}
