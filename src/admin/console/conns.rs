//! SHOW CLIENTS and SHOW SERVERS: one row per client connection (from the client
//! registry) and per server connection (idle ones from the pools, busy ones from the
//! clients using them), with PgBouncer's columns and three of rolegate's at the end
//! (`listener`, `member`, `rolegate_state`).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::pools::db_name;
use super::table::{Cell, Kind, Table};
use crate::session::{ClientState, Shared};

const COLUMNS: [(&str, Kind); 24] = [
    ("type", Kind::Text),
    ("user", Kind::Text),
    ("database", Kind::Text),
    ("replication", Kind::Text),
    ("state", Kind::Text),
    ("addr", Kind::Text),
    ("port", Kind::Int),
    ("local_addr", Kind::Text),
    ("local_port", Kind::Int),
    ("connect_time", Kind::Text),
    ("request_time", Kind::Text),
    ("wait", Kind::Int),
    ("wait_us", Kind::Int),
    ("close_needed", Kind::Int),
    ("ptr", Kind::Text),
    ("link", Kind::Text),
    ("remote_pid", Kind::Int),
    ("tls", Kind::Text),
    ("application_name", Kind::Text),
    ("prepared_statements", Kind::Int),
    ("id", Kind::Int),
    ("listener", Kind::Text),
    ("member", Kind::Text),
    ("rolegate_state", Kind::Text),
];

/// `2026-12-02 00:31:18 UTC`.
#[must_use]
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn ptr(kind: char, id: u64) -> String {
    format!("{kind}{id:x}")
}

/// SHOW CLIENTS.
#[must_use]
pub fn clients(shared: &Shared) -> Table {
    let mut t = Table::new(&COLUMNS);
    let local: Vec<(String, std::net::SocketAddr)> = shared
        .listeners()
        .iter()
        .map(|l| (l.name.to_string(), l.addr))
        .collect();
    let now = SystemTime::now();
    for c in shared.clients.rows() {
        let here = local.iter().find(|(n, _)| **n == *c.listener).map(|x| x.1);
        let waited = if c.state == ClientState::Waiting {
            now.duration_since(c.since).unwrap_or_default()
        } else {
            std::time::Duration::ZERO
        };
        let state = match c.state {
            ClientState::Waiting => "waiting",
            ClientState::Login => "login",
            ClientState::Idle | ClientState::Active => "active",
        };
        t.push(vec![
            "C".into(),
            c.user.clone().into(),
            db_name(&c.database, &c.listener).into(),
            "none".into(),
            state.into(),
            c.peer.ip().to_string().into(),
            c.peer.port().into(),
            here.map(|a| a.ip().to_string()).into(),
            here.map(|a| a.port()).into(),
            timestamp(c.connected).into(),
            timestamp(c.since).into(),
            waited.as_secs().into(),
            waited.subsec_micros().into(),
            0u32.into(),
            ptr('c', c.id).into(),
            c.server.as_ref().map(|_| ptr('s', c.id)).into(),
            0u32.into(),
            Cell::Null,
            Cell::Null,
            0u32.into(),
            c.id.into(),
            c.listener.to_string().into(),
            c.server.as_ref().map(|s| s.at.addr().member.clone()).into(),
            c.state.as_str().into(),
        ]);
    }
    t
}

/// SHOW SERVERS: busy connections (with the client using them), then idle ones.
#[must_use]
pub fn servers(shared: &Shared) -> Table {
    let mut t = Table::new(&COLUMNS);
    for c in shared.clients.rows() {
        let Some(s) = &c.server else { continue };
        t.push(vec![
            "S".into(),
            c.user.clone().into(),
            db_name(&c.database, &c.listener).into(),
            "none".into(),
            "active".into(),
            s.at.addr().host.clone().into(),
            s.at.addr().port.into(),
            Cell::Null,
            Cell::Null,
            timestamp(s.connected).into(),
            timestamp(crate::session::clients::wall(s.since)).into(),
            0u32.into(),
            0u32.into(),
            0u32.into(),
            ptr('s', c.id).into(),
            ptr('c', c.id).into(),
            s.pid.into(),
            Cell::Null,
            Cell::Null,
            0u32.into(),
            c.id.into(),
            c.listener.to_string().into(),
            s.at.addr().member.clone().into(),
            if c.pooled { "active" } else { "passthrough" }.into(),
        ]);
    }
    let now = (SystemTime::now(), Instant::now());
    let at = |i: Instant| now.0.checked_sub(now.1 - i).unwrap_or(now.0);
    for l in shared.listeners() {
        let Some(setup) = &l.pool else { continue };
        for (key, pool) in setup.pools.all() {
            for (pid, created, idle_since) in pool.idle_conns() {
                t.push(vec![
                    "S".into(),
                    key.user.clone().into(),
                    db_name(&key.database, &l.name).into(),
                    "none".into(),
                    "idle".into(),
                    pool.addr.host.clone().into(),
                    pool.addr.port.into(),
                    Cell::Null,
                    Cell::Null,
                    timestamp(at(created)).into(),
                    timestamp(at(idle_since)).into(),
                    0u32.into(),
                    0u32.into(),
                    0u32.into(),
                    format!("p{pid:x}").into(),
                    Cell::Null,
                    pid.into(),
                    Cell::Null,
                    Cell::Null,
                    0u32.into(),
                    Cell::Null,
                    l.name.clone().into(),
                    key.member.clone().into(),
                    "idle".into(),
                ]);
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_210_096);
        assert_eq!(timestamp(t), "2024-02-29 12:34:56 UTC");
    }
}
