//! Writers through a switchover: what does a planned `switchover` cost the application?
//!
//! Starts etcd + three Patroni nodes (tests/cluster), rolegate (primary port pooled in
//! transaction mode, and a passthrough primary port) and HAProxy configured as in the
//! autobase/seed guides (`option httpchk GET /primary`, `inter 3s fall 3 rise 2
//! on-marked-down shutdown-sessions`). For each target in turn it runs `WRITERS`
//! autocommit INSERT loops (reconnecting on error) through the target's port, performs a
//! switchover through Patroni's REST API, keeps writing a few seconds more, and prints:
//! acknowledged writes, client-visible errors by SQLSTATE, the longest gap with no
//! acknowledged write, and acknowledged writes missing from the new primary.
//!
//! Run: `cargo bench --bench failover` (env: WRITERS=8, SETTLE_SECS=3).

#[path = "../tests/cluster/mod.rs"]
mod cluster;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::Cluster;
use tokio_postgres::NoTls;

const BASE: u16 = 24_200;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the writers of one target saw.
#[derive(Default)]
struct Outcome {
    /// (writer, seq, when acknowledged).
    acked: Vec<(u32, u64, Instant)>,
    errors: BTreeMap<String, u64>,
}

fn main() {
    let writers = u32::try_from(env("WRITERS", 8)).unwrap_or(8);
    let settle = Duration::from_secs(env("SETTLE_SECS", 3));
    let cluster = Cluster::start(BASE);
    cluster.wait_healthy(Duration::from_secs(60));
    let leader = cluster.leader().expect("leader");
    cluster
        .psql(
            cluster.pg_port(&leader),
            "CREATE TABLE writes (target text, writer int, seq bigint, PRIMARY KEY (target, writer, seq))",
        )
        .expect("create table");
    let _rolegate = start_rolegate(&cluster);
    let _haproxy = start_haproxy(&cluster);
    let targets = [
        ("rolegate-transaction", BASE + 41),
        ("rolegate-passthrough", BASE + 42),
        ("haproxy", BASE + 43),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut report = Vec::new();
    for (name, port) in targets {
        wait_port(port);
        cluster.wait_healthy(Duration::from_secs(90));
        let (outcome, switched_at) = rt.block_on(run_target(&cluster, name, port, writers, settle));
        let leader = cluster.leader().expect("leader after switchover");
        let found = stored(&cluster, cluster.pg_port(&leader), name);
        report.push((name, outcome, switched_at, found));
    }
    println!("\n{writers} autocommit writers per target, one switchover each");
    println!(
        "{:<22} {:>7} {:>7} {:>12} {:>8}  errors by SQLSTATE",
        "target", "acked", "errors", "longest gap", "missing"
    );
    for (name, o, _, found) in &report {
        let missing = o
            .acked
            .iter()
            .filter(|(w, s, _)| !found.contains(&(*w, *s)))
            .count();
        let errors: u64 = o.errors.values().sum();
        println!(
            "{name:<22} {:>7} {errors:>7} {:>10.0}ms {missing:>8}  {:?}",
            o.acked.len(),
            longest_gap(&o.acked).as_secs_f64() * 1000.0,
            o.errors
        );
    }
}

/// Writers on `port` through one switchover; returns what they saw and when the
/// switchover was asked for.
async fn run_target(
    cluster: &Cluster,
    name: &str,
    port: u16,
    writers: u32,
    settle: Duration,
) -> (Outcome, Instant) {
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (stop, outcome, name) = (stop.clone(), outcome.clone(), name.to_owned());
            tokio::spawn(async move { writer(w, port, &name, &stop, &outcome).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let switched_at = Instant::now();
    let answer = tokio::task::block_in_place(|| cluster.switchover(None));
    println!("{name}: switchover: {answer:?}");
    tokio::task::block_in_place(|| cluster.wait_healthy(Duration::from_secs(90)));
    tokio::time::sleep(settle).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let outcome = std::mem::take(&mut *outcome.lock().expect("outcome"));
    (outcome, switched_at)
}

async fn writer(w: u32, port: u16, target: &str, stop: &AtomicBool, out: &Mutex<Outcome>) {
    let conninfo =
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=10");
    let mut client = None;
    let mut seq = 0u64;
    let error = |code: String| *out.lock().expect("outcome").errors.entry(code).or_default() += 1;
    while !stop.load(Ordering::Relaxed) {
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            match tokio_postgres::connect(&conninfo, NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    client = Some(c);
                }
                Err(e) => {
                    error(sqlstate(&e, "connect"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some(c) = &client else { continue };
        seq += 1;
        let sql = format!("INSERT INTO writes VALUES ('{target}', {w}, {seq})");
        match c.simple_query(&sql).await {
            Ok(_) => out
                .lock()
                .expect("outcome")
                .acked
                .push((w, seq, Instant::now())),
            Err(e) => {
                error(sqlstate(&e, "io"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn sqlstate(e: &tokio_postgres::Error, otherwise: &str) -> String {
    e.code().map_or_else(
        || format!("{otherwise} ({})", short(e)),
        |c| c.code().to_owned(),
    )
}

fn short(e: &tokio_postgres::Error) -> String {
    let s = e.to_string();
    s.chars().take(40).collect()
}

fn longest_gap(acked: &[(u32, u64, Instant)]) -> Duration {
    let mut times: Vec<Instant> = acked.iter().map(|a| a.2).collect();
    times.sort_unstable();
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// (writer, seq) rows of `target` on the server at `port`.
fn stored(cluster: &Cluster, port: u16, target: &str) -> HashSet<(u32, u64)> {
    let out = cluster
        .psql(
            port,
            &format!("SELECT writer, seq FROM writes WHERE target = '{target}'"),
        )
        .expect("read back");
    out.lines()
        .filter_map(|l| {
            let (w, s) = l.split_once('|')?;
            Some((w.trim().parse().ok()?, s.trim().parse().ok()?))
        })
        .collect()
}

/// Kills the child on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_rolegate(cluster: &Cluster) -> Proc {
    let dir = cluster.dir();
    let text = format!(
        "[cluster]\nscope = \"{}\"\n[dcs.etcd]\nendpoints = [\"{}\"]\n[auth]\ntype = \"trust\"\n\
         [[listener]]\naddr = \"127.0.0.1:{}\"\nrole = \"primary\"\npool_mode = \"transaction\"\npool_size = 20\n\
         [[listener]]\naddr = \"127.0.0.1:{}\"\nrole = \"primary\"\n",
        cluster.scope(),
        cluster.etcd_endpoint(),
        BASE + 41,
        BASE + 42
    );
    let config = dir.join("failover-rolegate.toml");
    std::fs::write(&config, text).expect("write rolegate config");
    let log = std::fs::File::create(dir.join("failover-rolegate.log")).expect("log");
    Proc(
        Command::new(env!("CARGO_BIN_EXE_rolegate"))
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start rolegate"),
    )
}

fn start_haproxy(cluster: &Cluster) -> Proc {
    let mut text = format!(
        "global\n    maxconn 1000\ndefaults\n    mode tcp\n    retries 2\n    timeout client 30m\n    \
         timeout connect 4s\n    timeout server 30m\n    timeout check 5s\n\
         listen primary\n    bind 127.0.0.1:{}\n    option httpchk GET /primary\n    \
         http-check expect status 200\n    \
         default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions\n",
        BASE + 43
    );
    for n in cluster.nodes() {
        let _ = writeln!(
            text,
            "    server {} 127.0.0.1:{} maxconn 100 check port {}",
            n.name, n.pg_port, n.api_port
        );
    }
    let config = cluster.dir().join("failover-haproxy.cfg");
    std::fs::write(&config, text).expect("write haproxy config");
    Proc(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy (apt install haproxy)"),
    )
}

fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "port {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
