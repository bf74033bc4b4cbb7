//! In-process tests of how sessions end when rolegate stops (the stop state of the session
//! gate, as SIGTERM sets it), against fake backends: session-mode and transaction-mode
//! clients between transactions end at once with 57P01, clients inside a transaction
//! finish it first. The real-cluster version with signals is `reload_shutdown.rs`.

mod fake;

use std::time::Duration;

use fake::{error_fields, query, read_msg, FakeBackend, Proxy};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn proxy(mode: &str) -> (FakeBackend, Proxy) {
    let b = FakeBackend::start(301).await;
    let spec = format!("role = \"primary\"\npool_mode = \"{mode}\"\nconnect_wait = \"300ms\"\n");
    let proxy = Proxy::start_toml(&[spec], Some("type = \"trust\"")).await;
    proxy.publish_primary(b.addr);
    (b, proxy)
}

/// Sends `sql`; the status byte of the ReadyForQuery that answers it.
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

/// The FATAL that ends the session, read within `within`.
async fn ended(c: &mut TcpStream, within: Duration) -> String {
    let (tag, body) = tokio::time::timeout(within, read_msg(c))
        .await
        .expect("session ended in time")
        .expect("read");
    assert_eq!(tag, b'E');
    let f = error_fields(&body);
    assert_eq!(f[&'C'], "57P01", "{f:?}");
    f[&'M'].clone()
}

async fn check(mode: &str) {
    let (_b, proxy) = proxy(mode).await;
    let (mut idle, _, _) = proxy.client(0).await;
    let (mut busy, _, _) = proxy.client(0).await;
    assert_eq!(run(&mut idle, "select 1").await, b'I');
    assert_eq!(run(&mut busy, "BEGIN").await, b'T');
    rolegate::session::drain(&proxy.shared);
    let message = ended(&mut idle, Duration::from_secs(1)).await;
    assert_eq!(message, "rolegate is shutting down");
    // The open transaction goes on and ends normally; then the session ends.
    assert_eq!(run(&mut busy, "select 2").await, b'T');
    assert_eq!(run(&mut busy, "COMMIT").await, b'I');
    ended(&mut busy, Duration::from_secs(1)).await;
    // The port is closed: a stopping process takes no new clients.
    assert!(TcpStream::connect(proxy.addrs[0]).await.is_err());
    assert!(proxy.shared.clients.is_empty());
}

#[tokio::test]
async fn transaction_mode_sessions_end_between_transactions() {
    check("transaction").await;
}

#[tokio::test]
async fn session_mode_sessions_end_between_transactions() {
    check("session").await;
}

#[tokio::test]
async fn kill_reaches_idle_and_busy_clients() {
    let (_b, proxy) = proxy("transaction").await;
    let (mut idle, _, _) = proxy.client(0).await;
    let (mut busy, _, _) = proxy.client(0).await;
    assert_eq!(run(&mut busy, "BEGIN").await, b'T');
    let n = proxy.shared.clients.kill_where(|_| true, "killed by test");
    assert_eq!(n, 2);
    for c in [&mut idle, &mut busy] {
        assert_eq!(ended(c, Duration::from_secs(1)).await, "killed by test");
    }
}
