//! Unplanned failures of the primary on a real Patroni cluster, with writers going through
//! rolegate's transaction-mode primary port: the whole primary node killed with SIGKILL,
//! and Patroni alone killed while its PostgreSQL stays up and writable. Acknowledged
//! writes survive on the new leader and nothing reaches the old primary afterwards.

mod cluster;

use std::process::Command;
use std::time::{Duration, Instant};

use cluster::client::{connect, listener, text, TRUST};
use cluster::writers::{cluster_for_writes, write_through};
use cluster::{server_of, spawn, wait_for, wait_until, Cluster};

/// Patroni's ttl is 20s in scripts/cluster: a dead leader's key expires within it.
const FAILOVER: Duration = Duration::from_secs(90);

/// rolegate with a transaction-mode primary listener on `port` holding new transactions
/// for up to 60s while the leader changes, and a passthrough primary listener on `port + 1`.
fn rolegate(cluster: &Cluster, port: u16) -> spawn::Proc {
    let toml = format!(
        "{TRUST}{}{}",
        listener(
            port,
            "primary",
            Some("transaction"),
            "switchover_hold_timeout = \"60s\""
        ),
        listener(port + 1, "primary", None, "")
    );
    spawn::rolegate(cluster, "rolegate-failures", &toml, &[port, port + 1])
}

/// The first line of a pid file.
fn pid_in(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().next().unwrap_or_default().trim().to_owned()
}

fn kill9(pid: &str) {
    let ok = Command::new("kill").args(["-KILL", pid]).status().unwrap();
    assert!(ok.success(), "kill -9 {pid}");
}

/// Waits for a running leader other than `old` and returns it.
fn new_leader(cluster: &Cluster, old: &str) -> String {
    wait_for("a new leader", FAILOVER, || {
        cluster.leader().map(|l| (l != old).then_some(l))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_node_killed_writes_resume_on_the_new_leader_and_none_is_lost() {
    let base = 22_600;
    let (cluster, old) = cluster_for_writes(base);
    let port = base + 41;
    let _rg = rolegate(&cluster, port);

    let mut killed_at = None;
    let mut new = String::new();
    let outcome = write_through(port, "kill9", 8, Duration::from_secs(5), || {
        // The whole node at once: Patroni (so nothing restarts PostgreSQL) and the postmaster.
        let patroni = pid_in(&cluster.dir().join(format!("{old}.pid")));
        let postmaster = pid_in(&cluster.dir().join(format!("{old}/data/postmaster.pid")));
        kill9(&patroni);
        kill9(&postmaster);
        killed_at = Some(Instant::now());
        new = new_leader(&cluster, &old);
        let new_port = cluster.pg_port(&new);
        wait_until("rolegate routes to the new leader", FAILOVER, || {
            server_of(port).map(|s| s == (new_port, false))
        });
    })
    .await;
    let killed_at = killed_at.unwrap();
    let missing = outcome.missing(&cluster, cluster.pg_port(&new), "kill9");
    let after = outcome.acked.iter().filter(|a| a.2 > killed_at).count();
    println!(
        "kill -9 {old} -> {new}: acked {} ({after} after the kill), errors {:?}, longest gap {:?}, missing {missing}",
        outcome.acked.len(),
        outcome.errors,
        outcome.longest_gap()
    );
    println!("errors, by time since the kill:");
    outcome.print_timeline(killed_at);
    assert_eq!(missing, 0, "acknowledged writes lost");
    assert!(after > 50, "writes resumed on the new leader: {after}");
    // Only transactions in flight on the killed server can fail (08006); new ones are
    // held until the new leader is there. Backends outlive a killed postmaster until they
    // notice, and a commit waiting for its synchronous standby then ends without a word
    // (PostgreSQL checks the postmaster there): one per writer, or two for a writer that
    // reconnected at once onto a pooled backend that had not noticed yet.
    let bad: Vec<_> = outcome.errors.keys().filter(|c| *c != "08006").collect();
    assert!(bad.is_empty(), "unexpected errors: {:?}", outcome.errors);
    assert!(outcome.error_count() <= 16, "errors: {:?}", outcome.errors);
}

/// Client backends on the server at `port` that started after `since` (its own clock),
/// other than the test's psql.
fn sessions_since(cluster: &Cluster, port: u16, since: &str) -> String {
    cluster
        .psql(
            port,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
                 AND backend_start > '{since}' AND application_name <> 'rolegate-test'"
            ),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_killed_on_the_primary_nothing_reaches_the_still_writable_old_primary() {
    let base = 22_700;
    let (cluster, old) = cluster_for_writes(base);
    let old_port = cluster.pg_port(&old);
    let (port, passthrough) = (base + 41, base + 42);
    let _rg = rolegate(&cluster, port);
    // A passthrough session on the old primary, idle across the failover.
    let held = connect(passthrough, "").await.unwrap();
    let on = text(&held.client, "SELECT inet_server_port()")
        .await
        .unwrap();
    assert_eq!(on, old_port.to_string());

    let mut new = String::new();
    let mut switched_at = String::new();
    let outcome = write_through(port, "patroni-kill", 8, Duration::from_secs(5), || {
        cluster.kill_patroni(&old);
        new = new_leader(&cluster, &old);
        let new_port = cluster.pg_port(&new);
        for p in [port, passthrough] {
            wait_until("rolegate routes to the new leader", FAILOVER, || {
                server_of(p).map(|s| s == (new_port, false))
            });
        }
        switched_at = cluster.psql(old_port, "SELECT now()").unwrap();
    })
    .await;
    let new_port = cluster.pg_port(&new);
    // The old PostgreSQL is still up and still a primary: only rolegate keeps clients away.
    assert_eq!(
        cluster
            .psql(old_port, "SELECT pg_is_in_recovery()")
            .unwrap(),
        "f",
        "the old primary kept running as a primary (the case this test is about)"
    );
    let missing = outcome.missing(&cluster, new_port, "patroni-kill");
    println!(
        "patroni on {old} killed -> {new}: acked {}, errors {:?}, longest gap {:?}, missing {missing}",
        outcome.acked.len(),
        outcome.errors,
        outcome.longest_gap()
    );
    assert_eq!(missing, 0, "acknowledged writes lost");

    // After the switch, more writes (some on sessions opened before it): all on the new
    // leader, no new session on the old primary.
    let after = write_through(port, "after", 4, Duration::from_secs(3), || {}).await;
    assert!(
        after.acked.len() > 50,
        "writes after the switch: {}",
        after.acked.len()
    );
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    assert_eq!(after.missing(&cluster, new_port, "after"), 0);
    let direct = write_through(passthrough, "after-pt", 4, Duration::from_secs(3), || {}).await;
    assert!(
        direct.acked.len() > 50,
        "passthrough writes: {}",
        direct.acked.len()
    );
    assert!(direct.errors.is_empty(), "{:?}", direct.errors);
    assert_eq!(direct.missing(&cluster, new_port, "after-pt"), 0);
    // The passthrough session held on the old primary was ended: its write goes nowhere.
    // (Had it reached the old primary, the commit would wait forever for a sync standby.)
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        held.client
            .simple_query("INSERT INTO writes VALUES ('after', 99, 99)"),
    )
    .await;
    assert!(
        matches!(r, Ok(Err(_))),
        "a session on the old primary outlived the failover: {r:?}"
    );
    assert_eq!(
        sessions_since(&cluster, old_port, &switched_at),
        "0",
        "rolegate opened sessions on the old primary after the leader moved"
    );
    assert_eq!(
        cluster
            .psql(
                old_port,
                "SELECT count(*) FROM writes WHERE target LIKE 'after%'"
            )
            .unwrap(),
        "0",
        "writes after the switch reached the old primary"
    );
    // Transactions acknowledged through rolegate after the switch are not on the old node.
    let stray = cluster
        .psql(
            old_port,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO writes VALUES (''after%'",
        )
        .unwrap();
    assert_eq!(stray, "0");
}
