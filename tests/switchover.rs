//! A planned switchover on a real Patroni cluster, with writers going through rolegate:
//! on the transaction-mode primary port it costs latency, not errors, and loses nothing.

mod cluster;

use std::time::Duration;

use cluster::spawn;
use cluster::writers::{cluster_for_writes, write_through};

const BASE: u16 = 21_600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover_costs_latency_not_errors_on_the_pooled_primary_port() {
    let (cluster, old) = cluster_for_writes(BASE);
    let (pooled, passthrough) = (BASE + 41, BASE + 42);
    let _rolegate = spawn::rolegate(
        &cluster,
        "rolegate-switchover",
        &spawn::primary_listeners(pooled, passthrough),
        &[pooled, passthrough],
    );
    let outcome = write_through(pooled, "pooled", 8, Duration::from_secs(2), || {
        cluster.switchover(None).expect("switchover");
        cluster.wait_healthy(Duration::from_secs(90));
    })
    .await;
    let new = cluster.leader().expect("leader after switchover");
    assert_ne!(new, old, "the switchover happened");
    let missing = outcome.missing(&cluster, cluster.pg_port(&new), "pooled");
    println!(
        "acked {} errors {:?} longest gap {:?} missing {missing}",
        outcome.acked.len(),
        outcome.errors,
        outcome.longest_gap()
    );
    assert!(outcome.acked.len() > 100, "writers made progress");
    assert!(
        outcome.errors.is_empty(),
        "client-visible errors: {:?}",
        outcome.errors
    );
    assert_eq!(missing, 0, "acknowledged writes lost");
    // Patroni's own demote + promote takes seconds; rolegate must not add to it.
    assert!(
        outcome.longest_gap() < Duration::from_secs(10),
        "longest gap {:?}",
        outcome.longest_gap()
    );
    // Writes that came after the switchover are on the new primary, none on the old one
    // (it is a replica now, and read-only).
    let recovering = cluster
        .psql(cluster.pg_port(&old), "SELECT pg_is_in_recovery()")
        .expect("old leader answers");
    assert_eq!(recovering, "t");
}
