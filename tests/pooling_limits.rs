//! Pool limits on a real Patroni cluster, each with the error the code documents:
//! `max_client_conn` (53300 at once), `query_wait_timeout` (53300 after the wait) and
//! `idle_transaction_timeout` (25P03, the client is disconnected).

mod cluster;

use std::time::{Duration, Instant};

use cluster::client::{code, connect, describe, listener, text, TRUST};
use cluster::{spawn, Cluster};

const BASE: u16 = 22_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_limits_give_their_documented_errors() {
    let cluster = Cluster::start(BASE);
    cluster.wait_healthy(Duration::from_secs(60));
    let leader = cluster.pg_port(&cluster.leader().unwrap());
    let (max_clients, wait, idle) = (BASE + 41, BASE + 42, BASE + 43);
    let toml = format!(
        "{TRUST}{}{}{}",
        listener(
            max_clients,
            "primary",
            Some("transaction"),
            "max_client_conn = 2"
        ),
        listener(
            wait,
            "primary",
            Some("transaction"),
            "pool_size = 1\nquery_wait_timeout = \"2s\""
        ),
        listener(
            idle,
            "primary",
            Some("transaction"),
            "idle_transaction_timeout = \"2s\""
        )
    );
    let _rg = spawn::rolegate(
        &cluster,
        "rolegate-limits",
        &toml,
        &[max_clients, wait, idle],
    );
    cluster.psql(leader, "CREATE TABLE idle_t (x int)").unwrap();
    max_client_conn(max_clients).await;
    query_wait_timeout(wait).await;
    idle_transaction_timeout(&cluster, leader, idle).await;
}

async fn max_client_conn(max_clients: u16) {
    // max_client_conn: the third client is refused at once, a slot frees on disconnect.
    let c1 = connect(max_clients, "").await.unwrap();
    let c2 = connect(max_clients, "").await.unwrap();
    let started = Instant::now();
    let Err(e) = connect(max_clients, "").await else {
        panic!("a third client got in past max_client_conn = 2");
    };
    assert_eq!(code(&e), "53300", "{}", describe(&e));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(describe(&e).contains("max_client_conn"), "{}", describe(&e));
    drop(c2);
    let mut c3 = None;
    for _ in 0..50 {
        if let Ok(c) = connect(max_clients, "").await {
            c3 = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c3 = c3.expect("a slot freed when a client left");
    assert_eq!(text(&c3.client, "SELECT 1").await.unwrap(), "1");
    assert_eq!(text(&c1.client, "SELECT 2").await.unwrap(), "2");
}

async fn query_wait_timeout(wait: u16) {
    // query_wait_timeout: one server, held by a transaction; the other client waits 2s.
    let holder = connect(wait, "").await.unwrap();
    let queued = connect(wait, "").await.unwrap();
    holder.client.simple_query("BEGIN; SELECT 1").await.unwrap();
    let started = Instant::now();
    let e = queued
        .client
        .simple_query("SELECT 1")
        .await
        .expect_err("no server for the waiter");
    let waited = started.elapsed();
    assert_eq!(code(&e), "53300", "{}", describe(&e));
    assert!(describe(&e).contains("within 2s"), "{}", describe(&e));
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    // The holder's transaction is unharmed, and the server is free for others afterwards.
    holder.client.simple_query("COMMIT").await.unwrap();
    let next = connect(wait, "").await.unwrap();
    assert_eq!(text(&next.client, "SELECT 3").await.unwrap(), "3");
}

async fn idle_transaction_timeout(cluster: &Cluster, leader: u16, idle: u16) {
    // idle_transaction_timeout: the client idle in a transaction is disconnected with
    // 25P03 and its transaction is rolled back.
    let c = connect(idle, "").await.unwrap();
    c.client
        .simple_query("BEGIN; INSERT INTO idle_t VALUES (1)")
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), c.task)
        .await
        .expect("disconnected within 10s")
        .unwrap();
    let e = ended.expect_err("the session ends with an error");
    assert_eq!(code(&e), "25P03", "{}", describe(&e));
    assert!(
        describe(&e).contains("idle_transaction_timeout"),
        "{}",
        describe(&e)
    );
    assert!(c.client.simple_query("SELECT 1").await.is_err());
    cluster::wait_until(
        "the idle transaction rolled back",
        Duration::from_secs(10),
        || {
            cluster
                .psql(
                    leader,
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'",
                )
                .map(|n| n == "0")
        },
    );
    assert_eq!(
        cluster.psql(leader, "SELECT count(*) FROM idle_t").unwrap(),
        "0"
    );
    // A client that stays busy is not affected.
    let busy = connect(idle, "").await.unwrap();
    let r = busy
        .client
        .simple_query("BEGIN; SELECT pg_sleep(3); COMMIT")
        .await;
    assert!(r.is_ok(), "{r:?}");
}
