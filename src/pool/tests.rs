//! `max_db_connections` across the pools of one listener, against a minimal server that
//! accepts any login and counts its open connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Limit, Login, PoolError, PoolSettings, Pools, ServerPool};
use crate::auth::ServerCredentials;
use crate::route::cancel::BackendAddr;

/// Open connections on a fake server that answers every startup with AuthenticationOk and
/// ReadyForQuery, then waits for the connection to close.
struct Server {
    addr: BackendAddr,
    open: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let open = Arc::new(AtomicUsize::new(0));
        let count = open.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = tcp.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let len = c.read_u32().await.unwrap();
                    let mut startup = vec![0; len as usize - 4];
                    c.read_exact(&mut startup).await.unwrap();
                    c.write_all(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I")
                        .await
                        .unwrap();
                    count.fetch_add(1, Ordering::SeqCst);
                    let mut sink = [0u8; 64];
                    while matches!(c.read(&mut sink).await, Ok(n) if n > 0) {}
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let addr = BackendAddr {
            member: "pg1".into(),
            host: "127.0.0.1".into(),
            port,
        };
        Self { addr, open }
    }

    /// Waits (briefly) until the server sees `n` open connections.
    async fn expect_open(&self, n: usize) {
        for _ in 0..200 {
            if self.open.load(Ordering::SeqCst) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "server has {} open, expected {n}",
            self.open.load(Ordering::SeqCst)
        );
    }
}

fn pools(db_size: usize) -> Pools {
    Pools::new(PoolSettings {
        size: 5,
        min_size: 0,
        reserve_size: 0,
        reserve_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(600),
        lifetime: Duration::from_secs(3600),
        wait_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(1),
        db_size,
        max_client_conn: 100,
        reset_query: String::new(),
        idle_transaction_timeout: None,
        max_prepared_statements: 0,
    })
}

/// A reload of the pools' settings changed by `change`.
fn reload(pools: &Pools, change: impl FnOnce(&mut PoolSettings)) {
    let mut s = (**pools.settings.load()).clone();
    change(&mut s);
    pools.apply(s);
}

/// A reload that sets `server_lifetime` to zero: every connection is past it.
fn reload_with_zero_lifetime(pools: &Pools) {
    reload(pools, |s| s.lifetime = Duration::ZERO);
}

/// Checks out from `pool`, expecting a wait of the whole query_wait_timeout (200 ms)
/// that ends with `limit`'s timeout.
async fn expect_wait_timeout(pool: &Arc<ServerPool>, limit: Limit) {
    let started = tokio::time::Instant::now();
    match pool.checkout().await {
        Err(PoolError::WaitTimeout(d, hit)) => {
            assert_eq!((d, hit), (Duration::from_millis(200), limit));
        }
        Err(e) => panic!("expected the {limit} timeout, got {e}"),
        Ok(_) => panic!("a checkout got a connection past {limit}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
}

fn login(user: &str, database: &str) -> Login {
    Login {
        user: user.into(),
        database: database.into(),
        creds: ServerCredentials::None,
    }
}

#[tokio::test]
async fn busy_connections_of_one_user_make_another_wait_then_time_out() {
    let server = Server::start().await;
    let pools = pools(2);
    let alice = pools.get(&server.addr, &login("alice", "app"));
    let bob = pools.get(&server.addr, &login("bob", "app"));
    let _a1 = alice.checkout().await.unwrap();
    let _a2 = alice.checkout().await.unwrap();
    expect_wait_timeout(&bob, Limit::MaxDbConnections(2)).await;
    server.expect_open(2).await;
    let e = bob.checkout().await.err().unwrap().to_string();
    assert!(e.contains("(max_db_connections 2)"), "{e}");
}

#[tokio::test]
async fn closing_a_busy_connection_lets_a_waiter_of_another_user_in() {
    let server = Server::start().await;
    let pools = pools(1);
    let alice = pools.get(&server.addr, &login("alice", "app"));
    let bob = pools.get(&server.addr, &login("bob", "app"));
    let a = alice.checkout().await.unwrap();
    let waiter = tokio::spawn(async move { bob.checkout().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "bob did not wait for the slot");
    drop(a); // a connection in an unknown state is closed, freeing its slot
    waiter.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_idle_connection_of_another_user_is_closed_to_make_room() {
    let server = Server::start().await;
    let pools = pools(1);
    let alice = pools.get(&server.addr, &login("alice", "app"));
    let bob = pools.get(&server.addr, &login("bob", "app"));
    alice.checkout().await.unwrap().release();
    assert_eq!(alice.counts(), (0, 1));
    let b = bob.checkout().await.unwrap();
    assert_eq!(alice.counts(), (0, 0), "alice's idle connection was closed");
    assert_eq!(alice.closed.load(Ordering::Relaxed), 1);
    server.expect_open(1).await;
    // A waiter takes the room as soon as the busy one goes idle, too.
    let waiter = tokio::spawn({
        let alice = alice.clone();
        async move { alice.checkout().await.map(super::Checkout::release) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "alice did not wait");
    b.release();
    waiter.await.unwrap().unwrap();
    assert_eq!(bob.counts(), (0, 0));
    server.expect_open(1).await;
}

#[tokio::test]
async fn a_pools_own_idle_connection_is_reused_not_replaced() {
    let server = Server::start().await;
    let pools = pools(1);
    let alice = pools.get(&server.addr, &login("alice", "app"));
    alice.checkout().await.unwrap().release();
    alice.checkout().await.unwrap().release();
    assert_eq!(alice.opened.load(Ordering::Relaxed), 1);
    assert_eq!(alice.closed.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn databases_and_members_have_separate_budgets_and_zero_is_no_limit() {
    let server = Server::start().await;
    let limited = pools(1);
    let _a = limited
        .get(&server.addr, &login("alice", "app"))
        .checkout()
        .await
        .unwrap();
    let _other_db = limited
        .get(&server.addr, &login("bob", "reports"))
        .checkout()
        .await
        .unwrap();
    let pg2 = BackendAddr {
        member: "pg2".into(),
        ..server.addr.clone()
    };
    let _other_member = limited
        .get(&pg2, &login("bob", "app"))
        .checkout()
        .await
        .unwrap();
    let unlimited = pools(0);
    let mut held = Vec::new();
    for user in ["a", "b", "c"] {
        let pool = unlimited.get(&server.addr, &login(user, "app"));
        held.push(pool.checkout().await.unwrap());
        held.push(pool.checkout().await.unwrap());
    }
    server.expect_open(3 + 6).await;
}

#[tokio::test]
async fn min_pool_size_does_not_exceed_the_database_budget() {
    let server = Server::start().await;
    let pools = pools(1);
    let alice = pools.get(&server.addr, &login("alice", "app"));
    let bob = pools.get(&server.addr, &login("bob", "app"));
    alice.prefill_one().await.unwrap();
    match bob.prefill_one().await {
        Err(PoolError::WaitTimeout(_, Limit::MaxDbConnections(1))) => {}
        other => panic!("expected no room, got {:?}", other.err()),
    }
    server.expect_open(1).await;
}

#[tokio::test]
async fn a_reload_resizes_live_pools_without_closing_busy_connections() {
    let server = Server::start().await;
    let pools = pools(0);
    let pool = pools.get(&server.addr, &login("app", "db"));
    let first = pool.checkout().await.unwrap();
    let second = pool.checkout().await.unwrap();
    reload(&pools, |s| s.size = 1);
    // Both busy connections stay open; nothing new is lent while over the new size.
    server.expect_open(2).await;
    assert_eq!(pool.counts(), (2, 0));
    first.release();
    let err = pool.checkout().await.err().unwrap();
    assert!(
        matches!(err, PoolError::WaitTimeout(_, Limit::PoolSize(1))),
        "{err}"
    );
    second.release();
    let c = pool.checkout().await.unwrap();
    assert!(pool.checkout().await.is_err());
    reload(&pools, |s| s.size = 3);
    let d = pool.checkout().await.unwrap();
    let e = pool.checkout().await.unwrap();
    assert_eq!(pool.counts().0, 3);
    drop((c, d, e));
}

#[tokio::test]
async fn the_seed_serves_only_the_database_and_user_it_was_set_for() {
    let server = Server::start().await;
    let pools = pools(0);
    let db = crate::session::intern::intern("app");
    let user = crate::session::intern::intern("alice");
    let pool = pools.get(
        &server.addr,
        &Login {
            user: user.clone(),
            database: db.clone(),
            creds: ServerCredentials::None,
        },
    );
    let seed = super::Seed::default();
    assert!(seed.get(&db, &user).is_none(), "nothing seeded yet");
    seed.set(7, &pool);
    let (generation, got) = seed.get(&db, &user).expect("seeded for app/alice");
    assert_eq!(generation, 7);
    assert!(Arc::ptr_eq(&got, &pool));
    // Equal text in another allocation is another key (the names are interned).
    let other_user: Arc<str> = Arc::from("alice");
    assert!(seed.get(&db, &other_user).is_none());
    let bob = crate::session::intern::intern("bob");
    assert!(seed.get(&db, &bob).is_none());
}

#[tokio::test]
async fn a_connection_past_its_lifetime_is_closed_on_release_after_a_reload_shortens_it() {
    let server = Server::start().await;
    let pools = pools(0);
    let pool = pools.get(&server.addr, &login("alice", "app"));
    let c = pool.checkout().await.unwrap();
    server.expect_open(1).await;
    reload_with_zero_lifetime(&pools);
    c.release();
    // Released past the new lifetime: closed, not kept idle.
    server.expect_open(0).await;
    assert_eq!(pool.counts(), (0, 0));
}

#[tokio::test]
async fn a_greeting_never_looks_at_an_idle_connection_past_its_lifetime() {
    let server = Server::start().await;
    let pools = pools(0);
    let pool = pools.get(&server.addr, &login("alice", "app"));
    pool.checkout().await.unwrap().release();
    server.expect_open(1).await;
    assert_eq!(pool.with_idle(std::time::Instant::now(), |_| ()), Some(()));
    reload_with_zero_lifetime(&pools);
    // Past the new lifetime: closed, as a checkout would, not used for a greeting.
    assert_eq!(pool.with_idle(std::time::Instant::now(), |_| ()), None);
    server.expect_open(0).await;
    assert_eq!(pool.counts(), (0, 0));
}

#[tokio::test]
async fn a_client_that_waited_reserve_pool_timeout_gets_a_reserve_connection() {
    let server = Server::start().await;
    let pools = pools(0);
    reload(&pools, |s| {
        (s.size, s.reserve_size) = (1, 1);
        s.reserve_timeout = Duration::from_millis(50);
    });
    let pool = pools.get(&server.addr, &login("alice", "app"));
    let first = pool.checkout().await.unwrap();
    let started = tokio::time::Instant::now();
    let reserve = pool.checkout().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_millis(200),
        "the reserve connection came after {waited:?}, not after reserve_pool_timeout"
    );
    server.expect_open(2).await;
    assert_eq!(pool.counts(), (2, 0));
    // pool_size and the reserve are both in use: the next client waits the whole
    // query_wait_timeout and is told which limit it hit.
    expect_wait_timeout(&pool, Limit::PoolSize(1)).await;
    server.expect_open(2).await;
    // The reserve connection goes idle into the pool's list and its permit back to the
    // reserve; a connection dropped (closed) gives its permit back too.
    reserve.release();
    assert_eq!(pool.counts(), (1, 1));
    drop(first);
    assert_eq!(pool.counts(), (0, 1));
    let again = pool.try_checkout(std::time::Instant::now());
    assert!(
        again.is_some(),
        "the released reserve connection is not idle"
    );
    assert_eq!(pool.counts(), (1, 0));
    drop(again);
    assert_eq!(pool.counts(), (0, 0));
    server.expect_open(2).await;
}
