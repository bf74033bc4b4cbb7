//! The dynamic `config` key: only the settings routing needs, with Patroni's defaults
//! for anything absent or malformed.

use serde_json::{Map, Value};

use super::value::{flag, parse_bool, parse_json, truthy, uint};
use crate::topology::state::{ConfigRecord, SyncMode};

/// Parses `config`; garbage or a non-object value yields the defaults.
pub(super) fn parse(raw: &[u8]) -> ConfigRecord {
    match parse_json("config", raw) {
        Some(Value::Object(data)) => from_map(&data),
        Some(_) => {
            tracing::warn!(
                key = "config",
                "config is not a JSON object; using defaults"
            );
            ConfigRecord::default()
        }
        None => ConfigRecord::default(),
    }
}

fn from_map(data: &Map<String, Value>) -> ConfigRecord {
    let defaults = ConfigRecord::default();
    let num = |field: &str, default: u64| data.get(field).and_then(uint).unwrap_or(default);
    let switch = |field: &str| data.get(field).is_some_and(flag);
    ConfigRecord {
        ttl: num("ttl", defaults.ttl),
        loop_wait: num("loop_wait", defaults.loop_wait),
        synchronous_mode: data
            .get("synchronous_mode")
            .map_or(SyncMode::Off, sync_mode),
        standby_cluster: data.get("standby_cluster").is_some_and(is_standby),
        pause: switch("pause"),
        failsafe_mode: switch("failsafe_mode"),
        maximum_lag_on_failover: num("maximum_lag_on_failover", defaults.maximum_lag_on_failover),
    }
}

/// `synchronous_mode`: a bool, `"quorum"`, or anything Patroni's `parse_bool` reads.
fn sync_mode(v: &Value) -> SyncMode {
    let s = match v {
        Value::String(s) => s.trim().to_ascii_lowercase(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        _ => return SyncMode::Off,
    };
    match (s.as_str(), parse_bool(&s)) {
        ("quorum", _) => SyncMode::Quorum,
        (_, Some(true)) => SyncMode::On,
        _ => SyncMode::Off,
    }
}

/// `GlobalConfig.is_standby_cluster`: an object with a truthy host, port or restore_command.
fn is_standby(v: &Value) -> bool {
    let Some(section) = v.as_object() else {
        return false;
    };
    ["host", "port", "restore_command"]
        .iter()
        .any(|k| section.get(*k).is_some_and(truthy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(raw: &str) -> ConfigRecord {
        parse(raw.as_bytes())
    }

    #[test]
    fn full_config() {
        let c = cfg(
            r#"{"ttl":20,"loop_wait":5,"retry_timeout":5,"maximum_lag_on_failover":33554432,"synchronous_mode":true,"failsafe_mode":true,"pause":true,"postgresql":{"use_pg_rewind":true}}"#,
        );
        assert_eq!(
            (c.ttl, c.loop_wait, c.maximum_lag_on_failover),
            (20, 5, 33_554_432)
        );
        assert_eq!(c.synchronous_mode, SyncMode::On);
        assert!(c.failsafe_mode && c.pause && !c.standby_cluster);
    }

    #[test]
    fn missing_fields_use_defaults() {
        assert_eq!(cfg("{}"), ConfigRecord::default());
        let c = cfg(r#"{"ttl":"45","loop_wait":"x","pause":"off"}"#);
        assert_eq!((c.ttl, c.loop_wait, c.pause), (45, 10, false));
    }

    #[test]
    fn garbage_config_is_default() {
        for raw in ["", "{", "[]", "30", "null", "\"on\""] {
            assert_eq!(cfg(raw), ConfigRecord::default(), "{raw:?}");
        }
    }

    #[test]
    fn synchronous_mode_forms() {
        let cases = [
            ("true", SyncMode::On),
            ("false", SyncMode::Off),
            ("\"on\"", SyncMode::On),
            ("\"ON\"", SyncMode::On),
            ("\"yes\"", SyncMode::On),
            ("\"1\"", SyncMode::On),
            ("1", SyncMode::On),
            ("\"off\"", SyncMode::Off),
            ("\"no\"", SyncMode::Off),
            ("\"quorum\"", SyncMode::Quorum),
            ("\"Quorum\"", SyncMode::Quorum),
            ("\"bogus\"", SyncMode::Off),
            ("null", SyncMode::Off),
            ("{}", SyncMode::Off),
        ];
        for (value, want) in cases {
            let got = cfg(&format!(r#"{{"synchronous_mode":{value}}}"#)).synchronous_mode;
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn standby_cluster_forms() {
        let cases = [
            (r#"{"host":"10.1.0.1","port":5432}"#, true),
            (r#"{"restore_command":"cp /wal/%f %p"}"#, true),
            (r#"{"port":5433}"#, true),
            (r#"{"primary_slot_name":"s1"}"#, false),
            (r#"{"host":""}"#, false),
            ("{}", false),
            ("null", false),
            ("true", false),
        ];
        for (value, want) in cases {
            let got = cfg(&format!(r#"{{"standby_cluster":{value}}}"#)).standby_cluster;
            assert_eq!(got, want, "{value}");
        }
    }
}
