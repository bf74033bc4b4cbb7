//! Pooling against a real Patroni cluster (tests/cluster): psql with COPY in both
//! directions, the Python drivers (psycopg 3, psycopg2, asyncpg), the JDBC driver and pgbench in
//! every query mode through a transaction-mode port, and cancel through balanced replica
//! ports.

mod cluster;

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::client::{self, code, connect, listener, psql_stdin, TRUST};
use cluster::{spawn, Cluster};
use tokio_postgres::NoTls;

const HEALTHY: Duration = Duration::from_secs(60);

fn start(base: u16) -> (Cluster, u16) {
    let cluster = Cluster::start(base);
    cluster.wait_healthy(HEALTHY);
    let leader = cluster.pg_port(&cluster.leader().expect("leader"));
    (cluster, leader)
}

#[test]
fn psql_copy_and_python_drivers_through_transaction_mode() {
    let base = 22_000;
    let (cluster, leader) = start(base);
    let port = base + 41;
    let toml = format!(
        "{TRUST}{}",
        listener(port, "primary", Some("transaction"), "pool_size = 2")
    );
    let _rg = spawn::rolegate(&cluster, "rolegate-pooling", &toml, &[port]);

    // Simple queries, several statements in one Query message.
    assert_eq!(
        cluster.psql(port, "SELECT 1; SELECT 'two'").unwrap(),
        "1\ntwo"
    );
    cluster
        .psql(port, "CREATE TABLE copy_t (id int PRIMARY KEY, body text)")
        .unwrap();

    // COPY FROM STDIN through the pooled port lands on the leader.
    let mut input = String::new();
    for i in 1..=1000 {
        let _ = writeln!(input, "{i}\trow {i}");
    }
    psql_stdin(port, "COPY copy_t FROM STDIN", input.as_bytes()).unwrap();
    assert_eq!(
        cluster
            .psql(leader, "SELECT count(*), sum(id) FROM copy_t")
            .unwrap(),
        "1000|500500"
    );
    // COPY TO STDOUT gives back exactly what went in.
    let out = cluster
        .psql(port, "COPY (SELECT * FROM copy_t ORDER BY id) TO STDOUT")
        .unwrap();
    assert_eq!(out, input.trim_end());

    // psql's \copy both ways (client-side files).
    let file = cluster.dir().join("copy_t.tsv");
    let path = file.display();
    cluster
        .psql(
            port,
            &format!("\\copy (SELECT id + 1000, body FROM copy_t) TO '{path}'"),
        )
        .unwrap();
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 1000);
    cluster
        .psql(port, &format!("\\copy copy_t FROM '{path}'"))
        .unwrap();
    assert_eq!(
        cluster
            .psql(leader, "SELECT count(*), max(id) FROM copy_t")
            .unwrap(),
        "2000|2000"
    );

    // A COPY the server rejects half-way leaves the pooled servers usable.
    let err = psql_stdin(
        port,
        "COPY copy_t FROM STDIN",
        b"5000\tok\nnot-a-number\tx\n",
    )
    .expect_err("bad COPY data must fail");
    assert!(err.to_string().contains("invalid input syntax"), "{err:#}");
    for _ in 0..4 {
        assert_eq!(
            cluster
                .psql(port, "SELECT count(*) FROM copy_t WHERE id = 5000")
                .unwrap(),
            "0"
        );
    }

    python_drivers(&cluster, port, leader);
    jdbc(port, cluster.dir());
    // The batch was committed, the insert after it rolled back.
    assert_eq!(
        cluster
            .psql(leader, "SELECT count(*), sum(id) FROM jdbc_items")
            .unwrap(),
        "100|5050"
    );
}

/// psycopg 3, psycopg2 and asyncpg (tests/pooling_drivers.py) through `port`, and what they
/// committed (and did not) on the leader.
fn python_drivers(cluster: &Cluster, port: u16, leader: u16) {
    // psycopg 3 (server-side parameters, auto-prepared statements), libpq's pipeline mode
    // (several Syncs in flight), psycopg2 and asyncpg (every query a named statement).
    let script = include_str!("pooling_drivers.py");
    let venv = std::env::var("ROLEGATE_VENV").unwrap_or_else(|_| "/opt/rolegate/venv".into());
    let out = Command::new(format!("{venv}/bin/python"))
        .args(["-c", script, &port.to_string()])
        .output()
        .expect("run the Patroni venv's python (scripts/install-deps installs psycopg)");
    assert!(
        out.status.success(),
        "python drivers failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the drivers committed (and did not roll back) is on the leader.
    assert_eq!(
        cluster
            .psql(
                leader,
                "SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM py_items"
            )
            .unwrap(),
        "2:kept,4:psycopg2 kept"
    );

    // asyncpg's batch and binary COPY went in; its rolled-back insert did not.
    assert_eq!(
        cluster
            .psql(
                leader,
                "SELECT count(*), count(*) FILTER (WHERE id = 2000) FROM apg_items"
            )
            .unwrap(),
        "150|0"
    );
}

/// Compiles and runs tests/jdbc/PoolingJdbc.java against `port`: statements the driver
/// prepared on one server run on another, batches, commit and rollback, an error inside a
/// transaction, a cursor read in pieces, parameter metadata, and setQueryTimeout's cancel.
fn jdbc(port: u16, dir: &std::path::Path) {
    const JAR: &str = "/usr/share/java/postgresql.jar";
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jdbc/PoolingJdbc.java");
    let classes = dir.join("jdbc-classes");
    let javac = Command::new("javac")
        .arg("-d")
        .arg(&classes)
        .args(["-cp", JAR, source])
        .output()
        .expect("run javac (scripts/install-deps installs a JDK and the JDBC driver)");
    assert!(
        javac.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let out = Command::new("java")
        .arg("-cp")
        .arg(format!("{}:{JAR}", classes.display()))
        .args(["PoolingJdbc", &port.to_string()])
        .output()
        .expect("run java");
    assert!(
        out.status.success() && out.stdout.starts_with(b"ok"),
        "the JDBC driver failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `number of transactions actually processed` and `number of failed transactions`.
fn pgbench_counts(out: &str) -> (u64, Option<u64>) {
    let after = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.split('/').next())
            .and_then(|n| n.parse().ok())
    };
    (
        after("number of transactions actually processed: ").unwrap_or(0),
        after("number of failed transactions: "),
    )
}

fn pgbench(port: u16, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/pgbench")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(args)
        .arg("postgres")
        .output()
        .expect("run pgbench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

#[test]
fn pgbench_in_every_query_mode_through_transaction_mode() {
    let base = 22_100;
    let (cluster, leader) = start(base);
    let port = base + 41;
    let toml = format!(
        "{TRUST}{}",
        listener(port, "primary", Some("transaction"), "pool_size = 4")
    );
    let _rg = spawn::rolegate(&cluster, "rolegate-pgbench", &toml, &[port]);
    pgbench(leader, &["-i", "-s", "1", "-q"]);
    // 8 clients on 4 servers: the servers are shared, statements prepared by one client
    // must be there (or be prepared again) for whichever client gets the server next.
    for mode in ["simple", "extended", "prepared"] {
        for script in [&["-S"][..], &["-N"][..]] {
            let mut args = vec!["-n", "-c", "8", "-j", "2", "-T", "4", "-M", mode];
            args.extend_from_slice(script);
            let out = pgbench(port, &args);
            let (processed, failed) = pgbench_counts(&out);
            println!("pgbench -M {mode} {script:?}: processed {processed}, failed {failed:?}");
            assert!(
                processed > 100,
                "-M {mode} {script:?} made no progress:\n{out}"
            );
            assert_eq!(failed, Some(0), "-M {mode} {script:?}:\n{out}");
        }
    }
    // The -N runs wrote to the leader through the pool.
    let history: u64 = cluster
        .psql(leader, "SELECT count(*) FROM pgbench_history")
        .unwrap()
        .parse()
        .unwrap();
    assert!(history > 300, "pgbench_history has {history} rows");
}

/// Runs `pg_sleep(30)` on a client of `port` and cancels it after a second through the
/// cancel key rolegate gave; returns the SQLSTATE and how long the query ran.
async fn cancel_sleep(port: u16) -> (String, Duration) {
    let conn = connect(port, "").await.expect("connect");
    // Land on a server first so the cancel has a query to hit.
    client::text(&conn.client, "SELECT 1").await.unwrap();
    let token = conn.client.cancel_token();
    let started = Instant::now();
    let query = tokio::spawn(async move {
        let r = conn.client.simple_query("SELECT pg_sleep(30)").await;
        (r.map(|_| ()), conn)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    token.cancel_query(NoTls).await.expect("send the cancel");
    let (result, conn) = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .expect("the cancelled query ended within 10s")
        .unwrap();
    let elapsed = started.elapsed();
    let err = result.expect_err("a cancelled pg_sleep(30) fails");
    // The session is still usable after the cancel.
    assert_eq!(client::text(&conn.client, "SELECT 7").await.unwrap(), "7");
    (code(&err), elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_replica_through_pooled_and_passthrough_ports() {
    let base = 22_300;
    let (cluster, _) = start(base);
    let (pooled, passthrough) = (base + 41, base + 42);
    let toml = format!(
        "{TRUST}{}{}",
        listener(pooled, "replica", Some("transaction"), ""),
        listener(passthrough, "replica", None, "")
    );
    let _rg = spawn::rolegate(&cluster, "rolegate-cancel", &toml, &[pooled, passthrough]);
    // Round-robin over two replicas: several rounds so both are cancelled through.
    for round in 0..4 {
        for port in [pooled, passthrough] {
            let (sqlstate, took) = cancel_sleep(port).await;
            println!("round {round} port {port}: {sqlstate} after {took:?}");
            assert_eq!(sqlstate, "57014", "port {port}");
            assert!(took < Duration::from_secs(5), "port {port}: {took:?}");
        }
    }
}
