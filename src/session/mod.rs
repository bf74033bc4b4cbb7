//! One client connection: reads the first packet (answering SSL/GSS requests with 'N'),
//! routes CancelRequests to the backend that issued the key, otherwise picks a member
//! ([`connect`]), forwards the startup packet and then the bytes both ways ([`forward`])
//! until either side closes or the member leaves the listener's role set.

pub mod auth_query;
pub mod auth_setup;
pub mod connect;
pub mod forward;
pub mod pooled;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::Instrument;

pub use auth_setup::{AuthQuery, AuthSetup, AuthSetupError};

use crate::protocol::startup::{read_first_packet, NO_ENCRYPTION};
use crate::protocol::{FirstPacket, PgError, ProtocolError};
use crate::route::{CancelMap, Listener};
use crate::topology::TopologyStore;

/// How long a client may take to send its startup packet (PostgreSQL's authentication_timeout
/// is 60s; a proxy holding a socket for a silent client should give up sooner).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// What every session needs, shared by all of them.
pub struct Shared {
    pub topology: Arc<TopologyStore>,
    pub cancels: Arc<CancelMap>,
    /// How pooling listeners authenticate clients (`[auth]`).
    pub auth: Option<AuthSetup>,
    /// Process-wide counters (switchover holds, config reloads).
    pub stats: Arc<crate::stats::Stats>,
}

impl Shared {
    #[must_use]
    pub fn new(topology: Arc<TopologyStore>) -> Self {
        Self {
            topology,
            cancels: Arc::default(),
            auth: None,
            stats: Arc::default(),
        }
    }
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Serves one client connection to completion. Never panics on peer input.
pub async fn run(
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    client: TcpStream,
    peer: SocketAddr,
) {
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("session", id, listener = %listener.name, %peer, user = tracing::field::Empty, member = tracing::field::Empty);
    listener.stats.clients_accepted.inc();
    async move {
        let _connected = listener.stats.clients.enter();
        let _ = client.set_nodelay(true);
        if let Err(e) = serve(&shared, &listener, client).await {
            tracing::debug!(error = %e, "session ended");
        }
    }
    .instrument(span)
    .await;
}

/// Where a client goes after its first packet.
enum Next {
    /// Answered already (a cancel request, or a refusal).
    Done,
    /// Logged in by rolegate, then lent pooled servers.
    Pooled(BTreeMap<String, String>),
    /// The startup packet goes to a member as is, then bytes both ways.
    Passthrough(bytes::Bytes),
}

async fn serve(
    shared: &Shared,
    listener: &Arc<Listener>,
    mut client: TcpStream,
) -> Result<(), ProtocolError> {
    // Boxed, and finished before the session's main phase, so that an idle client's task
    // keeps none of the startup's state.
    match Box::pin(first_packet(shared, listener, &mut client)).await? {
        Next::Done => Ok(()),
        Next::Pooled(params) => match &listener.pool {
            Some(setup) => pooled::run(shared, listener, setup, client, params).await,
            None => Ok(()),
        },
        Next::Passthrough(raw) => Box::pin(passthrough(shared, listener, client, raw)).await,
    }
}

/// Reads the first packet: answers encryption requests and forwards cancel requests.
async fn first_packet(
    shared: &Shared,
    listener: &Listener,
    client: &mut TcpStream,
) -> Result<Next, ProtocolError> {
    let first = match tokio::time::timeout(STARTUP_TIMEOUT, negotiate(client)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            if let Some(err) = e.to_client_error() {
                let _ = client.write_all(&err.encode()).await;
            }
            return Err(e);
        }
        Err(_) => {
            let err = PgError::fatal("08P01", "rolegate: no startup packet within 15s; closing")
                .with_hint("Connect with a PostgreSQL client.");
            let _ = client.write_all(&err.encode()).await;
            return Ok(Next::Done);
        }
    };
    match first {
        FirstPacket::Cancel { key, raw } => {
            forward::cancel(&shared.cancels, &key, &raw).await;
            Ok(Next::Done)
        }
        FirstPacket::Startup { raw, params } => {
            let user = params.get("user").map_or("", String::as_str);
            let db = params.get("database").map_or(user, String::as_str);
            tracing::Span::current().record("user", user);
            tracing::debug!(user, db, "startup");
            // rolegate logs pooled clients in itself: an idle client keeps no packet.
            Ok(if listener.pool.is_some() {
                Next::Pooled(params)
            } else {
                Next::Passthrough(raw)
            })
        }
        FirstPacket::SslRequest | FirstPacket::GssEncRequest => {
            unreachable_negotiation().map(|()| Next::Done)
        }
    }
}

/// A client of a passthrough listener: its own server session, bytes both ways.
async fn passthrough(
    shared: &Shared,
    listener: &Arc<Listener>,
    mut client: TcpStream,
    raw: bytes::Bytes,
) -> Result<(), ProtocolError> {
    let waited = Instant::now();
    let connected = {
        let _waiting = listener.stats.clients_waiting.enter();
        connect::connect(shared, listener).await
    };
    listener.stats.wait_time.record(waited.elapsed());
    match connected {
        Ok(backend) => forward::run(shared, listener, client, backend, &raw).await,
        Err(err) => {
            listener.stats.errors.record(err.code.as_bytes());
            tracing::warn!(code = err.code, message = %err.message, "refusing client");
            let _ = client.write_all(&err.encode()).await;
            Ok(())
        }
    }
}

/// Reads packets until one that is not an encryption request, answering those with 'N'
/// (TLS is not offered yet). A client may ask for SSL and then GSS, so at most two rounds.
async fn negotiate(client: &mut TcpStream) -> Result<FirstPacket, ProtocolError> {
    for _ in 0..3 {
        match read_first_packet(client).await? {
            FirstPacket::SslRequest | FirstPacket::GssEncRequest => {
                client.write_all(&[NO_ENCRYPTION]).await?;
            }
            other => return Ok(other),
        }
    }
    Err(ProtocolError::Startup(
        "too many encryption requests".into(),
    ))
}

fn unreachable_negotiation() -> Result<(), ProtocolError> {
    // `negotiate` never returns an encryption request; treat it as a protocol error anyway.
    Err(ProtocolError::Startup(
        "unexpected encryption request".into(),
    ))
}

#[cfg(test)]
mod size_tests;
