//! In-process tests of pooling logic against fake backends: sharing, limits, timeouts,
//! cancel and fencing of pooled sessions. Real drivers against real PostgreSQL are in
//! `pooling.rs`.

mod fake;

use std::time::{Duration, Instant};

use fake::{cancel_packet, error_fields, member_json, query, read_msg, FakeBackend, Proxy};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn backends() -> [FakeBackend; 2] {
    [FakeBackend::start(201).await, FakeBackend::start(202).await]
}

fn keys(b: &[FakeBackend; 2], leader: usize) -> std::collections::BTreeMap<String, Vec<u8>> {
    let members: Vec<_> = b
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let name = ["pg1", "pg2"][i];
            (
                name,
                member_json(
                    b.addr,
                    if i == leader { "primary" } else { "replica" },
                    "running",
                    1000,
                ),
            )
        })
        .collect();
    fake::keys(Some(["pg1", "pg2"][leader]), &members, None)
}

/// Two fake backends, the first the leader, behind a pooled primary listener.
async fn leader_first(extra: &str) -> ([FakeBackend; 2], Proxy) {
    let b = backends().await;
    let proxy = pooled(extra).await;
    proxy.publish(&keys(&b, 0));
    (b, proxy)
}

async fn pooled(extra: &str) -> Proxy {
    let spec = format!(
        "role = \"primary\"\npool_mode = \"transaction\"\nconnect_wait = \"300ms\"\n{extra}"
    );
    Proxy::start_toml(&[spec], Some("type = \"trust\"")).await
}

/// Sends `sql` and returns the status byte of the ReadyForQuery that answers it.
async fn run(c: &mut TcpStream, sql: &str) -> u8 {
    c.write_all(&query(sql)).await.unwrap();
    loop {
        let (tag, body) = read_msg(c).await.unwrap();
        match tag {
            b'Z' => return body[0],
            b'E' => panic!("error: {:?}", error_fields(&body)),
            _ => {}
        }
    }
}

async fn fatal(c: &mut TcpStream) -> std::collections::BTreeMap<char, String> {
    let (tag, body) = tokio::time::timeout(Duration::from_secs(5), read_msg(c))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tag, b'E');
    error_fields(&body)
}

#[tokio::test]
async fn many_clients_share_a_small_pool_and_see_rolegates_cancel_key() {
    let (b, proxy) = leader_first("pool_size = 2").await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        let (c, pid, _) = proxy.client(0).await;
        assert_ne!(
            pid, 201,
            "a pooled client gets rolegate's key, not the server's"
        );
        clients.push(c);
    }
    for round in 0..3 {
        for c in &mut clients {
            assert_eq!(run(c, &format!("select {round}")).await, b'I');
        }
    }
    let opened = b[0].seen.lock().unwrap().startups;
    assert!(
        (1..=2).contains(&opened),
        "10 clients x 3 transactions used {opened} server connections"
    );
}

#[tokio::test]
async fn a_transaction_keeps_its_server_and_others_wait_then_time_out() {
    let b = backends().await;
    let proxy = pooled("pool_size = 1\nquery_wait_timeout = \"300ms\"").await;
    proxy.publish(&keys(&b, 0));
    let (mut a, _, _) = proxy.client(0).await;
    let (mut other, _, _) = proxy.client(0).await;
    assert_eq!(run(&mut a, "BEGIN").await, b'T');
    let start = Instant::now();
    other.write_all(&query("select 1")).await.unwrap();
    let f = fatal(&mut other).await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(f[&'C'], "53300");
    assert!(f[&'M'].contains("pool_size 1"), "{}", f[&'M']);
    // The transaction goes on on its server and ends normally.
    assert_eq!(run(&mut a, "select 2").await, b'T');
    assert_eq!(run(&mut a, "COMMIT").await, b'I');
}

#[tokio::test]
async fn max_client_conn_refuses_at_once_with_53300() {
    let (_b, proxy) = leader_first("max_client_conn = 2").await;
    let _a = proxy.client(0).await;
    let _b = proxy.client(0).await;
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&fake::startup_packet("app")).await.unwrap();
    let f = fatal(&mut c).await;
    assert_eq!(f[&'C'], "53300");
    assert!(f[&'M'].contains("max_client_conn 2"));
}

#[tokio::test]
async fn client_gone_mid_transaction_never_leaves_a_dirty_server_in_the_pool() {
    let (b, proxy) = leader_first("pool_size = 4").await;
    let (mut a, _, _) = proxy.client(0).await;
    assert_eq!(run(&mut a, "BEGIN").await, b'T');
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(2);
    while b[0].seen.lock().unwrap().closed == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        b[0].seen.lock().unwrap().closed,
        1,
        "the dirty server connection was closed"
    );
    let (mut c, _, _) = proxy.client(0).await;
    assert_eq!(
        run(&mut c, "select 1").await,
        b'I',
        "a fresh server is clean"
    );
}

#[tokio::test]
async fn cancel_with_rolegates_key_reaches_the_server_in_use() {
    let (b, proxy) = leader_first("pool_size = 2").await;
    let (mut a, pid, secret) = proxy.client(0).await;
    assert_eq!(run(&mut a, "BEGIN").await, b'T');
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&cancel_packet(pid, &secret)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while b[0].seen.lock().unwrap().cancels.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancels = b[0].seen.lock().unwrap().cancels.clone();
    assert_eq!(
        cancels,
        [(201, fake::secret(201).to_vec())],
        "the server's own key was used"
    );
}

#[tokio::test]
async fn leader_change_ends_pooled_transactions_and_moves_new_ones() {
    let (b, proxy) = leader_first("pool_size = 2").await;
    let (mut in_txn, _, _) = proxy.client(0).await;
    let (mut between, _, _) = proxy.client(0).await;
    assert_eq!(run(&mut in_txn, "BEGIN").await, b'T');
    assert_eq!(run(&mut between, "select 1").await, b'I');
    proxy.publish(&keys(&b, 1));
    let f = fatal(&mut in_txn).await;
    assert_eq!(f[&'C'], "57P01");
    assert!(f[&'M'].contains("leader is now pg2"), "{}", f[&'M']);
    // A client between transactions keeps its session; its next one runs on pg2.
    let before = b[1].seen.lock().unwrap().startups;
    assert_eq!(run(&mut between, "select 2").await, b'I');
    assert_eq!(b[1].seen.lock().unwrap().startups, before + 1);
}

/// Connects to listener 0 as `user` and reads through the greeting.
async fn client_as(proxy: &Proxy, user: &str) -> TcpStream {
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&fake::startup_packet(user)).await.unwrap();
    while read_msg(&mut c).await.unwrap().0 != b'Z' {}
    c
}

#[tokio::test]
async fn max_db_connections_spans_users_and_reuses_idle_room() {
    let b = backends().await;
    let proxy =
        pooled("pool_size = 5\nmax_db_connections = 1\nquery_wait_timeout = \"300ms\"").await;
    proxy.publish(&keys(&b, 0));
    let mut alice = client_as(&proxy, "alice").await;
    let mut bob = client_as(&proxy, "bob").await;
    assert_eq!(run(&mut alice, "BEGIN").await, b'T');
    bob.write_all(&query("select 1")).await.unwrap();
    let f = fatal(&mut bob).await;
    assert_eq!(f[&'C'], "53300");
    assert!(f[&'M'].contains("max_db_connections 1"), "{}", f[&'M']);
    // Once alice's server is idle, carol (another user) gets room by closing it.
    assert_eq!(run(&mut alice, "COMMIT").await, b'I');
    let mut carol = client_as(&proxy, "carol").await;
    assert_eq!(run(&mut carol, "select 2").await, b'I');
    // Each login's greeting borrows a server too: alice, bob (closing alice's idle one),
    // alice's BEGIN (closing bob's), carol (closing alice's). One stays open.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = b[0].seen.lock().unwrap();
    assert_eq!((seen.startups, seen.closed), (4, 3));
}

#[tokio::test]
async fn a_login_greets_from_an_idle_server_without_checking_it_out() {
    let (_b, proxy) = leader_first("pool_size = 1").await;
    // Every checkout in transaction mode records a transaction time when it ends.
    let lends = || proxy.listeners[0].stats.transaction_time.snapshot().count;
    // The first login opens the server: there is none idle to greet from yet.
    let (mut first, _, _) = proxy.client(0).await;
    assert_eq!(lends(), 1);
    // Later logins greet from the idle server: no checkout.
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(proxy.client(0).await.0);
    }
    assert_eq!(lends(), 1, "a login checked out the idle server");
    for c in &mut later {
        assert_eq!(run(c, "select 1").await, b'I');
    }
    assert_eq!(lends(), 6);
    // While the only server is in a transaction, a login waits for it (the long way).
    assert_eq!(run(&mut first, "BEGIN").await, b'T');
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&fake::startup_packet("app")).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), until_ready(&mut c)).await;
    assert!(early.is_err(), "a login was greeted with no server at hand");
    assert_eq!(run(&mut first, "COMMIT").await, b'I');
    tokio::time::timeout(Duration::from_secs(5), until_ready(&mut c))
        .await
        .expect("the login goes on once the server is back");
    assert_eq!(run(&mut c, "select 2").await, b'I');
}

#[tokio::test]
async fn a_server_that_says_fatal_after_its_transaction_is_closed_and_the_client_never_sees_it() {
    let (b, proxy) = leader_first("pool_size = 1").await;
    let (mut c, _, _) = proxy.client(0).await;
    // The server answers, then sends a FATAL and closes, in one chunk (a backend told to
    // terminate right after the query: shutdown, pg_terminate_backend).
    assert_eq!(run(&mut c, "select 1 -- DIE AFTER").await, b'I');
    // The client saw nothing of it: its next transaction runs, on a new server (the dying
    // one was not given back to the pool with its last words read).
    assert_eq!(run(&mut c, "select 2").await, b'I');
    assert_eq!(run(&mut c, "select 3").await, b'I');
    let seen = b[0].seen.lock().unwrap();
    assert_eq!(
        seen.startups, 2,
        "a new server was opened for the next transaction"
    );
    assert_eq!(seen.closed, 1, "the dying server's connection ended");
}

#[tokio::test]
async fn a_row_cut_by_a_read_reaches_the_client_whole_and_a_server_dying_mid_row_gives_an_error() {
    let (b, proxy) = leader_first("pool_size = 1").await;
    let (mut c, _, _) = proxy.client(0).await;
    // The server sends half a row, waits, then the rest: the client gets whole messages,
    // the same bytes.
    c.write_all(&query("select x -- SPLIT ROW")).await.unwrap();
    let (head, rest) = fake::row_answer();
    let mut want = head;
    want.extend(rest);
    want.extend(fake::msg(b'Z', b"I"));
    let mut got = Vec::new();
    loop {
        let (tag, body) = read_msg(&mut c).await.unwrap();
        got.extend(fake::msg(tag, &body));
        if tag == b'Z' {
            break;
        }
    }
    assert_eq!(got, want, "the answer, message for message");
    // The server sends half a row and dies: the client gets the row description, then an
    // error saying what happened, never half a message; the pool opens a new server.
    c.write_all(&query("select x -- CUT ROW")).await.unwrap();
    assert_eq!(read_msg(&mut c).await.unwrap().0, b'T');
    let e = fatal(&mut c).await;
    assert_eq!(e[&'C'], "08006", "{e:?}");
    assert!(e[&'M'].contains("lost"), "{e:?}");
    let mut rest = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut c, &mut rest),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(rest.is_empty(), "nothing after the error: {rest:?}");
    let (mut c2, _, _) = proxy.client(0).await;
    assert_eq!(run(&mut c2, "select 1").await, b'I');
    assert_eq!(
        b[0].seen.lock().unwrap().startups,
        2,
        "a new server for the next client"
    );
}

/// Reads a login's answers up to ReadyForQuery; an error fails the test.
async fn until_ready(c: &mut TcpStream) {
    loop {
        let (tag, body) = read_msg(c).await.unwrap();
        assert_ne!(tag, b'E', "{:?}", error_fields(&body));
        if tag == b'Z' {
            return;
        }
    }
}
