//! Which client sessions of a listener are on which member, so that a member leaving the
//! listener's role set can have its sessions killed at once. Counts double as the
//! least-connections load, so they cannot drift from the sessions that exist.

use crate::fast_hash::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Why a session is being ended by rolegate; becomes the client's FATAL message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillReason {
    pub member: String,
    pub message: String,
}

/// What the sessions registered on a member since its last fence wait on: fired once,
/// then replaced, so sessions registered afterwards are not killed by it. One per member,
/// shared by its sessions: registering allocates nothing.
#[derive(Default)]
pub struct Fence {
    fired: AtomicBool,
    reason: Mutex<Option<KillReason>>,
    notify: Notify,
}

impl Fence {
    fn fire(&self, reason: KillReason) {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        self.fired.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn reason(&self) -> KillReason {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| KillReason {
                member: String::new(),
                message: "rolegate is shutting down".to_owned(),
            })
    }
}

/// The sessions on one member.
struct Member {
    /// Every live session on the member (the least-connections load).
    count: usize,
    /// The fence of sessions registered since the last one fired, and how many they are.
    fence: Arc<Fence>,
    fenceable: usize,
}

/// The sessions of one listener.
#[derive(Default)]
pub struct SessionRegistry {
    members: Mutex<HashMap<Arc<str>, Member>>,
}

/// Keeps a session registered; dropping it deregisters.
pub struct SessionGuard {
    registry: Arc<SessionRegistry>,
    member: Arc<str>,
    fence: Arc<Fence>,
}

impl SessionGuard {
    /// Resolves when a fence kills this session.
    pub async fn fenced(&self) -> KillReason {
        loop {
            let notified = self.fence.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Waiting before looking: a fence fired after the look wakes this waiter.
            notified.as_mut().enable();
            if self.is_fenced() {
                return self.fence.reason();
            }
            notified.await;
        }
    }

    /// A fence has killed this session.
    /// The fence's reason once it fired. Registers nothing: the caller has its task woken
    /// by other means when a fence fires (pooled sessions: their kill waker, which the
    /// fencer wakes after firing, see `ClientRegistry::wake_all`), and must arm that
    /// wake before calling this.
    #[must_use]
    pub fn poll_fenced(&self) -> Option<KillReason> {
        self.is_fenced().then(|| self.fence.reason())
    }

    #[must_use]
    pub fn is_fenced(&self) -> bool {
        self.fence.fired.load(Ordering::Acquire)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut members = self.registry.lock();
        if let Some(m) = members.get_mut(&self.member) {
            m.count -= 1;
            if Arc::ptr_eq(&m.fence, &self.fence) {
                m.fenceable -= 1;
            }
            if m.count == 0 {
                members.remove(&self.member);
            }
        }
    }
}

impl SessionRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Member>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a session on `member`; [`SessionGuard::fenced`] resolves if it must die.
    #[must_use]
    pub fn register(self: &Arc<Self>, member: &str) -> SessionGuard {
        let mut members = self.lock();
        // The member's name is allocated once, when its first session registers.
        let name = match members.get_key_value(member) {
            Some((name, _)) => name.clone(),
            None => Arc::from(member),
        };
        let m = members.entry(name.clone()).or_insert_with(|| Member {
            count: 0,
            fence: Arc::default(),
            fenceable: 0,
        });
        m.count += 1;
        m.fenceable += 1;
        let fence = m.fence.clone();
        drop(members);
        SessionGuard {
            registry: self.clone(),
            member: name,
            fence,
        }
    }

    /// Sessions currently on `member`.
    #[must_use]
    pub fn count(&self, member: &str) -> usize {
        self.lock().get(member).map_or(0, |m| m.count)
    }

    /// All sessions, by member.
    #[must_use]
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .map(|(name, m)| (name.to_string(), m.count))
            .collect();
        v.sort();
        v
    }

    /// Kills every session on a member for which `keep` is false; `reason` says why.
    /// Returns how many were signalled (sessions already signalled are not counted again).
    pub fn fence(&self, keep: impl Fn(&str) -> bool, reason: impl Fn(&str) -> KillReason) -> usize {
        let mut members = self.lock();
        let mut killed = 0;
        for (name, m) in members.iter_mut() {
            if keep(name) || m.fenceable == 0 {
                continue;
            }
            let fence = std::mem::take(&mut m.fence);
            killed += std::mem::take(&mut m.fenceable);
            fence.fire(reason(name));
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
        let g1 = reg.register("pg1");
        let g2 = reg.register("pg2");
        let g3 = reg.register("pg1");
        assert_eq!(reg.count("pg1"), 2);
        let waiting = tokio::spawn({
            let reg = reg.clone();
            async move { reg.register("pg1").fenced().await }
        });
        tokio::task::yield_now().await;
        assert_eq!(reg.fence(|m| m != "pg1", reason), 3);
        assert_eq!(g1.fenced().await.message, "pg1 left");
        assert_eq!(g3.fenced().await.member, "pg1");
        assert_eq!(waiting.await.unwrap().member, "pg1");
        assert!(!g2.is_fenced());
        // Already signalled sessions are not signalled twice; later ones are not killed
        // by the fence that fired before they registered.
        let later = reg.register("pg1");
        assert!(!later.is_fenced());
        assert_eq!(reg.count("pg1"), 3);
        assert_eq!(reg.fence(|m| m != "pg1", reason), 1);
        assert!(later.is_fenced());
        drop((g1, g3, later));
        assert_eq!(reg.count("pg1"), 0);
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
