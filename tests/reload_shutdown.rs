//! Live reload and shutdown against a real Patroni cluster: SIGHUP/RELOAD change pool
//! sizes without dropping open sessions, give new client and server connections the new
//! TCP keepalive settings, and reject an invalid file (counted in /metrics); SIGTERM lets
//! a transaction in flight finish, then exits 0 with no server connection left on the
//! member; SIGINT exits at once.

mod cluster;

use std::time::{Duration, Instant};

use cluster::console::{console, find, num, sqlstate};
use cluster::spawn::{self, Proc};
use cluster::{is_disconnect, wait_until, Cluster, Session};

const BASE: u16 = 27_700;
const POOLED: u16 = BASE + 41;
const PASSTHROUGH: u16 = BASE + 42;
const HTTP: u16 = BASE + 45;

/// Both tests' rolegates listen on POOLED and PASSTHROUGH: one at a time.
static LISTENER_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn listener_ports() -> std::sync::MutexGuard<'static, ()> {
    LISTENER_PORTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn config(pool_size: &str, passthrough_port: u16) -> String {
    config_keepidle(pool_size, passthrough_port, 33)
}

fn config_keepidle(pool_size: &str, passthrough_port: u16, keepidle: u32) -> String {
    format!(
        "[general]\nshutdown_timeout = \"10s\"\ntcp_keepidle = {keepidle}\n[auth]\ntype = \"trust\"\n\
         [admin]\nhttp = \"127.0.0.1:{HTTP}\"\nadmin_users = [\"ops\"]\n\
         [[listener]]\nname = \"rw\"\naddr = \"127.0.0.1:{POOLED}\"\nrole = \"primary\"\npool_mode = \"transaction\"\n\
         pool_size = {pool_size}\nquery_wait_timeout = \"2s\"\n\
         [[listener]]\nname = \"rw-direct\"\naddr = \"127.0.0.1:{passthrough_port}\"\nrole = \"primary\"\n"
    )
}

fn start(cluster: &Cluster, name: &str, pool_size: u32) -> Proc {
    let proc = spawn::rolegate(
        cluster,
        name,
        &config(&pool_size.to_string(), PASSTHROUGH),
        &[POOLED, PASSTHROUGH],
    );
    wait_until("rolegate routes", Duration::from_secs(30), || {
        cluster.psql(POOLED, "select 1").map(|o| o == "1")
    });
    proc
}

/// Rewrites the config `spawn::rolegate` wrote for `name`, keeping its first lines
/// (`[cluster]`, `[dcs.etcd]`).
fn rewrite(cluster: &Cluster, name: &str, rest: &str) {
    let path = cluster.dir().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).expect("read config");
    let head: Vec<&str> = text.lines().take(4).collect();
    std::fs::write(&path, format!("{}\n{rest}", head.join("\n"))).expect("write config");
}

fn config_value(key: &str) -> String {
    let cfg = console(POOLED, "ops", "SHOW CONFIG").expect("SHOW CONFIG");
    find(&cfg, "key", key)[0]["value"].clone()
}

/// GET /metrics on the admin HTTP port.
fn metrics() -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", HTTP))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    Ok(raw)
}

fn metric(series: &str) -> Option<f64> {
    let body = metrics().ok()?;
    body.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// (port, seconds left on its keepalive timer) of rolegate's connections on POOLED (its
/// clients) and to `leader_port` (its servers); a connection without a keepalive timer
/// shows as 0 seconds left.
fn keepalive_timers(rolegate: &Proc, leader_port: u16) -> Vec<(u16, u32)> {
    cluster::sockets::of_process(rolegate.pid())
        .into_iter()
        .filter_map(|c| {
            let side = if c.local_port == POOLED {
                POOLED
            } else if c.peer_port == leader_port {
                leader_port
            } else {
                return None;
            };
            Some((side, c.keepalive_left.unwrap_or(0)))
        })
        .collect()
}

/// `n` sessions each inside a transaction on the pooled port, all at once.
fn hold_transactions(n: usize) -> Result<Vec<Session>, String> {
    let mut held = Vec::new();
    for _ in 0..n {
        let s = Session::connect(POOLED).map_err(|e| format!("{e:#}"))?;
        s.query("BEGIN").map_err(|e| e.to_string())?;
        s.query("select 1").map_err(|e| e.to_string())?;
        held.push(s);
    }
    Ok(held)
}

/// Server pids the member has for clients that came through rolegate: the pids SHOW
/// SERVERS listed, still present in pg_stat_activity.
fn left_on_member(cluster: &Cluster, leader_port: u16, pids: &[String]) -> String {
    cluster
        .psql(
            leader_port,
            &format!(
                "select count(*) from pg_stat_activity where pid in ({})",
                pids.join(",")
            ),
        )
        .expect("pg_stat_activity")
}

#[test]
fn reload_applies_pool_size_live_and_rejects_invalid_files() {
    let _ports = listener_ports();
    let cluster = Cluster::start(BASE);
    let view = cluster.wait_healthy(Duration::from_secs(90));
    let leader_port = view.leader().expect("leader").port;
    let name = "rolegate-reload";
    let rolegate = start(&cluster, name, 2);
    let open = Session::connect(POOLED).expect("session before reload");
    open.query("select 1").expect("query");
    // pool_size 2: a third concurrent transaction waits out query_wait_timeout.
    let err = hold_transactions(3)
        .err()
        .expect("third transaction refused");
    assert!(
        err.contains("53300") || err.contains("pool_size 2"),
        "{err}"
    );

    open.query("select 1").expect("query after the refusal");
    let before = keepalive_timers(&rolegate, leader_port);
    assert!(
        before.iter().all(|&(_, left)| (1..=33).contains(&left)) && before.len() >= 2,
        "tcp_keepidle 33 on the client's and the server's connection: {before:?}"
    );

    rewrite(&cluster, name, &config_keepidle("5", PASSTHROUGH, 44));
    rolegate.signal("HUP");
    wait_until("pool_size 5 in force", Duration::from_secs(10), || {
        Ok::<_, String>(config_value("listener.rw.pool_size") == "5")
    });
    let held = hold_transactions(5).expect("five transactions at once after reload");
    let pools = console(POOLED, "ops", "SHOW POOLS").expect("SHOW POOLS");
    let rw = find(&pools, "database", "postgres@rw");
    assert_eq!(num(rw[0], "sv_active"), 5, "{pools:#?}");
    // New connections, client and server, have the reloaded tcp_keepidle.
    assert_eq!(config_value("general.tcp_keepidle"), "44s");
    let after = keepalive_timers(&rolegate, leader_port);
    for side in [POOLED, leader_port] {
        assert!(
            after
                .iter()
                .any(|&(p, left)| p == side && (34..=44).contains(&left)),
            "tcp_keepidle 44 after the reload on new connections to or from {side}: {after:?}"
        );
    }
    drop(held);
    assert_eq!(
        open.query("select 42")
            .expect("session survived the reload")[0][0]
            .as_deref(),
        Some("42")
    );
    assert_eq!(
        metric("rolegate_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );

    rewrite(&cluster, name, &config_keepidle("0", PASSTHROUGH, 44));
    let e = console(POOLED, "ops", "RELOAD").unwrap_err();
    assert_eq!(sqlstate(&e), Some("F0000"), "{e}");
    assert!(e.contains("pool_size"), "{e}");
    assert_eq!(config_value("listener.rw.pool_size"), "5");
    assert_eq!(
        metric("rolegate_config_reloads_total{result=\"error\"}"),
        Some(1.0)
    );

    // A new listen address needs a restart: logged, the rest applied, the port unchanged.
    rewrite(&cluster, name, &config_keepidle("3", BASE + 49, 44));
    console(POOLED, "ops", "RELOAD").expect("RELOAD with a restart-only change");
    assert_eq!(config_value("listener.rw.pool_size"), "3");
    let log = std::fs::read_to_string(cluster.dir().join(format!("{name}.log"))).unwrap();
    assert!(log.contains("needs restart"), "{log}");
    assert!(
        Session::connect(PASSTHROUGH).is_ok(),
        "old port still served"
    );
    assert_eq!(
        open.query("select 7").expect("still open")[0][0].as_deref(),
        Some("7")
    );

    // The console's SHUTDOWN stops like SIGTERM: the idle session ends, the process exits 0.
    let mut rolegate = rolegate;
    console(POOLED, "ops", "SHUTDOWN").expect("SHUTDOWN");
    let status = rolegate
        .wait_exit(Duration::from_secs(5))
        .expect("exited after SHUTDOWN");
    assert!(status.success(), "exit status {status}");
    let mut open = open;
    if let Some(e) = open
        .wait_closed(Duration::from_secs(2))
        .expect("session closed")
    {
        assert!(is_disconnect(&e), "{e:?}");
    }
}

#[test]
fn sigterm_finishes_transactions_then_exits_zero_and_sigint_exits_at_once() {
    let _ports = listener_ports();
    let cluster = Cluster::start(BASE + 200);
    let view = cluster.wait_healthy(Duration::from_secs(90));
    let leader_port = view.leader().expect("leader").port;
    // The cluster above uses BASE + 200..; rolegate keeps the listener ports of BASE.
    let name = "rolegate-term";
    let mut rolegate = start(&cluster, name, 4);
    let pooled = Session::connect(POOLED).expect("pooled");
    let direct = Session::connect(PASSTHROUGH).expect("passthrough");
    let mut idle = Session::connect(POOLED).expect("idle client");
    idle.query("select 1").expect("idle works");
    pooled.query("BEGIN").expect("begin");
    direct.query("BEGIN").expect("begin");
    direct.query("select 1").expect("direct");
    let servers = console(POOLED, "ops", "SHOW SERVERS").expect("SHOW SERVERS");
    let pids: Vec<String> = servers
        .iter()
        .map(|r| r["remote_pid"].clone())
        .filter(|p| p != "0")
        .collect();
    assert!(pids.len() >= 2, "{servers:#?}");

    rolegate.signal("TERM");
    let idle_end = idle
        .wait_closed(Duration::from_secs(2))
        .expect("idle client closed at once");
    if let Some(e) = idle_end {
        assert!(is_disconnect(&e), "{e:?}");
    }
    let started = Instant::now();
    pooled
        .query("select pg_sleep(1)")
        .expect("in-flight transaction continues");
    pooled.query("COMMIT").expect("commit after SIGTERM");
    direct
        .query("select pg_sleep(1)")
        .expect("passthrough transaction continues");
    direct.query("COMMIT").expect("passthrough commit");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let status = rolegate
        .wait_exit(Duration::from_secs(8))
        .expect("rolegate exited");
    assert!(status.success(), "exit status {status}");
    assert!(
        pooled.query("select 1").is_err(),
        "session ended after its transaction"
    );
    assert!(Session::connect(POOLED).is_err(), "port closed");
    wait_until("server connections closed", Duration::from_secs(5), || {
        Ok::<_, String>(left_on_member(&cluster, leader_port, &pids) == "0")
    });

    // SIGINT: no waiting for the open transaction.
    let mut rolegate = start(&cluster, "rolegate-int", 4);
    let mut held = Session::connect(POOLED).expect("pooled");
    held.query("BEGIN").expect("begin");
    let pid = held.query("select pg_backend_pid()").expect("pid")[0][0]
        .clone()
        .unwrap();
    let sent = Instant::now();
    rolegate.signal("INT");
    let status = rolegate
        .wait_exit(Duration::from_secs(4))
        .expect("rolegate exited");
    println!("SIGINT exit after {:?}", sent.elapsed());
    assert!(status.success(), "exit status {status}");
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    let ended = held
        .wait_closed(Duration::from_secs(2))
        .expect("session closed");
    if let Some(e) = ended {
        assert!(is_disconnect(&e), "{e:?}");
    }
    wait_until("server connection closed", Duration::from_secs(5), || {
        Ok::<_, String>(left_on_member(&cluster, leader_port, std::slice::from_ref(&pid)) == "0")
    });
}
