//! Pool checkout and release, the pooler's per-transaction bookkeeping, against the fake
//! backend of the in-process tests (`tests/fake`: any login accepted; the connections are
//! real sockets on loopback, and no transaction runs on them, so what is timed is the pool
//! alone):
//! - `pool/idle`: an idle connection taken and given back without waiting (the common
//!   case: a transaction-mode client between two transactions);
//! - `pool/checkout_future`: the same through the `checkout` future, as a client that
//!   found no idle connection at once takes it;
//! - `pool/handoff/<clients>`: clients on one thread taking turns on 4 connections, each
//!   holding its connection across a yield, so most checkouts wait and get a connection
//!   handed over by a release (the `-c 1000` shape). Time per checkout.
//!
//! Run: `cargo bench --bench pool`.

#[path = "../tests/fake/mod.rs"]
mod fake;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rolegate::auth::ServerCredentials;
use rolegate::pool::{Login, PoolSettings, Pools, ServerPool};
use rolegate::route::cancel::BackendAddr;
use tokio::runtime::Runtime;

/// Connections in the pool (`pool_size`).
const POOL_SIZE: usize = 4;

fn settings() -> PoolSettings {
    PoolSettings {
        size: POOL_SIZE,
        min_size: 0,
        reserve_size: 0,
        reserve_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(600),
        lifetime: Duration::from_secs(3600),
        wait_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        db_size: 0,
        max_client_conn: 10_000,
        reset_query: String::new(),
        idle_transaction_timeout: None,
        max_prepared_statements: 0,
    }
}

/// A pool with all `POOL_SIZE` connections open and idle.
fn warm_pool(rt: &Runtime) -> (Pools, Arc<ServerPool>) {
    rt.block_on(async {
        let server = fake::FakeBackend::start(1).await;
        let addr = BackendAddr {
            member: "pg1".into(),
            host: server.addr.ip().to_string(),
            port: server.addr.port(),
        };
        let pools = Pools::new(settings());
        let login = Login {
            user: "bench".into(),
            database: "bench".into(),
            creds: ServerCredentials::None,
        };
        let pool = pools.get(&addr, &login);
        let mut held = Vec::new();
        for _ in 0..POOL_SIZE {
            held.push(pool.checkout().await.expect("open a connection"));
        }
        for c in held {
            c.release();
        }
        assert_eq!(pool.counts(), (0, POOL_SIZE), "all connections idle");
        (pools, pool)
    })
}

fn bench_pool(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_pools, pool) = warm_pool(&rt);
    let _entered = rt.enter();
    let mut group = c.benchmark_group("pool");

    group.bench_function("idle", |b| {
        b.iter(|| {
            let now = Instant::now();
            let conn = pool.try_checkout(now).expect("an idle connection");
            black_box(&conn);
            conn.release_at(now);
        });
    });

    group.bench_function("checkout_future", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let conn = pool.checkout().await.expect("checkout");
                    black_box(&conn);
                    conn.release();
                }
                start.elapsed()
            })
        });
    });

    for clients in [16u64, 256] {
        group.bench_with_input(BenchmarkId::new("handoff", clients), &clients, |b, &n| {
            b.iter_custom(|iters| {
                let per_client = iters.div_ceil(n).max(1);
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let pool = pool.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_client {
                                    let conn = pool.checkout().await.expect("checkout");
                                    tokio::task::yield_now().await;
                                    conn.release();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("client task");
                    }
                    // Per checkout, however the iterations were rounded up.
                    let ns =
                        start.elapsed().as_nanos() * u128::from(iters) / u128::from(per_client * n);
                    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
                })
            });
        });
    }
    group.finish();
    assert_eq!(pool.counts(), (0, POOL_SIZE), "every connection came back");
}

criterion_group!(benches, bench_pool);
criterion_main!(benches);
