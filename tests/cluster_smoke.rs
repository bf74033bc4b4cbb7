//! Checks the test harness itself: `scripts/cluster up` gives a healthy Patroni cluster whose
//! REST view, PostgreSQL roles and etcd keys agree. Needs no rolegate.

mod cluster;

use std::time::Duration;

use cluster::{server_of, wait_until, Cluster};

#[test]
fn cluster_comes_up_healthy() {
    let cluster = Cluster::start(20900);

    let view = cluster.wait_healthy(Duration::from_secs(30));
    let leader = view.leader().expect("a running leader");
    assert_eq!(view.streaming_replicas().len(), 2, "{view:?}");
    assert_eq!(view.sync_standbys().len(), 1, "{view:?}");
    assert_eq!(view.async_replicas().len(), 1, "{view:?}");
    assert_eq!(cluster.leader().unwrap(), leader.name);

    for node in cluster.nodes() {
        let (port, in_recovery) = server_of(node.pg_port).unwrap();
        assert_eq!(port, node.pg_port);
        let member = view.member(&node.name).expect("node listed by Patroni");
        assert_eq!(member.port, node.pg_port);
        assert_eq!(
            in_recovery,
            node.name != leader.name,
            "{} in recovery = {in_recovery}, Patroni says {member:?}",
            node.name
        );
    }

    // The leader takes writes and they replicate to the sync standby.
    let sync = view.sync_standbys()[0].port;
    cluster
        .psql(
            leader.port,
            "create table smoke(x int); insert into smoke values (42)",
        )
        .unwrap();
    wait_until(
        "the row on the sync standby",
        Duration::from_secs(10),
        || {
            cluster
                .psql(sync, "select x from smoke")
                .map(|out| out == "42")
        },
    );

    let key = format!("/service/{}/leader", cluster.scope());
    assert_eq!(
        cluster.etcd_get(&key).unwrap().as_deref(),
        Some(leader.name.as_str())
    );
    let sync_key = cluster
        .etcd_get(&format!("/service/{}/sync", cluster.scope()))
        .unwrap()
        .expect("sync key in synchronous mode");
    let sync_json: serde_json::Value = serde_json::from_str(&sync_key).unwrap();
    assert_eq!(sync_json["leader"], leader.name.as_str());
    assert_eq!(
        sync_json["sync_standby"],
        view.sync_standbys()[0].name.as_str()
    );
}
