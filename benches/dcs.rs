//! The per-watch-event cost of the DCS path: parse the Patroni key set into a
//! `ClusterState` and derive the routing `Topology` from it, for 3 and 16 members.
//! Run: `cargo bench --bench dcs`.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rolegate::dcs::patroni::cluster_from_keys;
use rolegate::topology::{derive, Member, Service, Topology};

/// etcd revision of the fixture; any value works, it is copied through.
const REVISION: i64 = 4_242;

fn bench_dcs(c: &mut Criterion) {
    let mut group = c.benchmark_group("dcs");
    for n in [3, 16] {
        let keys = common::patroni_keys(n);
        let state = cluster_from_keys(&keys, REVISION);
        check_fixture(n, &derive(&state));
        group.bench_with_input(
            BenchmarkId::new("cluster_from_keys", n),
            &keys,
            |b, keys| {
                b.iter(|| cluster_from_keys(black_box(keys), REVISION));
            },
        );
        group.bench_with_input(BenchmarkId::new("derive", n), &state, |b, state| {
            b.iter(|| derive(black_box(state)));
        });
        group.bench_with_input(BenchmarkId::new("watch_event", n), &keys, |b, keys| {
            b.iter(|| derive(&cluster_from_keys(black_box(keys), REVISION)));
        });
    }
    group.finish();
}

/// The fixture must parse as intended, or the numbers measure the error paths.
fn check_fixture(n: usize, topology: &Topology) {
    assert_eq!(topology.members.len(), n, "every member key parses");
    assert_eq!(topology.primary().map(Member::name), Some("pg1"));
    let sync = topology.candidates(Service::Sync, None).count();
    assert_eq!(sync, if n == 3 { 1 } else { 3 }, "sync standbys of {n}");
    assert!(topology.optime.is_some() && topology.timeline == Some(3));
}

criterion_group!(benches, bench_dcs);
criterion_main!(benches);
