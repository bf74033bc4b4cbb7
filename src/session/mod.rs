//! One client connection: reads the first packet (answering SSL/GSS requests with 'N'),
//! routes CancelRequests to the backend that issued the key, otherwise picks a member
//! ([`connect`]), forwards the startup packet and then the bytes both ways ([`forward`])
//! until either side closes or the member leaves the listener's role set.

pub mod auth_query;
pub mod auth_setup;
pub mod clients;
pub mod connect;
mod first;
pub mod forward;
pub mod gate;
pub mod intern;
pub mod pooled;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use tokio::sync::{mpsc, oneshot};

use futures_util::future::Either;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::Instrument;

pub use auth_setup::{AuthQuery, AuthSetup, AuthSetupError};
pub use clients::{ClientGuard, ClientRegistry, ClientState, NewClient, ServerLink};
pub use gate::{DbSelector, Gate, Stop};

use crate::config::Config;
use crate::protocol::startup::StartupParams;
use crate::protocol::{PgError, ProtocolError};
use crate::route::{CancelMap, Listener};
use crate::topology::TopologyStore;
use first::First;

/// What the admin console asks of the process (`app` owns the answer).
pub enum ControlRequest {
    /// Re-read the config file; the reply says what changed or why it was rejected.
    Reload(oneshot::Sender<Result<String, String>>),
    /// Stop like SIGTERM (`fast`: like SIGINT).
    Shutdown { fast: bool },
}

/// What every session needs, shared by all of them.
pub struct Shared {
    pub topology: Arc<TopologyStore>,
    pub cancels: Arc<CancelMap>,
    /// How pooling listeners and the admin console authenticate clients (`[auth]`);
    /// swapped whole on reload.
    pub auth: ArcSwapOption<AuthSetup>,
    /// Every client past its startup packet (SHOW CLIENTS, KILL, shutdown).
    pub clients: Arc<ClientRegistry>,
    /// PAUSE/RESUME and the stop state.
    pub gate: Arc<Gate>,
    /// The listeners, set once by `app::serve` (SHOW POOLS, RECONNECT...).
    pub listeners: OnceLock<Vec<Arc<Listener>>>,
    /// The config in force (`[admin]` users, SHOW CONFIG); `None` in tests without a file.
    pub config: ArcSwapOption<Config>,
    /// Where console RELOAD/SHUTDOWN go; unset when nothing handles them.
    pub control: OnceLock<mpsc::UnboundedSender<ControlRequest>>,
    /// Process-wide counters (switchover holds, config reloads).
    pub stats: Arc<crate::stats::Stats>,
}

impl Shared {
    #[must_use]
    pub fn new(topology: Arc<TopologyStore>) -> Self {
        Self {
            topology,
            cancels: Arc::default(),
            auth: ArcSwapOption::empty(),
            clients: Arc::default(),
            gate: Arc::default(),
            listeners: OnceLock::new(),
            config: ArcSwapOption::empty(),
            control: OnceLock::new(),
            stats: Arc::default(),
        }
    }

    /// The listeners (empty before `app::serve`).
    #[must_use]
    pub fn listeners(&self) -> &[Arc<Listener>] {
        self.listeners.get().map_or(&[], Vec::as_slice)
    }
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Serves one client connection to completion. Never panics on peer input.
///
/// The session's futures are plain fns returning `async move` blocks where they live as
/// long as the client: an `async fn` keeps its arguments twice in its state. Everything
/// before a pooled client's main phase runs in a boxed future (`admit`) created here,
/// so the task keeps neither the startup's state nor the accepted socket twice.
pub fn run(
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    client: TcpStream,
    peer: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("session", id, listener = %listener.name, %peer, user = tracing::field::Empty, db = tracing::field::Empty, member = tracing::field::Empty);
    listener.stats.clients_accepted.inc();
    // Whether the log level keeps session spans: without one, nothing to record in it.
    let spans = !span.is_disabled();
    let admit = crate::boxed::pin_in_box!(admit(
        shared.clone(),
        listener.clone(),
        client,
        id,
        peer,
        spans
    ));
    let session = async move {
        let _connected = listener.stats.clients.enter();
        // Taken apart in a statement of its own: a match on the awaited value would keep
        // it (72 bytes) in the task for as long as the session lasts.
        let (stream, startup, guard) = match admit.await {
            Ok(Some(a)) => (a.stream, a.startup, a.guard),
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "session ended");
                return;
            }
        };
        let Some(setup) = &listener.pool else { return };
        if let Err(e) = pooled::run(
            &shared,
            &listener,
            setup,
            stream,
            startup,
            &guard.info,
            spans,
        )
        .await
        {
            tracing::debug!(error = %e, "session ended");
        }
    };
    // Entering a span on every poll costs even when it records nothing: only when the log
    // level keeps session spans.
    if spans {
        Either::Right(session.instrument(span))
    } else {
        Either::Left(session)
    }
}

/// A client of a pooling listener past its startup packet, in the client registry.
struct Admitted {
    stream: TcpStream,
    startup: StartupParams,
    guard: ClientGuard,
}

/// Reads the startup packet and serves what needs no pool (cancel requests, the admin
/// console, refusals, passthrough sessions); hands a pooling listener's client back.
/// (A plain fn returning an `async move` block, like [`run`]: its state is allocated per
/// connection, and without the arguments twice it fits the allocator's thread cache.)
#[allow(clippy::manual_async_fn)]
fn admit(
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    mut client: TcpStream,
    id: u64,
    peer: SocketAddr,
    spans: bool,
) -> impl std::future::Future<Output = Result<Option<Admitted>, ProtocolError>> {
    async move {
        let (shared, listener) = (&*shared, &listener);
        // TCP_NODELAY and keepalive come with the connection from the listening socket
        // (crate::tcp).
        let (params, raw) = match first::first_packet(shared, &mut client).await? {
            First::Done => return Ok(None),
            First::Startup { params, raw } => (params, raw),
        };
        let user = params.get("user").unwrap_or("");
        let db = params.get("database").unwrap_or(user);
        if spans {
            let span = tracing::Span::current();
            span.record("user", user);
            span.record("db", db);
        }
        tracing::debug!(user, db, "startup");
        if crate::admin::console::is_console_database(db) {
            Box::pin(crate::admin::console::run(shared, client, &params)).await?;
            return Ok(None);
        }
        if shared.gate.stop_state() != Stop::Running {
            client.write_all(&shutting_down().encode()).await?;
            return Ok(None);
        }
        if shared.gate.is_disabled(&listener.name, db) {
            let e = PgError::fatal(
                "57P03",
                format!(
                    "rolegate: database {db} is disabled on listener {}",
                    listener.name
                ),
            )
            .with_hint(
                "An administrator ran DISABLE on the admin console; ENABLE lets clients in again.",
            );
            client.write_all(&e.encode()).await?;
            return Ok(None);
        }
        let guard = shared.clients.join(&NewClient {
            id,
            listener: &listener.name,
            user,
            database: db,
            peer,
            pooled: listener.pool.is_some(),
        });
        if listener.pool.is_some() {
            // rolegate logs pooled clients in itself: an idle client keeps no packet.
            return Ok(Some(Admitted {
                stream: client,
                startup: params,
                guard,
            }));
        }
        let db = db.to_owned();
        drop(params);
        Box::pin(passthrough(
            shared,
            listener,
            client,
            &raw,
            &db,
            &guard.info,
        ))
        .await?;
        Ok(None)
    }
}

/// A client of a passthrough listener: its own server session, bytes both ways.
async fn passthrough(
    shared: &Shared,
    listener: &Arc<Listener>,
    mut client: TcpStream,
    raw: &[u8],
    db: &str,
    info: &Arc<clients::ClientInfo>,
) -> Result<(), ProtocolError> {
    let waited = Instant::now();
    let connected = {
        let _waiting = listener.stats.clients_waiting.enter();
        info.set(ClientState::Waiting, None);
        // PAUSE holds new passthrough sessions (running ones cannot be held between
        // transactions without parsing them).
        shared.gate.wait_open(&listener.name, db).await;
        connect::connect(shared, listener).await
    };
    listener.stats.wait_time.record(waited.elapsed());
    match connected {
        Ok(backend) => forward::run(shared, listener, client, backend, raw, info).await,
        Err(err) => {
            listener.stats.errors.record(err.code.as_bytes());
            tracing::warn!(code = err.code, message = %err.message, "refusing client");
            let _ = client.write_all(&err.encode()).await;
            Ok(())
        }
    }
}

/// Starts a graceful stop: no new connections or transactions, pooled clients between
/// transactions are ended now; the others end when their transaction does (they check
/// the stop state when they give their server back, or wait for it at ReadyForQuery).
pub fn drain(shared: &Shared) {
    shared.gate.set_stop(Stop::Draining);
    let n = shared.clients.kill_where(
        |c| c.pooled && matches!(c.state, ClientState::Idle | ClientState::Login),
        "rolegate is shutting down",
    );
    tracing::info!(clients = n, "stopping: ended idle clients");
}

/// What a client is told when its server sent something that is not a protocol message
/// (`e`, a length no message has): the server connection is closed, and the session with
/// it (pooled and passthrough alike).
#[must_use]
pub fn server_broke_protocol(e: &ProtocolError) -> PgError {
    PgError::fatal("08P01", format!("rolegate: invalid message from the server: {e}"))
        .with_hint("The session is closed. Reconnect and retry; if this repeats, something other than PostgreSQL answers on the member's address.")
}

/// What a client is told when rolegate ends its session because it is stopping.
#[must_use]
pub fn shutting_down() -> PgError {
    PgError::fatal("57P01", "rolegate is shutting down").with_hint(
        "Reconnect: another rolegate instance, or this one once restarted, will serve you.",
    )
}

#[cfg(test)]
mod size_tests;
