//! The console's commands, with PgBouncer's meanings:
//! PAUSE waits for the selected databases' server connections to be released and then
//! holds new transactions; RESUME releases; RECONNECT closes server connections as they
//! are released; KILL ends the clients and server connections of a database at once and,
//! as in PgBouncer, leaves it paused until RESUME; RELOAD re-reads the config file;
//! SHUTDOWN stops like SIGTERM.

use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::oneshot;

use super::dispatch::Command;
use super::table::complete;
use crate::protocol::PgError;
use crate::session::{ClientState, ControlRequest, DbSelector, Shared, Stop};

/// How often PAUSE looks whether the servers were released.
const PAUSE_POLL: Duration = Duration::from_millis(20);

/// Runs a non-SHOW command.
pub async fn run(shared: &Shared, cmd: Command, out: &mut BytesMut) -> Result<(), PgError> {
    let tag = match cmd {
        Command::Show(_) => unreachable_show()?,
        Command::Pause(db) => {
            pause(shared, DbSelector::parse(&db)).await;
            "PAUSE"
        }
        Command::Resume(db) => {
            if !shared.gate.resume(&DbSelector::parse(&db)) {
                return Err(PgError::error(
                    "55000",
                    format!("rolegate admin console: {} is not paused", name(&db)),
                )
                .with_hint("RESUME takes the same name PAUSE (or KILL) was given; RESUME alone resumes everything."));
            }
            tracing::info!(db = name(&db), "RESUME");
            "RESUME"
        }
        Command::Reconnect(db) => {
            let n = reconnect(shared, &DbSelector::parse(&db));
            tracing::info!(db = name(&db), pools = n, "RECONNECT");
            "RECONNECT"
        }
        Command::Kill(db) => {
            kill(shared, &DbSelector::parse(&db));
            "KILL"
        }
        Command::Disable(db) => {
            shared.gate.set_disabled(DbSelector::parse(&db), true);
            tracing::warn!(db, "DISABLE: new clients refused");
            "DISABLE"
        }
        Command::Enable(db) => {
            shared.gate.set_disabled(DbSelector::parse(&db), false);
            tracing::info!(db, "ENABLE");
            "ENABLE"
        }
        Command::Reload => {
            reload(shared).await?;
            "RELOAD"
        }
        Command::Shutdown => {
            send(shared, ControlRequest::Shutdown { fast: false })?;
            "SHUTDOWN"
        }
    };
    complete(out, tag);
    Ok(())
}

fn unreachable_show() -> Result<&'static str, PgError> {
    Err(PgError::error(
        "XX000",
        "rolegate admin console: SHOW reached the command runner",
    ))
}

fn name(db: &str) -> &str {
    if db.is_empty() {
        "everything"
    } else {
        db
    }
}

/// Holds new transactions, then waits until no selected client holds a server.
async fn pause(shared: &Shared, which: DbSelector) {
    tracing::info!(
        ?which,
        "PAUSE: holding new transactions, waiting for servers to be released"
    );
    shared.gate.pause(which.clone());
    loop {
        let busy = shared
            .clients
            .rows()
            .iter()
            .filter(|c| c.state == ClientState::Active && which.matches(&c.listener, &c.database))
            .count();
        if busy == 0 || shared.gate.stop_state() != Stop::Running {
            break;
        }
        tokio::time::sleep(PAUSE_POLL).await;
    }
    tracing::info!(?which, "PAUSE: done");
}

/// Marks the selected pools' connections to be closed when released; returns how many pools.
fn reconnect(shared: &Shared, which: &DbSelector) -> usize {
    shared
        .listeners()
        .iter()
        .filter_map(|l| l.pool.as_ref().map(|p| (l, p)))
        .map(|(l, p)| p.pools.reconnect(|k| which.matches(&l.name, &k.database)))
        .sum()
}

/// Ends the selected clients now (their servers are closed with them), closes the idle
/// servers, and pauses the database until RESUME.
fn kill(shared: &Shared, which: &DbSelector) {
    shared.gate.pause(which.clone());
    let clients = shared.clients.kill_where(
        |c| which.matches(&c.listener, &c.database),
        "rolegate: the database was killed by an administrator (KILL)",
    );
    let pools = reconnect(shared, which);
    tracing::warn!(?which, clients, pools, "KILL");
}

fn send(shared: &Shared, req: ControlRequest) -> Result<(), PgError> {
    let unhandled = || {
        PgError::error(
            "0A000",
            "rolegate admin console: this process has no control loop (RELOAD/SHUTDOWN unavailable)",
        )
    };
    let tx = shared.control.get().ok_or_else(unhandled)?;
    tx.send(req).map_err(|_| unhandled())
}

async fn reload(shared: &Shared) -> Result<(), PgError> {
    let (tx, rx) = oneshot::channel();
    send(shared, ControlRequest::Reload(tx))?;
    match rx.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(reason)) => Err(PgError::error(
            "F0000",
            format!(
                "rolegate: config reload rejected, the previous config stays in force: {reason}"
            ),
        )),
        Err(_) => Err(PgError::error(
            "58000",
            "rolegate: the reload did not answer",
        )),
    }
}
