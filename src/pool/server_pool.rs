//! One pool: the server connections of one (member, database, user), bounded by
//! `pool_size` (+ `reserve_pool_size` for clients that waited `reserve_pool_timeout`) and,
//! with the other users' pools of the same database, by `max_db_connections` ([`DbSlots`]).
//!
//! Checked-out connections are counted by permits of a resizable [`Capacity`], idle ones sit
//! in a LIFO list, so `checked out + idle <= size` holds without a counter that could drift.
//! The idle list is the capacity's stock: a checkout takes a permit and an idle connection
//! under one lock, and a release gives both back under one.
//! Settings are the listener's, shared through one `ArcSwap` so a reload reaches every pool.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::capacity::Capacity;
use super::db_limit::{DbSlot, DbSlots};
use super::server::{Login, ServerConn, ServerError};
use crate::route::cancel::BackendAddr;

mod live;
mod upkeep;
mod wait;

use wait::Waits;

/// Limits and timeouts of a pool (a listener's pool settings).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub size: usize,
    pub min_size: usize,
    pub reserve_size: usize,
    pub reserve_timeout: Duration,
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    pub wait_timeout: Duration,
    pub connect_timeout: Duration,
    /// `max_db_connections`: open connections per (member, database) over all users; 0 = no limit.
    pub db_size: usize,
    /// Clients of the listener (`max_client_conn`).
    pub max_client_conn: usize,
    /// Run before a session-mode server goes back to the pool; empty = none.
    pub reset_query: String,
    /// Disconnect a client idle inside a transaction this long.
    pub idle_transaction_timeout: Option<Duration>,
    /// Track named prepared statements per client and prepare them on each server,
    /// keeping at most this many per server (transaction mode; 0 = pass names through).
    pub max_prepared_statements: usize,
}

/// The limit a client waited on, named as in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    PoolSize(usize),
    MaxDbConnections(usize),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PoolSize(n) => write!(f, "pool_size {n}"),
            Self::MaxDbConnections(n) => write!(f, "max_db_connections {n}"),
        }
    }
}

/// Why no server connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no server connection became free within {0:?} ({1})")]
    WaitTimeout(Duration, Limit),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("the pool is closing: its member left the listener's role")]
    Draining,
}

/// The pool of one (member, database, user).
pub struct ServerPool {
    pub addr: BackendAddr,
    pub login: Login,
    /// The listener's settings (one swap for all its pools).
    pub settings: Arc<ArcSwap<PoolSettings>>,
    /// `pool_size`; its stock is the idle list, most recently used last (boxed: a checkout
    /// moves a pointer, and a session's state stays small).
    permits: Arc<Capacity<Box<ServerConn>>>,
    /// `reserve_pool_size` (no stock: its connections go idle into `permits`' list).
    reserve: Arc<Capacity<Box<ServerConn>>>,
    /// The (member, database) budget shared with other users' pools; `None` = no limit.
    db: Option<Arc<DbSlots>>,
    draining: AtomicBool,
    /// `server_lifetime` in nanoseconds, kept here by [`resize`](Self::resize): checked on
    /// every checkout and release, where loading the settings would cost more.
    lifetime_ns: AtomicU64,
    /// Bumped by RECONNECT: connections of an older generation are closed when released.
    generation: AtomicU64,
    /// Connections opened and closed since the pool was made, for stats.
    pub opened: AtomicU64,
    pub closed: AtomicU64,
    /// Clients waiting for a connection of this pool now.
    pub waiting: crate::stats::Gauge,
}

/// What a checkout uses: an idle connection, or room (a slot, if limited) to open one.
// Lives for one checkout and is moved once; boxing the connection would allocate per checkout.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// An idle connection, taken at the clock reading given.
    Idle(Box<ServerConn>, Instant),
    Room(Option<DbSlot>),
}

/// A checked-out server connection. `release` returns it; dropping it closes it (a
/// connection whose state is unknown is never handed to another client).
pub struct Checkout {
    conn: Option<Box<ServerConn>>,
    pool: Arc<ServerPool>,
    /// Whose permit it holds, counted out unwrapped: the reserve's, or `pool_size`'s.
    reserve: bool,
    /// When it was checked out, for SHOW SERVERS.
    pub since: Instant,
}

impl Checkout {
    /// The connection. Always present until `release` or drop.
    #[must_use]
    pub fn conn(&mut self) -> &mut ServerConn {
        // `conn` is only taken by `release` (which consumes self) and `Drop`.
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("checkout without a connection"))
    }

    /// The pool and the connection at once (one borrow for both).
    #[must_use]
    pub fn pool_and_conn(&mut self) -> (&Arc<ServerPool>, &mut ServerConn) {
        let conn = self
            .conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("checkout without a connection"));
        (&self.pool, conn)
    }

    #[must_use]
    pub fn pool(&self) -> &Arc<ServerPool> {
        &self.pool
    }

    /// Returns a clean (ReadyForQuery idle) connection to the pool.
    pub fn release(self) {
        self.release_at(Instant::now());
    }

    /// [`release`](Self::release) at `now`, a clock reading the caller has at hand.
    pub fn release_at(mut self, now: Instant) {
        if let Some(conn) = self.conn.take() {
            self.pool.put_back(conn, now, self.reserve);
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        // The connection is there until `release_at` took it, and with it the permit.
        if let Some(conn) = self.conn.take() {
            self.pool.close(&conn);
            self.pool.give_back(self.reserve, None);
        }
    }
}

impl ServerPool {
    #[must_use]
    pub fn new(
        addr: BackendAddr,
        login: Login,
        settings: Arc<ArcSwap<PoolSettings>>,
        db: Option<Arc<DbSlots>>,
    ) -> Arc<Self> {
        let s = settings.load();
        let (size, reserve) = (s.size, s.reserve_size);
        let lifetime_ns = AtomicU64::new(nanos(s.lifetime));
        drop(s);
        let pool = Arc::new(Self {
            addr,
            login,
            permits: Capacity::new(size),
            reserve: Capacity::new(reserve),
            db,
            settings,
            draining: AtomicBool::new(false),
            lifetime_ns,
            generation: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            waiting: crate::stats::Gauge::default(),
        });
        if let Some(db) = &pool.db {
            db.register(&pool);
        }
        pool
    }

    /// A connection for one transaction (or session): an idle one, or a new one, waiting
    /// up to `wait_timeout` when `pool_size` (or `max_db_connections`) are in use.
    pub async fn checkout(self: &Arc<Self>) -> Result<Checkout, PoolError> {
        self.checkout_since(Instant::now()).await
    }

    /// [`checkout`](Self::checkout) for a client waiting since `start` (its clock reading
    /// serves the deadlines).
    pub async fn checkout_since(self: &Arc<Self>, start: Instant) -> Result<Checkout, PoolError> {
        let s = Waits::of(&self.settings.load());
        let start = tokio::time::Instant::from_std(start);
        let deadline = start + s.wait_timeout;
        let waiting = self.waiting.enter();
        let (permit, reserve) = self.acquire(&s, start).await?;
        let next = self.idle_or_room(&s, deadline).await?;
        drop(waiting);
        // The idle list's clock reading is the checkout's time too.
        let (conn, now) = match next {
            Next::Idle(conn, now) => (conn, now),
            // Boxed: opening a connection is a large state, needed rarely.
            Next::Room(slot) => (
                Box::pin(self.open(s.connect_timeout, slot)).await?,
                Instant::now(),
            ),
        };
        permit.into_counted();
        Ok(self.lend(conn, reserve, now))
    }

    /// An idle connection right now, without waiting or opening one (the common case,
    /// taken without a future); `None` = use [`checkout`](Self::checkout). `now` is the
    /// caller's clock reading (one serves the whole checkout).
    pub fn try_checkout(self: &Arc<Self>, now: Instant) -> Option<Checkout> {
        if self.draining.load(Ordering::Acquire) {
            return None;
        }
        // A permit and the connection in one go.
        let conn = self.permits.try_take(|idle| self.pop_fit(idle, now))?;
        Some(self.lend(conn, false, now))
    }

    /// `conn`, lent at `now` under a permit counted out (the reserve's if `reserve`);
    /// both paths of a checkout end here.
    fn lend(self: &Arc<Self>, conn: Box<ServerConn>, reserve: bool, now: Instant) -> Checkout {
        Checkout {
            conn: Some(conn),
            pool: self.clone(),
            reserve,
            since: now,
        }
    }

    /// Gives back a permit counted out (the reserve's if `reserve`), with `idle` to keep.
    fn give_back(&self, reserve: bool, idle: Option<Box<ServerConn>>) {
        if reserve {
            if let Some(conn) = idle {
                self.permits.with_stock(|_, stock| stock.push(conn));
            }
            self.reserve.put(None);
        } else {
            self.permits.put(idle);
        }
    }

    /// Runs `f` on the idle connection the next checkout at `now` would take, without
    /// taking it (a new client's greeting needs a server's parameters, not the server).
    /// `None`: draining, or no idle connection fit to use.
    pub fn with_idle<R>(&self, now: Instant, f: impl FnOnce(&mut ServerConn) -> R) -> Option<R> {
        if self.is_draining() {
            return None;
        }
        self.permits.with_stock(|_, idle| {
            self.close_unfit_on_top(idle, now);
            idle.last_mut().map(|conn| f(conn))
        })
    }

    /// An idle connection fit to use at `now`, for a checkout that has its permit.
    fn take_idle_at(&self, now: Instant) -> Option<Box<ServerConn>> {
        self.permits.with_stock(|_, idle| self.pop_fit(idle, now))
    }

    /// Takes the next idle connection fit to use at `now` off `idle`.
    #[allow(clippy::vec_box)] // the idle list's own type
    fn pop_fit(&self, idle: &mut Vec<Box<ServerConn>>, now: Instant) -> Option<Box<ServerConn>> {
        self.close_unfit_on_top(idle, now);
        idle.pop()
    }

    /// Closes the idle connections next in line (the most recently used) that the server
    /// closed or that are past their lifetime at `now`, so the next one is fit to use.
    #[allow(clippy::vec_box)] // the idle list's own type
    fn close_unfit_on_top(&self, idle: &mut Vec<Box<ServerConn>>, now: Instant) {
        while let Some(conn) = idle.last_mut() {
            if !(conn.is_closed() || self.expired(conn, now)) {
                return;
            }
            if let Some(conn) = idle.pop() {
                self.close(&conn);
            }
        }
    }

    /// Whether `conn` is past `server_lifetime` at `now`.
    fn expired(&self, conn: &mut ServerConn, now: Instant) -> bool {
        conn.expired(self.lifetime_ns.load(Ordering::Relaxed), now)
    }

    /// Takes back `conn` and its permit (the reserve's if `reserve`): idle again if it
    /// is fit to stay, else closed.
    fn put_back(&self, mut conn: Box<ServerConn>, now: Instant, reserve: bool) {
        if self.draining.load(Ordering::Acquire)
            || self.expired(&mut conn, now)
            || conn.generation != self.generation.load(Ordering::Acquire)
        {
            self.close(&conn);
            self.give_back(reserve, None);
            return;
        }
        conn.idle_since = now;
        self.give_back(reserve, Some(conn));
        if let Some(db) = &self.db {
            db.went_idle();
        }
    }

    /// Closes the least recently used idle connection, freeing its `max_db_connections`
    /// slot for another pool; false if none is idle.
    pub(super) fn close_oldest_idle(&self) -> bool {
        let oldest = self
            .permits
            .with_stock(|_, idle| (!idle.is_empty()).then(|| idle.remove(0)));
        oldest.is_some_and(|conn| {
            self.close(&conn);
            true
        })
    }

    fn close(&self, conn: &ServerConn) {
        conn.terminate();
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops handing out connections: closes the idle ones now, the busy ones on release.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.close_all_idle();
    }

    /// Closes every idle connection (taken off the list under the lock, closed after).
    fn close_all_idle(&self) {
        for conn in self.permits.with_stock(|_, idle| std::mem::take(idle)) {
            self.close(&conn);
        }
    }

    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// `d` in nanoseconds, saturating (a lifetime beyond 584 years is forever).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
