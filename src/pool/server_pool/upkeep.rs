//! Keeping a pool in shape over time (the pools' maintenance task, once a second):
//! closing connections idle too long or past their lifetime, and opening connections up
//! to `min_pool_size`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Limit, PoolError, ServerPool};

impl ServerPool {
    /// Closes idle connections past `idle_timeout` or `lifetime` (but keeps `min_size`),
    /// and says how many more are needed to reach `min_size`.
    pub fn maintain(&self) -> usize {
        let s = self.settings.load();
        let reserve = self.reserve.in_use();
        let keep_total = s.min_size;
        let now = Instant::now();
        self.permits.with_stock(|out, idle| {
            let in_use = out + reserve;
            let mut kept = Vec::with_capacity(idle.len());
            for mut conn in idle.drain(..) {
                let expired = self.expired(&mut conn, now) || conn.is_closed();
                let idle_too_long = now.saturating_duration_since(conn.idle_since)
                    >= s.idle_timeout
                    && in_use + kept.len() >= keep_total;
                if expired || idle_too_long {
                    self.close(&conn);
                } else {
                    kept.push(conn);
                }
            }
            *idle = kept;
            keep_total.saturating_sub(in_use + idle.len())
        })
    }

    /// Opens one connection into the idle list (for `min_pool_size`).
    pub async fn prefill_one(self: &Arc<Self>) -> Result<(), PoolError> {
        let full = |limit| PoolError::WaitTimeout(Duration::ZERO, limit);
        let s = self.settings.load_full();
        let permit = self
            .permits
            .try_acquire()
            .ok_or_else(|| full(Limit::PoolSize(s.size)))?;
        let slot = match &self.db {
            Some(db) => Some(
                db.try_slot()
                    .ok_or_else(|| full(Limit::MaxDbConnections(db.limit)))?,
            ),
            None => None,
        };
        let conn = self.open(s.connect_timeout, slot).await?;
        // Given back with the connection, in one go.
        permit.into_counted();
        self.put_back(conn, Instant::now(), false);
        Ok(())
    }
}
