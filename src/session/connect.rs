//! Choosing a member for a new client (or, when pooling, for the next transaction),
//! waiting up to the listener's `connect_wait` for one to appear, and registering the
//! session so fencing can reach it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::Shared;
use crate::protocol::PgError;
use crate::route::balance::pick;
use crate::route::cancel::BackendAddr;
use crate::route::{Listener, SessionGuard};
use crate::stats::GaugeGuard;
use crate::topology::{Service, Topology};

/// A connected, registered backend (passthrough).
pub struct Backend {
    pub stream: TcpStream,
    pub addr: BackendAddr,
    /// Keeps the session registered on the member; [`SessionGuard::fenced`] says when a
    /// fence kills it.
    pub guard: SessionGuard,
}

/// How one attempt on a member went.
pub enum Attempt<T> {
    Done(T),
    /// The member left the role while we tried: choose again.
    Left,
    /// This member failed; try another (the text is kept for the final error).
    Failed(String),
    /// Give up at once with this error.
    Fatal(PgError),
}

/// How often a client waiting for a member retries members that refused it.
const RETRY_TICK: Duration = Duration::from_millis(250);

/// The same while the leader-key holder is being promoted: `pg_ctl promote` ends within a
/// few hundred milliseconds of Patroni taking the key, and every tick waited past that is
/// added to a switchover's write gap.
const PROMOTE_TICK: Duration = Duration::from_millis(40);

/// Runs `attempt` on members of the listener's role set, balanced, until one succeeds,
/// waiting up to `connect_wait` for the set to change when none is left to try.
/// Waits while the leader changes count as a switchover hold.
pub async fn with_member<T, F, Fut>(
    shared: &Shared,
    listener: &Arc<Listener>,
    attempt: F,
) -> Result<T, PgError>
where
    F: FnMut(BackendAddr) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let start = Instant::now();
    let mut hold = None;
    let result = find_member(shared, listener, attempt, &mut hold).await;
    if hold.take().is_some() {
        shared
            .stats
            .switchover
            .record(start.elapsed(), result.is_ok());
    }
    result
}

async fn find_member<'s, T, F, Fut>(
    shared: &'s Shared,
    listener: &Arc<Listener>,
    mut attempt: F,
    hold: &mut Option<GaugeGuard<'s>>,
) -> Result<T, PgError>
where
    F: FnMut(BackendAddr) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let start = Instant::now();
    let mut changes = shared.topology.subscribe();
    let mut failed: Vec<String> = Vec::new();
    let mut last_error: Option<String> = None;
    loop {
        let topology = shared.topology.load();
        let addr = {
            let cands: crate::route::listener::Members = listener
                .candidates(&topology)
                .into_iter()
                .filter(|m| !failed.iter().any(|f| f == m.name()))
                .collect();
            pick(&cands, listener.tuning.load().balance, &listener.rr, |n| {
                listener.sessions.count(n)
            })
            .map(|m| {
                let (host, port) = m.addr().unwrap_or(("", 0));
                BackendAddr {
                    member: m.name().to_owned(),
                    host: host.to_owned(),
                    port,
                }
            })
        };
        if let Some(addr) = addr {
            let member = addr.member.clone();
            match attempt(addr).await {
                Attempt::Done(t) => return Ok(t),
                Attempt::Left => continue,
                Attempt::Fatal(e) => return Err(e),
                Attempt::Failed(e) => {
                    tracing::warn!(%member, error = %e, "member failed");
                    last_error = Some(format!("{member}: {e}"));
                    failed.push(member);
                    continue;
                }
            }
        }
        // Re-evaluated each round: a leader change that starts while we wait extends it.
        let limit = if last_error.is_some() {
            listener.wait_limit_unreachable(&topology)
        } else {
            listener.wait_limit(&topology)
        };
        let deadline = start + limit;
        let now = Instant::now();
        if now >= deadline {
            return Err(no_member_error(
                listener,
                &topology,
                last_error,
                now - start,
            ));
        }
        if hold.is_none() && listener.service == Service::Primary && topology.leader_changing() {
            *hold = Some(shared.stats.switchover.holding.enter());
        }
        let every = if listener.promoting(&topology).is_some() {
            PROMOTE_TICK
        } else {
            RETRY_TICK
        };
        let tick = (now + every).min(deadline);
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep_until(tick) => failed.clear(),
        }
    }
}

/// Connects a passthrough session to a member of the listener's role set.
pub async fn connect(shared: &Shared, listener: &Arc<Listener>) -> Result<Backend, PgError> {
    with_member(shared, listener, |addr| try_member(shared, listener, addr)).await
}

/// Connects to one member; `Left` if it stopped serving the listener meanwhile.
async fn try_member(
    shared: &Shared,
    listener: &Arc<Listener>,
    addr: BackendAddr,
) -> Attempt<Backend> {
    let connect = TcpStream::connect((addr.host.as_str(), addr.port));
    let limit = listener.tuning.load().server_connect_timeout;
    let stream = match tokio::time::timeout(limit, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Attempt::Failed(e.to_string()),
        Err(_) => return Attempt::Failed(format!("no answer within {limit:?}")),
    };
    crate::tcp::server_connection(&stream, &addr.member);
    // Register before the final check: a publish after this point fences us, a publish
    // before it is seen by the check. Either way no byte reaches a member that left.
    let guard = listener.sessions.register(&addr.member);
    if !listener.serves(&shared.topology.load(), &addr.member) {
        return Attempt::Left;
    }
    Attempt::Done(Backend {
        stream,
        addr,
        guard,
    })
}

fn no_member_error(
    listener: &Listener,
    topology: &Topology,
    last_error: Option<String>,
    waited: Duration,
) -> PgError {
    let role = listener.service;
    let waited = Duration::from_millis(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
    let hint = "Check the cluster with `patronictl list`; rolegate follows it and routes as soon as a member has the role.";
    if let Some(e) = last_error {
        return PgError::fatal("08001", format!("rolegate: could not connect to any {role} member for listener {} within {waited:?}", listener.name))
            .with_detail(format!("last error: {e}"))
            .with_hint(hint);
    }
    let state = match (&topology.leader, topology.generation) {
        (_, 0) => "rolegate has not read the cluster state from the DCS yet".to_owned(),
        (None, _) => "the cluster has no leader".to_owned(),
        (Some(l), _) => {
            let m = topology.member(l).map_or("no member key".to_owned(), |m| {
                format!("{} / {}", m.record.role.as_str(), m.record.state)
            });
            format!("leader {l} is {m}")
        }
    };
    PgError::fatal(
        "57P03",
        format!(
            "rolegate: no {role} member is available for listener {} (waited {waited:?})",
            listener.name
        ),
    )
    .with_detail(state)
    .with_hint(hint)
}
