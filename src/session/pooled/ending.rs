//! The edges of a pooled session's relay: what a server's answers mean for its statement
//! cache and the counters, how a session ends (server back to the pool or closed), and the
//! errors rolegate itself sends when it ends one.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::expect::{Effect, Expected};
use super::frontend::Flow;
use super::{apply, Client, Held};
use crate::config::PoolMode;
use crate::pool::prepared::ServerStatements;
use crate::pool::ServerConn;
use crate::protocol::{PgError, ProtocolError};
use crate::stats::ListenerStats;

/// A ReadyForQuery arrived: one query done, and a transaction if the server is idle.
/// Returns the clock reading it took, if any: the transaction's end when it ended here.
pub(super) fn query_done(
    query_sent: &mut Option<Instant>,
    flow: Flow,
    stats: &ListenerStats,
) -> Option<Instant> {
    stats.queries.inc();
    if flow.status == b'I' {
        stats.transactions.inc();
    }
    if let Some(sent) = query_sent.take() {
        let now = Instant::now();
        stats.query_time.record(now - sent);
        // Pipelined requests: the next one has been waiting since at least now.
        if flow.pending > 0 {
            *query_sent = Some(now);
        }
        return Some(now);
    }
    None
}

/// Brings the server's statement cache in line with what its answers showed.
pub(super) fn apply_effects(
    c: &Client<'_>,
    expected: &mut Expected,
    statements: &mut ServerStatements,
) {
    let fx = &mut expected.effects;
    if fx.is_empty() {
        return; // most answers (simple queries, unnamed statements) change nothing
    }
    if fx.reset {
        statements.clear();
        fx.reset = false;
    }
    // Removals before restorations: a Parse and an eviction Close of one name that both
    // never ran leave the server with it.
    for (effect, s) in &fx.changes {
        match effect {
            Effect::Prepared => {
                let known = &c.setup.known_statements;
                known.add(&c.login.database, &c.login.user, s.clone());
            }
            Effect::NotPrepared => statements.remove(s),
            Effect::StillPrepared => {}
        }
    }
    for (effect, s) in fx.changes.drain(..) {
        if effect == Effect::StillPrepared {
            statements.restore(s);
        }
    }
}

/// The client is gone: a clean server goes back to the pool (after the reset query in
/// session mode); any other is closed by dropping it.
pub(super) async fn finish(c: &Client<'_>, mut h: Held, clean: bool) {
    if !clean {
        return;
    }
    let reset_query = &c.setup.settings().reset_query;
    if c.setup.mode == PoolMode::Session && !reset_query.is_empty() {
        let reset = tokio::time::timeout(
            Duration::from_secs(5),
            apply(h.checkout.conn(), reset_query),
        )
        .await;
        if !matches!(reset, Ok(Ok(()))) {
            return;
        }
        h.checkout.conn().statements.clear();
    }
    c.release_last(h);
}

/// KILL from the console, or the shutdown timeout.
pub(super) fn killed(reason: String) -> PgError {
    PgError::fatal("57P01", reason)
        .with_hint("rolegate ended this session (admin KILL or shutdown). Reconnect.")
}

/// The lent server's connection broke (`cause`) before the transaction ended; logged, as
/// the client is told only that its transaction's outcome is unknown. `committed_locally`:
/// the server said, just before, that it stopped waiting for synchronous replication of a
/// commit because its session was terminated ([`shutdown_during_commit`]). `unanswered`:
/// nothing came back for the transaction's first request (for the log).
pub(super) fn lost(
    conn: &ServerConn,
    cause: &dyn std::fmt::Display,
    committed_locally: bool,
    unanswered: bool,
) -> PgError {
    let (member, pid) = (&conn.addr.member, conn.key.pid);
    tracing::warn!(%member, pid, %cause, committed_locally, unanswered, "server connection lost in the middle of a transaction");
    lost_error(committed_locally)
}

/// What the client of [`lost`] is told.
fn lost_error(committed_locally: bool) -> PgError {
    if committed_locally {
        return PgError::fatal(
            "08006",
            "rolegate: the server ended the session after committing the transaction locally, before a synchronous standby confirmed it (a shutdown or an administrator's terminate); the commit may be lost if the cluster fails over",
        )
        .with_hint("Reconnect and check whether the transaction took effect before running it again.");
    }
    PgError::fatal(
        "08006",
        "rolegate: the server connection was lost in the middle of a transaction",
    )
    .with_hint("Reconnect and retry the transaction.")
}

/// The client sent something that is not a protocol message (`e`, a length no message
/// has): the session ends with 08P01, and its server connection, which may hold part of
/// the client's bytes, is closed.
pub(super) fn client_broke_protocol(e: &ProtocolError) -> PgError {
    PgError::fatal("08P01", format!("rolegate: invalid message from the client: {e}"))
        .with_hint("The session is closed. This is a bug in the client or its driver, or a program that does not speak PostgreSQL's protocol.")
}

/// The lent server sent something that is not a protocol message (`e`): logged, and the
/// client's session ends with [`crate::session::server_broke_protocol`].
pub(super) fn server_broke_protocol(conn: &ServerConn, e: &ProtocolError) -> PgError {
    let (member, pid) = (&conn.addr.member, conn.key.pid);
    tracing::warn!(%member, pid, error = %e, "server sent an invalid message; closing its connection");
    crate::session::server_broke_protocol(e)
}

/// Ends the session with `e`: counted, and sent if the client's stream is between
/// messages.
pub(super) async fn fail(c: &Client<'_>, stream: &mut TcpStream, e: PgError, at_boundary: bool) {
    c.listener.stats.errors.record(e.code.as_bytes());
    if at_boundary {
        say(stream, e).await;
    }
}

/// Tells the client `e`, giving up after 100 ms (the session ends either way).
pub(super) async fn say(stream: &mut TcpStream, e: PgError) {
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.write_all(&e.encode())).await;
}

/// Whether a NoticeResponse body is PostgreSQL's warning that a backend being terminated
/// (57P01, admin shutdown) stopped waiting for synchronous replication of a commit it had
/// already made locally; the connection closes right after it, without an ErrorResponse.
pub(super) fn shutdown_during_commit(notice: &[u8]) -> bool {
    crate::protocol::io::parse_error_fields(notice)
        .iter()
        .any(|(k, v)| *k == b'C' && v == "57P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(code: &str) -> Vec<u8> {
        format!("SWARNING\0VWARNING\0C{code}\0Mcanceling the wait for synchronous replication\0\0")
            .into_bytes()
    }

    #[test]
    fn only_the_admin_shutdown_warning_means_committed_locally() {
        assert!(shutdown_during_commit(&fields("57P01")));
        // The same warning after a query cancel (the session goes on) has no such code.
        assert!(!shutdown_during_commit(&fields("01000")));
        assert!(!shutdown_during_commit(b""));
    }

    #[test]
    fn a_commit_cut_by_shutdown_says_its_outcome_is_unknown() {
        let (plain, cut) = (lost_error(false), lost_error(true));
        assert_eq!((plain.code, cut.code), ("08006", "08006"));
        assert!(cut.message.contains("committing the transaction locally"));
        assert!(!plain.message.contains("locally"));
    }
}
