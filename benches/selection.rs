//! Per-connection routing costs: candidate sets per service, balancing among them, and
//! the session registry (register + drop per connection, fence per topology change).
//! Run: `cargo bench --bench selection`.

mod common;

use std::hint::black_box;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use rolegate::config::Balance;
use rolegate::dcs::patroni::cluster_from_keys;
use rolegate::route::balance::pick;
use rolegate::route::{KillReason, SessionGuard, SessionRegistry};
use rolegate::topology::{derive, Member, Service, Topology};

/// A replica listener's `max_lag`, so the lag filter runs.
const MAX_LAG: Option<u64> = Some(16 << 20);
/// Sessions in the fence benchmark.
const SESSIONS: usize = 10_000;

type Registered = (Arc<SessionRegistry>, Vec<SessionGuard>);

fn topology(n: usize) -> Topology {
    derive(&cluster_from_keys(&common::patroni_keys(n), 1))
}

/// A registry with `sessions` sessions spread round-robin over `members`.
fn registry(members: &[&Member], sessions: usize) -> Registered {
    let reg = Arc::new(SessionRegistry::default());
    let held = (0..sessions)
        .map(|i| reg.register(members[i % members.len()].name()))
        .collect();
    (reg, held)
}

fn bench_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [3, 16] {
        let topo = topology(n);
        let cands: Vec<&Member> = topo.members.iter().collect();
        // Load as in session::connect: the listener registry's count per member.
        let (reg, _held) = registry(&cands, 20 * n);
        let rr = AtomicUsize::new(0);
        group.bench_with_input(BenchmarkId::new("round_robin", n), &cands, |b, cands| {
            b.iter(|| pick(black_box(cands), Balance::RoundRobin, &rr, |m| reg.count(m)));
        });
        group.bench_with_input(
            BenchmarkId::new("least_connections", n),
            &cands,
            |b, cands| {
                b.iter(|| {
                    pick(black_box(cands), Balance::LeastConnections, &rr, |m| {
                        reg.count(m)
                    })
                });
            },
        );
    }
    group.finish();
}

fn bench_candidates(c: &mut Criterion) {
    let mut group = c.benchmark_group("candidates");
    for n in [3, 16] {
        let topo = topology(n);
        for service in [
            Service::Primary,
            Service::Replica,
            Service::Sync,
            Service::Async,
        ] {
            let id = BenchmarkId::new(service.as_str(), n);
            // Collected, as `Listener::candidates` does.
            group.bench_with_input(id, &topo, |b, topo| {
                b.iter(|| {
                    black_box(topo)
                        .candidates(service, MAX_LAG)
                        .collect::<Vec<_>>()
                });
            });
        }
    }
    group.finish();
}

fn reason(member: &str) -> KillReason {
    KillReason {
        member: member.to_owned(),
        message: format!("member {member} is no longer the primary"),
    }
}

fn bench_registry(c: &mut Criterion) {
    let topo = topology(3);
    let members: Vec<&Member> = topo.members.iter().collect();
    let mut group = c.benchmark_group("registry");
    // One connection's bookkeeping, next to 1000 other live sessions.
    let (reg, _held) = registry(&members, 1000);
    group.bench_function("register_drop", |b| {
        b.iter(|| reg.register(black_box("pg2")));
    });
    // A topology change that does not touch this replica listener: every session is
    // checked against the new snapshot (as `route::fence::apply` does), none is signalled.
    let (reg, _held) = registry(&members[1..], SESSIONS);
    group.bench_function("fence_10k/keep_all", |b| {
        b.iter(|| {
            let keep = |m: &str| black_box(&topo).serves(Service::Replica, MAX_LAG, m);
            assert_eq!(reg.fence(keep, reason), 0);
        });
    });
    // A switchover: the sessions on pg1 (a third) are signalled. Setup is not timed.
    group.bench_function("fence_10k/kill_third", |b| {
        b.iter_batched_ref(
            || registry(&members, SESSIONS),
            |(reg, _held)| {
                let keep = |m: &str| black_box(m) != "pg1";
                assert_eq!(reg.fence(keep, reason), SESSIONS.div_ceil(3));
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_pick, bench_candidates, bench_registry);
criterion_main!(benches);
