//! Parsing of Patroni's DCS values (2.x, 3.x, 4.x). Garbage never panics: a value
//! that cannot be parsed is ignored with a log line.
//!
//! Owns only the key layout and value formats (reference section 1); what the
//! values mean for routing is decided in [`mod@crate::topology::derive`].

mod config;
mod conn_url;
mod member;
mod records;
mod value;

use std::collections::BTreeMap;

use crate::topology::ClusterState;

/// Builds a [`ClusterState`] from the keys under `/<namespace>/<scope>/`, named relative
/// to that prefix (`leader`, `members/pg1`, `sync`, `config`, `status`, ...).
/// Citus group sub-trees (`0/leader`, `1/members/x`) and unknown keys are ignored.
#[must_use]
pub fn cluster_from_keys(keys: &BTreeMap<String, Vec<u8>>, revision: i64) -> ClusterState {
    let mut state = ClusterState {
        revision,
        ..ClusterState::default()
    };
    let mut legacy_optime = None;
    for (key, raw) in keys {
        match key.as_str() {
            "leader" => state.leader = leader(raw),
            "sync" => state.sync = records::sync(raw),
            "config" => state.config = config::parse(raw),
            "status" => state.optime = records::status_optime(raw),
            "optime/leader" => legacy_optime = records::legacy_optime(raw),
            "failover" => state.failover = records::failover(raw),
            "history" => state.history_timeline = records::history_timeline(raw),
            other => add_member(&mut state, other, raw),
        }
    }
    // `optime/leader` is only written for pre-2.1 members; `status` wins when it has an optime.
    state.optime = state.optime.or(legacy_optime);
    state
}

/// The leader key is a bare member name, not JSON; empty means unlocked.
fn leader(raw: &[u8]) -> Option<String> {
    let Ok(name) = std::str::from_utf8(raw) else {
        tracing::warn!(key = "leader", "ignoring non-UTF-8 leader key");
        return None;
    };
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `members/<name>`; anything else (`initialize`, `failsafe`, Citus groups) is skipped.
fn add_member(state: &mut ClusterState, key: &str, raw: &[u8]) {
    let Some(name) = key.strip_prefix("members/") else {
        return;
    };
    if name.is_empty() || name.contains('/') {
        return;
    }
    if let Some(record) = member::parse(name, key, raw) {
        state.members.insert(name.to_owned(), record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::state::{ConfigRecord, MemberRole, SyncMode};

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    const PG1: &str = r#"{"conn_url":"postgres://10.0.0.11:5432/postgres","api_url":"http://10.0.0.11:8008/patroni","state":"running","role":"primary","version":"4.1.4","xlog_location":500,"timeline":3}"#;
    const PG2: &str = r#"{"conn_url":"postgres://10.0.0.12:5432/postgres","api_url":"http://10.0.0.12:8008/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":400,"replay_lsn":400,"receive_lsn":400,"replication_state":"streaming","timeline":3}"#;

    #[test]
    fn full_4x_cluster() {
        let state = cluster_from_keys(
            &keys(&[
                ("leader", "pg1"),
                ("members/pg1", PG1),
                ("members/pg2", PG2),
                (
                    "sync",
                    r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#,
                ),
                (
                    "config",
                    r#"{"ttl":30,"loop_wait":10,"synchronous_mode":"on"}"#,
                ),
                (
                    "status",
                    r#"{"optime":500,"slots":{"pg2":500},"retain_slots":["pg1","pg2"]}"#,
                ),
                (
                    "history",
                    r#"[[1,25623960,"no recovery target specified","2019-09-23T16:57:57+02:00","pg1"]]"#,
                ),
                ("initialize", "7123456789012345678"),
                ("failsafe", r#"{"pg1":"http://10.0.0.11:8008/patroni"}"#),
                ("failover", "{}"),
            ]),
            42,
        );
        assert_eq!((state.leader.as_deref(), state.revision), (Some("pg1"), 42));
        assert_eq!(state.members.keys().collect::<Vec<_>>(), ["pg1", "pg2"]);
        assert_eq!(state.members["pg1"].role, MemberRole::Primary);
        assert_eq!(
            state.sync.as_ref().map(|s| s.sync_standby.clone()),
            Some(vec!["pg2".to_owned()])
        );
        assert_eq!(state.config.synchronous_mode, SyncMode::On);
        assert_eq!(
            (state.optime, state.history_timeline, state.failover),
            (Some(500), Some(2), None)
        );
    }

    #[test]
    fn empty_map_is_default() {
        let state = cluster_from_keys(&BTreeMap::new(), 7);
        assert_eq!(
            state,
            ClusterState {
                revision: 7,
                ..ClusterState::default()
            }
        );
    }

    #[test]
    fn leader_is_trimmed_and_empty_means_unlocked() {
        let name = |v: &str| cluster_from_keys(&keys(&[("leader", v)]), 0).leader;
        assert_eq!(name(" pg1\n"), Some("pg1".to_owned()));
        assert_eq!(name(""), None);
        assert_eq!(name("  "), None);
        let bad = BTreeMap::from([("leader".to_owned(), vec![0xff, 0xfe])]);
        assert_eq!(cluster_from_keys(&bad, 0).leader, None);
    }

    #[test]
    fn citus_groups_and_unknown_keys_are_ignored() {
        let state = cluster_from_keys(
            &keys(&[
                ("0/leader", "coord1"),
                ("0/members/coord1", PG1),
                ("1/members/w1", PG2),
                ("1/sync", r#"{"leader":"w1","sync_standby":"w2"}"#),
                ("members/", PG1),
                ("members/a/b", PG1),
                ("something", "x"),
            ]),
            0,
        );
        assert_eq!(state, ClusterState::default());
    }

    #[test]
    fn legacy_optime_key_only_when_status_has_none() {
        let only_legacy = keys(&[("optime/leader", "1234")]);
        assert_eq!(cluster_from_keys(&only_legacy, 0).optime, Some(1234));
        let both = keys(&[("optime/leader", "1234"), ("status", r#"{"optime":99}"#)]);
        assert_eq!(cluster_from_keys(&both, 0).optime, Some(99));
        let status_without = keys(&[("optime/leader", "1234"), ("status", r#"{"slots":{}}"#)]);
        assert_eq!(cluster_from_keys(&status_without, 0).optime, Some(1234));
        let legacy_status = keys(&[("status", "777")]);
        assert_eq!(cluster_from_keys(&legacy_status, 0).optime, Some(777));
    }

    #[test]
    fn garbage_in_every_key_never_panics() {
        for garbage in [
            "",
            "{",
            "[[[",
            "null",
            "\u{0}\u{1}",
            "true",
            "-5",
            "{\"a\":}",
        ] {
            let all: Vec<(&str, &str)> = [
                "leader",
                "members/pg1",
                "sync",
                "config",
                "status",
                "optime/leader",
                "failover",
                "history",
            ]
            .iter()
            .map(|k| (*k, garbage))
            .collect();
            let state = cluster_from_keys(&keys(&all), 1);
            assert!(state.members.is_empty(), "{garbage:?}");
            assert_eq!(
                (state.sync, state.failover, state.optime),
                (None, None, None),
                "{garbage:?}"
            );
            assert_eq!(
                (state.config, state.history_timeline),
                (ConfigRecord::default(), None),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn unparsable_member_is_skipped_others_kept() {
        let state = cluster_from_keys(&keys(&[("members/pg1", "{oops"), ("members/pg2", PG2)]), 0);
        assert_eq!(state.members.keys().collect::<Vec<_>>(), ["pg2"]);
    }

    #[test]
    fn member_without_conn_url_has_no_host() {
        let state = cluster_from_keys(
            &keys(&[("members/pg3", r#"{"state":"running","role":"replica"}"#)]),
            0,
        );
        assert_eq!(state.members["pg3"].host, None);
    }
}
