//! Which client sessions of a listener are on which member, so that a member leaving the
//! listener's role set can have its sessions killed at once. Counts double as the
//! least-connections load, so they cannot drift from the sessions that exist.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Why a session is being ended by rolegate; becomes the client's FATAL message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillReason {
    pub member: String,
    pub message: String,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<u64, Entry>,
    per_member: HashMap<Arc<str>, usize>,
}

struct Entry {
    member: Arc<str>,
    kill: Option<oneshot::Sender<KillReason>>,
}

/// The sessions of one listener.
#[derive(Default)]
pub struct SessionRegistry {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

/// Keeps a session registered; dropping it deregisters.
pub struct SessionGuard {
    registry: Arc<SessionRegistry>,
    id: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        if let Some(e) = inner.sessions.remove(&self.id) {
            decrement(&mut inner.per_member, &e.member);
        }
    }
}

fn decrement(counts: &mut HashMap<Arc<str>, usize>, member: &Arc<str>) {
    if let Some(n) = counts.get_mut(member) {
        *n -= 1;
        if *n == 0 {
            counts.remove(member);
        }
    }
}

impl SessionRegistry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a session on `member`; the receiver fires if the session must die.
    pub fn register(
        self: &Arc<Self>,
        member: &str,
    ) -> (SessionGuard, oneshot::Receiver<KillReason>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let member: Arc<str> = Arc::from(member);
        let mut inner = self.lock();
        *inner.per_member.entry(member.clone()).or_default() += 1;
        inner.sessions.insert(
            id,
            Entry {
                member,
                kill: Some(tx),
            },
        );
        drop(inner);
        (
            SessionGuard {
                registry: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Sessions currently on `member`.
    #[must_use]
    pub fn count(&self, member: &str) -> usize {
        self.lock().per_member.get(member).copied().unwrap_or(0)
    }

    /// All sessions, by member.
    #[must_use]
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .lock()
            .per_member
            .iter()
            .map(|(m, n)| (m.to_string(), *n))
            .collect();
        v.sort();
        v
    }

    /// Kills every session on a member for which `keep` is false; `reason` says why.
    /// Returns how many were signalled.
    pub fn fence(&self, keep: impl Fn(&str) -> bool, reason: impl Fn(&str) -> KillReason) -> usize {
        let mut inner = self.lock();
        let mut killed = 0;
        for e in inner.sessions.values_mut() {
            if keep(&e.member) {
                continue;
            }
            if let Some(tx) = e.kill.take() {
                // The session may have just ended; its guard will clean up.
                let _ = tx.send(reason(&e.member));
                killed += 1;
            }
        }
        killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(m: &str) -> KillReason {
        KillReason {
            member: m.into(),
            message: format!("{m} left"),
        }
    }

    #[tokio::test]
    async fn fence_kills_only_sessions_on_members_that_left() {
        let reg = Arc::new(SessionRegistry::default());
        let (_g1, rx1) = reg.register("pg1");
        let (_g2, mut rx2) = reg.register("pg2");
        let (_g3, rx3) = reg.register("pg1");
        assert_eq!(reg.count("pg1"), 2);
        assert_eq!(reg.fence(|m| m != "pg1", reason), 2);
        assert_eq!(rx1.await.unwrap().message, "pg1 left");
        assert_eq!(rx3.await.unwrap().member, "pg1");
        assert!(rx2.try_recv().is_err());
        // Already signalled sessions are not signalled twice.
        assert_eq!(reg.fence(|m| m != "pg1", reason), 0);
    }

    #[test]
    fn guards_keep_counts_exact() {
        let reg = Arc::new(SessionRegistry::default());
        let a = reg.register("pg1");
        let b = reg.register("pg2");
        assert_eq!(reg.counts(), [("pg1".to_owned(), 1), ("pg2".to_owned(), 1)]);
        drop(a);
        assert_eq!(reg.count("pg1"), 0);
        drop(b);
        assert!(reg.counts().is_empty());
    }
}
