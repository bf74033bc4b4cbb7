//! End-to-end routing: rolegate in front of a real Patroni cluster (tests/cluster).
//!
//! Each test owns a cluster on its own base port (rolegate listeners on base+31..=34) and
//! checks through `inet_server_port()` / `pg_is_in_recovery()` where each port lands,
//! cross-checked against Patroni's own `GET /cluster`.

mod cluster;

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use cluster::{
    is_disconnect, server_of, standard_listeners, wait_for, wait_until, Cluster, Role, Rolegate,
    Session,
};
use tokio_postgres::error::SqlState;

/// Patroni settles (leader + 2 streaming replicas + sync standby) within this.
const HEALTHY: Duration = Duration::from_secs(60);
/// rolegate follows a DCS change within this.
const FOLLOW: Duration = Duration::from_secs(30);
/// Sessions on a member that left a role are closed within this (100 ms in the spec, plus
/// the time Patroni needs to publish the change).
const CLOSE: Duration = Duration::from_secs(30);

/// Connections made per port when sampling where it routes.
const SAMPLES: usize = 10;

fn start(base: u16) -> (Cluster, cluster::PatroniView) {
    let cluster = Cluster::start(base);
    let view = cluster.wait_healthy(HEALTHY);
    (cluster, view)
}

/// `n` fresh connections to `port`, each reporting (server port, in recovery).
fn sample(port: u16, n: usize) -> Result<Vec<(u16, bool)>> {
    (0..n).map(|_| server_of(port)).collect()
}

/// Polls until `SAMPLES` consecutive connections to `port` all land on `expected`;
/// returns how long that took.
fn wait_routes_to(what: &str, port: u16, expected: (u16, bool), timeout: Duration) -> Duration {
    let start = Instant::now();
    wait_until(what, timeout, || {
        sample(port, SAMPLES).map(|got| got.iter().all(|&s| s == expected))
    });
    start.elapsed()
}

/// Opens sessions on `port` until one lands on the server at `target`.
fn session_on(port: u16, target: u16) -> Session {
    wait_for(
        &format!("a session through {port} on {target}"),
        FOLLOW,
        || -> Result<Option<Session>> {
            let session = Session::connect(port)?;
            Ok((session.server()?.0 == target).then_some(session))
        },
    )
}

/// Asserts the held session was ended: a query fails with a disconnect, and any SQLSTATE
/// that ended it is 57P01 (admin shutdown) or 08006 (connection failure).
fn assert_session_ended(session: &mut Session, sql: &str) {
    let err = session
        .query(sql)
        .expect_err("query on a session that should have been closed succeeded");
    assert!(is_disconnect(&err), "unexpected error: {err:?}");
    if let Ok(Some(ended)) = session.wait_closed(Duration::from_secs(5)) {
        if let Some(code) = ended.code() {
            assert!(
                *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CONNECTION_FAILURE,
                "session ended with SQLSTATE {code:?}: {ended}"
            );
        }
    }
}

#[test]
fn each_port_reaches_its_role() {
    let (cluster, view) = start(21000);
    let rg = Rolegate::start(&cluster, &standard_listeners(21000));
    let leader = view.leader().unwrap().port;
    let sync = view.sync_standbys()[0].port;
    let asyn = view.async_replicas()[0].port;

    wait_routes_to(
        "primary port on the leader",
        rg.port(Role::Primary),
        (leader, false),
        FOLLOW,
    );

    // rolegate may still be loading its first snapshot: the first replica connection may wait.
    wait_until("replica port serving", FOLLOW, || {
        server_of(rg.port(Role::Replica)).map(|_| true)
    });
    let mut hits: BTreeMap<u16, usize> = BTreeMap::new();
    for (port, in_recovery) in sample(rg.port(Role::Replica), 20).unwrap() {
        assert!(in_recovery, "replica port reached a primary on {port}");
        assert!(port == sync || port == asyn, "replica port reached {port}");
        *hits.entry(port).or_default() += 1;
    }
    assert_eq!(
        hits.len(),
        2,
        "round-robin over both replicas, got {hits:?}"
    );
    assert!(hits.values().all(|&n| n >= 5), "unbalanced: {hits:?}");

    wait_routes_to(
        "sync port on the sync standby",
        rg.port(Role::Sync),
        (sync, true),
        FOLLOW,
    );
    wait_routes_to(
        "async port on the async replica",
        rg.port(Role::Async),
        (asyn, true),
        FOLLOW,
    );

    // Patroni still agrees with what we routed by.
    let now = cluster.patroni_cluster().unwrap();
    assert_eq!(now.leader().unwrap().port, leader);
    assert_eq!(now.sync_standbys()[0].port, sync);
    assert_eq!(now.async_replicas()[0].port, asyn);
}

#[test]
fn switchover_moves_primary_port_and_ends_old_sessions() {
    let (cluster, view) = start(21100);
    let rg = Rolegate::start(&cluster, &standard_listeners(21100));
    let primary = rg.port(Role::Primary);
    let old = view.leader().unwrap().clone();
    let new = view.sync_standbys()[0].clone(); // synchronous mode: only a sync standby may take over
    wait_routes_to(
        "primary port on the leader",
        primary,
        (old.port, false),
        FOLLOW,
    );

    cluster
        .psql(
            old.port,
            "create table probe(id int primary key, note text)",
        )
        .unwrap();
    let mut held = Session::connect(primary).unwrap();
    assert_eq!(held.server().unwrap(), (old.port, false));
    held.query("insert into probe values (1, 'before')")
        .unwrap();

    let started = Instant::now();
    let followed = thread::scope(|s| {
        let switch = s.spawn(|| cluster.switchover(Some(&new.name)));
        let followed = wait_for("primary port on the new leader", HEALTHY, || {
            Ok::<_, anyhow::Error>(
                (server_of(primary)? == (new.port, false)).then(|| started.elapsed()),
            )
        });
        let answer = switch
            .join()
            .expect("switchover thread")
            .expect("switchover accepted");
        println!("Patroni: {answer}");
        followed
    });
    println!(
        "primary port reached the new leader {} {:.2}s after the switchover call",
        new.name,
        followed.as_secs_f64()
    );
    wait_routes_to(
        "primary port stays on the new leader",
        primary,
        (new.port, false),
        FOLLOW,
    );

    assert_session_ended(&mut held, "insert into probe values (2, 'after')");
    let view = cluster.wait_healthy(HEALTHY);
    assert_eq!(view.leader().unwrap().name, new.name);
    assert_eq!(
        cluster
            .psql(
                new.port,
                "select string_agg(id::text, ',' order by id) from probe"
            )
            .unwrap(),
        "1",
        "the held session must not have written after the switchover"
    );
}

#[test]
fn stopped_replica_leaves_replica_and_async_ports() {
    let (cluster, view) = start(21200);
    let rg = Rolegate::start(&cluster, &standard_listeners(21200));
    let (replica, asyn) = (rg.port(Role::Replica), rg.port(Role::Async));
    let target = view.async_replicas()[0].clone();
    let other = view.sync_standbys()[0].clone();
    wait_routes_to(
        "async port on the async replica",
        asyn,
        (target.port, true),
        FOLLOW,
    );
    let mut held = session_on(replica, target.port);

    let started = Instant::now();
    cluster.stop_patroni(&target.name);
    let took = wait_routes_to(
        "replica port without the stopped member",
        replica,
        (other.port, true),
        FOLLOW,
    );
    println!(
        "replica port dropped {} after {:.2}s",
        target.name,
        took.as_secs_f64()
    );
    assert_session_ended(&mut held, "select 1");

    // The async set is empty now: the async port must not reach anything.
    wait_until("async port refusing", FOLLOW, || {
        Ok::<_, ()>(server_of(asyn).is_err())
    });
    println!(
        "async port empty {:.2}s after the stop",
        started.elapsed().as_secs_f64()
    );

    // And it comes back once the member streams again.
    cluster.start_patroni(&target.name);
    cluster.wait_healthy(HEALTHY);
    wait_routes_to(
        "async port on the returned replica",
        asyn,
        (target.port, true),
        FOLLOW,
    );
}

#[test]
fn member_key_expiry_closes_proxied_sessions() {
    // Patroni killed, PostgreSQL still running: only rolegate can end the session.
    let (cluster, view) = start(21500);
    let rg = Rolegate::start(&cluster, &standard_listeners(21500));
    let replica = rg.port(Role::Replica);
    let target = view.async_replicas()[0].clone();
    let other = view.sync_standbys()[0].clone();
    let mut held = session_on(replica, target.port);

    cluster.kill_patroni(&target.name);
    wait_until("member key expired", HEALTHY, || {
        cluster
            .patroni_cluster()
            .map(|v| v.member(&target.name).is_none())
    });
    let ended = held
        .wait_closed(CLOSE)
        .expect("rolegate closes the session");
    let ended = ended.expect("closed with an ErrorResponse");
    assert_eq!(ended.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{ended}");
    assert!(held.is_closed());
    wait_routes_to(
        "replica port without the expired member",
        replica,
        (other.port, true),
        FOLLOW,
    );
    // PostgreSQL on the target itself never went away.
    assert_eq!(server_of(target.port).unwrap(), (target.port, true));
}

#[test]
fn nosync_moves_sync_port_to_the_other_replica() {
    let (cluster, view) = start(21300);
    let rg = Rolegate::start(&cluster, &standard_listeners(21300));
    let (sync, asyn) = (rg.port(Role::Sync), rg.port(Role::Async));
    let old_sync = view.sync_standbys()[0].clone();
    let was_async = view.async_replicas()[0].clone();
    wait_routes_to(
        "sync port on the sync standby",
        sync,
        (old_sync.port, true),
        FOLLOW,
    );
    wait_routes_to(
        "async port on the async replica",
        asyn,
        (was_async.port, true),
        FOLLOW,
    );

    cluster.set_nosync(&old_sync.name, true).unwrap();
    wait_until("Patroni picks the other sync standby", HEALTHY, || {
        cluster
            .patroni_cluster()
            .map(|v| v.is_healthy() && v.sync_standbys()[0].name == was_async.name)
    });
    let took = wait_routes_to(
        "sync port on the new sync standby",
        sync,
        (was_async.port, true),
        FOLLOW,
    );
    println!(
        "sync port moved to {} after {:.2}s",
        was_async.name,
        took.as_secs_f64()
    );
    wait_routes_to(
        "async port on the former sync standby",
        asyn,
        (old_sync.port, true),
        FOLLOW,
    );
}

#[test]
fn switchover_is_followed_after_etcd_restart() {
    /// A deliberate outage: long enough to break rolegate's watch stream, short enough
    /// that Patroni (retry_timeout 5 s) usually keeps its leader.
    const ETCD_OUTAGE: Duration = Duration::from_secs(4);
    let (cluster, view) = start(21400);
    let rg = Rolegate::start(&cluster, &standard_listeners(21400));
    let primary = rg.port(Role::Primary);
    wait_routes_to(
        "primary port on the leader",
        primary,
        (view.leader().unwrap().port, false),
        FOLLOW,
    );

    cluster.stop_etcd();
    thread::sleep(ETCD_OUTAGE);
    cluster.start_etcd();

    // Patroni may have demoted and re-elected during the outage: follow whoever leads now.
    let view = cluster.wait_healthy(HEALTHY);
    let leader = view.leader().unwrap().clone();
    wait_routes_to(
        "primary port on the leader after etcd restart",
        primary,
        (leader.port, false),
        FOLLOW,
    );

    // Patroni may still be choosing its synchronous standby after the outage, and accepts
    // only the current one as a candidate (HTTP 412 otherwise): ask again with a fresh view.
    let mut view = view;
    let mut attempts = 0;
    let (new, started) = loop {
        let new = view.sync_standbys()[0].clone();
        let started = Instant::now();
        match cluster.switchover(Some(&new.name)) {
            Ok(_) => break (new, started),
            Err(e) if attempts < 5 && e.to_string().contains("sync_standby") => {
                attempts += 1;
                thread::sleep(Duration::from_secs(1));
                view = cluster.wait_healthy(HEALTHY);
            }
            Err(e) => panic!("switchover refused: {e:#}"),
        }
    };
    wait_routes_to(
        "primary port on the new leader",
        primary,
        (new.port, false),
        FOLLOW,
    );
    println!(
        "after etcd restart, primary port followed the switchover to {} in {:.2}s",
        new.name,
        started.elapsed().as_secs_f64()
    );
}
