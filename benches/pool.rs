//! Pool checkout and release, the pooler's per-transaction bookkeeping, against a minimal
//! server on loopback that accepts any login (the connections are real sockets; no
//! transaction runs on them, so what is timed is the pool alone):
//! - `pool/idle`: an idle connection taken and given back without waiting (the common
//!   case: a transaction-mode client between two transactions);
//! - `pool/checkout_future`: the same through the `checkout` future, as a client that
//!   found no idle connection at once takes it;
//! - `pool/handoff/<clients>`: clients on one thread taking turns on 4 connections, each
//!   holding its connection across a yield, so most checkouts wait and get a connection
//!   handed over by a release (the `-c 1000` shape). Time per checkout.
//!
//! Run: `cargo bench --bench pool`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rolegate::auth::ServerCredentials;
use rolegate::pool::{Login, PoolSettings, Pools, ServerPool};
use rolegate::route::cancel::BackendAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// Connections in the pool (`pool_size`).
const POOL_SIZE: usize = 4;

/// A server that answers every startup with AuthenticationOk and ReadyForQuery, then
/// reads until the connection closes.
async fn start_server() -> BackendAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = tcp.local_addr().expect("local addr").port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let Ok(len) = c.read_u32().await else { return };
                let mut startup = vec![0; (len as usize).saturating_sub(4)];
                if c.read_exact(&mut startup).await.is_err() {
                    return;
                }
                let _ = c.write_all(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I").await;
                let mut sink = [0u8; 64];
                while matches!(c.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    BackendAddr {
        member: "pg1".into(),
        host: "127.0.0.1".into(),
        port,
    }
}

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
        let addr = start_server().await;
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
