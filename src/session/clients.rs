//! Every client connection past its startup packet, across listeners: who it is, what it
//! is doing (idle, waiting for a server, active on one), and a kill switch. The admin
//! console lists it (SHOW CLIENTS, SHOW SERVERS), KILL and shutdown end sessions through
//! it. A session updates only its own entry, so the registry lock is taken twice per
//! connection (join, leave), never per transaction.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use futures_util::task::AtomicWaker;

use crate::pool::ServerPool;
use crate::route::cancel::BackendAddr;

/// What a client is doing now (PgBouncer's client states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Authenticating.
    Login,
    /// Between transactions, holding no server.
    Idle,
    /// Waiting for a server connection (or for RESUME).
    Waiting,
    /// Using a server connection.
    Active,
}

impl ClientState {
    /// The name SHOW CLIENTS prints.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Idle => "idle",
            Self::Waiting => "waiting",
            Self::Active => "active",
        }
    }
}

/// Where a client's server connection is: its pool's (shared) address, or the member a
/// passthrough session connected to. An `Arc` either way: noting the server a
/// transaction uses costs no allocation.
#[derive(Clone)]
pub enum ServerAt {
    Pool(Arc<ServerPool>),
    Direct(Arc<BackendAddr>),
}

impl ServerAt {
    #[must_use]
    pub fn addr(&self) -> &BackendAddr {
        match self {
            Self::Pool(p) => &p.addr,
            Self::Direct(a) => a,
        }
    }
}

impl std::fmt::Debug for ServerAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.addr();
        write!(f, "{}@{}:{}", a.member, a.host, a.port)
    }
}

/// The server connection a client is using.
#[derive(Debug, Clone)]
pub struct ServerLink {
    pub at: ServerAt,
    /// The server's backend pid (from BackendKeyData; 0 if unknown).
    pub pid: i32,
    /// When the server connection was opened.
    pub connected: SystemTime,
    /// When this client got it (an `Instant`: taken from a clock reading the checkout
    /// already made; [`wall`] turns it into a time of day for display).
    pub since: Instant,
}

/// What changes during a session.
#[derive(Debug, Clone)]
struct Now {
    state: ClientState,
    /// When `state` was entered.
    since: Instant,
    /// The server in use; while Idle, the last one used (kept for the next transaction,
    /// not shown).
    server: Option<ServerLink>,
    /// Transactions (pooled) the client ran.
    transactions: u64,
}

impl Now {
    fn enter(&mut self, state: ClientState, at: Instant) {
        if self.state != state {
            self.since = at;
            if state == ClientState::Active {
                self.transactions += 1;
            }
        }
        self.state = state;
    }
}

/// One client.
pub struct ClientInfo {
    pub id: u64,
    pub listener: Arc<str>,
    /// Interned: one copy per distinct name, shared with the pooled session's login.
    pub user: Arc<str>,
    pub database: Arc<str>,
    pub peer: SocketAddr,
    pub connected: SystemTime,
    /// Whether the listener pools (else the session is passed through to one member).
    pub pooled: bool,
    now: Mutex<Now>,
    /// Set when the session must end (`reason` says why); `kill_waker` wakes the session.
    /// A flag and one waker rather than a cancellation token: nothing allocated per client
    /// and nothing the session must keep pinned between its waits.
    kill_flag: AtomicBool,
    kill_waker: AtomicWaker,
    reason: Mutex<Option<String>>,
}

/// A read-only copy of a client, for listing.
#[derive(Debug, Clone)]
pub struct ClientRow {
    pub id: u64,
    pub listener: Arc<str>,
    pub user: Arc<str>,
    pub database: Arc<str>,
    pub peer: SocketAddr,
    pub connected: SystemTime,
    pub pooled: bool,
    pub state: ClientState,
    pub since: SystemTime,
    pub server: Option<ServerLink>,
}

impl ClientInfo {
    fn lock(&self) -> MutexGuard<'_, Now> {
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enters `state`; `server` is the connection in use (Active) or `None`.
    pub fn set(&self, state: ClientState, server: Option<ServerLink>) {
        let at = Instant::now(); // read before the lock is taken
        let mut now = self.lock();
        now.enter(state, at);
        now.server = server;
    }

    /// A pooled client got server `pid` (opened at `connected`) of `pool` at `at`: Active
    /// on it. The link of its last transaction is updated in place when it was to the same
    /// pool (the usual case: no reference to the pool taken and dropped per transaction).
    pub fn lend_at(&self, pool: &Arc<ServerPool>, pid: i32, connected: SystemTime, at: Instant) {
        let mut now = self.lock();
        now.enter(ClientState::Active, at);
        match &mut now.server {
            Some(link) if matches!(&link.at, ServerAt::Pool(p) if Arc::ptr_eq(p, pool)) => {
                link.pid = pid;
                link.connected = connected;
                link.since = at;
            }
            server => {
                *server = Some(ServerLink {
                    at: ServerAt::Pool(pool.clone()),
                    pid,
                    connected,
                    since: at,
                });
            }
        }
    }

    /// A pooled client gave its server back at `at`: Idle. Its link is kept for the next
    /// [`lend_at`](Self::lend_at) and shown nowhere while it is idle.
    pub fn idle_at(&self, at: Instant) {
        self.lock().enter(ClientState::Idle, at);
    }

    /// Transactions (pooled) the client ran.
    #[must_use]
    pub fn transactions(&self) -> u64 {
        self.lock().transactions
    }

    #[must_use]
    pub fn state(&self) -> ClientState {
        self.lock().state
    }

    /// Asks the session to end, telling the client `reason` (SQLSTATE 57P01).
    pub fn kill(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if r.is_none() {
            *r = Some(reason.to_owned());
        }
        drop(r);
        self.kill_flag.store(true, Ordering::SeqCst);
        self.kill_waker.wake();
    }

    /// Ready once `kill` was called. Only the session's own task waits for this (the
    /// waker slot holds one waker).
    pub fn poll_killed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.kill_flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        self.kill_waker.register(cx.waker());
        // A kill between the check and the registration woke nobody: look again.
        if self.kill_flag.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Resolves once `kill` was called (see [`Self::poll_killed`]).
    pub fn kill_signal(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_killed(cx))
    }

    /// Why `kill` was called, for the client's message.
    #[must_use]
    pub fn kill_message(&self) -> String {
        self.kill_reason()
            .unwrap_or_else(|| "rolegate ended the session".into())
    }

    /// Resolves once `kill` was called, with its message.
    pub async fn killed(&self) -> String {
        self.kill_signal().await;
        self.kill_message()
    }

    /// Why the session was killed, if it was.
    #[must_use]
    pub fn kill_reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    #[must_use]
    pub fn row(&self) -> ClientRow {
        let now = self.lock().clone();
        ClientRow {
            id: self.id,
            listener: self.listener.clone(),
            user: self.user.clone(),
            database: self.database.clone(),
            peer: self.peer,
            connected: self.connected,
            pooled: self.pooled,
            state: now.state,
            since: wall(now.since),
            server: (now.state != ClientState::Idle)
                .then_some(now.server)
                .flatten(),
        }
    }
}

/// The time of day `at` was: internal times are `Instant`s (one clock reading serves
/// several records); views show times of day.
#[must_use]
pub fn wall(at: Instant) -> SystemTime {
    SystemTime::now()
        .checked_sub(at.elapsed())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

mod registry;
pub use registry::{ClientGuard, ClientRegistry, NewClient};

#[cfg(test)]
mod tests;
