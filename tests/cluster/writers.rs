//! A write workload for switchover tests and the failover bench: N autocommit INSERT
//! loops through one port, reconnecting on error, recording every acknowledged write and
//! every client-visible error by SQLSTATE.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use super::Cluster;

/// The table the writers fill; one row per acknowledged write.
pub const WRITES_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS writes (target text, writer int, seq bigint, PRIMARY KEY (target, writer, seq))";

/// A healthy cluster on `base_port` with [`WRITES_TABLE`] created on its leader; the
/// leader's name.
pub fn cluster_for_writes(base_port: u16) -> (Cluster, String) {
    let cluster = Cluster::start(base_port);
    cluster.wait_healthy(Duration::from_secs(60));
    let leader = cluster.leader().expect("leader");
    cluster
        .psql(cluster.pg_port(&leader), WRITES_TABLE)
        .expect("create the writes table");
    (cluster, leader)
}

/// What the writers of one target saw.
#[derive(Default, Debug)]
pub struct Outcome {
    /// (writer, seq, when acknowledged).
    pub acked: Vec<(u32, u64, Instant)>,
    /// Client-visible errors by SQLSTATE (or "connect"/"io" with the message).
    pub errors: BTreeMap<String, u64>,
    /// The first message seen for each key of `errors`, with when it came.
    pub samples: BTreeMap<String, (String, Instant)>,
    /// Every error: (writer, key of `errors`, message, when), in the order they came.
    pub timeline: Vec<(u32, String, String, Instant)>,
}

impl Outcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Prints every error with its writer and its time since `origin`.
    pub fn print_timeline(&self, origin: Instant) {
        for (w, code, message, at) in &self.timeline {
            let since = at.saturating_duration_since(origin);
            println!("  {since:>12.3?} writer {w}: {code} {message}");
        }
    }

    /// The longest time with no acknowledged write.
    pub fn longest_gap(&self) -> Duration {
        let mut times: Vec<Instant> = self.acked.iter().map(|a| a.2).collect();
        times.sort_unstable();
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }

    /// Acknowledged writes of `target` not found on the server at `port`.
    pub fn missing(&self, cluster: &Cluster, port: u16, target: &str) -> usize {
        let out = cluster
            .psql(
                port,
                &format!("SELECT writer, seq FROM writes WHERE target = '{target}'"),
            )
            .expect("read back the writes");
        let found: HashSet<(u32, u64)> = out
            .lines()
            .filter_map(|l| {
                let (w, s) = l.split_once('|')?;
                Some((w.trim().parse().ok()?, s.trim().parse().ok()?))
            })
            .collect();
        self.acked
            .iter()
            .filter(|(w, s, _)| !found.contains(&(*w, *s)))
            .count()
    }
}

/// Runs `writers` loops on `port` (rows tagged `target`) until `during` returns, then
/// `settle` longer.
pub async fn write_through<F: FnOnce()>(
    port: u16,
    target: &str,
    writers: u32,
    settle: Duration,
    during: F,
) -> Outcome {
    let conninfo =
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=10");
    write_with(&conninfo, target, writers, settle, during).await
}

/// Like [`write_through`], but straight to the PostgreSQL nodes at `ports` the way a
/// libpq application without a proxy would: multi-host, `target_session_attrs=read-write`.
/// What this loses is what Patroni's own demote and promote cost: the floor for a proxy.
pub async fn write_direct<F: FnOnce()>(
    ports: &[u16],
    target: &str,
    writers: u32,
    settle: Duration,
    during: F,
) -> Outcome {
    let hosts = vec!["127.0.0.1"; ports.len()].join(",");
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let conninfo = format!(
        "host={hosts} port={} user=postgres dbname=postgres connect_timeout=2 target_session_attrs=read-write",
        ports.join(",")
    );
    write_with(&conninfo, target, writers, settle, during).await
}

async fn write_with<F: FnOnce()>(
    conninfo: &str,
    target: &str,
    writers: u32,
    settle: Duration,
    during: F,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (stop, outcome, target) = (stop.clone(), outcome.clone(), target.to_owned());
            let conninfo = conninfo.to_owned();
            tokio::spawn(async move { writer(w, &conninfo, &target, &stop, &outcome).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(during);
    tokio::time::sleep(settle).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut out = outcome.lock().expect("outcome");
    std::mem::take(&mut *out)
}

async fn writer(w: u32, conninfo: &str, target: &str, stop: &AtomicBool, out: &Mutex<Outcome>) {
    let mut client = None;
    let mut seq = 0u64;
    let error = |code: String, message: String| {
        let now = Instant::now();
        let mut out = out.lock().expect("outcome");
        out.timeline.push((w, code.clone(), message.clone(), now));
        out.samples
            .entry(code.clone())
            .or_insert_with(|| (message, now));
        *out.errors.entry(code).or_default() += 1;
    };
    while !stop.load(Ordering::Relaxed) {
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            match tokio_postgres::connect(conninfo, NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    client = Some(c);
                }
                Err(e) => {
                    error(sqlstate(&e, "connect"), message(&e));
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
                error(sqlstate(&e, "io"), message(&e));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn sqlstate(e: &tokio_postgres::Error, otherwise: &str) -> String {
    e.code().map_or_else(
        || {
            format!(
                "{otherwise} ({})",
                e.to_string().chars().take(40).collect::<String>()
            )
        },
        |c| c.code().to_owned(),
    )
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}
