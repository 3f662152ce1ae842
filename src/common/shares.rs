//! Shares of a bounded resource per holder (an address, a sibling): each holder may hold at
//! most `max` at once; a share is given back when its guard drops.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

pub struct Shares<K: Eq + Hash> {
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Eq + Hash> Default for Shares<K> {
    fn default() -> Self {
        Shares {
            held: Arc::default(),
        }
    }
}

/// One share, held until dropped.
pub struct Share<K: Eq + Hash> {
    key: Option<K>,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Eq + Hash + Clone> Shares<K> {
    /// A share for `key`, unless it holds `max` already.
    pub fn enter(&self, key: K, max: usize) -> Option<Share<K>> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key.clone()).or_default();
        if *n >= max {
            if *n == 0 {
                held.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Share {
            key: Some(key),
            held: self.held.clone(),
        })
    }
}

impl<K: Eq + Hash> Drop for Share<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_gets_at_most_its_share_and_gets_it_back() {
        let shares = Shares::default();
        let a: Vec<_> = (0..3).filter_map(|_| shares.enter("a", 2)).collect();
        assert_eq!(a.len(), 2);
        let b = shares.enter("b", 2);
        assert!(b.is_some(), "another holder is not affected");
        drop(a);
        assert_eq!(shares.held.lock().unwrap().get("a"), None);
        assert!(shares.enter("a", 2).is_some());
        assert!(shares.enter("c", 0).is_none());
        drop(b);
        assert!(
            shares.held.lock().unwrap().is_empty(),
            "nothing kept for holders gone"
        );
    }
}
