//! In-process tests of routing, fencing and cancel against fake backends. Fast and exact;
//! the same behaviour is checked against a real Patroni cluster in `routing.rs`.

mod fake;

use std::time::{Duration, Instant};

use fake::{cancel_packet, error_fields, read_msg, startup_packet, Proxy, Three};
use rolegate::config::ListenerRole::{Async, Primary, Replica, Sync};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn expect_fatal(c: &mut TcpStream) -> std::collections::BTreeMap<char, String> {
    let (tag, body) = tokio::time::timeout(Duration::from_secs(5), read_msg(c))
        .await
        .expect("no message")
        .expect("closed without an error");
    assert_eq!(tag, b'E', "expected an ErrorResponse");
    let f = error_fields(&body);
    assert_eq!(f[&'S'], "FATAL");
    f
}

#[tokio::test]
async fn each_role_reaches_its_members() {
    let three = Three::start().await;
    let proxy = Proxy::start(
        &[
            (Primary, None),
            (Replica, None),
            (Sync, None),
            (Async, None),
        ],
        Duration::from_secs(1),
    )
    .await;
    proxy.publish(&three.keys("pg1", Some("pg2"), [0, 0, 0]));
    let pid = |c: (TcpStream, i32, Vec<u8>)| c.1;
    assert_eq!(pid(proxy.client(0).await), 101);
    let mut replicas: Vec<i32> = Vec::new();
    for _ in 0..4 {
        replicas.push(pid(proxy.client(1).await));
    }
    replicas.sort_unstable();
    assert_eq!(
        replicas,
        [102, 102, 103, 103],
        "round-robin over both replicas"
    );
    assert_eq!(pid(proxy.client(2).await), 102);
    assert_eq!(pid(proxy.client(3).await), 103);
}

#[tokio::test]
async fn leader_change_kills_old_primary_sessions_within_100ms_and_spares_replicas() {
    let three = Three::start().await;
    let proxy = Proxy::start(&[(Primary, None), (Replica, None)], Duration::from_secs(1)).await;
    proxy.publish(&three.keys("pg1", Some("pg2"), [0, 0, 0]));
    let (mut writer, pid, _) = proxy.client(0).await;
    assert_eq!(pid, 101);
    let (mut reader, rpid, _) = proxy.client(1).await;
    // Switchover: pg2 takes the leader key; pg1 becomes a replica.
    let start = Instant::now();
    proxy.publish(&three.keys("pg2", Some("pg1"), [0, 0, 0]));
    let f = expect_fatal(&mut writer).await;
    let took = start.elapsed();
    assert!(took < Duration::from_millis(100), "killed after {took:?}");
    assert_eq!(f[&'C'], "57P01");
    assert!(
        f[&'M'].contains("pg1") && f[&'M'].contains("leader is now pg2"),
        "{}",
        f[&'M']
    );
    assert!(f.contains_key(&'H'));
    // The old primary receives nothing more from the killed session.
    let before = three.b[0].seen.lock().unwrap().bytes_after_startup;
    let _ = writer.write_all(&fake::msg(b'Q', b"insert\0")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(three.b[0].seen.lock().unwrap().bytes_after_startup, before);
    // A replica session on a member that stays a replica is untouched (pg1 joins as replica,
    // pg3 stays; only pg2 left the replica set).
    if rpid == 103 {
        reader
            .write_all(&fake::msg(b'Q', b"select 1\0"))
            .await
            .unwrap();
        assert_eq!(read_msg(&mut reader).await.unwrap().0, b'Z');
    } else {
        assert!(expect_fatal(&mut reader).await[&'M'].contains("became the leader"));
    }
    // New connections go to the new leader.
    assert_eq!(proxy.client(0).await.1, 102);
}

#[tokio::test]
async fn sync_change_moves_member_between_sync_and_async() {
    let three = Three::start().await;
    let proxy = Proxy::start(&[(Sync, None), (Async, None)], Duration::from_secs(1)).await;
    proxy.publish(&three.keys("pg1", Some("pg2"), [0, 0, 0]));
    let (mut sync_client, sync_pid, _) = proxy.client(0).await;
    assert_eq!(sync_pid, 102);
    let (mut async_client, async_pid, _) = proxy.client(1).await;
    assert_eq!(async_pid, 103);
    proxy.publish(&three.keys("pg1", Some("pg3"), [0, 0, 0]));
    let f = expect_fatal(&mut sync_client).await;
    assert!(
        f[&'M'].contains("no longer a synchronous standby"),
        "{}",
        f[&'M']
    );
    let f = expect_fatal(&mut async_client).await;
    assert!(
        f[&'M'].contains("became a synchronous standby"),
        "{}",
        f[&'M']
    );
    assert_eq!(proxy.client(0).await.1, 103);
    assert_eq!(proxy.client(1).await.1, 102);
}

#[tokio::test]
async fn lagging_replica_is_not_used() {
    let three = Three::start().await;
    let proxy = Proxy::start(&[(Replica, Some(100))], Duration::from_secs(1)).await;
    proxy.publish(&three.keys("pg1", None, [0, 500, 0]));
    for _ in 0..4 {
        assert_eq!(proxy.client(0).await.1, 103);
    }
}

#[tokio::test]
async fn empty_role_waits_connect_wait_then_says_why() {
    let three = Three::start().await;
    let proxy = Proxy::start(&[(Sync, None)], Duration::from_millis(300)).await;
    proxy.publish(&three.keys("pg1", None, [0, 0, 0]));
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let start = Instant::now();
    c.write_all(&startup_packet("app")).await.unwrap();
    let f = expect_fatal(&mut c).await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(f[&'C'], "57P03");
    assert!(f[&'M'].contains("no sync member"), "{}", f[&'M']);
}

#[tokio::test]
async fn client_waiting_for_a_role_gets_the_member_that_appears() {
    let three = Three::start().await;
    let proxy = Proxy::start(&[(Primary, None)], Duration::from_secs(3)).await;
    let mut keys = three.keys("pg1", None, [0, 0, 0]);
    keys.remove("leader"); // failover in progress: nobody holds the key
    proxy.publish(&keys);
    let addr = proxy.addrs[0];
    let waiting = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&startup_packet("app")).await.unwrap();
        read_msg(&mut c).await.unwrap().0
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    proxy.publish(&three.keys("pg3", None, [0, 0, 0]));
    assert_eq!(
        waiting.await.unwrap(),
        b'R',
        "got AuthenticationOk from the new leader"
    );
    assert_eq!(three.b[2].seen.lock().unwrap().startups, 1);
}

#[tokio::test]
async fn cancel_on_any_port_reaches_the_backend_that_issued_the_key() {
    let three = Three::start().await;
    let proxy = Proxy::start(&[(Primary, None), (Replica, None)], Duration::from_secs(1)).await;
    proxy.publish(&three.keys("pg1", None, [0, 0, 0]));
    let (_session, pid, secret) = proxy.client(1).await;
    let owner = three.b.iter().find(|b| b.pid == pid).unwrap();
    // Sent to the primary port on purpose: the key decides, not the port.
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&cancel_packet(pid, &secret)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while owner.seen.lock().unwrap().cancels.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(owner.seen.lock().unwrap().cancels, [(pid, secret.clone())]);
    // A wrong secret is ignored.
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&cancel_packet(pid, &[0, 0, 0, 0]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(owner.seen.lock().unwrap().cancels.len(), 1);
}

#[tokio::test]
async fn garbage_and_ssl_requests_get_protocol_answers() {
    let three = Three::start().await;
    let proxy = Proxy::start(&[(Primary, None)], Duration::from_secs(1)).await;
    proxy.publish(&three.keys("pg1", None, [0, 0, 0]));
    // SSLRequest is answered 'N', then a normal startup works on the same connection.
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await.unwrap();
    let mut n = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut c, &mut n)
        .await
        .unwrap();
    assert_eq!(&n, b"N");
    c.write_all(&startup_packet("app")).await.unwrap();
    assert_eq!(read_msg(&mut c).await.unwrap().0, b'R');
    // An HTTP request is not PostgreSQL.
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(expect_fatal(&mut c).await[&'C'], "08P01");
    // An old protocol version is refused with 0A000.
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&[0, 0, 0, 8, 0, 2, 0, 0]).await.unwrap();
    assert_eq!(expect_fatal(&mut c).await[&'C'], "0A000");
}
