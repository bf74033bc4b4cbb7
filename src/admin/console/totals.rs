//! SHOW STATS_TOTALS, SHOW TOTALS and SHOW USERS: PgBouncer's other views of the same
//! counters and pools, derived from SHOW STATS and SHOW POOLS so they cannot disagree.

use std::collections::BTreeMap;

use super::pools::{pools, stats};
use super::table::{Cell, Kind, Table};
use crate::session::Shared;

const TOTALS: [&str; 8] = [
    "total_server_assignment_count",
    "total_xact_count",
    "total_query_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
];

/// SHOW STATS_TOTALS: the `total_*` columns of SHOW STATS.
#[must_use]
pub fn stats_totals(shared: &Shared) -> Table {
    let mut columns = vec!["database"];
    columns.extend(TOTALS);
    stats(shared).project(&columns)
}

/// SHOW TOTALS: the `total_*` counters summed over every listener, as name/value rows.
#[must_use]
pub fn totals(shared: &Shared) -> Table {
    let per = stats(shared);
    let mut t = Table::new(&[("name", Kind::Text), ("value", Kind::Int)]);
    for name in TOTALS {
        let Some(i) = per.columns.iter().position(|(c, _)| *c == name) else {
            continue;
        };
        let sum: i64 = per
            .rows
            .iter()
            .map(|r| match r[i] {
                Cell::Int(n) => n,
                _ => 0,
            })
            .sum();
        t.push(vec![name.trim_start_matches("total_").into(), sum.into()]);
    }
    t
}

/// SHOW USERS: each user with pools or clients, and its server and client connections.
#[must_use]
pub fn users(shared: &Shared) -> Table {
    let p = pools(shared);
    let col = |name: &str| p.columns.iter().position(|(c, _)| *c == name);
    let (Some(user), Some(sa), Some(si), Some(ca), Some(cw)) = (
        col("user"),
        col("sv_active"),
        col("sv_idle"),
        col("cl_active"),
        col("cl_waiting"),
    ) else {
        return Table::new(&[("name", Kind::Text)]);
    };
    let int = |c: &Cell| match c {
        Cell::Int(n) => *n,
        _ => 0,
    };
    let mut by_user: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &p.rows {
        let Cell::Text(name) = &r[user] else { continue };
        let e = by_user.entry(name.clone()).or_default();
        e.0 += int(&r[sa]) + int(&r[si]);
        e.1 += int(&r[ca]) + int(&r[cw]);
    }
    let mut t = Table::new(&[
        ("name", Kind::Text),
        ("pool_size", Kind::Int),
        ("reserve_pool_size", Kind::Int),
        ("pool_mode", Kind::Text),
        ("max_user_connections", Kind::Int),
        ("current_connections", Kind::Int),
        ("max_user_client_connections", Kind::Int),
        ("current_client_connections", Kind::Int),
    ]);
    for (name, (servers, clients)) in by_user {
        t.push(vec![
            name.into(),
            Cell::Null,
            Cell::Null,
            Cell::Null,
            0i64.into(),
            servers.into(),
            0i64.into(),
            clients.into(),
        ]);
    }
    t
}
