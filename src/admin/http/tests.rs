use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::BodyExt;

use super::*;
use crate::config::ListenerConfig;
use crate::dcs::patroni::cluster_from_keys;
use crate::topology::derive;

fn listener(toml_text: &str) -> Arc<Listener> {
    #[derive(serde::Deserialize)]
    struct One {
        listener: Vec<ListenerConfig>,
    }
    let one: One = toml::from_str(toml_text).unwrap();
    Arc::new(Listener::from_config(&one.listener[0]))
}

/// A cluster with leader pg1, replica pg2 (sync) and replica `<b>` (async), as published
/// by the DCS source.
fn state(config: &AdminConfig) -> AdminState {
    let store = Arc::new(TopologyStore::new());
    let member = |port: u16, role: &str| {
        format!(
            r#"{{"conn_url":"postgres://127.0.0.1:{port}/postgres","role":"{role}","state":"running","xlog_location":100}}"#
        )
    };
    let keys: BTreeMap<String, Vec<u8>> = [
        ("leader", "pg1".to_owned()),
        ("config", r#"{"ttl":30,"synchronous_mode":true}"#.to_owned()),
        (
            "sync",
            r#"{"leader":"pg1","sync_standby":"pg2"}"#.to_owned(),
        ),
        ("members/pg1", member(1, "primary")),
        ("members/pg2", member(2, "replica")),
        ("members/<b>", member(3, "replica")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_bytes()))
    .collect();
    store.touch();
    store.publish(derive(&cluster_from_keys(&keys, 7)));
    let listeners = vec![
        listener(
            "[[listener]]\naddr = \"127.0.0.1:1\"\nrole = \"primary\"\npool_mode = \"transaction\"",
        ),
        listener("[[listener]]\nname = \"ro\"\naddr = \"127.0.0.1:2\"\nrole = \"replica\""),
    ];
    AdminState::new(
        "demo".into(),
        store,
        Arc::default(),
        Arc::new(ArcSwap::from_pointee(listeners)),
        config,
    )
}

fn get(state: &AdminState, path: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = handle(state, &req.body(()).unwrap());
    let status = resp.status();
    let body = futures_body(resp.into_body());
    (status, body)
}

fn futures_body(body: Body) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = rt.block_on(body.collect()).unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn role_checks_follow_the_topology() {
    let s = state(&AdminConfig::default());
    let (status, body) = get(&s, "/role/primary", None);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("pg1"));
    assert_eq!(get(&s, "/role/sync", None).0, StatusCode::OK);
    assert_eq!(get(&s, "/role/async", None).0, StatusCode::OK);
    assert_eq!(get(&s, "/ready", None).0, StatusCode::OK);
    // The leader key goes away: no primary, replicas still served.
    let mut t = (*s.topology.load()).clone();
    t.leader = None;
    for m in &mut t.members {
        m.primary_ok = false;
    }
    s.topology.publish(t);
    let (status, body) = get(&s, "/role/primary", None);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("no member is a running primary"), "{body}");
    assert_eq!(get(&s, "/role/replica", None).0, StatusCode::OK);
}

#[test]
fn nothing_read_from_the_dcs_is_not_ready() {
    let s = AdminState::new(
        "demo".into(),
        Arc::new(TopologyStore::new()),
        Arc::default(),
        Arc::new(ArcSwap::from_pointee(vec![listener(
            "[[listener]]\naddr = \"127.0.0.1:1\"\nrole = \"primary\"",
        )])),
        &AdminConfig::default(),
    );
    let (status, body) = get(&s, "/ready", None);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("has not read the cluster state"), "{body}");
    assert_eq!(get(&s, "/health", None).0, StatusCode::OK);
}

#[test]
fn metrics_render_the_counters_as_valid_prometheus_text() {
    let s = state(&AdminConfig::default());
    let primary = s.listeners.load()[0].clone();
    primary.stats.transactions.add(41);
    primary.stats.errors.record(b"42P01");
    primary.stats.query_time.record(Duration::from_millis(3));
    primary.stats.query_time.record(Duration::from_millis(30));
    s.stats.config_reloads.record(false);
    let (status, text) = get(&s, "/metrics", None);
    assert_eq!(status, StatusCode::OK);
    let sample = |series: &str| -> Option<f64> {
        text.lines().find_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            (name == series).then(|| v.parse().ok()).flatten()
        })
    };
    assert_eq!(
        sample("rolegate_transactions_total{listener=\"primary:1\"}"),
        Some(41.0)
    );
    assert_eq!(
        sample("rolegate_errors_total{listener=\"primary:1\",class=\"42\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample("rolegate_member_is_primary{member=\"pg1\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample("rolegate_member_is_primary{member=\"pg2\"}"),
        Some(0.0)
    );
    assert_eq!(sample("rolegate_member_is_sync{member=\"pg2\"}"), Some(1.0));
    assert_eq!(sample("rolegate_role_members{role=\"async\"}"), Some(1.0));
    assert_eq!(
        sample("rolegate_config_reloads_total{result=\"error\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample("rolegate_config_reloads_total{result=\"ok\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample("rolegate_query_duration_seconds_bucket{listener=\"primary:1\",le=\"0.005\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample("rolegate_query_duration_seconds_bucket{listener=\"primary:1\",le=\"+Inf\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample("rolegate_query_duration_seconds_count{listener=\"primary:1\"}"),
        Some(2.0)
    );
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("rolegate_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[test]
fn page_and_json_show_the_cluster_and_escape_dcs_text() {
    let s = state(&AdminConfig::default());
    let (status, page) = get(&s, "/", None);
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("leader <b>pg1</b>"));
    assert!(page.contains("data-member=\"&lt;b&gt;\""));
    assert!(!page.contains("<b><b></b>"));
    assert!(page.contains("data-listener=\"ro\""));
    let (_, topo) = get(&s, "/topology", None);
    let v: serde_json::Value = serde_json::from_str(&topo).unwrap();
    assert_eq!(v["leader"], "pg1");
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    let (_, ls) = get(&s, "/listeners", None);
    let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(v[0]["pool_mode"], "transaction");
    assert_eq!(v[1]["members"], serde_json::json!(["<b>", "pg2"]));
    assert_eq!(get(&s, "/nope", None).0, StatusCode::NOT_FOUND);
}

#[test]
fn credentials_guard_everything_but_health() {
    let s = state(&AdminConfig {
        token: Some("tok".into()),
        ..AdminConfig::default()
    });
    assert_eq!(get(&s, "/metrics", None).0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&s, "/", Some("Bearer nope")).0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&s, "/metrics", Some("Bearer tok")).0, StatusCode::OK);
    assert_eq!(get(&s, "/health", None).0, StatusCode::OK);
}
