//! SHOW DATABASES, SHOW TOPOLOGY, SHOW CONFIG, SHOW VERSION, SHOW HELP: what each
//! listener routes to now (from the topology snapshot), the members as rolegate sees
//! them, and the config in force.

use std::collections::BTreeSet;

use super::pools::{db_name, pool_mode};
use super::table::{Cell, Kind, Table};
use crate::config::Balance;
use crate::route::Listener;
use crate::session::{ClientState, Shared, Stop};
use crate::topology::Topology;

/// The databases of a listener that have pools or clients now, plus `*` (any database,
/// as PgBouncer's auto-database).
fn databases_of(shared: &Shared, l: &Listener) -> BTreeSet<String> {
    let mut dbs = BTreeSet::from(["*".to_owned()]);
    if let Some(setup) = &l.pool {
        dbs.extend(
            setup
                .pools
                .all()
                .into_iter()
                .map(|(k, _)| k.database.to_string()),
        );
    }
    dbs.extend(
        shared
            .clients
            .rows()
            .into_iter()
            .filter(|c| *c.listener == *l.name)
            .map(|c| c.database.to_string()),
    );
    dbs
}

#[must_use]
pub fn balance(b: Balance) -> &'static str {
    match b {
        Balance::RoundRobin => "round-robin",
        Balance::LeastConnections => "least-connections",
    }
}

/// SHOW DATABASES: one row per (database, listener); host/port are the members the
/// listener routes to now.
#[must_use]
pub fn databases(shared: &Shared) -> Table {
    let topology = shared.topology.load();
    let mut t = Table::new(&[
        ("name", Kind::Text),
        ("host", Kind::Text),
        ("port", Kind::Int),
        ("database", Kind::Text),
        ("force_user", Kind::Text),
        ("pool_size", Kind::Int),
        ("min_pool_size", Kind::Int),
        ("reserve_pool_size", Kind::Int),
        ("server_lifetime", Kind::Int),
        ("pool_mode", Kind::Text),
        ("load_balance_hosts", Kind::Text),
        ("max_connections", Kind::Int),
        ("current_connections", Kind::Int),
        ("max_client_connections", Kind::Int),
        ("current_client_connections", Kind::Int),
        ("paused", Kind::Int),
        ("disabled", Kind::Int),
        ("listener", Kind::Text),
        ("role", Kind::Text),
        ("members", Kind::Text),
    ]);
    let clients = shared.clients.rows();
    for l in shared.listeners() {
        let members = l.candidates(&topology);
        let hosts: Vec<String> = members
            .iter()
            .filter_map(|m| m.addr().map(|(h, _)| h.to_owned()))
            .collect();
        let port = members.iter().find_map(|m| m.addr().map(|(_, p)| p));
        let names: Vec<&str> = members.iter().map(|m| m.name()).collect();
        let settings = l.pool.as_ref().map(crate::pool::PoolSetup::settings);
        let tuning = l.tuning.load();
        for db in databases_of(shared, l) {
            let any = db == "*";
            let here = |c: &&crate::session::clients::ClientRow| {
                *c.listener == *l.name && (any || *c.database == *db)
            };
            let n_clients = clients
                .iter()
                .filter(here)
                .filter(|c| c.state != ClientState::Login)
                .count();
            let servers = match &l.pool {
                Some(setup) => setup
                    .pools
                    .all()
                    .iter()
                    .filter(|(k, _)| any || *k.database == *db)
                    .map(|(_, p)| {
                        let (busy, idle) = p.counts();
                        busy + idle
                    })
                    .sum(),
                None => clients
                    .iter()
                    .filter(here)
                    .filter(|c| c.server.is_some())
                    .count(),
            };
            let s = settings.as_deref();
            t.push(vec![
                db_name(&db, &l.name).into(),
                (!hosts.is_empty()).then(|| hosts.join(",")).into(),
                port.into(),
                db.clone().into(),
                Cell::Null,
                s.map(|s| s.size).into(),
                s.map(|s| s.min_size).into(),
                s.map(|s| s.reserve_size).into(),
                s.map(|s| s.lifetime.as_secs()).into(),
                pool_mode(l).into(),
                balance(tuning.balance).into(),
                s.map(|s| s.db_size).into(),
                servers.into(),
                s.map(|s| s.max_client_conn).into(),
                n_clients.into(),
                i64::from(shared.gate.is_paused(&l.name, &db)).into(),
                i64::from(shared.gate.is_disabled(&l.name, &db)).into(),
                l.name.clone().into(),
                l.service.as_str().into(),
                names.join(",").into(),
            ]);
        }
    }
    t
}

/// SHOW TOPOLOGY: every member in the snapshot with its role, state, address, lag,
/// timeline and replication mode, and which listeners route to it now.
#[must_use]
pub fn topology(shared: &Shared) -> Table {
    let topo: std::sync::Arc<Topology> = shared.topology.load();
    let mut t = Table::new(&[
        ("member", Kind::Text),
        ("role", Kind::Text),
        ("state", Kind::Text),
        ("host", Kind::Text),
        ("port", Kind::Int),
        ("lag", Kind::Int),
        ("timeline", Kind::Int),
        ("replication", Kind::Text),
        ("leader", Kind::Int),
        ("listeners", Kind::Text),
    ]);
    for m in &topo.members {
        let leader = topo.leader.as_deref() == Some(m.name());
        let replication = if leader {
            Cell::Null
        } else if m.is_sync {
            "sync".into()
        } else {
            "async".into()
        };
        let routes: Vec<&str> = shared
            .listeners()
            .iter()
            .filter(|l| l.serves(&topo, m.name()))
            .map(|l| &*l.name)
            .collect();
        t.push(vec![
            m.name().into(),
            m.record.role.as_str().into(),
            m.record.state.clone().into(),
            m.addr().map(|(h, _)| h.to_owned()).into(),
            m.addr().map(|(_, p)| p).into(),
            m.lag_bytes.into(),
            m.record.timeline.into(),
            replication,
            i64::from(leader).into(),
            routes.join(",").into(),
        ]);
    }
    t
}

/// SHOW STATE: PgBouncer's `active`, `paused`, `suspended`, plus what is paused and
/// whether the process is stopping.
#[must_use]
pub fn state(shared: &Shared) -> Table {
    let mut t = Table::new(&[("key", Kind::Text), ("value", Kind::Text)]);
    let paused = shared.gate.paused();
    let stop = match shared.gate.stop_state() {
        Stop::Running => "no",
        Stop::Draining => "draining",
        Stop::Now => "now",
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    for (k, v) in [
        ("active", yes(stop == "no").to_owned()),
        ("paused", yes(paused.iter().any(|p| p == "*")).to_owned()),
        ("suspended", "no".to_owned()),
        ("paused_databases", paused.join(",")),
        ("stopping", stop.to_owned()),
    ] {
        t.push(vec![k.into(), v.into()]);
    }
    t
}

/// SHOW VERSION.
#[must_use]
pub fn version() -> Table {
    let mut t = Table::new(&[("version", Kind::Text)]);
    t.push(vec![concat!("rolegate ", env!("CARGO_PKG_VERSION")).into()]);
    t
}

/// SHOW HELP: the commands.
#[must_use]
pub fn help() -> Table {
    let mut t = Table::new(&[("command", Kind::Text), ("description", Kind::Text)]);
    for (c, d) in [
        (
            "SHOW POOLS",
            "clients and server connections per database@listener and user",
        ),
        (
            "SHOW STATS",
            "transactions, queries, bytes and wait time per listener",
        ),
        ("SHOW CLIENTS", "one row per client connection"),
        ("SHOW SERVERS", "one row per server connection"),
        (
            "SHOW DATABASES",
            "per database@listener: members routed to, limits, paused",
        ),
        (
            "SHOW LISTS",
            "counts of databases, users, pools, clients, servers",
        ),
        (
            "SHOW TOPOLOGY",
            "cluster members: role, state, lag, timeline, sync/async",
        ),
        (
            "SHOW CONFIG",
            "the config in force; changeable = applied by RELOAD",
        ),
        ("SHOW VERSION", "rolegate's version"),
        (
            "SHOW STATS_TOTALS, SHOW TOTALS",
            "the total_* counters per listener, and summed",
        ),
        ("SHOW USERS", "server and client connections per user"),
        (
            "SHOW STATE",
            "active, paused (everything), paused databases, stopping",
        ),
        (
            "PAUSE [db]",
            "wait for server connections to be released, then hold new transactions",
        ),
        ("RESUME [db]", "release a PAUSE"),
        (
            "RECONNECT [db]",
            "close server connections as they are released",
        ),
        (
            "KILL db",
            "end the clients and server connections of a database",
        ),
        ("DISABLE db", "refuse new clients of a database (57P03)"),
        ("ENABLE db", "undo DISABLE"),
        (
            "RELOAD",
            "re-read the config file and apply what can change live",
        ),
        (
            "SHUTDOWN",
            "stop like SIGTERM: finish transactions, then exit",
        ),
    ] {
        t.push(vec![c.into(), d.into()]);
    }
    t
}
