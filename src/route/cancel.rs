//! Cancel keys -> the member whose backend issued them, so a CancelRequest arriving on any
//! listener reaches the right server even on balanced ports.

use crate::fast_hash::HashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::protocol::CancelKey;

/// Where a backend lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendAddr {
    pub member: String,
    pub host: String,
    pub port: u16,
}

/// Where a CancelRequest for a key goes.
#[derive(Debug, Clone)]
pub enum CancelTarget {
    /// Passthrough: the client holds the backend's own key; forward the packet as is.
    /// (Boxed: the map holds one entry per client, most of them pooled.)
    Direct(Box<BackendAddr>),
    /// Pooled: the client holds rolegate's key; cancel whatever server it uses right now.
    Pooled(Arc<PooledTarget>),
}

/// A server and its cancel key, shared by the server connection and its clients' targets.
pub type ServerKey = Arc<(BackendAddr, CancelKey)>;

/// The server a pooled client is using at the moment, if any.
///
/// The last server stays linked while the client is idle, marked not in use: a client
/// that gets the same server again (the usual case) only flips the mark, with no lock and
/// no reference count touched.
#[derive(Debug, Default)]
pub struct PooledTarget {
    last: Mutex<Option<ServerKey>>,
    /// The address of `last`'s server key, for the client's own check whether it is the
    /// same (written under the lock; `last` keeps it alive, so an equal address is the
    /// same server).
    last_ptr: AtomicPtr<(BackendAddr, CancelKey)>,
    /// Whether the client is using `last` now (set under the lock when `last` changes).
    in_use: AtomicBool,
}

impl PooledTarget {
    /// Records that the client now uses `server`. Only the client calls this (and
    /// [`idle`](Self::idle)).
    pub fn lend(&self, server: &ServerKey) {
        if self.last_ptr.load(Ordering::Relaxed).cast_const() == Arc::as_ptr(server) {
            self.in_use.store(true, Ordering::Release);
            return;
        }
        let old = {
            let mut last = self.lock();
            self.last_ptr
                .store(Arc::as_ptr(server).cast_mut(), Ordering::Relaxed);
            self.in_use.store(true, Ordering::Release);
            last.replace(server.clone())
        };
        drop(old); // outside the lock
    }

    /// Records that the client uses no server now (between transactions).
    pub fn idle(&self) {
        self.in_use.store(false, Ordering::Release);
    }

    /// The server the client is using now, if any.
    #[must_use]
    pub fn get(&self) -> Option<(BackendAddr, CancelKey)> {
        let last = self.lock();
        if !self.in_use.load(Ordering::Acquire) {
            return None;
        }
        last.as_deref().cloned()
    }

    fn lock(&self) -> MutexGuard<'_, Option<ServerKey>> {
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Global map of live cancel keys.
#[derive(Default)]
pub struct CancelMap {
    keys: Mutex<HashMap<CancelKey, CancelTarget>>,
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
    fn lock(&self) -> MutexGuard<'_, HashMap<CancelKey, CancelTarget>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the key a client was given.
    pub fn insert(self: &Arc<Self>, key: CancelKey, target: CancelTarget) -> CancelGuard {
        self.lock().insert(key.clone(), target);
        CancelGuard {
            map: self.clone(),
            key,
        }
    }

    /// Gives a pooled client a fresh random key (never one in use) mapped to `target`.
    pub fn insert_new(self: &Arc<Self>, target: &Arc<PooledTarget>) -> (CancelKey, CancelGuard) {
        let mut map = self.lock();
        loop {
            let (pid, secret) = (rand::random::<i32>() & i32::MAX, rand::random::<[u8; 4]>());
            // Each copy made from the bytes: cheaper than cloning a key (a SmallVec's
            // clone goes through its general extend), and a login makes three.
            let key = || CancelKey {
                pid,
                secret: crate::protocol::startup::Secret::from_slice(&secret),
            };
            if pid == 0 {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(free) = map.entry(key()) {
                free.insert(CancelTarget::Pooled(target.clone()));
                drop(map);
                let guard = CancelGuard {
                    map: self.clone(),
                    key: key(),
                };
                return (key(), guard);
            }
        }
    }

    /// Where `key` goes, if its session is still alive.
    #[must_use]
    pub fn get(&self, key: &CancelKey) -> Option<CancelTarget> {
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

    #[test]
    fn keys_live_as_long_as_their_guard() {
        let map = Arc::new(CancelMap::default());
        let key = CancelKey {
            pid: 7,
            secret: crate::protocol::startup::Secret::from_slice(&[1, 2, 3, 4]),
        };
        let addr = BackendAddr {
            member: "pg2".into(),
            host: "127.0.0.1".into(),
            port: 5433,
        };
        let guard = map.insert(key.clone(), CancelTarget::Direct(Box::new(addr.clone())));
        assert!(matches!(map.get(&key), Some(CancelTarget::Direct(a)) if *a == addr));
        let wrong = CancelKey {
            pid: 7,
            secret: crate::protocol::startup::Secret::from_slice(&[1, 2, 3, 5]),
        };
        assert!(map.get(&wrong).is_none());
        drop(guard);
        assert!(map.is_empty());
    }

    #[test]
    fn pooled_keys_are_fresh_and_follow_the_current_server() {
        let map = Arc::new(CancelMap::default());
        let target = Arc::new(PooledTarget::default());
        let (k1, _g1) = map.insert_new(&target);
        let (k2, _g2) = map.insert_new(&target);
        assert_ne!(k1, k2);
        assert!(k1.pid > 0);
        let Some(CancelTarget::Pooled(t)) = map.get(&k1) else {
            panic!("not pooled")
        };
        assert_eq!(t.get(), None);
        let addr = BackendAddr {
            member: "pg1".into(),
            host: "h".into(),
            port: 1,
        };
        let server_key = CancelKey {
            pid: 9,
            secret: crate::protocol::startup::Secret::from_slice(&[1, 1, 1, 1]),
        };
        let first = Arc::new((addr.clone(), server_key.clone()));
        target.lend(&first);
        assert_eq!(t.get(), Some((addr.clone(), server_key.clone())));
        // Between transactions: none, though the server stays linked.
        target.idle();
        assert_eq!(t.get(), None);
        target.lend(&first);
        assert_eq!(t.get(), Some((addr.clone(), server_key)));
        // Another server (another shared key): followed, and back again.
        let other_key = CancelKey {
            pid: 10,
            secret: crate::protocol::startup::Secret::from_slice(&[2, 2, 2, 2]),
        };
        target.idle();
        target.lend(&Arc::new((addr.clone(), other_key.clone())));
        assert_eq!(t.get(), Some((addr, other_key)));
        target.lend(&first);
        assert_eq!(t.get().map(|(_, k)| k.pid), Some(9));
    }
}
