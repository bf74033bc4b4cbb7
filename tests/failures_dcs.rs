//! The DCS going away under a real Patroni cluster, with clients on rolegate's
//! transaction-mode primary port. Past Patroni's ttl (20s in scripts/cluster) rolegate
//! drops the primary from its view, so writes are held, never sent to a primary that
//! demoted itself; they resume when etcd is back, or end with 57P03 once
//! `switchover_hold_timeout` runs out.

mod cluster;

use std::time::{Duration, Instant};

use cluster::client::{code, connect, describe, listener, TRUST};
use cluster::writers::{cluster_for_writes, write_through};
use cluster::{spawn, wait_for};

/// Longer than Patroni's ttl (20s) plus rolegate's 2s heartbeat.
const OUTAGE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_past_ttl_holds_writes_and_they_resume() {
    let base = 22_800;
    let (cluster, _) = cluster_for_writes(base);
    let port = base + 41;
    let toml = format!(
        "{TRUST}{}",
        listener(
            port,
            "primary",
            Some("transaction"),
            "switchover_hold_timeout = \"120s\""
        )
    );
    let _rg = spawn::rolegate(&cluster, "rolegate-etcd", &toml, &[port]);

    let (mut stopped, mut started) = (None, None);
    let outcome = write_through(port, "etcd", 8, Duration::from_secs(5), || {
        cluster.stop_etcd();
        stopped = Some(Instant::now());
        std::thread::sleep(OUTAGE);
        // Taken before the start, which returns once etcd is healthy: Patroni and rolegate
        // may well be writing again by then.
        started = Some(Instant::now());
        cluster.start_etcd();
        wait_for(
            "a leader after etcd is back",
            Duration::from_secs(90),
            || cluster.leader().map(Some),
        );
    })
    .await;
    let (stopped, started) = (stopped.unwrap(), started.unwrap());
    let leader = cluster.leader().unwrap();
    let missing = outcome.missing(&cluster, cluster.pg_port(&leader), "etcd");
    let resumed = outcome.acked.iter().filter(|a| a.2 > started).count();
    // Acknowledged while the DCS had been silent for more than the ttl (and was not yet
    // starting again): must be none.
    let late = outcome
        .acked
        .iter()
        .filter(|a| a.2 > stopped + Duration::from_secs(24) && a.2 < started)
        .count();
    println!(
        "etcd down {OUTAGE:?}: acked {} ({resumed} after restart, {late} late), errors {:?}, longest gap {:?}, missing {missing}, leader {leader}",
        outcome.acked.len(),
        outcome.errors,
        outcome.longest_gap()
    );
    println!("errors, by time since the stop:");
    outcome.print_timeline(stopped);
    assert_eq!(missing, 0, "acknowledged writes lost");
    assert!(
        resumed > 50,
        "writes resumed after etcd came back: {resumed}"
    );
    assert_eq!(
        late, 0,
        "writes acknowledged after Patroni's ttl without a DCS"
    );
    // Held, not refused: no client saw a read-only (demoted) server.
    assert!(
        !outcome.errors.contains_key("25006"),
        "a write reached a demoted primary: {:?}",
        outcome.errors
    );
    // Patroni demotes after retry_timeout (5s), before the ttl: its fast shutdown ends the
    // commits then waiting for synchronous replication with only a warning ("canceling the
    // wait for synchronous replication", committed locally) before the connection closes.
    // rolegate ends those sessions with 08006 saying so: their outcome is unknown, which is
    // the truth. That is one per writer, or two for a writer that reconnected at once and
    // reached a pooled backend that had not yet handled its SIGTERM; all come while the
    // old primary shuts down, well before the ttl. Every other transaction is held and
    // goes through.
    let unexplained: Vec<_> = outcome
        .timeline
        .iter()
        .filter(|(_, code, message, at)| {
            code != "08006"
                || !message.contains("committing the transaction locally")
                || *at > stopped + Duration::from_secs(15)
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "errors other than commits cut by the old primary's shutdown: {unexplained:?}"
    );
    assert!(outcome.error_count() <= 16, "errors: {:?}", outcome.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_timeout_shorter_than_the_outage_ends_with_57p03() {
    let base = 22_900;
    let (cluster, _) = cluster_for_writes(base);
    let port = base + 41;
    let toml = format!(
        "{TRUST}{}",
        listener(
            port,
            "primary",
            Some("transaction"),
            "connect_wait = \"1s\"\nswitchover_hold_timeout = \"4s\""
        )
    );
    let _rg = spawn::rolegate(&cluster, "rolegate-hold", &toml, &[port]);
    let idle = connect(port, "").await.unwrap();
    idle.client
        .simple_query("INSERT INTO writes VALUES ('hold', 0, 0)")
        .await
        .unwrap();

    cluster.stop_etcd();
    // Once the DCS has been silent past the ttl, writes are held, then refused.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (e, took) = loop {
        assert!(
            Instant::now() < deadline,
            "rolegate never held new connections"
        );
        let started = Instant::now();
        match connect(port, "").await {
            Err(e) if code(&e) == "57P03" => break (e, started.elapsed()),
            Err(e) => println!("probe: {}", describe(&e)),
            Ok(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("new connection refused after {took:?}: {}", describe(&e));
    assert!(took >= Duration::from_millis(3500), "not held: {took:?}");
    assert!(
        describe(&e).contains("no primary member is available"),
        "{}",
        describe(&e)
    );

    // A session opened before the outage: its next transaction waits the hold, then 57P03.
    let started = Instant::now();
    let e = idle
        .client
        .simple_query("INSERT INTO writes VALUES ('hold', 0, 1)")
        .await
        .expect_err("no primary while the DCS is gone");
    let held = started.elapsed();
    println!("held {held:?}: {}", describe(&e));
    assert_eq!(code(&e), "57P03", "{}", describe(&e));
    assert!(
        held >= Duration::from_millis(3500) && held < Duration::from_secs(10),
        "held {held:?}"
    );
    let db = e.as_db_error().expect("an ErrorResponse");
    assert!(
        db.message().contains("no primary member is available"),
        "{db:?}"
    );
    assert!(
        db.hint().is_some_and(|h| h.contains("patronictl")),
        "{db:?}"
    );
    // etcd back: writes go through again.
    cluster.start_etcd();
    wait_for(
        "writes through rolegate again",
        Duration::from_secs(90),
        || {
            cluster
                .psql(
                    port,
                    "INSERT INTO writes VALUES ('hold', 2, 2) ON CONFLICT DO NOTHING",
                )
                .map(Some)
        },
    );
    let leader = cluster.leader().unwrap();
    assert_eq!(
        cluster
            .psql(
                cluster.pg_port(&leader),
                "SELECT string_agg(writer || ':' || seq, ',' ORDER BY writer, seq) FROM writes WHERE target = 'hold'"
            )
            .unwrap(),
        "0:0,2:2"
    );
}
