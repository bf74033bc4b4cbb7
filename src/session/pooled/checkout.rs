//! Lending a pooled client a server: at once when its sticky pool has an idle one (no
//! future at all), else by waiting and balancing ([`Client::checkout`], boxed by callers).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::params::ClientParams;
use super::{apply, Active, Client, Held};
use crate::config::PoolMode;
use crate::pool::{Checkout, PoolError, ServerConn, ServerPool};
use crate::protocol::PgError;
use crate::route::{Listener, SessionGuard};
use crate::session::clients::ClientState;
use crate::session::connect::{with_member, Attempt};
use crate::session::Stop;
use crate::topology::{Service, Topology};

/// The pool a client keeps using while its listener's role set is one member and the
/// topology has not changed.
pub struct Sticky {
    generation: u64,
    pool: Arc<ServerPool>,
    /// The session's registration on the pool's member (for fencing) from its last
    /// transaction there, kept so the next one need not register again. Only ever one made
    /// for a checkout from `pool`: a new sticky pool starts without one.
    parked: Option<SessionGuard>,
}

impl Sticky {
    /// The listener's seeded pool for a new client of `database` and `user`, if any.
    pub fn seeded(
        setup: &crate::pool::PoolSetup,
        database: &Arc<str>,
        user: &Arc<str>,
    ) -> Option<Self> {
        let (generation, pool) = setup.seed.get(database, user)?;
        Some(Self {
            generation,
            pool,
            parked: None,
        })
    }

    /// Keeps `guard`, the registration of a transaction that ran on `pool`, if that is
    /// the sticky pool (else it is dropped: unregistered).
    pub fn park(&mut self, pool: &Arc<ServerPool>, guard: SessionGuard) {
        if Arc::ptr_eq(&self.pool, pool) {
            self.parked = Some(guard);
        }
    }
}

impl Client<'_> {
    /// A server for the client, made the client's (`lent`, and its `SET`s run): at once
    /// from the sticky pool when it can (`checkout_now`), else the long way, boxed (a
    /// large state, needed rarely). Used at login; a transaction uses the same steps
    /// itself, to drop its buffers while it waits.
    pub async fn server(&mut self) -> Result<Held, PgError> {
        let held = match self.checkout_now() {
            Some(held) => held,
            None => Box::pin(self.checkout()).await?,
        };
        self.ready(held).await
    }

    /// Makes a checked-out server the client's ([`lent`](Self::lent)) and runs the `SET`s
    /// it needs.
    pub(super) async fn ready(&mut self, mut held: Held) -> Result<Held, PgError> {
        if let Some(sql) = self.lent(&mut held) {
            Box::pin(prepare(&mut held, sql)).await?;
        }
        Ok(held)
    }

    /// A server now, without waiting, when nothing stands in the way: not paused or
    /// stopping, the sticky pool still current and holding an idle server that is fit
    /// for the listener. `None` = take the long way ([`checkout`](Self::checkout)).
    /// The server still needs [`lent`](Self::lent).
    pub(super) fn checkout_now(&mut self) -> Option<Held> {
        let sticky = self.sticky_at_hand()?;
        let generation = sticky.generation;
        // One clock reading for the whole checkout: idle check, SHOW times, the
        // transaction's start.
        let now = Instant::now();
        let checkout = sticky.pool.try_checkout(now)?;
        let parked = self.sticky.as_mut().and_then(|s| s.parked.take());
        match claim(self, checkout, now, parked, Still::Unchanged(generation)) {
            Attempt::Done(held) => {
                self.listener.stats.wait_time.record_zero();
                Some(held)
            }
            // Whatever stood in the way, the long way sorts it out.
            Attempt::Left | Attempt::Failed(_) | Attempt::Fatal(_) => None,
        }
    }

    /// Runs `f` on an idle server of the sticky pool without checking it out, when
    /// nothing stands in the way (as for [`checkout_now`](Self::checkout_now)); `None` =
    /// none at hand. A transaction-mode login greets the client from it.
    pub(super) fn with_idle_server<R>(
        &mut self,
        f: impl FnOnce(&mut ClientParams, &mut ServerConn) -> R,
    ) -> Option<R> {
        let pool = self.sticky_at_hand()?.pool.clone();
        let listener = self.listener;
        let params = &mut self.params;
        pool.with_idle(Instant::now(), |conn| {
            (!standby_for_primary(listener, conn)).then(|| f(params, conn))
        })?
    }

    /// The sticky pool, when nothing stands in the way of using it without waiting: not
    /// paused or stopping, and no topology published since it was chosen.
    fn sticky_at_hand(&self) -> Option<&Sticky> {
        let shared = self.shared;
        if shared.gate.may_be_paused() || shared.gate.stop_state() != Stop::Running {
            return None;
        }
        self.sticky
            .as_ref()
            .filter(|s| s.generation == shared.topology.published())
    }

    /// Waits for a server on a member of the listener's role set (PAUSE, pool limits,
    /// member choice). The server still needs [`lent`](Self::lent).
    pub(super) async fn checkout(&mut self) -> Result<Held, PgError> {
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
        // When the wait for a server starts (query_wait_timeout counts from it): after
        // PAUSE, which clients wait out however long it lasts.
        let mut start = waited;
        if shared.gate.may_be_paused() {
            wait(&mut waiting);
            // Boxed: needed only under PAUSE, and its state would otherwise be part of
            // every checkout's.
            Box::pin(shared.gate.wait_open(&listener.name, &self.login.database)).await;
            start = Instant::now();
        }
        if shared.gate.stop_state() != Stop::Running {
            return Err(crate::session::shutting_down());
        }
        let held = {
            let find = async {
                // The sticky pool needs only the generation (an atomic load, as for
                // `checkout_now`); the topology is loaded when members are to be chosen.
                let generation = self.shared.topology.published();
                if let Some(held) = self.sticky_checkout(generation, start).await {
                    return held;
                }
                let topology = self.shared.topology.load();
                Box::pin(self.balanced_checkout(&topology)).await
            };
            let mut find = std::pin::pin!(find);
            // Counted as waiting from its first Pending on (the result is not kept aside:
            // that would be part of every checkout's state).
            std::future::poll_fn(|cx| {
                let p = find.as_mut().poll(cx);
                if p.is_pending() {
                    wait(&mut waiting);
                }
                p
            })
            .await
        };
        drop(waiting);
        // Waits that ended in an error (a timeout) count too.
        stats.wait_time.record(match &held {
            Ok(h) => h.checkout.since.saturating_duration_since(waited),
            Err(_) => waited.elapsed(),
        });
        let mut held = held.inspect_err(|e| stats.errors.record(e.code.as_bytes()))?;
        held.active.since = held.checkout.since;
        Ok(held)
    }

    /// Makes a server just checked out the client's: shown in SHOW CLIENTS and the target
    /// of its cancel requests. Returns the `SET`s that give the server the client's
    /// parameters, if it needs any (`prepare`).
    pub(super) fn lent(&mut self, held: &mut Held) -> Option<String> {
        let since = held.checkout.since;
        let (pool, conn) = held.checkout.pool_and_conn();
        if self.spans && self.logged_member.as_deref() != Some(conn.addr.member.as_str()) {
            let span = tracing::Span::current();
            if !span.is_disabled() {
                span.record("member", conn.addr.member.as_str());
                self.logged_member = Some(Arc::from(conn.addr.member.as_str()));
            }
        }
        self.info
            .lend_at(pool, conn.key.pid, conn.created_wall, since);
        self.target.lend(&conn.cancel_to);
        // The login values, not the current ones: a client before may have changed them.
        self.params
            .adopt_defaults(&conn.defaults, &mut conn.memo.adopted);
        self.params.sync_sql(&conn.params, &conn.tracked)
    }

    /// The pool of the last checkout, while the topology it was chosen under stands and
    /// it was the only choice: skips member selection and the pool lookup. `None` = go
    /// the balanced way. The pool's wait counts from `start`.
    async fn sticky_checkout(
        &mut self,
        generation: u64,
        start: Instant,
    ) -> Option<Result<Held, PgError>> {
        let mut pool = self
            .sticky
            .take()
            .filter(|s| s.generation == generation && !s.pool.is_draining())?;
        let parked = pool.parked.take();
        let still = Still::Unchanged(generation);
        match attempt(self, pool.pool.clone(), start, parked, still).await {
            Attempt::Done(held) => {
                self.sticky = Some(pool);
                Some(Ok(held))
            }
            Attempt::Fatal(e) => Some(Err(e)),
            Attempt::Left | Attempt::Failed(_) => None,
        }
    }

    /// Chooses a member (balanced, waiting for one if needed) and checks out from its pool.
    async fn balanced_checkout(&mut self, topology: &Topology) -> Result<Held, PgError> {
        let this = &*self;
        let held = with_member(this.shared, this.listener, |addr| {
            let pool = this.setup.pools.get(&addr, &this.login);
            // The pool's wait starts now: waiting for a member (a leader on the move)
            // does not count against query_wait_timeout.
            attempt(this, pool, Instant::now(), None, Still::Serves)
        })
        .await?;
        let listener = self.listener;
        let pool = held.checkout.pool();
        if let [m] = listener.candidates(topology).as_slice() {
            if m.name() == pool.addr.member {
                self.setup.seed.set(topology.generation, pool);
                self.sticky = Some(Sticky {
                    generation: topology.generation,
                    pool: pool.clone(),
                    parked: None,
                });
            }
        }
        Ok(held)
    }
}

/// Checks out from `pool`, refusing a server that reports hot standby on a primary
/// listener, registers the session on the member for fencing (or reuses `parked`) and
/// checks, as `still` says, that the member still serves the listener. The pool's wait
/// (query_wait_timeout) counts from `start`.
async fn attempt(
    c: &Client<'_>,
    pool: Arc<ServerPool>,
    start: Instant,
    parked: Option<SessionGuard>,
    still: Still,
) -> Attempt<Held> {
    let user = &pool.login.user;
    let checkout = match pool.checkout_since(start).await {
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
    claim(c, checkout, start, parked, still)
}

/// How [`claim`] checks, after registering, that the member still serves the listener.
#[derive(Clone, Copy)]
enum Still {
    /// Load the topology and ask the listener.
    Serves,
    /// The sticky pool's member was the listener's only choice in this generation: it
    /// still is if no topology was published since (an atomic load, no topology load);
    /// if one was, ask the listener as for `Serves`. A reload that excludes it drains its
    /// pool, which the checkout sees.
    Unchanged(u64),
}

/// Makes a checked-out server the client's, on both paths: refuses a server that reports
/// hot standby on a primary listener, registers the session on the member for fencing
/// (or reuses `parked`), then checks the member still serves the listener.
fn claim(
    c: &Client<'_>,
    mut checkout: Checkout,
    since: Instant,
    parked: Option<SessionGuard>,
    still: Still,
) -> Attempt<Held> {
    let listener = c.listener;
    if standby_for_primary(listener, checkout.conn()) {
        // Dropped, not returned.
        return Attempt::Failed("the server is in hot standby (read-only)".into());
    }
    let pool = checkout.pool();
    let member = &pool.addr.member;
    // Register before the final check, which looks at the topology afresh: a publish after
    // the registration fences us, one before it is seen by the check. A parked
    // registration was made before an earlier check and is still live: the same.
    let guard = match parked.filter(|g| !g.is_fenced()) {
        Some(guard) => guard,
        None => listener.sessions.register(member),
    };
    let serves = match still {
        Still::Unchanged(generation) if c.shared.topology.published() == generation => true,
        // Something was published since: ask the listener (the member may well still serve).
        Still::Serves | Still::Unchanged(_) => listener.serves(&c.shared.topology.load(), member),
    };
    if !serves {
        return Attempt::Left; // dropped: the member left the role, its pool is drained
    }
    let per_transaction = c.setup.mode == PoolMode::Transaction;
    Attempt::Done(Held {
        checkout,
        guard,
        active: Active::new(&listener.stats, since, per_transaction),
    })
}

/// Whether `conn` is refused for `listener`: a primary that reports hot standby is not one.
fn standby_for_primary(listener: &Listener, conn: &ServerConn) -> bool {
    listener.service == Service::Primary && conn.hot_standby
}

/// Runs the `SET`s [`Client::lent`] asked for on the lent server.
pub(super) async fn prepare(held: &mut Held, sql: String) -> Result<(), PgError> {
    apply(held.checkout.conn(), &sql).await.map_err(|e| {
        PgError::fatal(
            "08006",
            format!("rolegate: could not prepare a server connection: {e}"),
        )
    })
}
