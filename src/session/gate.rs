//! Whether new transactions may start: PAUSE/RESUME of databases (the admin console) and
//! the process's stop state (SIGTERM drains, SIGINT stops now). Sessions check it before
//! borrowing a server; when nothing is paused that check is one atomic load.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// Which databases a PAUSE (or RECONNECT, KILL) names. A rolegate "database" is a
/// (listener, database name) pair; the console shows it as `<database>@<listener>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSelector {
    /// Every database of every listener.
    All,
    /// One name: matches a database name on any listener, every database of a listener
    /// with that name, or exactly `<database>@<listener>`.
    Named(String),
}

impl DbSelector {
    /// Parses a console argument; empty = all.
    #[must_use]
    pub fn parse(arg: &str) -> Self {
        let arg = arg.trim().trim_matches('"');
        if arg.is_empty() {
            Self::All
        } else {
            Self::Named(arg.to_owned())
        }
    }

    #[must_use]
    pub fn matches(&self, listener: &str, database: &str) -> bool {
        match self {
            Self::All => true,
            Self::Named(n) => {
                n == database
                    || n == listener
                    || n.split_once('@')
                        .is_some_and(|(d, l)| d == database && l == listener)
            }
        }
    }
}

/// The process's stop state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// SIGTERM / SHUTDOWN: no new connections; sessions end when their transaction does.
    Draining,
    /// Timeout passed or SIGINT: every session ends now.
    Now,
}

/// PAUSE state and the stop state.
pub struct Gate {
    /// Fast path: false when nothing is paused.
    any_paused: AtomicBool,
    paused: Mutex<Vec<DbSelector>>,
    /// Fast path: false when nothing is disabled.
    any_disabled: AtomicBool,
    /// DISABLE: databases that refuse new clients.
    disabled: Mutex<Vec<DbSelector>>,
    /// Bumped on every PAUSE/RESUME so waiters re-check.
    version: watch::Sender<u64>,
    stop: watch::Sender<Stop>,
    /// `stop` as a number, read on every checkout and release without the watch's lock.
    stop_now: AtomicU8,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            any_paused: AtomicBool::new(false),
            paused: Mutex::default(),
            any_disabled: AtomicBool::new(false),
            disabled: Mutex::default(),
            version: watch::channel(0).0,
            stop: watch::channel(Stop::Running).0,
            stop_now: AtomicU8::new(0),
        }
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, Vec<DbSelector>> {
        self.paused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds new transactions on the selected databases until `resume`.
    pub fn pause(&self, which: DbSelector) {
        let mut p = self.lock();
        if !p.contains(&which) {
            p.push(which);
        }
        self.any_paused.store(true, Ordering::Release);
        drop(p);
        self.version.send_modify(|v| *v += 1);
    }

    /// Releases a pause. `All` releases every pause; a name releases pauses of that name
    /// (and, if everything was paused, nothing else: RESUME without a name for that).
    /// Returns whether anything was paused under that selector.
    pub fn resume(&self, which: &DbSelector) -> bool {
        let mut p = self.lock();
        let before = p.len();
        match which {
            DbSelector::All => p.clear(),
            named @ DbSelector::Named(_) => p.retain(|s| s != named),
        }
        let changed = p.len() != before;
        self.any_paused.store(!p.is_empty(), Ordering::Release);
        drop(p);
        self.version.send_modify(|v| *v += 1);
        changed
    }

    /// DISABLE (`on`) or ENABLE a database: whether new clients are refused.
    pub fn set_disabled(&self, which: DbSelector, on: bool) {
        let mut d = self.disabled.lock().unwrap_or_else(PoisonError::into_inner);
        d.retain(|s| *s != which);
        if on {
            d.push(which);
        }
        self.any_disabled.store(!d.is_empty(), Ordering::Release);
    }

    /// Whether new clients of (listener, database) are refused (DISABLE).
    #[must_use]
    pub fn is_disabled(&self, listener: &str, database: &str) -> bool {
        self.any_disabled.load(Ordering::Acquire)
            && self
                .disabled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|s| s.matches(listener, database))
    }

    /// What is paused now, as the names PAUSE (or KILL) was given (`*` = everything).
    #[must_use]
    pub fn paused(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|s| match s {
                DbSelector::All => "*".to_owned(),
                DbSelector::Named(n) => n.clone(),
            })
            .collect()
    }

    /// Whether new transactions of (listener, database) are held now.
    #[must_use]
    pub fn is_paused(&self, listener: &str, database: &str) -> bool {
        self.any_paused.load(Ordering::Acquire)
            && self.lock().iter().any(|s| s.matches(listener, database))
    }

    /// Waits while (listener, database) is paused; returns at once when it is not, or when
    /// the process starts stopping (the session then sees the stop state).
    pub async fn wait_open(&self, listener: &str, database: &str) {
        if !self.any_paused.load(Ordering::Acquire) {
            return;
        }
        let mut version = self.version.subscribe();
        let mut stop = self.stop.subscribe();
        while self.is_paused(listener, database) && *stop.borrow_and_update() == Stop::Running {
            tokio::select! {
                r = version.changed() => if r.is_err() { return },
                r = stop.changed() => if r.is_err() { return },
            }
        }
    }

    /// False when no database is paused (then `wait_open` returns at once).
    #[must_use]
    pub fn may_be_paused(&self) -> bool {
        self.any_paused.load(Ordering::Acquire)
    }

    #[must_use]
    pub fn stop_state(&self) -> Stop {
        match self.stop_now.load(Ordering::Acquire) {
            0 => Stop::Running,
            1 => Stop::Draining,
            _ => Stop::Now,
        }
    }

    /// Moves the stop state forward (never back).
    pub fn set_stop(&self, to: Stop) {
        self.stop.send_if_modified(|s| {
            let forward = matches!(
                (*s, to),
                (Stop::Running, Stop::Draining | Stop::Now) | (Stop::Draining, Stop::Now)
            );
            if forward {
                *s = to;
                let n = match to {
                    Stop::Running => 0,
                    Stop::Draining => 1,
                    Stop::Now => 2,
                };
                self.stop_now.store(n, Ordering::Release);
            }
            forward
        });
    }

    /// Resolves once the process is stopping (draining or now).
    pub async fn stopping(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s != Stop::Running).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn selectors_match_names_listeners_and_pairs() {
        let s = DbSelector::parse("app");
        assert!(s.matches("primary:5000", "app"));
        assert!(!s.matches("primary:5000", "other"));
        assert!(DbSelector::parse("primary:5000").matches("primary:5000", "x"));
        let pair = DbSelector::parse("app@replica:5001");
        assert!(pair.matches("replica:5001", "app"));
        assert!(!pair.matches("primary:5000", "app"));
        assert_eq!(DbSelector::parse(" "), DbSelector::All);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_until_resume() {
        let gate = Arc::new(Gate::default());
        gate.pause(DbSelector::parse("app"));
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.wait_open("l", "app").await });
        // Another database is not held.
        gate.wait_open("l", "other").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        assert!(gate.resume(&DbSelector::parse("app")));
        waiter.await.unwrap();
        assert!(!gate.is_paused("l", "app"));
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_releases_paused_waiters_and_only_moves_forward() {
        let gate = Arc::new(Gate::default());
        gate.pause(DbSelector::All);
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.wait_open("l", "app").await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        gate.set_stop(Stop::Draining);
        waiter.await.unwrap();
        gate.set_stop(Stop::Running);
        assert_eq!(gate.stop_state(), Stop::Draining);
        gate.set_stop(Stop::Now);
        assert_eq!(gate.stop_state(), Stop::Now);
        gate.stopping().await;
    }
}
