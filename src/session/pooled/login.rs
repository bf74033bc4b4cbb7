//! A pooled client's login: `max_client_conn`, the secret (auth_file or auth_query),
//! client authentication, the first server checkout, and the greeting (AuthenticationOk,
//! the server's parameters, rolegate's own cancel key, ReadyForQuery).

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::checkout::Sticky;
use super::params::ClientParams;
use super::{Client, ClientInfo, Held, Shared};
use crate::auth::{authenticate_client, trusted};
use crate::config::PoolMode;
use crate::pool::{Login, PoolSetup};
use crate::protocol::io::put_message;
use crate::protocol::{CancelKey, PgError, ProtocolError};
use crate::route::cancel::PooledTarget;
use crate::route::Listener;

/// A client logged in, and (session mode) the server lent to it.
pub type LoggedIn<'a> = (Box<Client<'a>>, Option<Box<Held>>);

/// Logs the client in and greets it. `None` = refused (the client was told why).
/// In session mode the first server stays lent (boxed: the caller keeps a pointer while
/// it relays); in transaction mode it went back.
///
/// A plain fn returning an `async move` block (an async fn keeps its arguments twice in
/// its state): the state is allocated per connection, and kept within the allocator's
/// small sizes (1 KB) it takes the allocator's fast path.
#[allow(clippy::manual_async_fn)]
pub fn login<'a, 's>(
    shared: &'a Shared,
    listener: &'a Arc<Listener>,
    setup: &'a PoolSetup,
    stream: &'s mut TcpStream,
    startup: &'s crate::protocol::startup::StartupParams,
    info: &'a ClientInfo,
    spans: bool,
) -> impl std::future::Future<Output = Result<Option<LoggedIn<'a>>, ProtocolError>> + use<'a, 's> {
    async move {
        let Some(slot) = setup.clients.try_take() else {
            return refuse(stream, &too_many_clients(listener, setup)).await;
        };
        // The registry entry's names (from the same startup packet), shared, not copied.
        let (user, database) = (info.user.clone(), info.database.clone());
        let Some(auth) = shared.auth.load_full() else {
            let e = PgError::fatal(
                "28000",
                "rolegate: this listener pools but no [auth] is configured",
            );
            return refuse(stream, &e).await;
        };
        // The auth_file's secret at once; the auth query's and an exchange with the client
        // are boxed: their states are large, and this future's state is allocated per
        // connection (kept within the allocator's small sizes, 1 KB, for trust and auth_file).
        let secret = match auth.users.get(&user) {
            Some(s) => Some(s.clone()),
            None => {
                match Box::pin(auth.secret_for(shared, listener, setup, &user, &database)).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%user, error = %e, "auth_query failed");
                        return refuse(stream, &e.to_client_error()).await;
                    }
                }
            }
        };
        let checked = match trusted(auth.method, secret.as_ref()) {
            Some(creds) => Ok(creds),
            None => {
                Box::pin(authenticate_client(
                    stream,
                    auth.method,
                    &user,
                    secret.as_ref(),
                ))
                .await
            }
        };
        let creds = match checked {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(%user, error = %e, "client authentication failed");
                return refuse(stream, &e.to_client_error(&user)).await;
            }
        };
        let target = Arc::new(PooledTarget::default());
        let (key, cancel) = shared.cancels.insert_new(&target);
        let mut client = Box::new(Client {
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
            sticky: None,
            logged_member: None,
            spans,
            info,
            _slot: slot,
            _cancel: cancel,
        });
        // A new client of the database and user the listener last settled on starts there.
        client.sticky = Sticky::seeded(setup, &client.login.database, &client.login.user);
        // In transaction mode the greeting needs a server's parameters, not a server: an idle
        // one of the pool the client will most likely use serves without being checked out
        // (as PgBouncer greets from its pool's cached parameters). Else, and in session mode,
        // the client gets a server now.
        let statuses = if setup.mode == PoolMode::Transaction {
            client.with_idle_server(|params, conn| {
                params.adopt_defaults(&conn.defaults, &mut conn.memo.adopted);
                parameter_statuses(params, conn)
            })
        } else {
            None
        };
        // The server boxed at once: it stays so in session mode, and the greeting's write
        // below keeps a pointer in this state, not the server.
        let (statuses, held) = if let Some(s) = statuses {
            (s, None)
        } else {
            // Boxed: session mode, or no idle server (see above).
            let mut held = match Box::pin(client.server()).await {
                Ok(h) => Box::new(h),
                Err(e) => return refuse(stream, &e).await,
            };
            let s = parameter_statuses(&client.params, held.checkout.conn());
            (s, Some(held))
        };
        stream.write_all(&greeting(&statuses, &key)).await?;
        let held = match (setup.mode, held) {
            (PoolMode::Session, Some(h)) => Some(h),
            (PoolMode::Transaction, Some(h)) => {
                client.release(*h);
                None
            }
            (_, None) => None,
        };
        Ok(Some((client, held)))
    }
}

/// The refusal of a client over `max_client_conn`.
fn too_many_clients(listener: &Listener, setup: &PoolSetup) -> PgError {
    PgError::fatal(
        "53300",
        format!(
            "rolegate: too many clients on listener {} (max_client_conn {})",
            listener.name,
            setup.clients.size()
        ),
    )
    .with_hint("Retry later, or raise max_client_conn.")
}

/// The greeting: AuthenticationOk, the ParameterStatus messages `statuses`, the client's
/// cancel key, ReadyForQuery.
fn greeting(statuses: &[u8], key: &CancelKey) -> Vec<u8> {
    // (512: a usual greeting is ~420 bytes, and 512 stays in the allocator's thread cache.)
    // The fixed messages as bytes: this runs once per connection, and a general message
    // writer per message cost more than the rest of the greeting's assembly.
    let mut greeting = Vec::with_capacity(512);
    greeting.extend_from_slice(AUTHENTICATION_OK);
    greeting.extend_from_slice(statuses);
    put_message(&mut greeting, b'K', &[&key.pid.to_be_bytes(), &key.secret]);
    greeting.extend_from_slice(READY_IDLE);
    greeting
}

/// AuthenticationOk.
const AUTHENTICATION_OK: &[u8] = b"R\0\0\0\x08\0\0\0\0";
/// ReadyForQuery, idle.
const READY_IDLE: &[u8] = b"Z\0\0\0\x05I";

/// The ParameterStatus messages of the greeting: the server's parameters with the
/// client's own values. Made once per server and client parameters (see [`Memo`]).
///
/// [`Memo`]: crate::pool::server::Memo
fn parameter_statuses(params: &ClientParams, conn: &mut crate::pool::ServerConn) -> bytes::Bytes {
    if let Some((text, block)) = &conn.memo.greeting {
        if Arc::ptr_eq(text, params.text()) {
            return block.clone();
        }
    }
    let mut block = Vec::with_capacity(512);
    params.for_each_merged(&conn.params, |k, v| {
        put_message(
            &mut block,
            b'S',
            &[k.as_bytes(), b"\0", v.as_bytes(), b"\0"],
        );
    });
    let block = bytes::Bytes::from(block);
    conn.memo.greeting = Some((params.text().clone(), block.clone()));
    block
}

async fn refuse<T>(stream: &mut TcpStream, e: &PgError) -> Result<Option<T>, ProtocolError> {
    stream.write_all(&e.encode()).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_greeting_messages_are_what_the_message_writer_makes() {
        let mut ok = Vec::new();
        put_message(&mut ok, b'R', &[&0u32.to_be_bytes()]);
        assert_eq!(AUTHENTICATION_OK, ok.as_slice());
        let mut ready = Vec::new();
        put_message(&mut ready, b'Z', &[b"I"]);
        assert_eq!(READY_IDLE, ready.as_slice());
    }
}
