//! What a checkout waits for when no idle connection is at hand: a permit under
//! `pool_size` (then one of the reserve, after `reserve_pool_timeout`), room under
//! `max_db_connections`, and a new connection to fill it.

use std::sync::atomic::Ordering;

use super::{DbSlot, Limit, Next, PoolError, PoolSettings, ServerConn, ServerPool};
use crate::pool::capacity::Permit;

impl ServerPool {
    /// An idle connection of this pool, else room under `max_db_connections` for a new
    /// one: a free slot, or one made by closing another pool's idle connection, or the
    /// first of either to come before `deadline`.
    pub(super) async fn idle_or_room(
        &self,
        s: &PoolSettings,
        deadline: tokio::time::Instant,
    ) -> Result<Next, PoolError> {
        let Some(db) = &self.db else {
            return Ok(self.take_idle().map_or(Next::Room(None), Next::Idle));
        };
        loop {
            let idled = db.idled();
            tokio::pin!(idled);
            idled.as_mut().enable();
            if let Some(conn) = self.take_idle() {
                return Ok(Next::Idle(conn));
            }
            if let Some(slot) = db.try_slot() {
                return Ok(Next::Room(Some(slot)));
            }
            if db.close_idle_elsewhere(self) {
                continue;
            }
            tokio::select! {
                Some(slot) = db.slot() => return Ok(Next::Room(Some(slot))),
                () = &mut idled => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(PoolError::WaitTimeout(
                        s.wait_timeout,
                        Limit::MaxDbConnections(db.limit),
                    ));
                }
            }
        }
    }

    /// Opens a connection that holds `slot` for its life.
    pub(super) async fn open(
        &self,
        s: &PoolSettings,
        slot: Option<DbSlot>,
    ) -> Result<Box<ServerConn>, PoolError> {
        // Boxed: opening is rare, and its login state should not sit in every checkout.
        let mut conn =
            Box::pin(ServerConn::open(&self.addr, &self.login, s.connect_timeout)).await?;
        conn.db_slot = slot;
        conn.generation = self.generation.load(Ordering::Acquire);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(conn))
    }

    pub(super) async fn acquire(&self, s: &PoolSettings) -> Result<Permit, PoolError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(PoolError::Draining);
        }
        let first_wait = if s.reserve_size > 0 {
            s.reserve_timeout.min(s.wait_timeout)
        } else {
            s.wait_timeout
        };
        if let Ok(Ok(p)) = tokio::time::timeout(first_wait, self.permits.acquire()).await {
            return Ok(p);
        }
        if let Ok(p) = self.reserve.try_acquire() {
            return Ok(p);
        }
        let rest = s.wait_timeout.saturating_sub(first_wait);
        match tokio::time::timeout(rest, self.permits.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(PoolError::WaitTimeout(
                s.wait_timeout,
                Limit::PoolSize(s.size),
            )),
        }
    }
}
