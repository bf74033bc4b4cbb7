//! The edges of a pooled session's relay: what a server's answers mean for its statement
//! cache and the counters, how a session ends (server back to the pool or closed), and the
//! errors rolegate itself sends when it ends one.

use std::time::{Duration, Instant};

use super::expect::Expected;
use super::frontend::Flow;
use super::{apply, Client, Held};
use crate::config::PoolMode;
use crate::pool::prepared::ServerStatements;
use crate::protocol::PgError;
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
    for s in fx.prepared.drain(..) {
        c.setup
            .known_statements
            .add(&c.login.database, &c.login.user, s);
    }
    if fx.reset {
        statements.clear();
        fx.reset = false;
    }
    for s in fx.not_prepared.drain(..) {
        statements.remove(&s);
    }
    for s in fx.still_prepared.drain(..) {
        statements.restore(s);
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

pub(super) fn lost() -> PgError {
    PgError::fatal(
        "08006",
        "rolegate: the server connection was lost in the middle of a transaction",
    )
    .with_hint("Reconnect and retry the transaction.")
}
