//! Shared bench fixtures: a Patroni 4.x key set exactly as Patroni writes it into etcd
//! (compact `json.dumps(..., separators=(',', ':'))`), keys named relative to the scope prefix.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Leader WAL position (`status.optime` and the leader's `xlog_location`).
const LEADER_LSN: u64 = 67_395_656;

/// `members/<name>` JSON for member `i` (1-based; `pg1` is the leader). Replicas lag a little
/// more each; in the 16-member set `pg12` is far behind in archive recovery and two members
/// carry tags.
fn member_json(i: usize, n: usize) -> String {
    let mut s = format!(
        r#"{{"conn_url":"postgres://10.0.0.{ip}:5432/postgres","api_url":"http://10.0.0.{ip}:8008/patroni","state":"running","role":"{role}","version":"4.1.4""#,
        ip = 10 + i,
        role = if i == 1 { "primary" } else { "replica" },
    );
    if n > 3 && i == n {
        s.push_str(r#","tags":{"nosync":true}"#);
    } else if n > 3 && i == n - 1 {
        s.push_str(r#","tags":{"noloadbalance":true,"nofailover":true}"#);
    }
    if i == 1 {
        let _ = write!(s, r#","xlog_location":{LEADER_LSN},"timeline":3}}"#);
        return s;
    }
    let (lag, repl) = if n > 3 && i == 12 {
        (64 << 20, "in archive recovery")
    } else {
        ((i as u64 - 1) * 8192, "streaming")
    };
    let lsn = LEADER_LSN - lag;
    let _ = write!(
        s,
        r#","xlog_location":{lsn},"replay_lsn":{lsn},"receive_lsn":{lsn},"replication_state":"{repl}","timeline":3}}"#
    );
    s
}

/// The dynamic `config` key as `patronictl edit-config` leaves it.
fn config_json(sync_mode: &str) -> String {
    format!(
        r#"{{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{{"use_pg_rewind":true,"use_slots":true,"parameters":{{"max_connections":200,"wal_level":"replica","hot_standby":"on","max_wal_senders":20,"max_replication_slots":20,"wal_log_hints":"on","wal_keep_size":"1GB"}}}},"synchronous_mode":"{sync_mode}","synchronous_node_count":1,"failsafe_mode":true}}"#
    )
}

/// Every key under `/service/<scope>/` of an `n`-member cluster led by `pg1`: 3 members run
/// `synchronous_mode: on` with one sync standby, larger clusters `quorum` with three voters.
#[must_use]
pub fn patroni_keys(n: usize) -> BTreeMap<String, Vec<u8>> {
    let names: Vec<String> = (1..=n).map(|i| format!("pg{i}")).collect();
    let mut keys = BTreeMap::new();
    let mut put = |k: &str, v: String| keys.insert(k.to_owned(), v.into_bytes());
    put("leader", "pg1".to_owned());
    put("initialize", "7312345678901234567".to_owned());
    put("failover", "{}".to_owned());
    for (i, name) in names.iter().enumerate() {
        put(&format!("members/{name}"), member_json(i + 1, n));
    }
    let (mode, sync) = if n <= 3 {
        ("on", r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#)
    } else {
        (
            "quorum",
            r#"{"leader":"pg1","quorum":1,"sync_standby":"pg2,pg3,pg4"}"#,
        )
    };
    put("config", config_json(mode));
    put("sync", sync.to_owned());
    let slots: Vec<String> = names[1..]
        .iter()
        .map(|m| format!(r#""{m}":{LEADER_LSN}"#))
        .collect();
    let retain: Vec<String> = names.iter().map(|m| format!(r#""{m}""#)).collect();
    put(
        "status",
        format!(
            r#"{{"optime":{LEADER_LSN},"slots":{{{}}},"retain_slots":[{}]}}"#,
            slots.join(","),
            retain.join(",")
        ),
    );
    put("history", r#"[[1,25623960,"no recovery target specified","2025-09-23T16:57:57.123456+02:00","pg2"],[2,50331816,"no recovery target specified","2025-11-02T09:12:03.654321+01:00","pg1"]]"#.to_owned());
    let failsafe: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, m)| format!(r#""{m}":"http://10.0.0.{}:8008/patroni""#, 11 + i))
        .collect();
    put("failsafe", format!("{{{}}}", failsafe.join(",")));
    keys
}
