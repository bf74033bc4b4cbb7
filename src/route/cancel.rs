//! Cancel keys -> the member whose backend issued them, so a CancelRequest arriving on any
//! listener reaches the right server even on balanced ports.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::protocol::CancelKey;

/// Where a backend lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendAddr {
    pub member: String,
    pub host: String,
    pub port: u16,
}

/// Global map of live cancel keys.
#[derive(Default)]
pub struct CancelMap {
    keys: Mutex<HashMap<CancelKey, BackendAddr>>,
}

/// Removes its key when the session ends.
pub struct CancelGuard {
    map: Arc<CancelMap>,
    key: CancelKey,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.map.lock().remove(&self.key);
    }
}

impl CancelMap {
    fn lock(&self) -> MutexGuard<'_, HashMap<CancelKey, BackendAddr>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the key a backend sent its client.
    pub fn insert(self: &Arc<Self>, key: CancelKey, addr: BackendAddr) -> CancelGuard {
        self.lock().insert(key.clone(), addr);
        CancelGuard {
            map: self.clone(),
            key,
        }
    }

    /// The backend that issued `key`, if its session is still alive.
    #[must_use]
    pub fn get(&self, key: &CancelKey) -> Option<BackendAddr> {
        self.lock().get(key).cloned()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn keys_live_as_long_as_their_guard() {
        let map = Arc::new(CancelMap::default());
        let key = CancelKey {
            pid: 7,
            secret: Bytes::from_static(&[1, 2, 3, 4]),
        };
        let addr = BackendAddr {
            member: "pg2".into(),
            host: "127.0.0.1".into(),
            port: 5433,
        };
        let guard = map.insert(key.clone(), addr.clone());
        assert_eq!(map.get(&key), Some(addr));
        let wrong = CancelKey {
            pid: 7,
            secret: Bytes::from_static(&[1, 2, 3, 5]),
        };
        assert_eq!(map.get(&wrong), None);
        drop(guard);
        assert!(map.is_empty());
    }
}
