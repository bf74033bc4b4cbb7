//! The healthy base cluster (Patroni 4.x keys as Patroni writes them), the member
//! variants the table combines, and the shape of a table row.

use std::collections::BTreeMap;

use rolegate::topology::Topology;

// A healthy Patroni 4.x cluster: pg1 primary, pg2 and pg3 streaming replicas, async mode.
pub const PG1: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"running","role":"primary","version":"4.1.4","xlog_location":50331648,"timeline":3}"#;
pub const PG2: &str = r#"{"conn_url":"postgres://10.0.0.12:5432/postgres","api_url":"http://10.0.0.12:8008/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":50331648,"replay_lsn":50331648,"receive_lsn":50331648,"replication_state":"streaming","timeline":3}"#;
pub const PG3: &str = r#"{"conn_url":"postgres://10.0.0.13:5432/postgres","api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":50331600,"replay_lsn":50331600,"receive_lsn":50331648,"replication_state":"streaming","timeline":3}"#;
pub const CONFIG: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100}}}"#;
pub const CONFIG_SYNC: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"synchronous_mode":true}"#;
pub const CONFIG_QUORUM: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"synchronous_mode":"quorum","synchronous_node_count":1}"#;
pub const STATUS: &str = r#"{"optime":50331648,"slots":{"pg2":50331648,"pg3":50331600},"retain_slots":["pg1","pg2","pg3"]}"#;
pub const HISTORY: &str = r#"[[1,25623960,"no recovery target specified","2024-04-23T16:57:57+02:00","pg2"],[2,33554592,"no recovery target specified","2024-04-24T10:00:00+02:00","pg1"]]"#;

// Variants.
pub const PG1_V3: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"running","role":"master","version":"3.3.0","xlog_location":50331648,"timeline":3}"#;
pub const PG2_V3: &str = r#"{"conn_url":"postgres://10.0.0.12:5432/postgres","api_url":"http://10.0.0.12:8008/patroni","state":"running","role":"replica","version":"3.3.0","xlog_location":50331648,"replication_state":"streaming","timeline":3}"#;
pub const PG3_V2: &str = r#"{"conn_url":"postgres://10.0.0.13:5432/postgres","api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"2.1.7","xlog_location":50331000,"timeline":3}"#;
pub const PG1_STARTING: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"starting","role":"primary","version":"4.1.4","timeline":3}"#;
pub const PG1_DEMOTED: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"stopped","role":"demoted","version":"4.1.4","xlog_location":50331648,"timeline":3}"#;
pub const PG1_REPLICA: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":50331648,"replay_lsn":50331648,"receive_lsn":50331648,"replication_state":"streaming","timeline":4}"#;
pub const PG1_STANDBY_LEADER: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"running","role":"standby_leader","version":"4.1.4","xlog_location":50331648,"timeline":3}"#;
pub const PG1_PAUSED: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"running","role":"primary","version":"4.1.4","xlog_location":50331648,"timeline":3,"pause":true}"#;
pub const PG1_NOLB: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"running","role":"primary","version":"4.1.4","tags":{"noloadbalance":true},"xlog_location":50331648,"timeline":3}"#;
pub const PG2_PRIMARY: &str = r#"{"conn_url":"postgres://10.0.0.12:5432/postgres","api_url":"http://10.0.0.12:8008/patroni","state":"running","role":"primary","version":"4.1.4","xlog_location":50331900,"timeline":4}"#;
pub const PG2_PROMOTED: &str = r#"{"conn_url":"postgres://10.0.0.12:5432/postgres","api_url":"http://10.0.0.12:8008/patroni","state":"running","role":"promoted","version":"4.1.4","xlog_location":50331648,"timeline":3}"#;
pub const PG2_STARTING: &str = r#"{"conn_url":"postgres://10.0.0.12:5432/postgres","api_url":"http://10.0.0.12:8008/patroni","state":"starting","role":"replica","version":"4.1.4","timeline":3}"#;
pub const PG2_UPPER: &str = r#"{"conn_url":"postgres://10.0.0.12:5432/postgres","api_url":"http://10.0.0.12:8008/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":50331648,"replay_lsn":50331648,"timeline":3}"#;
pub const PG3_NOSYNC: &str = r#"{"conn_url":"postgres://10.0.0.13:5432/postgres","api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"4.1.4","tags":{"nosync":true},"xlog_location":50331648,"replay_lsn":50331648,"replication_state":"streaming","timeline":3}"#;
pub const PG3_SYNC_PRIO_0: &str = r#"{"conn_url":"postgres://10.0.0.13:5432/postgres","api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"4.1.4","tags":{"sync_priority":0},"xlog_location":50331648,"replay_lsn":50331648,"replication_state":"streaming","timeline":3}"#;
pub const PG3_NOLB: &str = r#"{"conn_url":"postgres://10.0.0.13:5432/postgres","api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"4.1.4","tags":{"noloadbalance":true},"xlog_location":50331648,"replay_lsn":50331648,"replication_state":"streaming","timeline":3}"#;
// 40 MiB behind status.optime by replay position (receive is current).
pub const PG3_LAGGING: &str = r#"{"conn_url":"postgres://10.0.0.13:5432/postgres","api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":50331648,"replay_lsn":8388608,"receive_lsn":50331648,"replication_state":"streaming","timeline":3}"#;
pub const PG3_LAGGING_V2: &str = r#"{"conn_url":"postgres://10.0.0.13:5432/postgres","api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"2.1.7","xlog_location":8388608,"timeline":3}"#;
pub const PG3_ARCHIVE: &str = r#"{"conn_url":"postgres://10.0.0.13:5432/postgres","api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"4.1.4","tags":{"nostream":true},"xlog_location":50331600,"replay_lsn":50331600,"replication_state":"in archive recovery","timeline":3}"#;
pub const PG3_NO_CONN_URL: &str = r#"{"api_url":"http://10.0.0.13:8008/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":50331648,"timeline":3}"#;
pub const PG3_IPV6: &str = r#"{"conn_url":"postgres://replicator:secret@[fd00::13]:6432/postgres","api_url":"http://[fd00::13]:8008/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":50331648,"replay_lsn":50331648,"timeline":3}"#;
pub const PG3_GOVERNOR: &str = "postgres://replicator:secret@10.0.0.13:5432/postgres?application_name=http://10.0.0.13:8008/patroni";

/// One table row: the keys that differ from the healthy base cluster, and what each port serves.
pub struct Case {
    pub name: &'static str,
    /// Keys added or replaced on top of [`base`].
    pub set: &'static [(&'static str, &'static str)],
    /// Keys removed from [`base`].
    pub unset: &'static [&'static str],
    pub max_lag: Option<u64>,
    pub primary: &'static [&'static str],
    pub replica: &'static [&'static str],
    pub sync: &'static [&'static str],
    pub async_: &'static [&'static str],
    /// Further assertions on the topology, for cases about more than the role sets.
    pub check: Option<fn(&Topology)>,
}

pub const DEFAULT: Case = Case {
    name: "",
    set: &[],
    unset: &[],
    max_lag: None,
    primary: &["pg1"],
    replica: &["pg2", "pg3"],
    sync: &[],
    async_: &["pg2", "pg3"],
    check: None,
};

pub const MIB: u64 = 1_048_576;

pub fn base() -> BTreeMap<String, Vec<u8>> {
    [
        ("leader", "pg1"),
        ("members/pg1", PG1),
        ("members/pg2", PG2),
        ("members/pg3", PG3),
        ("config", CONFIG),
        ("status", STATUS),
        ("history", HISTORY),
        ("initialize", "7361234567890123456"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
    .collect()
}

/// The address of `name` in `t`.
pub fn addr<'a>(t: &'a Topology, name: &str) -> Option<(&'a str, u16)> {
    t.member(name).and_then(rolegate::topology::Member::addr)
}
