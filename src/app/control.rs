//! The control loop and shutdown. SIGHUP and console RELOAD reload the config
//! ([`super::reload`]); SIGTERM and console SHUTDOWN stop gracefully: no new
//! connections, transactions in flight get up to `[general] shutdown_timeout` to finish,
//! every client then gets 57P01 "rolegate is shutting down". SIGINT does the same without
//! waiting. Either way every server connection is sent Terminate and closed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use crate::session::{ControlRequest, Shared, Stop};

/// How the process stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// SIGTERM / SHUTDOWN: let transactions finish.
    Graceful,
    /// SIGINT: now.
    Fast,
}

/// How long sessions that were told to end get to close before the pools are closed.
const FINAL_GRACE: Duration = Duration::from_secs(2);

fn sig(kind: SignalKind) -> Option<Signal> {
    match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot install a signal handler");
            None
        }
    }
}

async fn recv(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs until a stop is asked for; returns how to stop.
pub async fn run(
    shared: &Arc<Shared>,
    path: &Path,
    mut requests: mpsc::UnboundedReceiver<ControlRequest>,
) -> StopKind {
    let (mut hup, mut term, mut int) = (
        sig(SignalKind::hangup()),
        sig(SignalKind::terminate()),
        sig(SignalKind::interrupt()),
    );
    loop {
        tokio::select! {
            () = recv(&mut hup) => {
                tracing::info!("SIGHUP: reloading {}", path.display());
                let _ = super::reload::reload(shared, path);
            }
            () = recv(&mut term) => {
                tracing::info!("SIGTERM: stopping after transactions in flight");
                return StopKind::Graceful;
            }
            () = recv(&mut int) => {
                tracing::info!("SIGINT: stopping now");
                return StopKind::Fast;
            }
            req = requests.recv() => match req {
                Some(ControlRequest::Reload(reply)) => {
                    tracing::info!("RELOAD: reloading {}", path.display());
                    let _ = reply.send(super::reload::reload(shared, path));
                }
                Some(ControlRequest::Shutdown { fast }) => {
                    tracing::info!(fast, "SHUTDOWN from the admin console");
                    return if fast { StopKind::Fast } else { StopKind::Graceful };
                }
                None => std::future::pending::<()>().await,
            },
        }
    }
}

/// Stops: closes the ports, lets transactions finish (graceful, up to the timeout; a
/// SIGINT cuts it short), ends every session, closes every server connection.
pub async fn shutdown(shared: &Arc<Shared>, kind: StopKind) {
    crate::session::drain(shared);
    if kind == StopKind::Graceful {
        let timeout = shared
            .config
            .load()
            .as_ref()
            .map_or(Duration::from_secs(30), |c| c.general.shutdown_timeout.0);
        let mut int = sig(SignalKind::interrupt());
        let mut term = sig(SignalKind::terminate());
        tokio::select! {
            finished = wait_empty(shared, timeout) => if !finished {
                tracing::warn!(clients = shared.clients.len(), ?timeout, "shutdown_timeout passed; ending the remaining sessions");
            },
            () = recv(&mut int) => tracing::info!("SIGINT: stopping now"),
            () = recv(&mut term) => tracing::info!("second SIGTERM: stopping now"),
        }
    }
    shared.gate.set_stop(Stop::Now);
    let killed = shared
        .clients
        .kill_where(|_| true, "rolegate is shutting down");
    if killed > 0 {
        tracing::info!(clients = killed, "ending sessions");
    }
    if !wait_empty(shared, FINAL_GRACE).await {
        tracing::warn!(
            clients = shared.clients.len(),
            "sessions still open at exit"
        );
    }
    let mut pools = 0;
    for l in shared.listeners() {
        if let Some(p) = &l.pool {
            pools += p.pools.drain_unless(|_| false);
        }
    }
    tracing::info!(pools, "server connections closed");
}

/// Waits until no client is left or `limit` passes; true if none is left.
async fn wait_empty(shared: &Shared, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !shared.clients.is_empty() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
