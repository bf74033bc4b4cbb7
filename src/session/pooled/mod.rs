//! A client of a pooling listener: rolegate authenticates it, greets it with a server's
//! parameters and its own cancel key, then lends it a server connection per transaction
//! (or for the whole session) through [`relay`].

pub mod backend;
mod ending;
pub mod expect;
pub mod frontend;
pub mod params;
pub mod relay;
pub mod replay;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::clients::{ClientInfo, ClientState, ServerLink};
use super::connect::{with_member, Attempt};
use super::Shared;
use crate::auth::authenticate_client;
use crate::config::PoolMode;
use crate::pool::{Checkout, Login, PoolError, PoolSetup, ServerError};
use crate::protocol::io::{message, parse_parameter_status, read_message};
use crate::protocol::{PgError, ProtocolError};
use crate::route::cancel::PooledTarget;
use crate::route::{KillReason, Listener, SessionGuard};
use crate::stats::ListenerStats;
use crate::topology::Service;
use params::ClientParams;

/// A server connection lent to this client, registered so fencing can reach it.
pub struct Held {
    pub checkout: Checkout,
    /// Keeps the session registered on the member (for fencing) while the server is lent.
    pub guard: SessionGuard,
    pub kill: oneshot::Receiver<KillReason>,
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
    fn new(stats: &Arc<ListenerStats>, per_transaction: bool) -> Self {
        stats.clients_active.inc();
        Self {
            stats: stats.clone(),
            since: Instant::now(),
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
    /// This client's entry in the client registry (state, kill switch).
    pub info: &'a ClientInfo,
}

/// Serves a client of a pooling listener after its startup packet.
pub async fn run(
    shared: &Shared,
    listener: &Arc<Listener>,
    setup: &PoolSetup,
    mut stream: TcpStream,
    startup: &BTreeMap<String, String>,
    info: &ClientInfo,
) -> Result<(), ProtocolError> {
    let Ok(_slot) = setup.clients.try_acquire() else {
        let e = PgError::fatal(
            "53300",
            format!(
                "rolegate: too many clients on listener {} (max_client_conn {})",
                listener.name,
                setup.clients.size()
            ),
        )
        .with_hint("Retry later, or raise max_client_conn.");
        stream.write_all(&e.encode()).await?;
        return Ok(());
    };
    let user = startup.get("user").cloned().unwrap_or_default();
    let database = startup
        .get("database")
        .cloned()
        .unwrap_or_else(|| user.clone());
    let Some(auth) = shared.auth.load_full() else {
        let e = PgError::fatal(
            "28000",
            "rolegate: this listener pools but no [auth] is configured",
        );
        stream.write_all(&e.encode()).await?;
        return Ok(());
    };
    let secret = match auth
        .secret_for(shared, listener, setup, &user, &database)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%user, error = %e, "auth_query failed");
            stream.write_all(&e.to_client_error().encode()).await?;
            return Ok(());
        }
    };
    let creds = match authenticate_client(&mut stream, auth.method, &user, secret.as_ref()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%user, error = %e, "client authentication failed");
            stream.write_all(&e.to_client_error(&user).encode()).await?;
            return Ok(());
        }
    };
    let target = Arc::new(PooledTarget::default());
    let (key, _cancel_guard) = shared.cancels.insert_new(&target);
    let mut client = Client {
        shared,
        listener,
        setup,
        login: Login {
            user,
            database,
            creds,
        },
        params: ClientParams::from_startup(startup),
        target,
        info,
    };
    let held = match client.checkout().await {
        Ok(h) => h,
        Err(e) => {
            stream.write_all(&e.encode()).await?;
            return Ok(());
        }
    };
    let mut held = held;
    client.params.adopt_defaults(&held.checkout.conn().params);
    let mut greeting = BytesMut::new();
    greeting.put_slice(&message(b'R', &0u32.to_be_bytes()));
    for (k, v) in client.params.merged(&held.checkout.conn().params) {
        greeting.put_slice(&message(b'S', format!("{k}\0{v}\0").as_bytes()));
    }
    let mut kd = key.pid.to_be_bytes().to_vec();
    kd.extend_from_slice(&key.secret);
    greeting.put_slice(&message(b'K', &kd));
    greeting.put_slice(&message(b'Z', b"I"));
    stream.write_all(&greeting).await?;
    let held = match setup.mode {
        PoolMode::Session => Some(held),
        PoolMode::Transaction => {
            client.release(held);
            None
        }
    };
    relay::run(&mut client, stream, held).await
}

impl Client<'_> {
    /// Lends the client a server connection on a member of the listener's role set, with
    /// the client's parameters applied.
    pub async fn checkout(&mut self) -> Result<Held, PgError> {
        let (shared, listener, setup, login) =
            (self.shared, self.listener, self.setup, &self.login);
        self.info.set(ClientState::Waiting, None);
        let waited = Instant::now();
        let waiting = listener.stats.clients_waiting.enter();
        shared.gate.wait_open(&listener.name, &login.database).await;
        if shared.gate.stop_state() != super::Stop::Running {
            return Err(super::shutting_down());
        }
        let held = with_member(shared, listener, |addr| async move {
            let pool = setup.pools.get(&addr, login);
            let checkout = match pool.checkout().await {
                Ok(c) => c,
                Err(PoolError::Server(
                    e @ (ServerError::Connect(..) | ServerError::Timeout(..)),
                )) => return Attempt::Failed(e.to_string()),
                Err(PoolError::Draining) => return Attempt::Left,
                Err(PoolError::Server(e)) => return Attempt::Fatal(e.to_client_error(&login.user)),
                Err(e @ PoolError::WaitTimeout(..)) => {
                    return Attempt::Fatal(
                        PgError::fatal("53300", format!("rolegate: {e}")).with_hint(
                            "Raise pool_size or query_wait_timeout, or look for long transactions.",
                        ),
                    )
                }
            };
            let mut checkout = checkout;
            if listener.service == Service::Primary && read_only(checkout.conn()) {
                // Dropped, not returned: a primary that reports hot standby is not one.
                return Attempt::Failed("the server is in hot standby (read-only)".into());
            }
            let (guard, kill) = listener.sessions.register(&addr.member);
            if !listener.serves(&shared.topology.load(), &addr.member) {
                return Attempt::Left;
            }
            Attempt::Done(Held {
                checkout,
                guard,
                kill,
                active: Active::new(&listener.stats, setup.mode == PoolMode::Transaction),
            })
        })
        .await;
        drop(waiting);
        listener.stats.wait_time.record(waited.elapsed());
        let mut held = held.inspect_err(|e| listener.stats.errors.record(e.code.as_bytes()))?;
        let since = held.checkout.since;
        let conn = held.checkout.conn();
        tracing::Span::current().record("member", conn.addr.member.as_str());
        self.info.set(
            ClientState::Active,
            Some(ServerLink {
                member: conn.addr.member.clone(),
                host: conn.addr.host.clone(),
                port: conn.addr.port,
                pid: conn.key.pid,
                connected: std::time::SystemTime::now()
                    .checked_sub(conn.created.elapsed())
                    .unwrap_or(since),
                since,
            }),
        );
        self.target.set(Some((conn.addr.clone(), conn.key.clone())));
        if let Some(sql) = self.params.sync_sql(&conn.params) {
            apply(conn, &sql).await.map_err(|e| {
                PgError::fatal(
                    "08006",
                    format!("rolegate: could not prepare a server connection: {e}"),
                )
            })?;
        }
        Ok(held)
    }
}

impl Client<'_> {
    /// Gives a clean (ReadyForQuery idle) server back to its pool.
    pub fn release(&self, held: Held) {
        self.target.set(None);
        self.info.set(ClientState::Idle, None);
        held.checkout.release();
    }
}

/// Whether the server said it cannot take writes (PostgreSQL 14+ reports `in_hot_standby`).
fn read_only(conn: &crate::pool::ServerConn) -> bool {
    conn.params.get("in_hot_standby").is_some_and(|v| v == "on")
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
            b'S' => conn.params.extend(parse_parameter_status(&body)),
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
