//! Shared counters: plain atomics that the hot path bumps through `Arc`s it already holds
//! (a listener's [`ListenerStats`], the process-wide [`Stats`], the topology store's
//! [`DcsStats`]) and that the admin server reads at scrape time.
//!
//! Owns no policy and imports nothing internal. Updating a counter is one relaxed atomic
//! add: no lock, no allocation, no label lookup on the per-transaction path.

pub mod counters;
pub mod dcs;
pub mod histogram;
pub mod listener;
pub mod sqlstate;

pub use counters::{Counter, Gauge, GaugeGuard};
pub use dcs::DcsStats;
pub use histogram::{Histogram, HistogramSnapshot};
pub use listener::ListenerStats;
pub use sqlstate::ErrorCounters;

use std::time::Instant;

/// Process-wide counters that belong to no listener.
pub struct Stats {
    /// When the process started, for uptime.
    pub started: Instant,
    /// Switchover holds: new work on a primary listener waiting while the leader changes.
    pub switchover: SwitchoverStats,
    /// `rolegate_config_reloads_total{result}`: bumped by the reload code.
    pub config_reloads: ReloadStats,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            switchover: SwitchoverStats::default(),
            config_reloads: ReloadStats::default(),
        }
    }
}

/// Work held on a primary listener while the leader changes.
#[derive(Default)]
pub struct SwitchoverStats {
    /// Holds that ended (with a server or with an error).
    pub holds: Counter,
    /// Holds that ended without a primary (the client got an error).
    pub holds_failed: Counter,
    /// Clients being held right now.
    pub holding: Gauge,
    /// How long each hold lasted.
    pub hold_time: Histogram,
}

impl SwitchoverStats {
    /// Records one finished hold.
    pub fn record(&self, held: std::time::Duration, ok: bool) {
        self.holds.inc();
        if !ok {
            self.holds_failed.inc();
        }
        self.hold_time.record(held);
    }
}

/// Config reloads by result.
#[derive(Default)]
pub struct ReloadStats {
    pub ok: Counter,
    pub error: Counter,
    /// Unix seconds of the last successful reload; 0 = never.
    pub last_ok_unix: Counter,
}

impl ReloadStats {
    /// Records one reload attempt.
    pub fn record(&self, ok: bool) {
        if ok {
            self.ok.inc();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.last_ok_unix.set(now);
        } else {
            self.error.inc();
        }
    }
}
