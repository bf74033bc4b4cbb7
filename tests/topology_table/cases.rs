//! The table: one row per edge case of section 5.3 of the Patroni reference.

use super::fixtures::*;

#[allow(clippy::too_many_lines)] // the table itself
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "healthy async cluster: 5003 == 5001, 5002 empty",
            ..DEFAULT
        },
        Case {
            name: "sync mode off ignores a leftover sync key",
            set: &[(
                "sync",
                r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#,
            )],
            ..DEFAULT
        },
        Case {
            name: "sync mode on, 4.x sync key",
            set: &[
                ("config", CONFIG_SYNC),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#,
                ),
            ],
            sync: &["pg2"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "sync mode on, no sync standby yet",
            set: &[
                ("config", CONFIG_SYNC),
                ("sync", r#"{"leader":"pg1","quorum":0,"sync_standby":null}"#),
            ],
            ..DEFAULT
        },
        Case {
            name: "sync mode on, sync key deleted",
            set: &[("config", CONFIG_SYNC)],
            ..DEFAULT
        },
        Case {
            name: "synchronous_mode as string \"on\", ZooKeeper-style empty sync",
            set: &[("config", r#"{"synchronous_mode":"on"}"#), ("sync", "{}")],
            ..DEFAULT
        },
        Case {
            name: "Patroni 3.x cluster: master role and 2.x/3.x sync key",
            set: &[
                ("members/pg1", PG1_V3),
                ("members/pg2", PG2_V3),
                ("config", CONFIG_SYNC),
                ("sync", r#"{"leader":"pg1","sync_standby":"pg2,pg3"}"#),
            ],
            sync: &["pg2", "pg3"],
            async_: &[],
            ..DEFAULT
        },
        Case {
            name: "quorum mode: voters count as sync",
            set: &[
                ("config", CONFIG_QUORUM),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":1,"sync_standby":"pg2,pg3"}"#,
                ),
            ],
            sync: &["pg2", "pg3"],
            async_: &[],
            check: Some(|t| assert_eq!(t.sync_mode, rolegate::topology::SyncMode::Quorum)),
            ..DEFAULT
        },
        Case {
            name: "quorum mode with a single voter",
            set: &[
                ("config", CONFIG_QUORUM),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg3"}"#,
                ),
            ],
            sync: &["pg3"],
            async_: &["pg2"],
            ..DEFAULT
        },
        Case {
            name: "stale sync key after failover: nobody sync, all async",
            set: &[
                ("leader", "pg2"),
                ("members/pg1", PG1_REPLICA),
                ("members/pg2", PG2_PRIMARY),
                ("config", CONFIG_SYNC),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#,
                ),
            ],
            primary: &["pg2"],
            replica: &["pg1", "pg3"],
            async_: &["pg1", "pg3"],
            check: Some(|t| assert_eq!(t.timeline, Some(4))),
            ..DEFAULT
        },
        Case {
            name: "sync names and sync leader match case-insensitively",
            set: &[
                ("members/PG2", PG2_UPPER),
                ("config", CONFIG_SYNC),
                ("sync", r#"{"leader":"PG1","sync_standby":"pg2"}"#),
            ],
            unset: &["members/pg2"],
            replica: &["PG2", "pg3"],
            sync: &["PG2"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "no leader key: 5000 empty, sync ignored, replicas still served",
            set: &[
                ("config", CONFIG_SYNC),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#,
                ),
            ],
            unset: &["leader"],
            primary: &[],
            check: Some(|t| assert_eq!((t.leader.as_deref(), t.timeline), (None, Some(3)))),
            ..DEFAULT
        },
        Case {
            name: "empty leader key means unlocked",
            set: &[("leader", "")],
            primary: &[],
            ..DEFAULT
        },
        Case {
            name: "leader key names a member with no member key",
            unset: &["members/pg1"],
            primary: &[],
            check: Some(|t| assert_eq!(t.leader.as_deref(), Some("pg1"))),
            ..DEFAULT
        },
        Case {
            name: "leader restarting after a crash (state != running)",
            set: &[("members/pg1", PG1_STARTING)],
            primary: &[],
            ..DEFAULT
        },
        Case {
            name: "new leader still promoting (role promoted)",
            set: &[("leader", "pg2"), ("members/pg2", PG2_PROMOTED)],
            unset: &["members/pg1"],
            primary: &[],
            replica: &["pg3"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "lock just changed: new leader still replica, old primary demoted",
            set: &[("leader", "pg2"), ("members/pg1", PG1_DEMOTED)],
            primary: &[],
            replica: &["pg3"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "standby cluster: 5000 empty, sync ignored, replicas routed",
            set: &[
                ("members/pg1", PG1_STANDBY_LEADER),
                (
                    "config",
                    r#"{"ttl":30,"loop_wait":10,"synchronous_mode":true,"standby_cluster":{"host":"10.1.0.10","port":5432,"primary_slot_name":"standby"}}"#,
                ),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#,
                ),
            ],
            primary: &[],
            check: Some(|t| assert!(t.standby_cluster)),
            ..DEFAULT
        },
        Case {
            name: "primary claiming standby role outside a standby cluster is not served",
            set: &[("members/pg1", PG1_STANDBY_LEADER)],
            primary: &[],
            ..DEFAULT
        },
        Case {
            name: "paused cluster routes as usual and reports paused",
            set: &[
                ("members/pg1", PG1_PAUSED),
                ("config", r#"{"ttl":30,"loop_wait":10,"pause":true}"#),
            ],
            check: Some(|t| assert!(t.paused)),
            ..DEFAULT
        },
        Case {
            name: "nosync replica lands in 5003",
            set: &[
                ("members/pg3", PG3_NOSYNC),
                ("config", CONFIG_SYNC),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#,
                ),
            ],
            sync: &["pg2"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "nosync replica still listed in sync (tag being applied) is not sync",
            set: &[
                ("members/pg3", PG3_NOSYNC),
                ("config", CONFIG_SYNC),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2,pg3"}"#,
                ),
            ],
            sync: &["pg2"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "sync_priority 0 means nosync",
            set: &[
                ("members/pg3", PG3_SYNC_PRIO_0),
                ("config", CONFIG_SYNC),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2,pg3"}"#,
                ),
            ],
            sync: &["pg2"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "noloadbalance replica excluded from every replica port",
            set: &[
                ("members/pg3", PG3_NOLB),
                ("config", CONFIG_SYNC),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg3"}"#,
                ),
            ],
            replica: &["pg2"],
            async_: &["pg2"],
            ..DEFAULT
        },
        Case {
            name: "noloadbalance does not affect 5000",
            set: &[("members/pg1", PG1_NOLB)],
            ..DEFAULT
        },
        Case {
            name: "lagging replica excluded with max_lag",
            set: &[("members/pg3", PG3_LAGGING)],
            max_lag: Some(MIB),
            replica: &["pg2"],
            async_: &["pg2"],
            check: Some(|t| assert_eq!(t.member("pg3").and_then(|m| m.lag_bytes), Some(40 * MIB))),
            ..DEFAULT
        },
        Case {
            name: "lagging replica included without max_lag",
            set: &[("members/pg3", PG3_LAGGING)],
            ..DEFAULT
        },
        Case {
            name: "lagging sync standby excluded from 5002 with max_lag",
            set: &[
                ("members/pg3", PG3_LAGGING),
                ("config", CONFIG_SYNC),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg3"}"#,
                ),
            ],
            max_lag: Some(MIB),
            replica: &["pg2"],
            async_: &["pg2"],
            ..DEFAULT
        },
        Case {
            name: "2.x lag from xlog_location and legacy optime/leader key",
            set: &[
                ("members/pg3", PG3_LAGGING_V2),
                ("optime/leader", "50331648"),
            ],
            unset: &["status"],
            max_lag: Some(MIB),
            replica: &["pg2"],
            async_: &["pg2"],
            ..DEFAULT
        },
        Case {
            name: "legacy bare-integer status",
            set: &[("members/pg3", PG3_LAGGING), ("status", "50331648")],
            max_lag: Some(MIB),
            replica: &["pg2"],
            async_: &["pg2"],
            ..DEFAULT
        },
        Case {
            name: "archive-recovery replica is served (no replication_state filter)",
            set: &[("members/pg3", PG3_ARCHIVE)],
            max_lag: Some(MIB),
            ..DEFAULT
        },
        Case {
            name: "replica not running is excluded",
            set: &[("members/pg2", PG2_STARTING)],
            replica: &["pg3"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "member without conn_url is never routable",
            set: &[("members/pg3", PG3_NO_CONN_URL)],
            replica: &["pg2"],
            async_: &["pg2"],
            check: Some(|t| assert_eq!(addr(t, "pg3"), None)),
            ..DEFAULT
        },
        Case {
            name: "IPv6 conn_url with userinfo",
            set: &[("members/pg3", PG3_IPV6)],
            check: Some(|t| assert_eq!(addr(t, "pg3"), Some(("fd00::13", 6432)))),
            ..DEFAULT
        },
        Case {
            name: "Governor-era member string has no state: not routable",
            set: &[("members/pg3", PG3_GOVERNOR)],
            replica: &["pg2"],
            async_: &["pg2"],
            check: Some(|t| assert_eq!(addr(t, "pg3"), Some(("10.0.0.13", 5432)))),
            ..DEFAULT
        },
        Case {
            name: "garbage member JSON is skipped",
            set: &[("members/pg3", r#"{"conn_url":"postgres://10.0.0.13"#)],
            replica: &["pg2"],
            async_: &["pg2"],
            check: Some(|t| assert!(t.member("pg3").is_none())),
            ..DEFAULT
        },
        Case {
            name: "mixed versions: 4.x primary, 3.x and 2.x replicas, 3.x sync key",
            set: &[
                ("members/pg2", PG2_V3),
                ("members/pg3", PG3_V2),
                ("config", CONFIG_SYNC),
                ("sync", r#"{"leader":"pg1","sync_standby":"pg2"}"#),
                ("optime/leader", "50331648"),
            ],
            max_lag: Some(MIB),
            sync: &["pg2"],
            async_: &["pg3"],
            ..DEFAULT
        },
        Case {
            name: "pending switchover does not change routing and is reported",
            set: &[(
                "failover",
                r#"{"leader":"pg1","member":"pg2","scheduled_at":"2024-05-01T10:00:00+00:00"}"#,
            )],
            check: Some(|t| assert_eq!(t.failover, Some((Some("pg1".into()), Some("pg2".into()))))),
            ..DEFAULT
        },
        Case {
            name: "consumed failover key is empty",
            set: &[("failover", "{}")],
            check: Some(|t| assert_eq!(t.failover, None)),
            ..DEFAULT
        },
        Case {
            name: "garbage config falls back to defaults",
            set: &[("config", "{ttl: 30")],
            check: Some(|t| assert_eq!((t.ttl_secs, t.loop_wait_secs), (30, 10))),
            ..DEFAULT
        },
        Case {
            name: "Citus group sub-trees are ignored",
            set: &[
                ("0/leader", "pg2"),
                ("0/members/pg2", PG2_PRIMARY),
                ("1/leader", "w1"),
                ("1/members/w1", PG1),
                ("failsafe", r#"{"pg1":"http://10.0.0.11:8008/patroni"}"#),
            ],
            ..DEFAULT
        },
    ]
}
