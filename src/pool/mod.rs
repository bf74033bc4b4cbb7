//! Server connection pools: one [`ServerPool`] per (member, database, user) and listener,
//! RAII [`Checkout`]s, `max_db_connections` across the users of a database ([`db_limit`]),
//! the maintenance loop (idle timeout, lifetime, `min_pool_size`), and draining the pools of
//! members that leave a listener's role.
//! Reads topology snapshots; never writes them.

pub mod capacity;
pub mod db_limit;
pub mod prepared;
pub mod server;
pub mod server_pool;
pub mod slots;

use crate::fast_hash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;

pub use capacity::Capacity;
pub use db_limit::{DbSlot, DbSlots};
pub use server::{Login, ServerConn, ServerError};
pub use server_pool::{Checkout, Limit, PoolError, PoolSettings, ServerPool};
pub use slots::ClientSlots;

use crate::route::cancel::BackendAddr;

/// A pooling listener's setup: its pools and its client limit.
pub struct PoolSetup {
    /// Fixed for the listener's life (changing it needs a restart).
    pub mode: crate::config::PoolMode,
    pub pools: Arc<Pools>,
    /// One slot per client connection (`max_client_conn`); resized on reload.
    pub clients: Arc<ClientSlots>,
    /// Statements known to parse, for answering Parse without a server.
    pub known_statements: prepared::KnownStatements,
    /// The pool the last balanced checkout settled on, for new clients of the same
    /// database and user (see [`Seed`]).
    pub seed: Seed,
}

/// The last pool a balanced checkout found to be the listener's only choice, with the
/// topology generation it was chosen under. A new client of the same (interned) database
/// and user starts with it as its sticky pool, so its first checkout takes the fast path
/// (an idle server, no member choice) when nothing changed since: with a new connection
/// per transaction, every checkout is a first one.
#[derive(Default)]
pub struct Seed {
    slot: Mutex<Option<SeedEntry>>,
}

struct SeedEntry {
    database: Arc<str>,
    user: Arc<str>,
    generation: u64,
    pool: Arc<server_pool::ServerPool>,
}

impl Seed {
    /// The seeded pool and its generation, if it is for `database` and `user`.
    #[must_use]
    pub fn get(
        &self,
        database: &Arc<str>,
        user: &Arc<str>,
    ) -> Option<(u64, Arc<server_pool::ServerPool>)> {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|e| Arc::ptr_eq(&e.database, database) && Arc::ptr_eq(&e.user, user))
            .map(|e| (e.generation, e.pool.clone()))
    }

    /// Seeds `pool`, chosen as the only choice under `generation`.
    pub fn set(&self, generation: u64, pool: &Arc<server_pool::ServerPool>) {
        let entry = SeedEntry {
            database: pool.login.database.clone(),
            user: pool.login.user.clone(),
            generation,
            pool: pool.clone(),
        };
        let old = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(entry);
        drop(old); // outside the lock
    }
}

impl PoolSetup {
    #[must_use]
    pub fn from_config(c: &crate::config::ListenerConfig) -> Option<Self> {
        let mode = c.pool_mode?;
        let settings = PoolSettings::from_config(c);
        Some(Self {
            mode,
            clients: ClientSlots::new(settings.max_client_conn),
            pools: Arc::new(Pools::new(settings)),
            known_statements: prepared::KnownStatements::default(),
            seed: Seed::default(),
        })
    }

    /// The current settings (one swap load).
    #[must_use]
    pub fn settings(&self) -> Arc<PoolSettings> {
        self.pools.settings.load_full()
    }

    /// Swaps in new settings: every pool's limits and the client limit are resized in place;
    /// running transactions keep their connections.
    pub fn apply(&self, settings: PoolSettings) {
        self.clients.resize(settings.max_client_conn);
        self.pools.apply(settings);
    }
}

impl PoolSettings {
    /// A listener's pool settings from its config.
    #[must_use]
    pub fn from_config(c: &crate::config::ListenerConfig) -> Self {
        let size = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Self {
            size: size(c.pool_size),
            min_size: size(c.min_pool_size),
            reserve_size: size(c.reserve_pool_size),
            reserve_timeout: c.reserve_pool_timeout.0,
            idle_timeout: c.server_idle_timeout.0,
            lifetime: c.server_lifetime.0,
            wait_timeout: c.query_wait_timeout.0,
            connect_timeout: c.server_connect_timeout.0,
            db_size: size(c.max_db_connections),
            max_client_conn: size(c.max_client_conn),
            reset_query: c.server_reset_query.clone(),
            idle_transaction_timeout: (!c.idle_transaction_timeout.0.is_zero())
                .then_some(c.idle_transaction_timeout.0),
            max_prepared_statements: size(c.max_prepared_statements),
        }
    }
}

/// Which pool: a member, a database, a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub member: String,
    pub database: Arc<str>,
    pub user: Arc<str>,
}

/// The pools of one listener.
pub struct Pools {
    /// Shared with every pool of the listener; a reload stores once.
    pub settings: Arc<ArcSwap<PoolSettings>>,
    map: Mutex<HashMap<PoolKey, Arc<ServerPool>>>,
    /// `max_db_connections` budgets by (member, database); kept for the listener's life so
    /// a replaced pool's busy connections still count against the same budget.
    dbs: Mutex<HashMap<(String, String), Arc<DbSlots>>>,
}

impl Pools {
    #[must_use]
    pub fn new(settings: PoolSettings) -> Self {
        Self {
            settings: Arc::new(ArcSwap::from_pointee(settings)),
            map: Mutex::default(),
            dbs: Mutex::default(),
        }
    }

    /// The budget of (member, database), if `max_db_connections` is set.
    fn db_slots(&self, member: &str, database: &str) -> Option<Arc<DbSlots>> {
        let db_size = self.settings.load().db_size;
        if db_size == 0 {
            return None;
        }
        let mut dbs = self.dbs.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (member.to_owned(), database.to_owned());
        Some(
            dbs.entry(key)
                .or_insert_with(|| DbSlots::new(db_size))
                .clone(),
        )
    }

    fn map(&self) -> MutexGuard<'_, HashMap<PoolKey, Arc<ServerPool>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pool for `addr`/`login`, made on first use. A draining pool is replaced.
    pub fn get(&self, addr: &BackendAddr, login: &Login) -> Arc<ServerPool> {
        let key = PoolKey {
            member: addr.member.clone(),
            database: login.database.clone(),
            user: login.user.clone(),
        };
        let mut map = self.map();
        if let Some(p) = map.get(&key) {
            if !p.is_draining() && p.addr == *addr {
                return p.clone();
            }
            p.drain();
        }
        let db = self.db_slots(&addr.member, &login.database);
        let pool = ServerPool::new(addr.clone(), login.clone(), self.settings.clone(), db);
        map.insert(key, pool.clone());
        pool
    }

    /// Stores new settings and resizes every existing pool to them.
    pub fn apply(&self, settings: PoolSettings) {
        self.settings.store(Arc::new(settings));
        let s = self.settings.load();
        for (_, pool) in self.all() {
            pool.resize(&s);
        }
    }

    /// Closes every server connection: idle ones now, busy ones when released (RECONNECT
    /// for the pools `matches` selects by database).
    pub fn reconnect(&self, matches: impl Fn(&PoolKey) -> bool) -> usize {
        let mut n = 0;
        for (k, p) in self.all() {
            if matches(&k) {
                p.reconnect();
                n += 1;
            }
        }
        n
    }

    /// Drains and forgets the pools of members for which `keep` is false.
    pub fn drain_unless(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|k, p| {
            let stay = keep(&k.member);
            if !stay {
                p.drain();
            }
            stay
        });
        before - map.len()
    }

    /// Every pool, for stats.
    #[must_use]
    pub fn all(&self) -> Vec<(PoolKey, Arc<ServerPool>)> {
        self.map()
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect()
    }

    /// Enforces idle timeout and lifetime, and opens connections up to `min_pool_size`.
    /// Runs until the process ends.
    pub async fn maintain(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            for (_, pool) in self.all() {
                for _ in 0..pool.maintain() {
                    if let Err(e) = pool.prefill_one().await {
                        tracing::debug!(member = %pool.addr.member, error = %e, "min_pool_size: cannot open");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
