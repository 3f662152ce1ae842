//! Single-flight: the first request for an uncached key starts the work as its own task, so a
//! caller that disconnects cancels nothing; later requests for the same key wait for that
//! task's result. Failures reach every waiter and are kept nowhere.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

type Outcome<V, E> = Option<Result<V, E>>;

/// The work's task ended without a result (it panicked): what waiters get instead.
#[derive(Debug, Clone, Copy)]
pub struct Ended;

pub struct SingleFlight<K, V, E> {
    flights: Mutex<HashMap<K, watch::Receiver<Outcome<V, E>>>>,
}

/// Whether this request started the work or joined work already under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    Started,
    Coalesced,
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + From<Ended> + 'static,
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
        start: impl FnOnce() -> Result<F, E>,
    ) -> (Result<V, E>, Joined)
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
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
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or_else(|| Err(Ended.into())),
            Err(_) => Err(Ended.into()),
        };
        (outcome, joined)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, watch::Receiver<Outcome<V, E>>>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a flight when its task ends, however it ends (a panic included), so the key is
/// never stuck.
struct Landing<K: Eq + Hash, V, E> {
    flights: Arc<SingleFlight<K, V, E>>,
    key: K,
}

impl<K: Eq + Hash, V, E> Drop for Landing<K, V, E> {
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

    #[derive(Debug, Clone, PartialEq)]
    struct Failed(&'static str);

    impl From<Ended> for Failed {
        fn from(_: Ended) -> Self {
            Failed("ended")
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_failures_are_not_kept() {
        let flights = Arc::new(SingleFlight::<&str, u32, Failed>::new());
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
                                Err(Failed("x"))
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
        let flights = Arc::new(SingleFlight::<&str, u32, Failed>::new());
        let (r, _) = flights
            .run("k", || Err::<std::future::Ready<_>, _>(Failed("busy")))
            .await;
        assert_eq!(r.unwrap_err(), Failed("busy"));
        assert!(flights.lock().is_empty());
    }
}
