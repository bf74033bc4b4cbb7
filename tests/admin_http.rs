//! The HTTP admin server against a real Patroni cluster: `/topology` agrees with Patroni,
//! `/role/*` and `/ready` answer like health checks should, `/pools` and `/metrics` count
//! real traffic, a switchover flips `rolegate_member_is_primary`, the token is enforced,
//! and the stats page renders in headless Chromium (which also takes docs/stats-page.png).

mod cluster;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cluster::spawn;
use cluster::{wait_until, Cluster, Session};
use serde_json::Value;

const BASE: u16 = 27_000;
const POOLED: u16 = BASE + 41;
const PASSTHROUGH: u16 = BASE + 42;
const REPLICA: u16 = BASE + 43;
const ADMIN: u16 = BASE + 45;
const ADMIN_AUTH: u16 = BASE + 46;
const TOKEN: &str = "test-t0ken";

/// GET `path` on loopback `port` with an optional `Authorization` header: (status, body).
fn get(port: u16, path: &str, authorization: Option<&str>) -> Result<(u16, String)> {
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connect {port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no headers: {raw}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("no status: {head}"))?
        .parse()?;
    Ok((status, body.to_owned()))
}

fn get_json(port: u16, path: &str) -> Result<Value> {
    let (status, body) = get(port, path, None)?;
    anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// The value of the sample `series` (name plus labels exactly as rendered), if present.
fn metric(port: u16, series: &str) -> Result<Option<f64>> {
    let (_, body) = get(port, "/metrics", None)?;
    Ok(body.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    }))
}

fn leader_in_topology(port: u16) -> Result<Option<String>> {
    Ok(get_json(port, "/topology")?["leader"]
        .as_str()
        .map(str::to_owned))
}

fn route_role(topology: &Value, member: &str) -> Option<String> {
    topology["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == member)?["route_role"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn admin_http_reports_the_real_cluster() {
    let cluster = Cluster::start(BASE);
    cluster.wait_healthy(Duration::from_secs(60));
    let leader = cluster.leader().expect("leader");
    let listeners = format!(
        "{}[[listener]]\nname = \"replicas\"\naddr = \"127.0.0.1:{REPLICA}\"\nrole = \"replica\"\n\
         [admin]\nhttp = \"127.0.0.1:{ADMIN}\"\n",
        spawn::primary_listeners(POOLED, PASSTHROUGH)
    );
    let rolegate = spawn::rolegate(
        &cluster,
        "rolegate-admin",
        &listeners,
        &[POOLED, PASSTHROUGH, REPLICA, ADMIN],
    );
    let others = topology_agrees(&cluster, &leader);
    traffic_is_counted(&leader, &others);
    stats_page_in_chromium(&leader, &others);
    switchover_flips_is_primary(&cluster, &leader);
    auth_is_enforced(&cluster);
    ready_follows_the_dcs(&cluster);
    drop(rolegate);
}

/// The view agrees with Patroni, and the checks say so. Returns the non-leaders.
fn topology_agrees(cluster: &Cluster, leader: &str) -> Vec<String> {
    wait_until(
        "/topology names Patroni's leader",
        Duration::from_secs(20),
        || leader_in_topology(ADMIN).map(|l| l.as_deref() == Some(leader)),
    );
    let topology = get_json(ADMIN, "/topology").expect("topology");
    assert_eq!(topology["primary"], leader);
    assert_eq!(route_role(&topology, leader).as_deref(), Some("primary"));
    let others: Vec<_> = cluster
        .nodes()
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| n != leader)
        .collect();
    for m in &others {
        let role = route_role(&topology, m);
        assert!(
            matches!(role.as_deref(), Some("sync" | "async")),
            "{m} is routed as {role:?}"
        );
    }
    assert_eq!(topology["dcs"]["watch_up"], true);
    assert_eq!(get(ADMIN, "/health", None).unwrap().0, 200);
    wait_until("/ready", Duration::from_secs(10), || {
        get(ADMIN, "/ready", None).map(|(s, _)| s == 200)
    });
    let (status, body) = get(ADMIN, "/role/primary", None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(leader), "{body}");
    wait_until("/role/replica", Duration::from_secs(20), || {
        get(ADMIN, "/role/replica", None).map(|(s, _)| s == 200)
    });
    others
}

fn is_primary(m: &str) -> Result<Option<f64>> {
    metric(
        ADMIN,
        &format!("rolegate_member_is_primary{{member=\"{m}\"}}"),
    )
}

fn errors_42() -> f64 {
    metric(
        ADMIN,
        "rolegate_errors_total{listener=\"primary:27041\",class=\"42\"}",
    )
    .unwrap()
    .unwrap_or(0.0)
}

/// Traffic through the pooled port shows in /pools and /metrics.
fn traffic_is_counted(leader: &str, others: &[String]) {
    const N: u32 = 50;
    let txns = "rolegate_transactions_total{listener=\"primary:27041\"}";
    let before = metric(ADMIN, txns).unwrap().unwrap_or(0.0);
    let session = Session::connect(POOLED).expect("connect through the pooled port");
    for i in 0..N {
        session.query(&format!("select {i}")).expect("query");
    }
    let pools = get_json(ADMIN, "/pools").expect("pools");
    let pool = pools
        .as_array()
        .and_then(|a| a.iter().find(|p| p["listener"] == "primary:27041"))
        .unwrap_or_else(|| panic!("no pool of the pooled listener in {pools}"));
    assert_eq!(pool["member"], leader);
    assert_eq!(pool["database"], "postgres");
    assert_eq!(pool["user"], "postgres");
    assert!(pool["idle"].as_u64().unwrap() + pool["active"].as_u64().unwrap() >= 1);
    let after = metric(ADMIN, txns).unwrap().expect("transaction counter");
    assert!(
        after - before >= f64::from(N),
        "transactions went from {before} to {after} after {N}"
    );
    let queries = metric(ADMIN, "rolegate_queries_total{listener=\"primary:27041\"}").unwrap();
    assert!(queries.unwrap_or(0.0) >= f64::from(N));
    let errors_before = errors_42();
    assert!(session.query("select * from no_such_table").is_err());
    let errors_after = errors_42();
    assert!(
        (errors_after - errors_before - 1.0).abs() < f64::EPSILON,
        "errors of class 42: {errors_before} -> {errors_after}"
    );
    assert_eq!(is_primary(leader).unwrap(), Some(1.0));
    assert_eq!(is_primary(&others[0]).unwrap(), Some(0.0));
    let (_, text) = get(ADMIN, "/metrics", None).unwrap();
    assert!(text.contains("rolegate_query_duration_seconds_count{listener=\"primary:27041\"}"));
}

/// A switchover moves the leader in /topology and flips is_primary; a client running
/// transactions meanwhile is held, and the holds are counted.
fn switchover_flips_is_primary(cluster: &Cluster, leader: &str) {
    let holds = "rolegate_switchover_holds_total";
    let holds_before = metric(ADMIN, holds).unwrap().unwrap_or(0.0);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let session = Session::connect(POOLED).expect("connect");
            let mut ok = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if session.query("select 1").is_ok() {
                    ok += 1;
                }
            }
            ok
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    cluster.switchover(None).expect("switchover");
    cluster.wait_healthy(Duration::from_secs(90));
    stop.store(true, Ordering::Relaxed);
    let ok = writer.join().expect("writer");
    assert!(ok > 0, "the writer ran transactions");
    let holds_after = metric(ADMIN, holds).unwrap().unwrap_or(0.0);
    assert!(
        holds_after > holds_before,
        "holds went from {holds_before} to {holds_after}"
    );
    let (_, text) = get(ADMIN, "/metrics", None).unwrap();
    assert!(
        !text.contains("rolegate_switchover_hold_duration_seconds_count 0\n"),
        "hold durations recorded"
    );
    let new = cluster.leader().expect("leader after switchover");
    assert_ne!(new, leader);
    wait_until(
        "/topology follows the switchover",
        Duration::from_secs(20),
        || leader_in_topology(ADMIN).map(|l| l.as_deref() == Some(new.as_str())),
    );
    wait_until("is_primary flips", Duration::from_secs(20), || {
        Ok::<_, anyhow::Error>(is_primary(&new)? == Some(1.0) && is_primary(leader)? == Some(0.0))
    });
}

/// Etcd silent past Patroni's ttl (20s): /ready and /role/primary turn 503, then recover.
fn ready_follows_the_dcs(cluster: &Cluster) {
    cluster.stop_etcd();
    let stopped = std::time::Instant::now();
    let reason = loop {
        let (status, body) = get(ADMIN, "/ready", None).unwrap();
        if status == 503 {
            break body;
        }
        assert!(
            // ttl (20s) plus a wide margin: loaded CI machines are slow to stop etcd.
            stopped.elapsed() < Duration::from_secs(60),
            "/ready still {status} {body} 60s after etcd stopped; /topology: {}\nrolegate log:\n{}",
            get(ADMIN, "/topology", None).unwrap().1,
            cluster.log_tail("rolegate-admin.log", 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(reason.contains("DCS"), "{reason}");
    assert_eq!(get(ADMIN, "/role/primary", None).unwrap().0, 503);
    cluster.start_etcd();
    wait_until("/ready again", Duration::from_secs(30), || {
        get(ADMIN, "/ready", None).map(|(s, _)| s == 200)
    });
}

fn auth_is_enforced(cluster: &Cluster) {
    let config = format!(
        "[[listener]]\naddr = \"127.0.0.1:{}\"\nrole = \"primary\"\n\
         [admin]\nhttp = \"127.0.0.1:{ADMIN_AUTH}\"\ntoken = \"{TOKEN}\"\n",
        BASE + 47
    );
    let _rg = spawn::rolegate(cluster, "rolegate-admin-auth", &config, &[ADMIN_AUTH]);
    assert_eq!(get(ADMIN_AUTH, "/topology", None).unwrap().0, 401);
    assert_eq!(
        get(ADMIN_AUTH, "/metrics", Some("Bearer wrong")).unwrap().0,
        401
    );
    assert_eq!(
        get(ADMIN_AUTH, "/health", None).unwrap().0,
        200,
        "/health needs no token"
    );
    let (status, body) = get(ADMIN_AUTH, "/topology", Some(&format!("Bearer {TOKEN}"))).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"leader\""));
}

/// Loads `/` in headless Chromium: the rendered DOM names the leader, every member's role,
/// and the listener rows. Also saves the screenshot the README shows.
fn stats_page_in_chromium(leader: &str, others: &[String]) {
    let url = format!("http://127.0.0.1:{ADMIN}/");
    let dom = chromium(&["--dump-dom", &url]).expect("chromium --dump-dom");
    assert!(
        dom.contains(&format!("leader <b>{leader}</b>")),
        "the page names the leader: {dom}"
    );
    assert!(dom.contains(&format!("<tr data-member=\"{leader}\"><td><b>{leader}</b> <span class=\"dim\">(leader key)</span></td><td><span class=\"badge r-primary\">primary</span>")), "{dom}");
    for m in others {
        assert!(
            dom.contains(&format!("<tr data-member=\"{m}\">")),
            "member {m} has a row"
        );
    }
    for l in ["primary:27041", "primary:27042", "replicas"] {
        assert!(
            dom.contains(&format!("data-listener=\"{l}\"")),
            "listener {l} has a row"
        );
    }
    assert!(dom.contains(">transaction<"), "pool mode shown");
    // The README's picture is refreshed only on request, so a test run leaves the tree clean.
    let shot = if std::env::var_os("ROLEGATE_UPDATE_SCREENSHOT").is_some() {
        concat!(env!("CARGO_MANIFEST_DIR"), "/docs/stats-page.png").to_owned()
    } else {
        format!("/tmp/rolegate-test-{BASE}-stats-page.png")
    };
    chromium(&[
        &format!("--screenshot={shot}"),
        "--window-size=1400,900",
        "--hide-scrollbars",
        &url,
    ])
    .expect("chromium --screenshot");
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000));
}

fn chromium(args: &[&str]) -> Result<String> {
    let profile = format!("/tmp/rolegate-test-{BASE}-chromium");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={profile}"))
        .args(args)
        .output()
        .context("run chromium (scripts/install-deps installs it)")?;
    anyhow::ensure!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
