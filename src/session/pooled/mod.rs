//! A client of a pooling listener: rolegate authenticates it, greets it with a server's
//! parameters and its own cancel key, then lends it a server connection per transaction
//! (or for the whole session) through [`relay`].

pub mod backend;
mod bufs;
mod ending;
pub mod expect;
pub mod frontend;
mod login;
pub mod params;
pub mod relay;
pub mod replay;
mod sock;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::clients::{ClientInfo, ClientState, ServerAt, ServerLink};
use super::connect::{with_member, Attempt};
use super::Shared;
use crate::config::PoolMode;
use crate::pool::{Checkout, Login, PoolError, PoolSetup, ServerPool};
use crate::protocol::io::{message, parse_parameter_status, read_message};
use crate::protocol::{PgError, ProtocolError};
use crate::route::cancel::PooledTarget;
use crate::route::{Listener, SessionGuard};
use crate::stats::ListenerStats;
use crate::topology::{Service, Topology};
use params::ClientParams;

/// A server connection lent to this client, registered so fencing can reach it.
pub struct Held {
    pub checkout: Checkout,
    /// Keeps the session registered on the member (for fencing) while the server is lent;
    /// [`SessionGuard::fenced`] says when a fence kills it.
    pub guard: SessionGuard,
    /// Counts the client as active while it holds the server.
    pub active: Active,
}

/// One unit of `clients_active`; on drop, also the transaction's duration (transaction mode).
pub struct Active {
    stats: Arc<ListenerStats>,
    since: Instant,
    per_transaction: bool,
}

impl Active {
    /// `since` is when the server was lent (the caller has a clock reading at hand).
    fn new(stats: &Arc<ListenerStats>, since: Instant, per_transaction: bool) -> Self {
        stats.clients_active.inc();
        Self {
            stats: stats.clone(),
            since,
            per_transaction,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.stats.clients_active.dec();
        if self.per_transaction {
            self.stats.transaction_time.record(self.since.elapsed());
        }
    }
}

/// Everything a pooled session needs about itself.
pub struct Client<'a> {
    pub shared: &'a Shared,
    pub listener: &'a Arc<Listener>,
    pub setup: &'a PoolSetup,
    pub login: Login,
    pub params: ClientParams,
    pub target: Arc<PooledTarget>,
    /// Where the last transaction ran, reused while it is the only choice.
    pub sticky: Option<Sticky>,
    /// The fencing registration of the last transaction, kept while `sticky` stands so
    /// the next transaction on the same pool need not register again.
    pub parked: Option<Parked>,
    /// The member last recorded in the session's span: recorded again only when it changes
    /// (a span's recorded fields accumulate in the log formatter).
    pub logged_member: Option<Arc<str>>,
    /// This client's entry in the client registry (state, kill switch).
    pub info: &'a ClientInfo,
    /// The client's place under `max_client_conn` and its cancel key, for the session's life.
    _slot: crate::pool::capacity::Permit,
    _cancel: crate::route::cancel::CancelGuard,
}

/// Serves a client of a pooling listener after its startup packet (a plain fn returning
/// an `async move` block: see [`crate::session::run`]).
#[allow(clippy::manual_async_fn)] // an async fn keeps its arguments twice in its state
pub fn run<'a>(
    shared: &'a Shared,
    listener: &'a Arc<Listener>,
    setup: &'a PoolSetup,
    stream: TcpStream,
    startup: BTreeMap<String, String>,
    info: &'a ClientInfo,
) -> impl std::future::Future<Output = Result<(), ProtocolError>> + use<'a> {
    // Boxed, and made here rather than in the block below: the login's state and the
    // startup packet are freed once it is done, and the block keeps the socket once, so
    // an idle client keeps only the relay's (small) state.
    let login = Box::pin(async move {
        let mut stream = stream;
        let login = login::login(shared, listener, setup, &mut stream, &startup, info).await;
        (stream, login)
    });
    async move {
        let (mut stream, login) = login.await;
        let Some((mut client, held)) = login? else {
            return Ok(());
        };
        relay::run(&mut client, &mut stream, held).await
    }
}

impl Client<'_> {
    /// Lends the client a server connection on a member of the listener's role set, with
    /// the client's parameters applied.
    pub async fn checkout(&mut self) -> Result<Held, PgError> {
        let (shared, listener, info) = (self.shared, self.listener, self.info);
        let stats = &listener.stats;
        let waited = Instant::now();
        // A client is counted (and shown) as waiting only once it really waits: most
        // checkouts find an idle server at once.
        let mut waiting = None;
        let wait = |waiting: &mut Option<_>| {
            if waiting.is_none() {
                info.set(ClientState::Waiting, None);
                *waiting = Some(stats.clients_waiting.enter());
            }
        };
        if shared.gate.may_be_paused() {
            wait(&mut waiting);
        }
        shared
            .gate
            .wait_open(&listener.name, &self.login.database)
            .await;
        if shared.gate.stop_state() != super::Stop::Running {
            return Err(super::shutting_down());
        }
        let topology = self.shared.topology.load();
        let held = {
            let find = async {
                match self.sticky_checkout(topology.generation, waited).await {
                    Some(held) => held,
                    None => Box::pin(self.balanced_checkout(&topology, waited)).await,
                }
            };
            let mut find = std::pin::pin!(find);
            let now = std::future::poll_fn(|cx| Poll::Ready(find.as_mut().poll(cx))).await;
            match now {
                Poll::Ready(held) => held,
                Poll::Pending => {
                    wait(&mut waiting);
                    find.await
                }
            }
        };
        drop(waiting);
        let lent = Instant::now();
        stats.wait_time.record(lent - waited);
        let mut held = held.inspect_err(|e| stats.errors.record(e.code.as_bytes()))?;
        held.active.since = lent;
        let since = held.checkout.since;
        let pool = held.checkout.pool().clone();
        let conn = held.checkout.conn();
        if self.logged_member.as_deref() != Some(conn.addr.member.as_str()) {
            let span = tracing::Span::current();
            if !span.is_disabled() {
                span.record("member", conn.addr.member.as_str());
                self.logged_member = Some(Arc::from(conn.addr.member.as_str()));
            }
        }
        self.info.set(
            ClientState::Active,
            Some(ServerLink {
                at: ServerAt::Pool(pool),
                pid: conn.key.pid,
                connected: conn.created_wall,
                since,
            }),
        );
        self.target.set(Some(conn.cancel_to.clone()));
        // The login values, not the current ones: a client before may have changed them.
        self.params.adopt_defaults(&conn.defaults);
        if let Some(sql) = self.params.sync_sql(&conn.params, &conn.tracked) {
            Box::pin(apply(conn, &sql)).await.map_err(|e| {
                PgError::fatal(
                    "08006",
                    format!("rolegate: could not prepare a server connection: {e}"),
                )
            })?;
        }
        Ok(held)
    }

    /// The pool of the last checkout, while the topology it was chosen under stands and
    /// it was the only choice: skips member selection and the pool lookup. `None` = go
    /// the balanced way.
    async fn sticky_checkout(
        &mut self,
        generation: u64,
        since: Instant,
    ) -> Option<Result<Held, PgError>> {
        let pool = self
            .sticky
            .take()
            .filter(|s| s.generation == generation && !s.pool.is_draining())?;
        let parked = self.parked.take();
        match attempt(self, pool.pool.clone(), since, parked).await {
            Attempt::Done(held) => {
                self.sticky = Some(pool);
                Some(Ok(held))
            }
            Attempt::Fatal(e) => Some(Err(e)),
            Attempt::Left | Attempt::Failed(_) => None,
        }
    }

    /// Chooses a member (balanced, waiting for one if needed) and checks out from its pool.
    async fn balanced_checkout(
        &mut self,
        topology: &Topology,
        since: Instant,
    ) -> Result<Held, PgError> {
        self.parked = None;
        let this = &*self;
        let held = with_member(this.shared, this.listener, |addr| {
            attempt(this, this.setup.pools.get(&addr, &this.login), since, None)
        })
        .await?;
        let listener = self.listener;
        let pool = held.checkout.pool();
        if let [m] = listener.candidates(topology).as_slice() {
            if m.name() == pool.addr.member {
                self.sticky = Some(Sticky {
                    generation: topology.generation,
                    pool: pool.clone(),
                });
            }
        }
        Ok(held)
    }
}

/// The pool a client keeps using while its listener's role set is one member and the
/// topology has not changed.
pub struct Sticky {
    generation: u64,
    pool: Arc<ServerPool>,
}

/// A session's registration on a member (for fencing), kept between transactions.
pub struct Parked {
    pool: Arc<ServerPool>,
    guard: SessionGuard,
}

impl Parked {
    /// The registration, if it is for `pool` and no fence has fired it meanwhile.
    fn reuse(self, pool: &Arc<ServerPool>) -> Option<SessionGuard> {
        (!self.guard.is_fenced() && Arc::ptr_eq(&self.pool, pool)).then_some(self.guard)
    }
}

/// Checks out from `pool`, refusing a server that reports hot standby on a primary
/// listener, and registers the session on the member for fencing (or reuses `parked`).
async fn attempt(
    c: &Client<'_>,
    pool: Arc<ServerPool>,
    since: Instant,
    parked: Option<Parked>,
) -> Attempt<Held> {
    let (shared, listener) = (c.shared, c.listener);
    let user = &pool.login.user;
    let mut checkout = match pool.checkout().await {
        Ok(c) => c,
        Err(PoolError::Server(e)) if e.is_transient() => return Attempt::Failed(e.to_string()),
        Err(PoolError::Draining) => return Attempt::Left,
        Err(PoolError::Server(e)) => return Attempt::Fatal(e.to_client_error(user)),
        Err(e @ PoolError::WaitTimeout(..)) => {
            return Attempt::Fatal(PgError::fatal("53300", format!("rolegate: {e}")).with_hint(
                "Raise pool_size or query_wait_timeout, or look for long transactions.",
            ))
        }
    };
    if listener.service == Service::Primary && checkout.conn().hot_standby {
        // Dropped, not returned: a primary that reports hot standby is not one.
        return Attempt::Failed("the server is in hot standby (read-only)".into());
    }
    let member = &pool.addr.member;
    // Register before the final check: a publish after this fences us, one before is seen.
    // A parked registration was made before an earlier check and is still live: the same.
    let guard = match parked.and_then(|p| p.reuse(&pool)) {
        Some(guard) => guard,
        None => listener.sessions.register(member),
    };
    if !listener.serves(&shared.topology.load(), member) {
        return Attempt::Left;
    }
    let per_transaction = c.setup.mode == PoolMode::Transaction;
    Attempt::Done(Held {
        checkout,
        guard,
        active: Active::new(&listener.stats, since, per_transaction),
    })
}

impl Client<'_> {
    /// Gives a clean (ReadyForQuery idle) server back to its pool; keeps the fencing
    /// registration for the next transaction while the pool is sticky.
    pub fn release(&mut self, held: Held) {
        let Held {
            checkout,
            guard,
            active,
        } = held;
        drop(active);
        let pool = checkout.pool();
        if self
            .sticky
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.pool, pool))
        {
            self.parked = Some(Parked {
                pool: pool.clone(),
                guard,
            });
        }
        self.give_back(checkout);
    }

    /// `release` at the end of the session: nothing to keep.
    pub fn release_last(&self, held: Held) {
        self.give_back(held.checkout);
    }

    fn give_back(&self, checkout: Checkout) {
        self.target.set(None);
        self.info.set(ClientState::Idle, None);
        checkout.release();
    }
}

/// Runs `sql` on an idle server connection, swallowing the replies; tracks ParameterStatus.
pub async fn apply(conn: &mut crate::pool::ServerConn, sql: &str) -> Result<(), ProtocolError> {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    conn.stream.write_all(&message(b'Q', &q)).await?;
    let mut failed = None;
    loop {
        let (tag, body) = read_message(&mut conn.stream, 1 << 20).await?;
        match tag {
            b'S' => {
                if let Some((k, v)) = parse_parameter_status(&body) {
                    conn.set_param(k, v);
                }
            }
            b'E' => failed = Some(String::from_utf8_lossy(&body).replace('\0', " ")),
            b'Z' => break,
            _ => {}
        }
    }
    match failed {
        Some(e) => Err(ProtocolError::Startup(format!("{sql}: {e}"))),
        None => Ok(()),
    }
}
