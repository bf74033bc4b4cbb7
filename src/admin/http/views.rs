//! What the admin endpoints show, built from one topology snapshot and the counters:
//! plain serializable structs shared by the JSON endpoints and the stats page.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::AdminState;
use crate::route::Listener;
use crate::topology::{Member, Service, Topology};

/// `/topology`.
#[derive(Debug, Serialize)]
pub struct TopologyView {
    pub scope: String,
    pub leader: Option<String>,
    /// The member port `primary` routes to now (none while the leader changes or the DCS is lost).
    pub primary: Option<String>,
    pub timeline: Option<u64>,
    pub generation: u64,
    pub revision: i64,
    pub sync_mode: &'static str,
    pub paused: bool,
    pub standby_cluster: bool,
    /// A switchover/failover is pending: (from, to).
    pub failover: Option<(Option<String>, Option<String>)>,
    pub leader_changing: bool,
    pub dcs: DcsView,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Serialize)]
pub struct DcsView {
    pub watch_up: bool,
    /// No DCS contact for longer than Patroni's ttl: no primary is served.
    pub stale: bool,
    pub last_contact_age_seconds: Option<f64>,
    pub last_event: Option<String>,
    pub last_event_age_seconds: Option<f64>,
    pub events: u64,
    pub watch_restarts: u64,
    pub ttl_seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct MemberView {
    pub name: String,
    /// What rolegate routes it as: primary, sync, async, leader (not yet routable), or
    /// Patroni's role when it serves nothing.
    pub route_role: String,
    /// Patroni's role and state as in its member key.
    pub role: String,
    pub state: String,
    pub host: Option<String>,
    pub port: u16,
    pub lag_bytes: Option<u64>,
    pub sync: bool,
    pub is_primary: bool,
    pub is_leader: bool,
    pub timeline: Option<u64>,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// One entry of `/listeners`.
#[derive(Debug, Serialize)]
pub struct ListenerView {
    pub name: String,
    pub addr: String,
    pub role: &'static str,
    pub pool_mode: &'static str,
    /// Members new work may go to now.
    pub members: Vec<String>,
    pub clients_active: u64,
    pub clients_waiting: u64,
    pub clients_idle: u64,
    pub servers_active: u64,
    pub servers_idle: u64,
    pub transactions: u64,
    pub queries: u64,
    pub tps: f64,
    pub errors: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub query_p50_seconds: Option<f64>,
    pub query_p99_seconds: Option<f64>,
}

/// One entry of `/pools`.
#[derive(Debug, Serialize)]
pub struct PoolView {
    pub listener: String,
    pub member: String,
    pub database: String,
    pub user: String,
    pub active: u64,
    pub idle: u64,
    pub waiting: u64,
    pub size: u64,
    pub opened: u64,
    pub closed: u64,
    pub draining: bool,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The topology as the stats page and `/topology` show it.
#[must_use]
pub fn topology(state: &AdminState) -> TopologyView {
    let t = state.topology.load();
    let dcs = &state.topology.dcs;
    let last = dcs.last_event();
    TopologyView {
        scope: state.scope.clone(),
        leader: t.leader.clone(),
        primary: t.primary().map(|m| m.name().to_owned()),
        timeline: t.timeline,
        generation: t.generation,
        revision: t.revision,
        sync_mode: match t.sync_mode {
            crate::topology::SyncMode::Off => "off",
            crate::topology::SyncMode::On => "on",
            crate::topology::SyncMode::Quorum => "quorum",
        },
        paused: t.paused,
        standby_cluster: t.standby_cluster,
        failover: t.failover.clone(),
        leader_changing: t.leader_changing(),
        dcs: DcsView {
            watch_up: dcs.watch_up(),
            stale: t.dcs_lost,
            last_contact_age_seconds: state.topology.last_contact().map(|i| secs(i.elapsed())),
            last_event_age_seconds: last.as_ref().map(|(age, _)| secs(*age)),
            last_event: last.map(|(_, what)| what),
            events: dcs.events.get(),
            watch_restarts: dcs.watch_restarts.get(),
            ttl_seconds: t.ttl_secs,
        },
        members: t.members.iter().map(|m| member(&t, m)).collect(),
    }
}

fn member(t: &Topology, m: &Member) -> MemberView {
    let is_leader = t.leader.as_deref() == Some(m.name());
    let is_primary = m.primary_ok && !t.dcs_lost;
    let route_role = if is_primary {
        "primary".to_owned()
    } else if m.replica_ok && m.is_sync {
        "sync".to_owned()
    } else if m.replica_ok {
        "async".to_owned()
    } else if is_leader {
        "leader".to_owned()
    } else {
        m.record.role.as_str().to_owned()
    };
    MemberView {
        name: m.name().to_owned(),
        route_role,
        role: m.record.role.as_str().to_owned(),
        state: m.record.state.clone(),
        host: m.record.host.clone(),
        port: m.record.port,
        lag_bytes: m.lag_bytes,
        sync: m.is_sync,
        is_primary,
        is_leader,
        timeline: m.record.timeline,
        tags: m.record.tags.raw.clone(),
    }
}

/// Every listener with its clients, servers and rates.
#[must_use]
pub fn listeners(state: &AdminState) -> Vec<ListenerView> {
    let t = state.topology.load();
    state
        .listeners
        .load()
        .iter()
        .map(|l| listener(state, &t, l))
        .collect()
}

fn listener(state: &AdminState, t: &Topology, l: &Arc<Listener>) -> ListenerView {
    let s = &l.stats;
    let (servers_active, servers_idle) = match &l.pool {
        Some(p) => p.pools.all().iter().fold((0, 0), |(a, i), (_, pool)| {
            let (busy, idle) = pool.counts();
            (a + busy as u64, i + idle as u64)
        }),
        // Passthrough: one server connection per connected session.
        None => (l.sessions.counts().iter().map(|(_, n)| *n as u64).sum(), 0),
    };
    let q = s.query_time.snapshot();
    ListenerView {
        name: l.name.to_string(),
        addr: l.addr.to_string(),
        role: l.service.as_str(),
        pool_mode: match l.pool.as_ref().map(|p| p.mode) {
            None => "none",
            Some(crate::config::PoolMode::Session) => "session",
            Some(crate::config::PoolMode::Transaction) => "transaction",
        },
        members: l
            .candidates(t)
            .iter()
            .map(|m| m.name().to_owned())
            .collect(),
        clients_active: s.clients_active.get(),
        clients_waiting: s.clients_waiting.get(),
        clients_idle: s.clients_idle(),
        servers_active,
        servers_idle,
        transactions: s.transactions.get(),
        queries: s.queries.get(),
        tps: state.rates.tps(&l.name),
        errors: s.errors.total(),
        bytes_received: s.bytes_received.get(),
        bytes_sent: s.bytes_sent.get(),
        query_p50_seconds: q.quantile(0.5),
        query_p99_seconds: q.quantile(0.99),
    }
}

/// Every pool of every pooling listener.
#[must_use]
pub fn pools(state: &AdminState) -> Vec<PoolView> {
    let mut out = Vec::new();
    for l in state.listeners.load().iter() {
        let Some(setup) = &l.pool else { continue };
        for (key, pool) in setup.pools.all() {
            let (active, idle) = pool.counts();
            out.push(PoolView {
                listener: l.name.to_string(),
                member: key.member,
                database: key.database.to_string(),
                user: key.user.to_string(),
                active: active as u64,
                idle: idle as u64,
                waiting: pool.waiting.get(),
                size: pool.settings.load().size as u64,
                opened: pool.opened.load(std::sync::atomic::Ordering::Relaxed),
                closed: pool.closed.load(std::sync::atomic::Ordering::Relaxed),
                draining: pool.is_draining(),
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.listener, &a.member, &a.database, &a.user).cmp(&(
            &b.listener,
            &b.member,
            &b.database,
            &b.user,
        ))
    });
    out
}

/// The members of `service`'s set now, with the lag limit of the first listener of that role.
#[must_use]
pub fn role_set(state: &AdminState, t: &Topology, service: Service) -> Vec<String> {
    let max_lag = state
        .listeners
        .load()
        .iter()
        .find(|l| l.service == service)
        .and_then(|l| l.tuning.load().max_lag);
    t.candidates(service, max_lag)
        .map(|m| m.name().to_owned())
        .collect()
}
