//! A small per-node cache whose entries expire after a fixed time. Used where several nodes
//! may change a record and a few seconds of staleness on the others is acceptable (the node
//! that makes a change forgets its entry at once): OAuth clients, destinations, access
//! tokens checked not revoked.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub(crate) struct TtlCache<V> {
    ttl: Duration,
    /// Entries kept at most; a full cache starts over (cheaper than tracking age order, and
    /// bounds what probing with unknown keys can cost).
    max: usize,
    map: RwLock<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        TtlCache {
            ttl,
            max,
            map: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let map = self.map.read().ok()?;
        let (at, v) = map.get(key)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    pub(crate) fn put(&self, key: &str, value: V) {
        if let Ok(mut map) = self.map.write() {
            if map.len() >= self.max {
                map.clear();
            }
            map.insert(key.to_owned(), (Instant::now(), value));
        }
    }

    pub(crate) fn remove(&self, key: &str) {
        if let Ok(mut map) = self.map.write() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_are_removed_and_the_size_is_bounded() {
        let c = TtlCache::new(Duration::from_millis(50), 2);
        c.put("a", 1);
        assert_eq!(c.get("a"), Some(1));
        c.remove("a");
        assert_eq!(c.get("a"), None);
        c.put("a", 1);
        c.put("b", 2);
        c.put("c", 3);
        assert_eq!(
            (c.get("a"), c.get("c")),
            (None, Some(3)),
            "full: starts over"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("c"), None, "expired");
    }
}
