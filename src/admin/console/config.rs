//! SHOW CONFIG: every key in force with its default, and whether RELOAD applies a change
//! to it (`changeable = yes`) or it needs a restart.

use std::time::Duration;

use super::cluster::balance;
use super::table::{Kind, Table};
use crate::config::{Config, GeneralConfig, ListenerConfig};
use crate::session::Shared;

/// (key, value, default, changeable by RELOAD).
type Entry = (String, String, Option<String>, bool);

fn dur(d: Duration) -> String {
    format!("{d:?}")
}

fn global(c: &Config) -> Vec<Entry> {
    let s = |v: &str| Some(v.to_owned());
    let mut v = vec![
        ("cluster.scope".into(), c.cluster.scope.clone(), None, false),
        (
            "cluster.namespace".into(),
            c.cluster.namespace.clone(),
            s("/service/"),
            false,
        ),
        (
            "dcs.etcd.endpoints".into(),
            c.dcs.etcd.endpoints.join(","),
            s("127.0.0.1:2379"),
            false,
        ),
        (
            "general.shutdown_timeout".into(),
            dur(c.general.shutdown_timeout.0),
            s("30s"),
            true,
        ),
        (
            "admin.admin_users".into(),
            c.admin.admin_users.join(","),
            s(""),
            true,
        ),
        (
            "admin.stats_users".into(),
            c.admin.stats_users.join(","),
            s(""),
            true,
        ),
        ("log.level".into(), c.log.level.clone(), s("info"), false),
    ];
    v.extend(tcp(&c.general));
    if let Some(a) = &c.auth {
        let file = a.file.as_ref().map(|p| p.display().to_string());
        v.push((
            "auth.type".into(),
            format!("{:?}", a.kind).to_lowercase(),
            None,
            true,
        ));
        v.push(("auth.file".into(), file.unwrap_or_default(), None, true));
        v.push((
            "auth.user".into(),
            a.user.clone().unwrap_or_default(),
            None,
            true,
        ));
    }
    v
}

/// `[general] tcp_*`, all changeable (new connections get them).
fn tcp(g: &GeneralConfig) -> Vec<Entry> {
    let d = GeneralConfig::default();
    [
        (
            "tcp_keepalive",
            g.tcp_keepalive.to_string(),
            d.tcp_keepalive.to_string(),
        ),
        ("tcp_keepidle", dur(g.tcp_keepidle.0), dur(d.tcp_keepidle.0)),
        (
            "tcp_keepintvl",
            dur(g.tcp_keepintvl.0),
            dur(d.tcp_keepintvl.0),
        ),
        (
            "tcp_keepcnt",
            g.tcp_keepcnt.to_string(),
            d.tcp_keepcnt.to_string(),
        ),
        (
            "tcp_user_timeout",
            dur(g.tcp_user_timeout.0),
            dur(d.tcp_user_timeout.0),
        ),
    ]
    .into_iter()
    .map(|(k, v, d)| (format!("general.{k}"), v, Some(d), true))
    .collect()
}

// A flat table of keys, one line each before rustfmt; splitting it would not help reading.
#[allow(clippy::too_many_lines)]
fn listener(l: &ListenerConfig, d: &ListenerConfig) -> Vec<Entry> {
    let name = l.display_name();
    let mode = |m: Option<crate::config::PoolMode>| {
        m.map(|m| format!("{m:?}").to_lowercase())
            .unwrap_or_default()
    };
    let rows: Vec<(&str, String, String, bool)> = vec![
        ("addr", l.addr.to_string(), String::new(), false),
        (
            "role",
            format!("{:?}", l.role).to_lowercase(),
            String::new(),
            false,
        ),
        ("pool_mode", mode(l.pool_mode), String::new(), false),
        (
            "balance",
            balance(l.balance).into(),
            balance(d.balance).into(),
            true,
        ),
        (
            "max_lag",
            l.max_lag.map(|b| b.0.to_string()).unwrap_or_default(),
            String::new(),
            true,
        ),
        (
            "connect_wait",
            dur(l.connect_wait.0),
            dur(d.connect_wait.0),
            true,
        ),
        (
            "switchover_hold_timeout",
            dur(l.switchover_hold_timeout.0),
            dur(d.switchover_hold_timeout.0),
            true,
        ),
        (
            "server_connect_timeout",
            dur(l.server_connect_timeout.0),
            dur(d.server_connect_timeout.0),
            true,
        ),
        (
            "pool_size",
            l.pool_size.to_string(),
            d.pool_size.to_string(),
            true,
        ),
        (
            "min_pool_size",
            l.min_pool_size.to_string(),
            d.min_pool_size.to_string(),
            true,
        ),
        (
            "reserve_pool_size",
            l.reserve_pool_size.to_string(),
            d.reserve_pool_size.to_string(),
            true,
        ),
        (
            "reserve_pool_timeout",
            dur(l.reserve_pool_timeout.0),
            dur(d.reserve_pool_timeout.0),
            true,
        ),
        (
            "max_client_conn",
            l.max_client_conn.to_string(),
            d.max_client_conn.to_string(),
            true,
        ),
        (
            "max_db_connections",
            l.max_db_connections.to_string(),
            d.max_db_connections.to_string(),
            false,
        ),
        (
            "server_idle_timeout",
            dur(l.server_idle_timeout.0),
            dur(d.server_idle_timeout.0),
            true,
        ),
        (
            "server_lifetime",
            dur(l.server_lifetime.0),
            dur(d.server_lifetime.0),
            true,
        ),
        (
            "query_wait_timeout",
            dur(l.query_wait_timeout.0),
            dur(d.query_wait_timeout.0),
            true,
        ),
        (
            "server_reset_query",
            l.server_reset_query.clone(),
            d.server_reset_query.clone(),
            true,
        ),
        (
            "idle_transaction_timeout",
            dur(l.idle_transaction_timeout.0),
            dur(d.idle_transaction_timeout.0),
            true,
        ),
        (
            "max_prepared_statements",
            l.max_prepared_statements.to_string(),
            d.max_prepared_statements.to_string(),
            true,
        ),
    ];
    rows.into_iter()
        .map(|(k, v, dv, ch)| (format!("listener.{name}.{k}"), v, Some(dv), ch))
        .collect()
}

/// SHOW CONFIG.
#[must_use]
pub fn config(shared: &Shared) -> Table {
    let mut t = Table::new(&[
        ("key", Kind::Text),
        ("value", Kind::Text),
        ("default", Kind::Text),
        ("changeable", Kind::Text),
    ]);
    let Some(c) = shared.config.load_full() else {
        return t;
    };
    let d = ListenerConfig::defaults();
    let entries = global(&c)
        .into_iter()
        .chain(c.listeners.iter().flat_map(|l| listener(l, &d)));
    for (k, v, dv, ch) in entries {
        t.push(vec![
            k.into(),
            v.into(),
            dv.into(),
            if ch { "yes" } else { "no" }.into(),
        ]);
    }
    t
}
