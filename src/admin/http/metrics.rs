//! `/metrics`: Prometheus text rendered at scrape time. Counters and gauges are read from
//! the shared atomics and set on a fresh `metrics-exporter-prometheus` recorder (used as a
//! local recorder: no global state, no HTTP listener of its own, and series of pools or
//! members that are gone disappear); the fixed-bucket histograms are written directly.

use std::collections::BTreeMap;
use std::fmt::Write;

use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use super::views::role_set;
use super::AdminState;
use crate::stats::HistogramSnapshot;
use crate::topology::Service;

/// The whole `/metrics` body.
#[must_use]
pub fn render(state: &AdminState) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe();
        listeners(state);
        topology(state);
        process(state);
    });
    let mut out = handle.render();
    histograms(state, &mut out);
    out
}

#[allow(clippy::cast_precision_loss)]
fn f(n: u64) -> f64 {
    n as f64
}

fn listeners(state: &AdminState) {
    for l in state.listeners.load().iter() {
        let s = &l.stats;
        let name = l.name.clone();
        for (st, v) in [
            ("active", s.clients_active.get()),
            ("waiting", s.clients_waiting.get()),
            ("idle", s.clients_idle()),
        ] {
            gauge!("rolegate_client_connections", "listener" => name.clone(), "state" => st)
                .set(f(v));
        }
        counter!("rolegate_client_connections_accepted_total", "listener" => name.clone())
            .absolute(s.clients_accepted.get());
        counter!("rolegate_transactions_total", "listener" => name.clone())
            .absolute(s.transactions.get());
        counter!("rolegate_queries_total", "listener" => name.clone()).absolute(s.queries.get());
        counter!("rolegate_client_received_bytes_total", "listener" => name.clone())
            .absolute(s.bytes_received.get());
        counter!("rolegate_client_sent_bytes_total", "listener" => name.clone())
            .absolute(s.bytes_sent.get());
        for (class, n) in s.errors.nonzero() {
            counter!("rolegate_errors_total", "listener" => name.clone(), "class" => class)
                .absolute(n);
        }
        gauge!("rolegate_listener_members", "listener" => name.clone(), "role" => l.service.as_str())
            .set(f(l.candidates(&state.topology.load()).len() as u64));
        servers(l, &name);
    }
}

/// Server connections by (listener, member, state), summed over databases and users.
fn servers(l: &crate::route::Listener, name: &str) {
    let mut by_member: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    match &l.pool {
        Some(p) => {
            for (key, pool) in p.pools.all() {
                let (busy, idle) = pool.counts();
                let e = by_member.entry(key.member).or_default();
                e[0] += busy as u64;
                e[1] += idle as u64;
                e[2] += pool.opened.load(std::sync::atomic::Ordering::Relaxed);
                e[3] += pool.closed.load(std::sync::atomic::Ordering::Relaxed);
            }
        }
        None => {
            for (member, n) in l.sessions.counts() {
                by_member.entry(member).or_default()[0] += n as u64;
            }
        }
    }
    for (member, [active, idle, opened, closed]) in by_member {
        for (st, v) in [("active", active), ("idle", idle)] {
            gauge!("rolegate_server_connections", "listener" => name.to_owned(), "member" => member.clone(), "state" => st)
                .set(f(v));
        }
        if l.pool.is_some() {
            counter!("rolegate_server_connections_opened_total", "listener" => name.to_owned(), "member" => member.clone())
                .absolute(opened);
            counter!("rolegate_server_connections_closed_total", "listener" => name.to_owned(), "member" => member)
                .absolute(closed);
        }
    }
}

fn topology(state: &AdminState) {
    let t = state.topology.load();
    for m in &t.members {
        let is_primary = m.primary_ok && !t.dcs_lost;
        gauge!("rolegate_member_is_primary", "member" => m.name().to_owned()).set(if is_primary {
            1.0
        } else {
            0.0
        });
        gauge!("rolegate_member_is_sync", "member" => m.name().to_owned()).set(if m.is_sync {
            1.0
        } else {
            0.0
        });
        if let Some(lag) = m.lag_bytes {
            gauge!("rolegate_member_lag_bytes", "member" => m.name().to_owned()).set(f(lag));
        }
    }
    for service in [
        Service::Primary,
        Service::Replica,
        Service::Sync,
        Service::Async,
    ] {
        gauge!("rolegate_role_members", "role" => service.as_str())
            .set(f(role_set(state, &t, service).len() as u64));
    }
    gauge!("rolegate_topology_generation").set(f(t.generation));
    gauge!("rolegate_leader_changing").set(if t.leader_changing() { 1.0 } else { 0.0 });
    let dcs = &state.topology.dcs;
    gauge!("rolegate_dcs_watch_up").set(if dcs.watch_up() { 1.0 } else { 0.0 });
    gauge!("rolegate_dcs_stale").set(if t.dcs_lost { 1.0 } else { 0.0 });
    counter!("rolegate_dcs_events_total").absolute(dcs.events.get());
    counter!("rolegate_dcs_watch_restarts_total").absolute(dcs.watch_restarts.get());
    if let Some((age, _)) = dcs.last_event() {
        gauge!("rolegate_dcs_last_event_age_seconds").set(age.as_secs_f64());
    }
    if let Some(at) = state.topology.last_contact() {
        gauge!("rolegate_dcs_last_contact_age_seconds").set(at.elapsed().as_secs_f64());
    }
}

fn process(state: &AdminState) {
    let s = &state.stats;
    counter!("rolegate_switchover_holds_total").absolute(s.switchover.holds.get());
    counter!("rolegate_switchover_holds_failed_total").absolute(s.switchover.holds_failed.get());
    gauge!("rolegate_switchover_holding_clients").set(f(s.switchover.holding.get()));
    counter!("rolegate_config_reloads_total", "result" => "ok").absolute(s.config_reloads.ok.get());
    counter!("rolegate_config_reloads_total", "result" => "error")
        .absolute(s.config_reloads.error.get());
    gauge!("rolegate_uptime_seconds").set(s.started.elapsed().as_secs_f64());
}

fn describe() {
    describe_gauge!("rolegate_client_connections", "Client connections by listener and state (active: holding a server; waiting: for a member or a pooled server; idle).");
    describe_counter!(
        "rolegate_client_connections_accepted_total",
        "Client connections accepted."
    );
    describe_counter!(
        "rolegate_transactions_total",
        "Transactions ended (ReadyForQuery idle) on pooled listeners."
    );
    describe_counter!(
        "rolegate_queries_total",
        "Queries answered (ReadyForQuery) on pooled listeners."
    );
    describe_counter!(
        "rolegate_client_received_bytes_total",
        "Bytes read from clients."
    );
    describe_counter!(
        "rolegate_client_sent_bytes_total",
        "Bytes written to clients."
    );
    describe_counter!(
        "rolegate_errors_total",
        "ErrorResponses sent to clients, by SQLSTATE class."
    );
    describe_gauge!(
        "rolegate_listener_members",
        "Members a listener may send new work to now."
    );
    describe_gauge!(
        "rolegate_server_connections",
        "Server connections by listener, member and state."
    );
    describe_counter!(
        "rolegate_server_connections_opened_total",
        "Pooled server connections opened."
    );
    describe_counter!(
        "rolegate_server_connections_closed_total",
        "Pooled server connections closed."
    );
    describe_gauge!(
        "rolegate_member_is_primary",
        "1 when the member is the primary rolegate routes writes to."
    );
    describe_gauge!(
        "rolegate_member_is_sync",
        "1 when the member is a synchronous standby."
    );
    describe_gauge!(
        "rolegate_member_lag_bytes",
        "Bytes the member is behind the leader."
    );
    describe_gauge!(
        "rolegate_role_members",
        "Members in each role set (primary, replica, sync, async)."
    );
    describe_gauge!(
        "rolegate_topology_generation",
        "Generation of the published topology; rises on every change."
    );
    describe_gauge!(
        "rolegate_leader_changing",
        "1 while a switchover or failover is under way."
    );
    describe_gauge!("rolegate_dcs_watch_up", "1 while the etcd watch runs.");
    describe_gauge!(
        "rolegate_dcs_stale",
        "1 when the DCS has been silent past Patroni's ttl (writes held)."
    );
    describe_counter!("rolegate_dcs_events_total", "DCS key changes received.");
    describe_counter!(
        "rolegate_dcs_watch_restarts_total",
        "Times the etcd watch was lost and restarted."
    );
    describe_gauge!(
        "rolegate_dcs_last_event_age_seconds",
        "Seconds since the last DCS key change."
    );
    describe_gauge!(
        "rolegate_dcs_last_contact_age_seconds",
        "Seconds since the DCS last answered."
    );
    describe_counter!(
        "rolegate_switchover_holds_total",
        "New work held on a primary listener while the leader changed."
    );
    describe_counter!(
        "rolegate_switchover_holds_failed_total",
        "Holds that ended with an error (no primary in time)."
    );
    describe_gauge!(
        "rolegate_switchover_holding_clients",
        "Clients held right now."
    );
    describe_counter!("rolegate_config_reloads_total", "Config reloads by result.");
    describe_gauge!("rolegate_uptime_seconds", "Seconds since rolegate started.");
}

const HISTOGRAMS: [(&str, &str); 3] = [
    (
        "rolegate_wait_duration_seconds",
        "Time clients waited for a member or a pooled server connection.",
    ),
    (
        "rolegate_query_duration_seconds",
        "Query latency: request sent until ReadyForQuery (pooled listeners).",
    ),
    (
        "rolegate_transaction_duration_seconds",
        "Server connection lent to a transaction (transaction pooling).",
    ),
];

fn histograms(state: &AdminState, out: &mut String) {
    let listeners = state.listeners.load();
    for (i, (name, help)) in HISTOGRAMS.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for l in listeners.iter() {
            let h = match i {
                0 => &l.stats.wait_time,
                1 => &l.stats.query_time,
                _ => &l.stats.transaction_time,
            };
            write_histogram(
                out,
                name,
                &format!("listener=\"{}\"", escape(&l.name)),
                &h.snapshot(),
            );
        }
    }
    let name = "rolegate_switchover_hold_duration_seconds";
    let _ = writeln!(out, "# HELP {name} How long new work was held while the leader changed.\n# TYPE {name} histogram");
    write_histogram(out, name, "", &state.stats.switchover.hold_time.snapshot());
}

fn write_histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (le, n) in &h.buckets {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}

/// A Prometheus label value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
