//! In-process tests of how a primary listener behaves while the leader changes: a
//! pending switchover stops new work on the old leader without killing what runs there,
//! and new work waits (up to `switchover_hold_timeout`) for the new primary.

mod fake;

use std::time::{Duration, Instant};

use fake::{error_fields, read_msg, startup_packet, Proxy, Three};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A switchover from pg1 to pg2 announced in the `failover` key; pg1 still leads.
fn announce(keys: &mut std::collections::BTreeMap<String, Vec<u8>>) {
    keys.insert(
        "failover".into(),
        br#"{"leader":"pg1","member":"pg2"}"#.to_vec(),
    );
}

#[tokio::test]
async fn announced_switchover_holds_new_sessions_and_spares_running_ones() {
    let three = Three::start().await;
    let proxy = Proxy::start_toml(
        &[
            "role = \"primary\"\nconnect_wait = \"200ms\"\nswitchover_hold_timeout = \"5s\""
                .to_owned(),
        ],
        None,
    )
    .await;
    let mut keys = three.keys("pg1", Some("pg2"), [0, 0, 0]);
    proxy.publish(&keys);
    let (mut running, pid, _) = proxy.client(0).await;
    assert_eq!(pid, 101);

    announce(&mut keys);
    proxy.publish(&keys);
    // The running session still works: pg1 holds the leader key.
    running
        .write_all(&fake::msg(b'Q', b"select 1\0"))
        .await
        .unwrap();
    assert_eq!(read_msg(&mut running).await.unwrap().0, b'Z');
    // A new one waits, longer than connect_wait.
    let addr = proxy.addrs[0];
    let waiting = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&startup_packet("app")).await.unwrap();
        let first = read_msg(&mut c).await.unwrap().0;
        (first, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!waiting.is_finished(), "new session must wait for pg2");
    assert_eq!(three.b[0].seen.lock().unwrap().startups, 1);

    let promoted = Instant::now();
    proxy.publish(&three.keys("pg2", Some("pg1"), [0, 0, 0]));
    let (first, at) = waiting.await.unwrap();
    assert_eq!(first, b'R', "AuthenticationOk from the new leader");
    assert!(at.duration_since(promoted) < Duration::from_millis(500));
    assert_eq!(three.b[1].seen.lock().unwrap().startups, 1);
    // Now that pg1 lost the key, its session is ended.
    let (tag, body) = read_msg(&mut running).await.unwrap();
    assert_eq!(tag, b'E');
    assert_eq!(error_fields(&body)[&'C'], "57P01");
}

#[tokio::test]
async fn hold_ends_with_a_clear_error_after_switchover_hold_timeout() {
    let three = Three::start().await;
    let proxy = Proxy::start_toml(
        &[
            "role = \"primary\"\nconnect_wait = \"100ms\"\nswitchover_hold_timeout = \"1s\""
                .to_owned(),
        ],
        None,
    )
    .await;
    let mut keys = three.keys("pg1", None, [0, 0, 0]);
    keys.remove("leader");
    proxy.publish(&keys);
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let start = Instant::now();
    c.write_all(&startup_packet("app")).await.unwrap();
    let (tag, body) = read_msg(&mut c).await.unwrap();
    let waited = start.elapsed();
    assert_eq!(tag, b'E');
    let f = error_fields(&body);
    assert_eq!(f[&'C'], "57P03");
    assert!(f[&'M'].contains("no primary member"), "{}", f[&'M']);
    assert!(f[&'D'].contains("no leader"), "{}", f[&'D']);
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn replica_listener_keeps_connect_wait_during_a_leader_change() {
    let three = Three::start().await;
    let proxy = Proxy::start_toml(
        &[
            "role = \"sync\"\nconnect_wait = \"200ms\"\nswitchover_hold_timeout = \"10s\""
                .to_owned(),
        ],
        None,
    )
    .await;
    let mut keys = three.keys("pg1", None, [0, 0, 0]);
    announce(&mut keys);
    proxy.publish(&keys);
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let start = Instant::now();
    c.write_all(&startup_packet("app")).await.unwrap();
    let (tag, _) = read_msg(&mut c).await.unwrap();
    assert_eq!(tag, b'E');
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn pooling_primary_listener_uses_a_leader_still_being_promoted() {
    let three = Three::start().await;
    let proxy = Proxy::start_toml(
        &[
            "role = \"primary\"\npool_mode = \"transaction\"\nconnect_wait = \"300ms\"\nswitchover_hold_timeout = \"600ms\"".to_owned(),
            "role = \"primary\"\nconnect_wait = \"300ms\"\nswitchover_hold_timeout = \"600ms\"".to_owned(),
        ],
        Some("type = \"trust\""),
    )
    .await;
    // pg2 took the leader key; its member key still says replica (promotion running).
    let mut keys = three.keys("pg2", None, [0, 0, 0]);
    keys.insert(
        "members/pg2".into(),
        fake::member_json(three.b[1].addr, "replica", "running", 1000).into_bytes(),
    );
    proxy.publish(&keys);
    // The pooling listener logs in to pg2 (it would refuse it if it reported hot standby).
    let _pooled = proxy.client(0).await;
    assert_eq!(three.b[1].seen.lock().unwrap().startups, 1);
    // The passthrough listener cannot check writability: it waits, then says why.
    let mut c = TcpStream::connect(proxy.addrs[1]).await.unwrap();
    c.write_all(&startup_packet("app")).await.unwrap();
    let (tag, body) = read_msg(&mut c).await.unwrap();
    assert_eq!(tag, b'E');
    assert_eq!(error_fields(&body)[&'C'], "57P03");
    assert_eq!(three.b[1].seen.lock().unwrap().startups, 1);
}

/// pg1 leads but nothing listens at its address (its node crashed; the keys have not
/// expired yet): a primary listener holds new sessions for `switchover_hold_timeout`,
/// not just `connect_wait`, serving them from the new leader if one comes in time.
#[tokio::test]
async fn unreachable_primary_holds_like_a_leader_change() {
    let three = Three::start().await;
    let proxy = Proxy::start_toml(
        &[
            "role = \"primary\"\nconnect_wait = \"100ms\"\nswitchover_hold_timeout = \"1s\""
                .to_owned(),
        ],
        None,
    )
    .await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut crashed = three.keys("pg1", None, [0, 0, 0]);
    crashed.insert(
        "members/pg1".into(),
        fake::member_json(dead, "primary", "running", 1000).into_bytes(),
    );
    proxy.publish(&crashed);

    // Nobody takes over: the client is told after the hold, with the connect error.
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let start = Instant::now();
    c.write_all(&startup_packet("app")).await.unwrap();
    let (tag, body) = read_msg(&mut c).await.unwrap();
    let waited = start.elapsed();
    assert_eq!(tag, b'E');
    let f = error_fields(&body);
    assert_eq!(f[&'C'], "08001");
    assert!(f[&'D'].contains("pg1"), "{}", f[&'D']);
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );

    // pg2 takes over during the hold: the waiting client lands there.
    let addr = proxy.addrs[0];
    let waiting = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&startup_packet("app")).await.unwrap();
        read_msg(&mut c).await.unwrap().0
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!waiting.is_finished(), "held past connect_wait");
    proxy.publish(&three.keys("pg2", None, [0, 0, 0]));
    assert_eq!(waiting.await.unwrap(), b'R');
    assert_eq!(three.b[1].seen.lock().unwrap().startups, 1);
}
