//! The small persistent keys: `sync`, `status` (and legacy `optime/leader`), `failover`, `history`.
//! Each parser returns `None` for absent, empty (`{}`) or garbage values.

use serde_json::Value;

use super::value::{parse_json, text, uint};
use crate::topology::state::{FailoverRecord, SyncRecord};

/// `{"leader":"pg1","sync_standby":"pg2,pg3"|null[,"quorum":n]}` (2.x-4.x); no leader => `None`.
pub(super) fn sync(raw: &[u8]) -> Option<SyncRecord> {
    let data = parse_json("sync", raw)?;
    let leader = text(data.get("leader"))?;
    let sync_standby = data
        .get("sync_standby")
        .and_then(Value::as_str)
        .map(names)
        .unwrap_or_default();
    let quorum = data
        .get("quorum")
        .and_then(uint)
        .and_then(|q| u32::try_from(q).ok());
    Some(SyncRecord {
        leader: Some(leader),
        sync_standby,
        quorum: quorum.unwrap_or(0),
    })
}

/// Lower-cased names from a comma-joined list, empty entries dropped.
fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// `status.optime` (2.1+), or the pre-2.1 bare integer.
pub(super) fn status_optime(raw: &[u8]) -> Option<u64> {
    match parse_json("status", raw)? {
        Value::Object(data) => data.get("optime").and_then(uint),
        other => uint(&other),
    }
}

/// Legacy `optime/leader`: an integer LSN as a string.
pub(super) fn legacy_optime(raw: &[u8]) -> Option<u64> {
    let value = std::str::from_utf8(raw).ok()?.trim().parse().ok();
    if value.is_none() {
        tracing::warn!(key = "optime/leader", "ignoring non-integer legacy optime");
    }
    value
}

/// A pending switchover or failover; `{}` (already consumed) and garbage => `None`.
pub(super) fn failover(raw: &[u8]) -> Option<FailoverRecord> {
    let data = parse_json("failover", raw)?;
    let record = FailoverRecord {
        leader: text(data.get("leader")),
        member: text(data.get("member")),
        scheduled_at: text(data.get("scheduled_at")),
    };
    (record.leader.is_some() || record.member.is_some()).then_some(record)
}

/// `Cluster.timeline`: last history entry's timeline + 1; `[]` => 1 (never switched).
pub(super) fn history_timeline(raw: &[u8]) -> Option<u64> {
    let data = parse_json("history", raw)?;
    let timeline = match data.as_array()?.last() {
        None => Some(1),
        Some(entry) => entry.get(0).and_then(uint).and_then(|t| t.checked_add(1)),
    };
    if timeline.is_none() {
        tracing::warn!(
            key = "history",
            "ignoring history without a usable last timeline"
        );
    }
    timeline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync_of(raw: &str) -> Option<(String, Vec<String>, u32)> {
        sync(raw.as_bytes()).map(|s| (s.leader.unwrap_or_default(), s.sync_standby, s.quorum))
    }

    fn owned(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    #[test]
    fn sync_2x_3x_forms() {
        let two = sync_of(r#"{"leader":"pg1","sync_standby":"pg2,pg3"}"#);
        assert_eq!(two, Some(("pg1".into(), owned(&["pg2", "pg3"]), 0)));
        let none = sync_of(r#"{"leader":"pg1","sync_standby":null}"#);
        assert_eq!(none, Some(("pg1".into(), vec![], 0)));
    }

    #[test]
    fn sync_4x_forms() {
        let on = sync_of(r#"{"leader":"pg1","quorum":0,"sync_standby":"pg2"}"#);
        assert_eq!(on, Some(("pg1".into(), owned(&["pg2"]), 0)));
        let quorum = sync_of(r#"{"leader":"pg1","quorum":1,"sync_standby":"pg2,pg3,pg4"}"#);
        assert_eq!(
            quorum,
            Some(("pg1".into(), owned(&["pg2", "pg3", "pg4"]), 1))
        );
        let k8s = sync_of(r#"{"leader":"pg1","quorum":"2","sync_standby":"PG2, Pg3,"}"#);
        assert_eq!(k8s, Some(("pg1".into(), owned(&["pg2", "pg3"]), 2)));
    }

    #[test]
    fn sync_empty_or_garbage() {
        for raw in [
            "{}",
            "",
            "garbage",
            "[]",
            "\"pg1\"",
            r#"{"leader":""}"#,
            r#"{"sync_standby":"pg2"}"#,
        ] {
            assert_eq!(sync_of(raw), None, "{raw:?}");
        }
        let bad_fields = sync_of(r#"{"leader":"pg1","quorum":-1,"sync_standby":7}"#);
        assert_eq!(bad_fields, Some(("pg1".into(), vec![], 0)));
    }

    #[test]
    fn status_forms() {
        let full = br#"{"optime":67395656,"slots":{"pg2":67395656},"retain_slots":["pg1","pg2"]}"#;
        assert_eq!(status_optime(full), Some(67_395_656));
        assert_eq!(status_optime(b"67395656"), Some(67_395_656));
        assert_eq!(status_optime(br#"{"optime":"123"}"#), Some(123));
        for raw in [&b"{}"[..], b"", b"{bad", b"[1]", br#"{"optime":null}"#] {
            assert_eq!(status_optime(raw), None);
        }
    }

    #[test]
    fn legacy_optime_forms() {
        assert_eq!(legacy_optime(b"67395656\n"), Some(67_395_656));
        assert_eq!(legacy_optime(b"abc"), None);
        assert_eq!(legacy_optime(&[0xff]), None);
    }

    #[test]
    fn failover_forms() {
        let raw = br#"{"leader":"pg1","member":"pg2","scheduled_at":"2024-05-01T10:00:00+00:00"}"#;
        let f = failover(raw).expect("switchover");
        assert_eq!(
            (f.leader.as_deref(), f.member.as_deref()),
            (Some("pg1"), Some("pg2"))
        );
        assert_eq!(f.scheduled_at.as_deref(), Some("2024-05-01T10:00:00+00:00"));
        let manual = failover(br#"{"member":"pg3"}"#).expect("failover");
        assert_eq!(
            (manual.leader, manual.member.as_deref()),
            (None, Some("pg3"))
        );
        for raw in [
            &b"{}"[..],
            b"",
            b"pg1:pg2",
            b"[]",
            br#"{"scheduled_at":"x"}"#,
        ] {
            assert_eq!(failover(raw), None);
        }
    }

    #[test]
    fn history_forms() {
        let raw = br#"[[1,25623960,"no recovery target specified","2019-09-23T16:57:57+02:00","pg2"],[2,25624344,"no recovery target specified","2019-09-24T10:00:00+02:00","pg1"]]"#;
        assert_eq!(history_timeline(raw), Some(3));
        assert_eq!(history_timeline(b"[]"), Some(1));
        assert_eq!(history_timeline(br#"[["4",1,"r"]]"#), Some(5));
        for raw in [&b"{}"[..], b"", b"[[", b"[[null]]", b"[[]]", b"[1]"] {
            assert_eq!(history_timeline(raw), None);
        }
    }
}
