//! What a checkout waits for when no idle connection is at hand: a permit under
//! `pool_size` (then one of the reserve, after `reserve_pool_timeout`), room under
//! `max_db_connections`, and a new connection to fill it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{DbSlot, Limit, Next, PoolError, PoolSettings, ServerConn, ServerPool};
use crate::pool::capacity::Permit;

/// What a checkout reads of the settings, copied out once so that nothing of the settings
/// (a guard, a reference count) is held while it waits.
#[derive(Clone, Copy)]
pub(super) struct Waits {
    size: usize,
    reserve_size: usize,
    reserve_timeout: Duration,
    pub wait_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Waits {
    pub(super) fn of(s: &PoolSettings) -> Self {
        Self {
            size: s.size,
            reserve_size: s.reserve_size,
            reserve_timeout: s.reserve_timeout,
            wait_timeout: s.wait_timeout,
            connect_timeout: s.connect_timeout,
        }
    }
}

impl ServerPool {
    /// An idle connection of this pool, else room under `max_db_connections` for a new
    /// one: a free slot, or one made by closing another pool's idle connection, or the
    /// first of either to come before `deadline`.
    pub(super) async fn idle_or_room(
        &self,
        s: &Waits,
        deadline: tokio::time::Instant,
    ) -> Result<Next, PoolError> {
        let Some(db) = &self.db else {
            let now = Instant::now();
            return Ok(self
                .take_idle_at(now)
                .map_or(Next::Room(None), |conn| Next::Idle(conn, now)));
        };
        loop {
            let idled = db.idled();
            tokio::pin!(idled);
            idled.as_mut().enable();
            let now = Instant::now();
            if let Some(conn) = self.take_idle_at(now) {
                return Ok(Next::Idle(conn, now));
            }
            if let Some(slot) = db.try_slot() {
                return Ok(Next::Room(Some(slot)));
            }
            if db.close_idle_elsewhere(self) {
                continue;
            }
            tokio::select! {
                slot = db.slot(deadline) => {
                    return slot.map(|slot| Next::Room(Some(slot))).ok_or(
                        PoolError::WaitTimeout(s.wait_timeout, Limit::MaxDbConnections(db.limit)),
                    );
                }
                () = &mut idled => {}
            }
        }
    }

    /// Opens a connection that holds `slot` for its life.
    pub(super) async fn open(
        &self,
        connect_timeout: Duration,
        slot: Option<DbSlot>,
    ) -> Result<Box<ServerConn>, PoolError> {
        // Boxed: opening is rare, and its login state should not sit in every checkout.
        let mut conn = Box::pin(ServerConn::open(&self.addr, &self.login, connect_timeout)).await?;
        conn.db_slot = slot;
        conn.generation = self.generation.load(Ordering::Acquire);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(conn))
    }

    /// A permit under `pool_size` (`false`) or the reserve (`true`), waiting from `start`
    /// up to `wait_timeout`; after `reserve_pool_timeout` of it, one of the reserve if that
    /// has room.
    pub(super) async fn acquire(
        &self,
        s: &Waits,
        start: tokio::time::Instant,
    ) -> Result<(Permit<Box<ServerConn>>, bool), PoolError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(PoolError::Draining);
        }
        let first_wait = if s.reserve_size > 0 {
            s.reserve_timeout.min(s.wait_timeout)
        } else {
            s.wait_timeout
        };
        if let Some(p) = self.permits.acquire(start + first_wait).await {
            return Ok((p, false));
        }
        if let Some(p) = self.reserve.try_acquire() {
            return Ok((p, true));
        }
        let timeout = || PoolError::WaitTimeout(s.wait_timeout, Limit::PoolSize(s.size));
        if first_wait >= s.wait_timeout {
            // No time left: one last look.
            return self
                .permits
                .try_acquire()
                .map(|p| (p, false))
                .ok_or_else(timeout);
        }
        self.permits
            .acquire(start + s.wait_timeout)
            .await
            .map(|p| (p, false))
            .ok_or_else(timeout)
    }
}
