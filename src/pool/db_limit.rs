//! `max_db_connections` (PgBouncer's meaning): at most N server connections to one
//! database on one member, over the pools of all users of a listener.
//!
//! Each open server connection holds a [`DbSlot`] for its whole life, so the count is the
//! number of permits out and cannot drift; closing the connection (dropping it) frees the
//! slot. A pool that needs room while another pool of the same database sits on idle
//! connections closes one of those, as PgBouncer does.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::Notify;

use super::capacity::{Capacity, Permit};
use super::server_pool::ServerPool;

/// Room for one open server connection to a (member, database).
pub struct DbSlot {
    _permit: Permit,
}

impl std::fmt::Debug for DbSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSlot")
    }
}

/// The connection budget of one (member, database) of a listener.
pub struct DbSlots {
    /// `max_db_connections`.
    pub limit: usize,
    permits: Arc<Capacity>,
    /// Every pool of this (member, database), to find idle connections to close for room.
    pools: Mutex<Vec<Weak<ServerPool>>>,
    /// Woken when a connection of this (member, database) goes idle, so a waiting pool can
    /// close it (or, if it is its own, take it).
    idled: Notify,
}

impl DbSlots {
    #[must_use]
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            permits: Capacity::new(limit),
            pools: Mutex::default(),
            idled: Notify::new(),
        })
    }

    fn pools(&self) -> MutexGuard<'_, Vec<Weak<ServerPool>>> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a pool of this (member, database); pools that are gone are forgotten here.
    pub fn register(&self, pool: &Arc<ServerPool>) {
        let mut pools = self.pools();
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    /// A slot if one is free now.
    #[must_use]
    pub fn try_slot(&self) -> Option<DbSlot> {
        self.permits.try_acquire().map(|p| DbSlot { _permit: p })
    }

    /// Waits for a slot until `deadline`; `None` = none came by then.
    pub async fn slot(&self, deadline: tokio::time::Instant) -> Option<DbSlot> {
        let p = self.permits.acquire(deadline).await?;
        Some(DbSlot { _permit: p })
    }

    /// Closes the longest-idle connection of another pool than `except`; false if none
    /// of them has one.
    pub fn close_idle_elsewhere(&self, except: &ServerPool) -> bool {
        let others: Vec<Arc<ServerPool>> = self
            .pools()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|p| !std::ptr::eq(Arc::as_ptr(p), except))
            .collect();
        others.iter().any(|p| p.close_oldest_idle())
    }

    /// A future that completes after the next [`Self::went_idle`]. Enable it before
    /// checking for room so a wake-up between the check and the wait is not lost.
    pub fn idled(&self) -> tokio::sync::futures::Notified<'_> {
        self.idled.notified()
    }

    /// Tells waiting pools that a connection went idle.
    pub fn went_idle(&self) {
        self.idled.notify_waiters();
    }
}
