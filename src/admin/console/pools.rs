//! SHOW POOLS, SHOW STATS, SHOW LISTS: pool and client counts per PgBouncer "database"
//! (here `<database>@<listener>`), from the listeners' pools and the client registry.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::table::{Cell, Kind, Table};
use crate::config::PoolMode;
use crate::route::Listener;
use crate::session::{ClientState, Shared};

/// The console's name of (database, listener).
#[must_use]
pub fn db_name(database: &str, listener: &str) -> String {
    format!("{database}@{listener}")
}

/// A listener's pool mode as PgBouncer prints it; passthrough listeners say `passthrough`.
#[must_use]
pub fn pool_mode(l: &Listener) -> &'static str {
    match l.pool.as_ref().map(|p| p.mode) {
        Some(PoolMode::Session) => "session",
        Some(PoolMode::Transaction) => "transaction",
        None => "passthrough",
    }
}

/// One SHOW POOLS row being added up.
#[derive(Default)]
struct PoolRow {
    cl_active: usize,
    cl_waiting: usize,
    sv_active: usize,
    sv_idle: usize,
    /// Start of the longest current wait.
    oldest_wait: Option<SystemTime>,
    mode: &'static str,
}

/// SHOW POOLS: one row per (database, user) of each listener, summed over members.
#[must_use]
pub fn pools(shared: &Shared) -> Table {
    let mut rows: BTreeMap<(String, String), PoolRow> = BTreeMap::new();
    for l in shared.listeners() {
        let mode = pool_mode(l);
        if let Some(setup) = &l.pool {
            for (key, pool) in setup.pools.all() {
                let row = rows
                    .entry((db_name(&key.database, &l.name), key.user.to_string()))
                    .or_default();
                let (busy, idle) = pool.counts();
                row.sv_active += busy;
                row.sv_idle += idle;
                row.mode = mode;
            }
        }
    }
    let pooled: BTreeMap<&str, &'static str> = shared
        .listeners()
        .iter()
        .map(|l| (&*l.name, pool_mode(l)))
        .collect();
    for c in shared.clients.rows() {
        let mode = pooled.get(&*c.listener).copied().unwrap_or("passthrough");
        let row = rows
            .entry((db_name(&c.database, &c.listener), c.user.to_string()))
            .or_default();
        row.mode = mode;
        match c.state {
            ClientState::Waiting => {
                row.cl_waiting += 1;
                row.oldest_wait = Some(row.oldest_wait.map_or(c.since, |w| w.min(c.since)));
            }
            ClientState::Active | ClientState::Idle => {
                row.cl_active += 1;
                if !c.pooled && c.state == ClientState::Active {
                    row.sv_active += 1; // a passthrough session is its own server connection
                }
            }
            ClientState::Login => {}
        }
    }
    let mut t = Table::new(&[
        ("database", Kind::Text),
        ("user", Kind::Text),
        ("cl_active", Kind::Int),
        ("cl_waiting", Kind::Int),
        ("cl_active_cancel_req", Kind::Int),
        ("cl_waiting_cancel_req", Kind::Int),
        ("sv_active", Kind::Int),
        ("sv_active_cancel", Kind::Int),
        ("sv_being_canceled", Kind::Int),
        ("sv_idle", Kind::Int),
        ("sv_used", Kind::Int),
        ("sv_tested", Kind::Int),
        ("sv_login", Kind::Int),
        ("maxwait", Kind::Int),
        ("maxwait_us", Kind::Int),
        ("pool_mode", Kind::Text),
        ("load_balance_hosts", Kind::Text),
    ]);
    let now = SystemTime::now();
    for ((db, user), r) in rows {
        let wait = r
            .oldest_wait
            .and_then(|w| now.duration_since(w).ok())
            .unwrap_or_default();
        t.push(vec![
            db.into(),
            user.into(),
            r.cl_active.into(),
            r.cl_waiting.into(),
            0u32.into(),
            0u32.into(),
            r.sv_active.into(),
            0u32.into(),
            0u32.into(),
            r.sv_idle.into(),
            0u32.into(),
            0u32.into(),
            0u32.into(),
            wait.as_secs().into(),
            wait.subsec_micros().into(),
            r.mode.into(),
            Cell::Null,
        ]);
    }
    t
}

/// SHOW STATS: one row per listener (its counters cover every database behind it),
/// named `*@<listener>`. Times in microseconds; averages are per transaction/query since
/// start (PgBouncer's are per second over the last period; rolegate keeps no periods).
#[must_use]
pub fn stats(shared: &Shared) -> Table {
    let mut t = Table::new(&[
        ("database", Kind::Text),
        ("total_server_assignment_count", Kind::Int),
        ("total_xact_count", Kind::Int),
        ("total_query_count", Kind::Int),
        ("total_received", Kind::Int),
        ("total_sent", Kind::Int),
        ("total_xact_time", Kind::Int),
        ("total_query_time", Kind::Int),
        ("total_wait_time", Kind::Int),
        ("avg_xact_time", Kind::Int),
        ("avg_query_time", Kind::Int),
        ("avg_wait_time", Kind::Int),
    ]);
    let micros = |s: f64| {
        // Sums of durations in seconds; whole microseconds are what PgBouncer prints.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let us = (s * 1e6).round().max(0.0) as u64;
        us
    };
    for l in shared.listeners() {
        let s = &l.stats;
        let (xact, query, wait) = (
            s.transaction_time.snapshot(),
            s.query_time.snapshot(),
            s.wait_time.snapshot(),
        );
        let avg = |sum: u64, n: u64| sum.checked_div(n).unwrap_or(0);
        let (xt, qt, wt) = (
            micros(xact.sum_seconds),
            micros(query.sum_seconds),
            micros(wait.sum_seconds),
        );
        t.push(vec![
            db_name("*", &l.name).into(),
            wait.count.into(),
            s.transactions.get().into(),
            s.queries.get().into(),
            s.bytes_received.get().into(),
            s.bytes_sent.get().into(),
            xt.into(),
            qt.into(),
            wt.into(),
            avg(xt, xact.count).into(),
            avg(qt, query.count).into(),
            avg(wt, wait.count).into(),
        ]);
    }
    t
}

/// SHOW LISTS: PgBouncer's internal list lengths, from rolegate's equivalents.
#[must_use]
pub fn lists(shared: &Shared) -> Table {
    let clients = shared.clients.rows();
    let mut pools = 0;
    let mut used_servers = 0;
    let mut free_servers = 0;
    let mut dbs = std::collections::BTreeSet::new();
    let mut users = std::collections::BTreeSet::new();
    for l in shared.listeners() {
        if let Some(setup) = &l.pool {
            for (k, p) in setup.pools.all() {
                pools += 1;
                let (busy, idle) = p.counts();
                used_servers += busy;
                free_servers += idle;
                dbs.insert(db_name(&k.database, &l.name));
                users.insert(k.user);
            }
        }
    }
    for c in &clients {
        dbs.insert(db_name(&c.database, &c.listener));
        users.insert(c.user.clone());
        if !c.pooled {
            used_servers += 1;
        }
    }
    let count = |s: ClientState| clients.iter().filter(|c| c.state == s).count();
    let mut t = Table::new(&[("list", Kind::Text), ("items", Kind::Int)]);
    for (name, n) in [
        ("databases", dbs.len()),
        ("users", users.len()),
        ("peers", 0),
        ("pools", pools),
        ("peer_pools", 0),
        ("free_clients", 0),
        ("used_clients", clients.len()),
        ("login_clients", count(ClientState::Login)),
        ("free_servers", free_servers),
        ("used_servers", used_servers),
        ("dns_names", 0),
        ("dns_zones", 0),
        ("dns_queries", 0),
        ("dns_pending", 0),
    ] {
        t.push(vec![name.into(), n.into()]);
    }
    t
}
