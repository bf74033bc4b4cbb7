//! The SQL admin console, PgBouncer-compatible: a client that connects to database
//! `pgbouncer` (or `rolegate`) on any listener, as one of `[admin] admin_users` or
//! `stats_users`, is answered by rolegate itself over the simple query protocol.
//!
//! A PgBouncer "database" is, in rolegate, a (listener, database name) pair, shown as
//! `<database>@<listener>`; console arguments may name the pair, a database name (on every
//! listener) or a listener (all its databases). Pools are per member underneath; rows add
//! up the members that currently serve the listener.
//!
//! [`dispatch`] parses commands and checks permissions; [`pools`], [`conns`] and
//! [`cluster`] answer the SHOW families; [`commands`] runs PAUSE, RESUME, RECONNECT, KILL,
//! RELOAD and SHUTDOWN.

pub mod cluster;
pub mod commands;
pub mod config;
pub mod conns;
pub mod dispatch;
pub mod pools;
pub mod table;
pub mod totals;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::auth::{authenticate_client, AuthMethod};
use crate::protocol::io::{message, read_message};
use crate::protocol::{PgError, ProtocolError};
use crate::session::Shared;
pub use dispatch::Access;

/// Database names that open the console.
pub const CONSOLE_DATABASES: [&str; 2] = ["pgbouncer", "rolegate"];

/// Longest console query accepted.
const MAX_QUERY: u32 = 64 * 1024;

#[must_use]
pub fn is_console_database(db: &str) -> bool {
    CONSOLE_DATABASES.contains(&db)
}

/// Serves one console client after its startup packet.
pub async fn run(
    shared: &Shared,
    mut stream: TcpStream,
    startup: &crate::protocol::startup::StartupParams,
) -> Result<(), ProtocolError> {
    let user = startup.get("user").unwrap_or_default().to_owned();
    let access = match login(shared, &mut stream, &user).await? {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(%user, code = e.code, "admin console login refused");
            stream.write_all(&e.encode()).await?;
            return Ok(());
        }
    };
    tracing::info!(%user, ?access, "admin console login");
    stream.write_all(&greeting()).await?;
    serve(shared, &mut stream, access).await
}

/// Who may use the console and how; `Ok(Err)` is a refusal for the client.
async fn login(
    shared: &Shared,
    stream: &mut TcpStream,
    user: &str,
) -> Result<Result<Access, PgError>, ProtocolError> {
    let config = shared.config.load_full();
    let admin = config.as_ref().map(|c| &c.admin);
    let access = match admin {
        Some(a) if a.admin_users.iter().any(|u| u == user) => Access::Admin,
        Some(a) if a.stats_users.iter().any(|u| u == user) => Access::Stats,
        _ => {
            return Ok(Err(PgError::fatal(
                "28000",
                format!("rolegate: user {user:?} may not use the admin console"),
            )
            .with_hint("List the user in [admin] admin_users or stats_users.")));
        }
    };
    let Some(auth) = shared.auth.load_full() else {
        return Ok(Err(PgError::fatal(
            "28000",
            "rolegate: the admin console authenticates with [auth], which is not configured",
        )
        .with_hint("Add an [auth] section (type and file) to the config.")));
    };
    let secret = auth.users.get(user);
    if auth.method != AuthMethod::Trust || secret.is_some() {
        if let Err(e) = authenticate_client(stream, auth.method, user, secret).await {
            return Ok(Err(e.to_client_error(user)));
        }
    }
    Ok(Ok(access))
}

/// AuthenticationOk, the parameters clients expect, a (dummy) cancel key, ReadyForQuery.
fn greeting() -> BytesMut {
    let mut out = BytesMut::new();
    out.put_slice(&message(b'R', &0u32.to_be_bytes()));
    for (k, v) in [
        ("server_version", env!("CARGO_PKG_VERSION")),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO"),
        ("standard_conforming_strings", "on"),
        ("application_name", "rolegate"),
    ] {
        out.put_slice(&message(b'S', format!("{k}\0{v}\0").as_bytes()));
    }
    out.put_slice(&message(b'K', &[0; 8]));
    out.put_slice(&message(b'Z', b"I"));
    out
}

/// Runs `work` unless the client closes its connection first; false if it did.
async fn until_client_leaves(
    stream: &TcpStream,
    work: impl std::future::Future<Output = ()>,
) -> bool {
    tokio::pin!(work);
    let mut watching = true;
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            () = &mut work => return true,
            r = stream.peek(&mut probe), if watching => match r {
                Ok(0) | Err(_) => return false,
                // More input is queued (pipelined); it is read after this command.
                Ok(_) => watching = false,
            },
        }
    }
}

/// The query loop: simple queries only; extended-protocol messages get one error at Sync.
async fn serve(
    shared: &Shared,
    stream: &mut TcpStream,
    access: Access,
) -> Result<(), ProtocolError> {
    let mut extended = false;
    loop {
        let (tag, body) = read_message(stream, MAX_QUERY).await?;
        let mut out = BytesMut::new();
        match tag {
            b'Q' => {
                let sql = String::from_utf8_lossy(&body);
                let sql = sql.trim_end_matches('\0');
                let ran = dispatch::run_query(shared, access, sql, &mut out);
                if !until_client_leaves(stream, ran).await {
                    return Ok(()); // e.g. a PAUSE that was still waiting
                }
                out.put_slice(&message(b'Z', b"I"));
            }
            b'X' => return Ok(()),
            b'S' if extended => {
                extended = false;
                let e = PgError::error(
                    "0A000",
                    "rolegate admin console: only the simple query protocol is supported",
                );
                out.put_slice(&e.encode());
                out.put_slice(&message(b'Z', b"I"));
            }
            b'S' => out.put_slice(&message(b'Z', b"I")),
            _ => extended = true,
        }
        stream.write_all(&out).await?;
    }
}
