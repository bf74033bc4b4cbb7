//! Writers through a switchover: what does a planned `switchover` cost the application?
//!
//! Starts etcd + three Patroni nodes (tests/cluster), rolegate (primary port pooled in
//! transaction mode, and a passthrough primary port) and HAProxy configured as in the
//! autobase/seed guides (`option httpchk GET /primary`, `inter 3s fall 3 rise 2
//! on-marked-down shutdown-sessions`). For each target in turn it runs `WRITERS`
//! autocommit INSERT loops (reconnecting on error) through the target's port, performs a
//! switchover through Patroni's REST API, keeps writing a few seconds more, and prints:
//! acknowledged writes, client-visible errors by SQLSTATE, the longest gap with no
//! acknowledged write, and acknowledged writes missing from the new primary. The first
//! target writes straight to the nodes (libpq multi-host, `target_session_attrs=read-write`):
//! what the switchover costs with no proxy at all, the floor for the others.
//!
//! Run: `cargo bench --bench failover` (env: WRITERS=8, SETTLE_SECS=3).

#[path = "../tests/cluster/mod.rs"]
mod cluster;

use std::time::Duration;

use cluster::spawn;
use cluster::writers::{cluster_for_writes, write_direct, write_through};

const BASE: u16 = 24_200;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let writers = u32::try_from(env("WRITERS", 8)).unwrap_or(8);
    let settle = Duration::from_secs(env("SETTLE_SECS", 3));
    let (cluster, _) = cluster_for_writes(BASE);
    let _rolegate = spawn::rolegate(
        &cluster,
        "failover-rolegate",
        &spawn::primary_listeners(BASE + 41, BASE + 42),
        &[BASE + 41, BASE + 42],
    );
    let _haproxy = spawn::haproxy(&cluster, BASE + 43);
    // Port 0: straight to the nodes (libpq multi-host, target_session_attrs=read-write),
    // what Patroni's demote and promote cost on their own.
    let nodes: Vec<u16> = cluster.nodes().iter().map(|n| n.pg_port).collect();
    let targets = [
        ("direct-read-write", 0),
        ("rolegate-transaction", BASE + 41),
        ("rolegate-passthrough", BASE + 42),
        ("haproxy", BASE + 43),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut report = Vec::new();
    for (name, port) in targets {
        cluster.wait_healthy(Duration::from_secs(90));
        let switchover = || {
            let answer = cluster.switchover(None);
            println!("{name}: switchover: {answer:?}");
            cluster.wait_healthy(Duration::from_secs(90));
        };
        let outcome = if port == 0 {
            rt.block_on(write_direct(&nodes, name, writers, settle, switchover))
        } else {
            rt.block_on(write_through(port, name, writers, settle, switchover))
        };
        let leader = cluster.leader().expect("leader after switchover");
        let missing = outcome.missing(&cluster, cluster.pg_port(&leader), name);
        report.push((name, outcome, missing));
    }
    println!("\n{writers} autocommit writers per target, one switchover each");
    println!(
        "{:<22} {:>7} {:>7} {:>12} {:>8}  errors by SQLSTATE",
        "target", "acked", "errors", "longest gap", "missing"
    );
    for (name, o, missing) in &report {
        println!(
            "{name:<22} {:>7} {:>7} {:>10.0}ms {missing:>8}  {:?}",
            o.acked.len(),
            o.error_count(),
            o.longest_gap().as_secs_f64() * 1000.0,
            o.errors
        );
    }
}
