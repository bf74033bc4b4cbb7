//! What operators see of a pool and do to it while it runs: counts and idle connections
//! for the admin console, resizing on reload, RECONNECT.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{PoolSettings, ServerPool};

impl ServerPool {
    /// Applies new sizes to this pool's limits and its lifetime (timeouts are read per
    /// checkout).
    pub fn resize(&self, s: &PoolSettings) {
        self.permits.resize(s.size);
        self.reserve.resize(s.reserve_size);
        self.lifetime_ns
            .store(super::nanos(s.lifetime), Ordering::Relaxed);
    }

    /// (checked out, idle).
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        let reserve = self.reserve.in_use();
        self.permits
            .with_stock(|out, idle| (out + reserve, idle.len()))
    }

    /// The idle connections: (server pid, connected at, idle since), for SHOW SERVERS.
    #[must_use]
    pub fn idle_conns(&self) -> Vec<(i32, Instant, Instant)> {
        self.permits.with_stock(|_, idle| {
            idle.iter()
                .map(|c| (c.key.pid, c.created, c.idle_since))
                .collect()
        })
    }

    /// Closes the idle connections now and every busy one when it is released (RECONNECT):
    /// unlike `drain`, the pool keeps serving with fresh connections.
    pub fn reconnect(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.close_all_idle();
    }
}
