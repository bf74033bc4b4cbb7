//! The SQL admin console (database `pgbouncer`) against a real Patroni cluster: SHOW
//! answers carry real values (pools after traffic, a held client with its server pid,
//! databases and topology matching Patroni's leader), stats users may only SHOW, PAUSE
//! holds a query until RESUME, KILL ends a database's clients.

mod cluster;

use std::time::{Duration, Instant};

use cluster::console::{console, find, login_refusal, num, sqlstate, Row};
use cluster::{is_disconnect, spawn, wait_until, Cluster, Session};

const BASE: u16 = 27_500;
const POOLED: u16 = BASE + 41;
const PASSTHROUGH: u16 = BASE + 42;
const REPLICA: u16 = BASE + 43;
const HTTP: u16 = BASE + 45;

fn config() -> String {
    format!(
        "[auth]\ntype = \"trust\"\n\
         [admin]\nhttp = \"127.0.0.1:{HTTP}\"\nadmin_users = [\"ops\"]\nstats_users = [\"watcher\"]\n\
         [[listener]]\nname = \"rw\"\naddr = \"127.0.0.1:{POOLED}\"\nrole = \"primary\"\npool_mode = \"transaction\"\npool_size = 4\n\
         [[listener]]\nname = \"rw-direct\"\naddr = \"127.0.0.1:{PASSTHROUGH}\"\nrole = \"primary\"\n\
         [[listener]]\nname = \"ro\"\naddr = \"127.0.0.1:{REPLICA}\"\nrole = \"replica\"\npool_mode = \"transaction\"\n"
    )
}

fn show(what: &str) -> Vec<Row> {
    console(POOLED, "ops", &format!("SHOW {what}")).unwrap_or_else(|e| panic!("SHOW {what}: {e}"))
}

fn pool_row(db: &str) -> Row {
    let pools = show("POOLS");
    find(&pools, "database", db)
        .into_iter()
        .find(|r| r["user"] == "postgres")
        .unwrap_or_else(|| panic!("no pool {db}/postgres in {pools:#?}"))
        .clone()
}

#[test]
fn console_shows_real_state_and_runs_commands() {
    let cluster = Cluster::start(BASE);
    let view = cluster.wait_healthy(Duration::from_secs(90));
    let leader = view.leader().expect("leader").clone();
    let _rolegate = spawn::rolegate(
        &cluster,
        "rolegate-console",
        &config(),
        &[POOLED, PASSTHROUGH, REPLICA],
    );
    wait_until(
        "rolegate routes to the leader",
        Duration::from_secs(30),
        || cluster.psql(POOLED, "select 1").map(|o| o == "1"),
    );

    access_rules();
    pools_clients_servers(&leader.name);
    databases_and_topology(&cluster, &leader.name, leader.port);
    reconnect_closes_idle_servers(&cluster, leader.port);
    pause_holds_until_resume();
    kill_ends_clients();
    stats_count_traffic();
}

/// Unlisted users are refused at login; stats users may only SHOW.
fn access_rules() {
    assert_eq!(login_refusal(POOLED, "postgres").as_deref(), Some("28000"));
    assert_eq!(login_refusal(REPLICA, "ops"), None);
    let version = console(PASSTHROUGH, "watcher", "SHOW VERSION").expect("stats user SHOW");
    assert!(
        version[0]["version"].starts_with("rolegate "),
        "{version:?}"
    );
    let e = console(POOLED, "watcher", "PAUSE").unwrap_err();
    assert_eq!(sqlstate(&e), Some("42501"), "{e}");
    let e = console(POOLED, "ops", "SELECT 1").unwrap_err();
    assert_eq!(sqlstate(&e), Some("42601"), "{e}");
    let help = show("HELP");
    assert!(
        find(&help, "command", "SHOW TOPOLOGY").len() == 1,
        "{help:?}"
    );
}

/// A client inside a transaction is listed with its server (same pid as the backend it
/// reports), and the pool counts it as active; after COMMIT the server is idle.
fn pools_clients_servers(leader: &str) {
    let s = Session::connect(POOLED).expect("connect pooled");
    s.query("BEGIN").expect("begin");
    let pid = s.query("select pg_backend_pid()").expect("pid")[0][0]
        .clone()
        .expect("pid value");
    let clients = show("CLIENTS");
    let mine: Vec<&Row> = find(&clients, "database", "postgres@rw")
        .into_iter()
        .filter(|r| r["rolegate_state"] == "active")
        .collect();
    assert_eq!(mine.len(), 1, "one active client in {clients:#?}");
    assert_eq!(mine[0]["member"], leader);
    assert_eq!(mine[0]["user"], "postgres");
    let servers = show("SERVERS");
    let server = find(&servers, "remote_pid", &pid);
    assert_eq!(server.len(), 1, "server pid {pid} in {servers:#?}");
    assert_eq!(server[0]["state"], "active");
    assert_eq!(server[0]["member"], leader);
    let busy = pool_row("postgres@rw");
    assert_eq!(num(&busy, "sv_active"), 1, "{busy:?}");
    assert_eq!(num(&busy, "cl_active"), 1, "{busy:?}");
    assert_eq!(busy["pool_mode"], "transaction");
    s.query("COMMIT").expect("commit");
    let idle = pool_row("postgres@rw");
    assert_eq!(num(&idle, "sv_active"), 0, "{idle:?}");
    assert!(num(&idle, "sv_idle") >= 1, "{idle:?}");
    let servers = show("SERVERS");
    assert_eq!(find(&servers, "remote_pid", &pid)[0]["state"], "idle");
    let lists = show("LISTS");
    let used = find(&lists, "list", "used_clients");
    assert!(num(used[0], "items") >= 1, "{lists:?}");
    let cfg = show("CONFIG");
    let size = find(&cfg, "key", "listener.rw.pool_size");
    assert_eq!(size[0]["value"], "4");
    assert_eq!(size[0]["changeable"], "yes");
}

/// SHOW DATABASES routes rw to the leader; SHOW TOPOLOGY marks the same leader.
fn databases_and_topology(cluster: &Cluster, leader: &str, leader_port: u16) {
    let dbs = show("DATABASES");
    let rw = find(&dbs, "name", "*@rw");
    assert_eq!(rw.len(), 1, "{dbs:#?}");
    assert_eq!(num(rw[0], "port"), i64::from(leader_port), "{:?}", rw[0]);
    assert_eq!(rw[0]["members"], leader);
    assert_eq!(num(rw[0], "pool_size"), 4);
    let ro = find(&dbs, "name", "*@ro");
    assert!(!ro[0]["members"].split(',').any(|m| m == leader), "{ro:?}");
    let topo = show("TOPOLOGY");
    assert_eq!(topo.len(), cluster.nodes().len(), "{topo:#?}");
    let leaders: Vec<&Row> = find(&topo, "leader", "1");
    assert_eq!(leaders.len(), 1, "{topo:#?}");
    assert_eq!(leaders[0]["member"], leader);
    assert_eq!(num(leaders[0], "port"), i64::from(leader_port));
    assert!(leaders[0]["listeners"].split(',').any(|l| l == "rw"));
    let view = cluster.patroni_cluster().expect("patroni view");
    for m in view.sync_standbys() {
        assert_eq!(find(&topo, "member", &m.name)[0]["replication"], "sync");
    }
}

/// RECONNECT closes the idle server connections: their backends leave the member, and
/// the next transaction gets a new one.
fn reconnect_closes_idle_servers(cluster: &Cluster, leader_port: u16) {
    let servers = show("SERVERS");
    let idle: Vec<String> = find(&servers, "database", "postgres@rw")
        .into_iter()
        .filter(|r| r["state"] == "idle")
        .map(|r| r["remote_pid"].clone())
        .collect();
    assert!(!idle.is_empty(), "{servers:#?}");
    console(POOLED, "ops", "RECONNECT postgres@rw").expect("RECONNECT");
    let sql = format!(
        "select count(*) from pg_stat_activity where pid in ({})",
        idle.join(",")
    );
    wait_until("old backends gone", Duration::from_secs(5), || {
        cluster.psql(leader_port, &sql).map(|n| n == "0")
    });
    let s = Session::connect(POOLED).expect("connect after RECONNECT");
    let pid = s.query("select pg_backend_pid()").expect("pid")[0][0]
        .clone()
        .unwrap();
    assert!(!idle.contains(&pid), "{pid} was closed by RECONNECT");
}

/// PAUSE holds a new transaction until RESUME.
fn pause_holds_until_resume() {
    let s = Session::connect(POOLED).expect("connect");
    s.query("select 1").expect("warm up");
    console(POOLED, "ops", "PAUSE postgres").expect("PAUSE");
    assert_eq!(
        show("DATABASES")
            .iter()
            .filter(|r| r["name"] == "postgres@rw" && r["paused"] == "1")
            .count(),
        1
    );
    let started = Instant::now();
    let waited = std::thread::scope(|scope| {
        let q = scope.spawn(|| {
            s.query("select 2").expect("query after RESUME");
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!q.is_finished(), "query ran while paused");
        let waiting = pool_row("postgres@rw");
        assert_eq!(num(&waiting, "cl_waiting"), 1, "{waiting:?}");
        assert!(num(&waiting, "maxwait") >= 1, "{waiting:?}");
        console(POOLED, "ops", "RESUME postgres").expect("RESUME");
        q.join().expect("query thread")
    });
    println!("query held by PAUSE for {waited:?}");
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    let e = console(POOLED, "ops", "RESUME postgres").unwrap_err();
    assert_eq!(sqlstate(&e), Some("55000"), "{e}");
}

/// KILL ends the database's clients (57P01); after RESUME new clients work.
fn kill_ends_clients() {
    let mut pooled = Session::connect(POOLED).expect("connect pooled");
    let mut direct = Session::connect(PASSTHROUGH).expect("connect passthrough");
    pooled.query("select 1").expect("pooled works");
    direct.query("BEGIN").expect("direct begin");
    console(POOLED, "ops", "KILL postgres").expect("KILL");
    for s in [&mut pooled, &mut direct] {
        let ended = s
            .wait_closed(Duration::from_secs(5))
            .expect("session ended");
        if let Some(e) = ended {
            assert!(is_disconnect(&e), "{e:?}");
        }
    }
    let left = show("CLIENTS");
    assert!(find(&left, "user", "postgres").is_empty(), "{left:#?}");
    console(POOLED, "ops", "RESUME postgres").expect("RESUME after KILL");
    assert_eq!(
        Session::connect(POOLED)
            .expect("reconnect")
            .query("select 3")
            .expect("query")[0][0]
            .as_deref(),
        Some("3")
    );
}

/// SHOW STATS counts the transactions that ran.
fn stats_count_traffic() {
    let before = show("STATS");
    let rw = |rows: &[Row]| num(find(rows, "database", "*@rw")[0], "total_xact_count");
    let n = rw(&before);
    let s = Session::connect(POOLED).expect("connect");
    for _ in 0..5 {
        s.query("select 1").expect("query");
    }
    let after = show("STATS");
    assert!(rw(&after) >= n + 5, "{before:?} -> {after:?}");
}
