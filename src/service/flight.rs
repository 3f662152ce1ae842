//! Single-flight: the first request for an uncached key starts the work as its own task, so a
//! caller that disconnects cancels nothing; later requests for the same key wait for that
//! task's result. Failures reach every waiter and are kept nowhere.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::s3::S3Error;

type Outcome<V> = Option<Result<V, S3Error>>;

pub struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, watch::Receiver<Outcome<V>>>>,
}

/// Whether this request started the work or joined work already under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    Started,
    Coalesced,
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// Joins the flight for `key`, or calls `start` (under the map's lock, so it must be
    /// cheap: an admission check) and runs the future it returns as the flight. The work
    /// should publish its result (e.g. into a cache) before it returns: the flight is removed
    /// only after, so a newcomer finds one or the other.
    pub async fn run<F>(
        self: &Arc<Self>,
        key: K,
        start: impl FnOnce() -> Result<F, S3Error>,
    ) -> (Result<V, S3Error>, Joined)
    where
        F: Future<Output = Result<V, S3Error>> + Send + 'static,
    {
        let (mut rx, joined) = {
            let mut flights = self.lock();
            match flights.get(&key) {
                Some(existing) => (existing.clone(), Joined::Coalesced),
                None => {
                    let work = match start() {
                        Ok(work) => work,
                        Err(e) => return (Err(e), Joined::Started),
                    };
                    let (tx, rx) = watch::channel(None);
                    flights.insert(key.clone(), rx.clone());
                    let landing = Landing {
                        flights: self.clone(),
                        key,
                    };
                    tokio::spawn(async move {
                        let result = work.await;
                        drop(landing);
                        let _ = tx.send(Some(result));
                    });
                    (rx, Joined::Started)
                }
            }
        };
        let ended = || S3Error::internal("the generation task ended without a result");
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or_else(|| Err(ended())),
            Err(_) => Err(ended()),
        };
        (outcome, joined)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, watch::Receiver<Outcome<V>>>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a flight when its task ends, however it ends (a panic included), so the key is
/// never stuck.
struct Landing<K: Eq + Hash, V> {
    flights: Arc<SingleFlight<K, V>>,
    key: K,
}

impl<K: Eq + Hash, V> Drop for Landing<K, V> {
    fn drop(&mut self) {
        let mut flights = self
            .flights
            .flights
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        flights.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_failures_are_not_kept() {
        let flights = Arc::new(SingleFlight::<&str, u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let call = |fail: bool| {
            let (flights, runs) = (flights.clone(), runs.clone());
            async move {
                flights
                    .run("k", || {
                        Ok(async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if fail {
                                Err(S3Error::internal("x"))
                            } else {
                                Ok(7)
                            }
                        })
                    })
                    .await
            }
        };
        let (a, b) = tokio::join!(call(true), call(true));
        assert!(a.0.is_err() && b.0.is_err());
        assert_eq!(
            [a.1, b.1]
                .iter()
                .filter(|j| **j == Joined::Coalesced)
                .count(),
            1
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let (c, _) = call(false).await;
        assert_eq!(c.unwrap(), 7);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "a failure is not reused");
    }

    #[tokio::test]
    async fn a_refused_start_leaves_no_flight() {
        let flights = Arc::new(SingleFlight::<&str, u32>::new());
        let (r, _) = flights
            .run(
                "k",
                || Err::<std::future::Ready<_>, _>(S3Error::slow_down()),
            )
            .await;
        assert_eq!(r.unwrap_err().code.as_str(), "SlowDown");
        assert!(flights.lock().is_empty());
    }
}
