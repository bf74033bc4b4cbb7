//! `members/<name>` values: the JSON written by `Ha.touch_member` (2.x-4.x), and the
//! Governor-era bare `postgres://user:pass@host:port/db?application_name=<api_url>` string.

use serde_json::{Map, Value};

use super::conn_url::{host_port, DEFAULT_PORT};
use super::value::{flag, int, parse_json, render, text, truthy, uint};
use crate::topology::state::{MemberRecord, MemberRole, Tags};

/// Parses one member key; `None` (with a warning) when the value is not usable at all.
pub(super) fn parse(name: &str, key: &str, raw: &[u8]) -> Option<MemberRecord> {
    let trimmed = raw.trim_ascii();
    if trimmed.starts_with(b"postgres") {
        return std::str::from_utf8(trimmed)
            .ok()
            .map(|s| from_legacy(name, s));
    }
    let Value::Object(data) = parse_json(key, trimmed)? else {
        tracing::warn!(key, "ignoring member value that is not a JSON object");
        return None;
    };
    Some(from_json(name, &data))
}

fn from_json(name: &str, data: &Map<String, Value>) -> MemberRecord {
    let num = |field: &str| data.get(field).and_then(uint);
    let role = text(data.get("role")).unwrap_or_default();
    MemberRecord {
        api_url: text(data.get("api_url")),
        role: MemberRole::parse(&role),
        state: text(data.get("state")).unwrap_or_default(),
        version: text(data.get("version")),
        timeline: num("timeline"),
        xlog_location: num("xlog_location"),
        replay_lsn: num("replay_lsn"),
        receive_lsn: num("receive_lsn"),
        replication_state: text(data.get("replication_state")),
        tags: data
            .get("tags")
            .and_then(Value::as_object)
            .map(tags)
            .unwrap_or_default(),
        pause: data.get("pause").is_some_and(flag),
        ..with_conn_url(name, text(data.get("conn_url")).as_deref())
    }
}

/// The bare-string form carries only the connection and API URLs.
fn from_legacy(name: &str, value: &str) -> MemberRecord {
    let (conn_url, query) = value.split_once('?').unwrap_or((value, ""));
    let api_url = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("application_name="))
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    MemberRecord {
        api_url,
        ..with_conn_url(name, Some(conn_url))
    }
}

/// A record with only the name and the address from `conn_url` filled in.
fn with_conn_url(name: &str, conn_url: Option<&str>) -> MemberRecord {
    let address = conn_url.and_then(host_port);
    if address.is_none() && conn_url.is_some() {
        tracing::warn!(
            member = name,
            "member conn_url is not a PostgreSQL URL; not routable"
        );
    }
    let (host, port) = address.map_or((None, DEFAULT_PORT), |(h, p)| (Some(h), p));
    MemberRecord {
        host,
        port,
        ..MemberRecord::new(name)
    }
}

/// Routing tags; `sync_priority`/`failover_priority` <= 0 mean `nosync`/`nofailover` (3.2, 4.1).
fn tags(map: &Map<String, Value>) -> Tags {
    let set = |tag: &str| map.get(tag).is_some_and(truthy);
    let not_positive = |tag: &str| map.get(tag).and_then(int).is_some_and(|p| p <= 0);
    Tags {
        noloadbalance: set("noloadbalance"),
        nosync: set("nosync") || not_positive("sync_priority"),
        nofailover: set("nofailover") || not_positive("failover_priority"),
        raw: map.iter().map(|(k, v)| (k.clone(), render(v))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(raw: &str) -> Option<MemberRecord> {
        parse("pg2", "members/pg2", raw.as_bytes())
    }

    const REPLICA_4X: &str = r#"{"conn_url":"postgres://10.0.0.12:5432/postgres","api_url":"http://10.0.0.12:8008/patroni","state":"running","role":"replica","version":"4.1.4","tags":{"nosync":true},"xlog_location":67395656,"replay_lsn":67395600,"receive_lsn":67395656,"replication_state":"streaming","timeline":3}"#;

    #[test]
    fn full_4x_replica() {
        let m = member(REPLICA_4X).expect("parses");
        assert_eq!(
            (m.name.as_str(), m.host.as_deref(), m.port),
            ("pg2", Some("10.0.0.12"), 5432)
        );
        assert_eq!(m.api_url.as_deref(), Some("http://10.0.0.12:8008/patroni"));
        assert_eq!((m.role, m.state.as_str()), (MemberRole::Replica, "running"));
        assert_eq!(m.version.as_deref(), Some("4.1.4"));
        assert_eq!((m.timeline, m.xlog_location), (Some(3), Some(67_395_656)));
        assert_eq!(
            (m.replay_lsn, m.receive_lsn),
            (Some(67_395_600), Some(67_395_656))
        );
        assert_eq!(m.replication_state.as_deref(), Some("streaming"));
        assert!(m.tags.nosync && !m.tags.noloadbalance && !m.tags.nofailover && !m.pause);
        assert_eq!(m.tags.raw.get("nosync").map(String::as_str), Some("true"));
    }

    #[test]
    fn master_and_primary_are_the_same_role() {
        let v3 = r#"{"conn_url":"postgres://h1/postgres","state":"running","role":"master","version":"3.3.0","xlog_location":100,"timeline":2}"#;
        let v4 = r#"{"conn_url":"postgres://h1/postgres","state":"running","role":"primary"}"#;
        assert_eq!(member(v3).map(|m| m.role), Some(MemberRole::Primary));
        assert_eq!(member(v4).map(|m| m.role), Some(MemberRole::Primary));
    }

    #[test]
    fn old_versions_lack_lsn_fields_and_replication_state() {
        let v2 = r#"{"conn_url":"postgres://h2:5433/postgres","state":"running","role":"replica","version":"2.1.7","xlog_location":90}"#;
        let m = member(v2).expect("parses");
        assert_eq!(
            (m.replay_lsn, m.receive_lsn, m.replication_state),
            (None, None, None)
        );
        assert_eq!((m.xlog_location, m.port), (Some(90), 5433));
    }

    #[test]
    fn numbers_as_strings() {
        let raw = r#"{"conn_url":"postgres://h","role":"replica","state":"running","timeline":"4","xlog_location":"1000","replay_lsn":"900","tags":{"sync_priority":"0"}}"#;
        let m = member(raw).expect("parses");
        assert_eq!(
            (m.timeline, m.xlog_location, m.replay_lsn),
            (Some(4), Some(1000), Some(900))
        );
        assert!(m.tags.nosync);
    }

    #[test]
    fn tag_forms() {
        let raw = r#"{"conn_url":"postgres://h","tags":{"noloadbalance":"true","failover_priority":0,"sync_priority":1,"dc":"east","weight":3}}"#;
        let t = member(raw).expect("parses").tags;
        assert!(t.noloadbalance && t.nofailover && !t.nosync);
        assert_eq!(t.raw.get("dc").map(String::as_str), Some("east"));
        assert_eq!(t.raw.get("weight").map(String::as_str), Some("3"));
        let off = r#"{"conn_url":"postgres://h","tags":{"noloadbalance":false,"nofailover":"false","nosync":0}}"#;
        let t = member(off).expect("parses").tags;
        assert!(!t.noloadbalance && !t.nofailover && !t.nosync);
    }

    #[test]
    fn ipv6_userinfo_and_pause() {
        let raw = r#"{"conn_url":"postgresql://u:p@[fd00::3]:6000/postgres","role":"replica","pause":true}"#;
        let m = member(raw).expect("parses");
        assert_eq!(
            (m.host.as_deref(), m.port, m.pause),
            (Some("fd00::3"), 6000, true)
        );
    }

    #[test]
    fn legacy_bare_string() {
        let raw = "postgres://admin:pw@10.0.0.9:5435/postgres?application_name=http://10.0.0.9:8008/patroni";
        let m = member(raw).expect("parses");
        assert_eq!((m.host.as_deref(), m.port), (Some("10.0.0.9"), 5435));
        assert_eq!(m.api_url.as_deref(), Some("http://10.0.0.9:8008/patroni"));
        assert_eq!(
            (m.role, m.state.as_str()),
            (MemberRole::Other(String::new()), "")
        );
    }

    #[test]
    fn missing_or_bad_conn_url_means_no_host() {
        let none = member(r#"{"role":"replica","state":"running"}"#).expect("parses");
        assert_eq!((none.host, none.port), (None, 5432));
        let bad = member(r#"{"conn_url":"10.0.0.1:5432","role":"replica"}"#).expect("parses");
        assert_eq!(bad.host, None);
    }

    #[test]
    fn garbage_is_skipped() {
        for raw in ["", "{", "not json", "[1,2]", "\"pg2\"", "42", "null"] {
            assert_eq!(member(raw), None, "{raw:?}");
        }
        assert_eq!(
            parse(
                "pg2",
                "members/pg2",
                &[0x70, 0x6f, 0x73, 0x74, 0x67, 0x72, 0x65, 0x73, 0xff]
            ),
            None
        );
    }
}
