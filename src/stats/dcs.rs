//! The DCS watch's health, written by the etcd source and read by `/ready`, `/metrics` and
//! the stats page.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Counter;

/// Whether the watch runs, and what it last saw.
#[derive(Debug, Default)]
pub struct DcsStats {
    watch_up: AtomicBool,
    /// Key changes received by the watch, plus full reads (at start and after a lost watch).
    pub events: Counter,
    /// Times the watch was lost and restarted.
    pub watch_restarts: Counter,
    last_event: Mutex<Option<(Instant, String)>>,
}

impl DcsStats {
    /// The watch started (true) or was lost (false).
    pub fn set_watch_up(&self, up: bool) {
        let was = self.watch_up.swap(up, Ordering::Relaxed);
        if was && !up {
            self.watch_restarts.inc();
        }
    }

    #[must_use]
    pub fn watch_up(&self) -> bool {
        self.watch_up.load(Ordering::Relaxed)
    }

    /// Records a DCS event, described in a few words ("put leader", "delete members/pg2").
    pub fn event(&self, what: String) {
        self.events.inc();
        *self
            .last_event
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), what));
    }

    /// The last event and how long ago it came.
    #[must_use]
    pub fn last_event(&self) -> Option<(Duration, String)> {
        self.last_event
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(at, what)| (at.elapsed(), what.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_the_watch_counts_a_restart_once() {
        let d = DcsStats::default();
        d.set_watch_up(false);
        assert_eq!(d.watch_restarts.get(), 0);
        d.set_watch_up(true);
        d.set_watch_up(false);
        d.set_watch_up(false);
        assert_eq!(d.watch_restarts.get(), 1);
        d.event("put leader".into());
        assert_eq!(d.events.get(), 1);
        assert_eq!(d.last_event().map(|e| e.1), Some("put leader".into()));
    }
}
