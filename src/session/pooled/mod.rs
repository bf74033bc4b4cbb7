//! A client of a pooling listener: rolegate authenticates it, greets it with a server's
//! parameters and its own cancel key, then lends it a server connection per transaction
//! (or for the whole session) through [`relay`].

pub mod backend;
mod bufs;
mod checkout;
mod ending;
pub mod expect;
pub mod frontend;
mod login;
pub mod params;
pub mod relay;
pub mod replay;
/// (Public for the tokio floor relay in benches/floor, which reads and writes as rolegate does.)
pub mod sock;

use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::clients::ClientInfo;
use super::Shared;
use crate::pool::{Checkout, Login, PoolSetup};
use crate::protocol::io::{message, parse_parameter_status, read_message};
use crate::protocol::ProtocolError;
use crate::route::cancel::PooledTarget;
use crate::route::{Listener, SessionGuard};
use crate::stats::ListenerStats;
use checkout::Sticky;
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

    /// Ends the transaction at `now` (a clock reading the caller has at hand).
    fn end_at(mut self, now: Instant) {
        self.record_end(now);
    }

    /// Records the transaction's duration (transaction mode), once.
    fn record_end(&mut self, now: Instant) {
        if self.per_transaction {
            self.per_transaction = false;
            let took = now.saturating_duration_since(self.since);
            self.stats.transaction_time.record(took);
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.stats.clients_active.dec();
        if self.per_transaction {
            self.record_end(Instant::now());
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
    /// Where the last transaction ran, reused while it is the only choice (with its
    /// fencing registration, kept between transactions).
    pub sticky: Option<Sticky>,
    /// The member last recorded in the session's span: recorded again only when it changes
    /// (a span's recorded fields accumulate in the log formatter).
    pub logged_member: Option<Arc<str>>,
    /// Whether the session has a span at all (the log level keeps session spans): without
    /// one there is nothing to record, and no span lookup per transaction.
    pub spans: bool,
    /// This client's entry in the client registry (state, kill switch).
    pub info: &'a ClientInfo,
    /// The client's place under `max_client_conn` and its cancel key, for the session's life.
    _slot: crate::pool::slots::Slot,
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
    startup: crate::protocol::startup::StartupParams,
    info: &'a ClientInfo,
    spans: bool,
) -> impl std::future::Future<Output = Result<(), ProtocolError>> + use<'a> {
    // Boxed, and made here rather than in the block below: the login's state and the
    // startup packet are freed once it is done, and the block keeps the socket once, so
    // an idle client keeps only the relay's (small) state.
    let login = crate::boxed::pin_in_box!(async move {
        let mut stream = stream;
        let login = login::login(shared, listener, setup, &mut stream, &startup, info, spans).await;
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
    /// Gives a clean (ReadyForQuery idle) server back to its pool; keeps the fencing
    /// registration for the next transaction while the pool is sticky.
    pub fn release(&mut self, held: Held) {
        self.release_at(held, Instant::now());
    }

    /// [`release`](Self::release) at `now`, a clock reading the caller has at hand: one
    /// serves the transaction's end, the client's state and the pool.
    pub fn release_at(&mut self, held: Held, now: Instant) {
        let Held {
            checkout,
            guard,
            active,
        } = held;
        active.end_at(now);
        if let Some(sticky) = &mut self.sticky {
            sticky.park(checkout.pool(), guard);
        }
        self.give_back(checkout, now);
    }

    /// `release` at the end of the session: nothing to keep.
    pub fn release_last(&self, held: Held) {
        self.give_back(held.checkout, Instant::now());
    }

    fn give_back(&self, checkout: Checkout, now: Instant) {
        self.target.idle();
        self.info.idle_at(now);
        checkout.release_at(now);
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
