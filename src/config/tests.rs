use std::time::Duration;

use super::*;

const MINIMAL: &str = "[cluster]\nscope = \"demo\"\n";

#[test]
fn minimal_config_gets_the_autobase_layout() {
    let c = parse(MINIMAL, "t.toml").unwrap();
    let ports: Vec<_> = c
        .listeners
        .iter()
        .map(|l| (l.addr.port(), l.role))
        .collect();
    assert_eq!(
        ports,
        [
            (5000, ListenerRole::Primary),
            (5001, ListenerRole::Replica),
            (5002, ListenerRole::Sync),
            (5003, ListenerRole::Async)
        ]
    );
    assert_eq!(c.listeners[1].max_lag.map(|s| s.0), Some(100 << 20));
    assert_eq!(c.listeners[2].max_lag, None);
    assert_eq!(c.listeners[0].connect_wait.0, Duration::from_secs(5));
    assert_eq!(c.dcs.etcd.endpoints, ["127.0.0.1:2379"]);
    assert_eq!(c.dcs_prefix(), "/service/demo/");
}

#[test]
fn full_listener_config() {
    let text = r#"
[cluster]
scope = "batman"
namespace = "db"
[dcs.etcd]
endpoints = ["10.0.0.1:2379", "http://10.0.0.2:2379"]
[[listener]]
addr = "127.0.0.1:6000"
role = "primary"
connect_wait = "250ms"
[[listener]]
name = "reads"
addr = "127.0.0.1:6001"
role = "replica"
balance = "least-connections"
max_lag = "16MB"
"#;
    let c = parse(text, "t.toml").unwrap();
    assert_eq!(c.dcs_prefix(), "/db/batman/");
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[0].connect_wait.0, Duration::from_millis(250));
    assert_eq!(c.listeners[1].balance, Balance::LeastConnections);
    assert_eq!(c.listeners[1].max_lag.map(|s| s.0), Some(16 << 20));
    assert_eq!(c.listeners[1].display_name(), "reads");
    assert_eq!(c.listeners[0].display_name(), "primary:6000");
}

fn error_of(text: &str) -> String {
    parse(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let e = error_of("[cluster]\nscope = \"demo\"\nscoop = 1\n");
    assert!(e.contains("scoop"), "{e}");
    let e = error_of(
        "[cluster]\nscope = \"d\"\n[[listener]]\naddr = \"127.0.0.1:1\"\nrole = \"leader\"\n",
    );
    assert!(e.contains("leader") && e.contains("role"), "{e}");
    let e = error_of("[cluster]\nscope = \"d\"\n[[listener]]\naddr = \"127.0.0.1:1\"\nrole = \"replica\"\nmax_lag = \"lots\"\n");
    assert!(e.contains("max_lag") && e.contains("lots"), "{e}");
    let e = error_of(
        "[cluster]\nscope = \"d\"\n[[listener]]\naddr = \"nowhere\"\nrole = \"replica\"\n",
    );
    assert!(e.contains("addr"), "{e}");
}

#[test]
fn semantic_errors_name_the_key() {
    let e = error_of("[cluster]\nscope = \"\"\n");
    assert!(e.contains("cluster.scope"), "{e}");
    let two = "[cluster]\nscope = \"d\"\n[[listener]]\naddr = \"127.0.0.1:1\"\nrole = \"replica\"\n[[listener]]\naddr = \"127.0.0.1:1\"\nrole = \"async\"\n";
    assert!(error_of(two).contains("listener[1].addr"));
    let lag = "[cluster]\nscope = \"d\"\n[[listener]]\naddr = \"127.0.0.1:1\"\nrole = \"primary\"\nmax_lag = \"1MB\"\n";
    assert!(error_of(lag).contains("listener[0].max_lag"));
    let no_ep = "[cluster]\nscope = \"d\"\n[dcs.etcd]\nendpoints = []\n";
    assert!(error_of(no_ep).contains("dcs.etcd.endpoints"));
    let user = "[cluster]\nscope = \"d\"\n[dcs.etcd]\nusername = \"u\"\n";
    assert!(error_of(user).contains("dcs.etcd.username"));
}

#[test]
fn missing_cluster_section_is_an_error() {
    assert!(error_of("").contains("cluster"));
}

#[test]
fn shipped_example_config_is_valid() {
    let text = include_str!("../../config/rolegate.toml");
    let c = parse(text, "config/rolegate.toml").unwrap();
    assert_eq!(c.listeners.len(), 4);
}

#[test]
fn pooled_listener_settings_and_defaults() {
    let text = r#"
[cluster]
scope = "demo"
[auth]
type = "scram-sha-256"
file = "/etc/rolegate/userlist.txt"
[[listener]]
addr = "127.0.0.1:6000"
role = "primary"
pool_mode = "transaction"
pool_size = 20
server_lifetime = "1h"
[[listener]]
addr = "127.0.0.1:6001"
role = "replica"
"#;
    let c = parse(text, "t.toml").unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.pool_mode, Some(PoolMode::Transaction));
    assert_eq!(
        (l.pool_size, l.min_pool_size, l.max_client_conn),
        (20, 0, 5000)
    );
    assert_eq!(l.server_lifetime.0, Duration::from_secs(3600));
    assert_eq!(l.query_wait_timeout.0, Duration::from_secs(120));
    assert_eq!(l.server_reset_query, "DISCARD ALL");
    assert_eq!(c.listeners[1].pool_mode, None);
    assert_eq!(c.auth.unwrap().kind, AuthType::ScramSha256);
}

#[test]
fn pool_and_auth_errors_name_the_key() {
    let base = "[cluster]\nscope = \"d\"\n[[listener]]\naddr = \"127.0.0.1:1\"\nrole = \"primary\"\npool_mode = \"transaction\"\n";
    assert!(error_of(base).contains(": auth:"), "{}", error_of(base));
    let trust = "[auth]\ntype = \"trust\"\n";
    assert!(parse(&format!("{base}{trust}"), "t").is_ok());
    let e = error_of(&format!("{base}pool_sise = 3\n{trust}"));
    assert!(e.contains("pool_sise"), "{e}");
    let e = error_of(&format!("{base}pool_size = 0\n{trust}"));
    assert!(e.contains("listener[0].pool_size"), "{e}");
    let e = error_of(&format!("{base}pool_size = 2\nmin_pool_size = 3\n{trust}"));
    assert!(e.contains("listener[0].min_pool_size"), "{e}");
    let e = error_of(&format!("{base}pool_mode = \"statement\"\n{trust}"));
    assert!(e.contains("pool_mode") || e.contains("statement"), "{e}");
    let e = error_of(&format!("{base}[auth]\ntype = \"md5\"\n"));
    assert!(e.contains("auth.file"), "{e}");
    let e = error_of(&format!(
        "{base}[auth]\ntype = \"md5\"\nquery = \"select\"\n"
    ));
    assert!(e.contains("auth.user"), "{e}");
    let e = error_of(&format!("{base}[auth]\ntype = \"trust\"\nuser = \"pgb\"\n"));
    assert!(e.contains("auth.file") && e.contains("auth.user"), "{e}");
    let ok = format!("{base}[auth]\ntype = \"md5\"\nfile = \"u.txt\"\nuser = \"pgb\"\n");
    assert!(
        parse(&ok, "t").is_ok(),
        "auth.user without auth.query uses the default query"
    );
    let e = error_of(&format!("{base}[auth]\ntype = \"ldap\"\n"));
    assert!(e.contains("ldap"), "{e}");
}

#[test]
fn debug_output_never_shows_the_etcd_password() {
    let c = parse(
        "[cluster]\nscope = \"demo\"\n[dcs.etcd]\nusername = \"root\"\npassword = \"hunter2-s3cret\"\n\
         [admin]\ntoken = \"hunter2-token\"\nuser = \"ops\"\npassword = \"hunter2-http\"\n",
        "test",
    )
    .unwrap();
    assert_eq!(
        c.dcs
            .etcd
            .password
            .as_ref()
            .map(units::SecretString::expose),
        Some("hunter2-s3cret")
    );
    for text in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(
            !text.contains("hunter2"),
            "password in Debug output: {text}"
        );
        assert!(text.contains("<redacted>"), "{text}");
    }
}

#[test]
fn admin_and_general_sections_have_defaults() {
    let c = parse("[cluster]\nscope = \"demo\"\n", "test").unwrap();
    assert!(c.admin.admin_users.is_empty());
    assert_eq!(
        c.general.shutdown_timeout.0,
        std::time::Duration::from_secs(30)
    );
    let c = parse(
        "[cluster]\nscope = \"demo\"\n[admin]\nadmin_users = [\"ops\"]\nstats_users = [\"mon\"]\n[general]\nshutdown_timeout = \"5s\"\n",
        "test",
    )
    .unwrap();
    assert_eq!(c.admin.admin_users, ["ops"]);
    assert_eq!(c.admin.stats_users, ["mon"]);
    assert_eq!(
        c.general.shutdown_timeout.0,
        std::time::Duration::from_secs(5)
    );
}

#[test]
fn parse_errors_do_not_quote_the_line_that_may_hold_a_password() {
    let e = parse(
        "[cluster]\nscope = \"demo\"\n[dcs.etcd]\npassword = \"hunter2-s3cret\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    let e = parse("[cluster]\nscope = 5\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("string"), "{e}");
}

#[test]
fn tcp_options_have_defaults_and_name_the_key_when_wrong() {
    let c = parse("[cluster]\nscope = \"demo\"\n", "test").unwrap();
    assert!(c.general.tcp_keepalive);
    assert_eq!(c.general.tcp_keepidle.0, Duration::from_secs(60));
    assert_eq!(c.general.tcp_keepintvl.0, Duration::from_secs(10));
    assert_eq!(c.general.tcp_keepcnt, 6);
    assert_eq!(c.general.tcp_user_timeout.0, Duration::ZERO);
    let c = parse(
        "[cluster]\nscope = \"d\"\n[general]\ntcp_keepalive = false\ntcp_keepidle = \"2m\"\n\
         tcp_keepintvl = 3\ntcp_keepcnt = 4\ntcp_user_timeout = \"1500ms\"\n",
        "test",
    )
    .unwrap();
    assert!(!c.general.tcp_keepalive);
    assert_eq!(c.general.tcp_keepidle.0, Duration::from_secs(120));
    assert_eq!(c.general.tcp_keepintvl.0, Duration::from_secs(3));
    assert_eq!(c.general.tcp_keepcnt, 4);
    assert_eq!(c.general.tcp_user_timeout.0, Duration::from_millis(1500));

    let general = |kv: &str| error_of(&format!("[cluster]\nscope = \"d\"\n[general]\n{kv}\n"));
    for (kv, key, says) in [
        (
            "tcp_keepidle = 0",
            "general.tcp_keepidle",
            "from 1s to 32767s",
        ),
        (
            "tcp_keepidle = \"1500ms\"",
            "general.tcp_keepidle",
            "whole seconds",
        ),
        ("tcp_keepintvl = \"10h\"", "general.tcp_keepintvl", "32767s"),
        ("tcp_keepcnt = 0", "general.tcp_keepcnt", "from 1 to 127"),
        ("tcp_keepcnt = 128", "general.tcp_keepcnt", "from 1 to 127"),
        (
            "tcp_user_timeout = \"50d\"",
            "tcp_user_timeout",
            "invalid duration",
        ),
        (
            "tcp_user_timeout = \"1200h\"",
            "general.tcp_user_timeout",
            "49 days",
        ),
    ] {
        let e = general(kv);
        assert!(e.contains(key) && e.contains(says), "{kv}: {e}");
    }
}
