use std::time::Duration;

use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};

use super::{in_force, server_connection, set_in_force, Keepalive, TcpOptions};
use crate::config::GeneralConfig;

fn custom() -> TcpOptions {
    TcpOptions {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(77),
            interval: Duration::from_secs(7),
            count: 5,
        }),
        user_timeout: Duration::from_millis(1234),
    }
}

fn read_back(sock: &SockRef<'_>) -> (bool, TcpOptions) {
    let keepalive = sock.keepalive().unwrap().then(|| Keepalive {
        idle: sock.tcp_keepalive_time().unwrap(),
        interval: sock.tcp_keepalive_interval().unwrap(),
        count: sock.tcp_keepalive_retries().unwrap(),
    });
    let user_timeout = sock.tcp_user_timeout().unwrap().unwrap_or_default();
    (
        sock.tcp_nodelay().unwrap(),
        TcpOptions {
            keepalive,
            user_timeout,
        },
    )
}

async fn accept_one(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

#[test]
fn the_defaults_are_generals_defaults() {
    assert_eq!(
        TcpOptions::from_config(&GeneralConfig::default()),
        TcpOptions::DEFAULT
    );
    let off = GeneralConfig {
        tcp_keepalive: false,
        ..GeneralConfig::default()
    };
    assert_eq!(TcpOptions::from_config(&off).keepalive, None);
}

#[tokio::test]
async fn accepted_connections_inherit_the_listening_sockets_options() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_, plain) = accept_one(&listener).await;
    assert!(
        !read_back(&SockRef::from(&plain)).0,
        "no TCP_NODELAY before"
    );

    custom().apply(&SockRef::from(&listener), false).unwrap();
    let (_, accepted) = accept_one(&listener).await;
    assert_eq!(read_back(&SockRef::from(&accepted)), (true, custom()));

    // Set again (a reload): the next connection follows, the one before keeps its own.
    let off = TcpOptions {
        keepalive: None,
        user_timeout: Duration::ZERO,
    };
    off.apply(&SockRef::from(&listener), false).unwrap();
    let (_, after) = accept_one(&listener).await;
    assert_eq!(read_back(&SockRef::from(&after)), (true, off));
    assert_eq!(read_back(&SockRef::from(&accepted)).1, custom());
}

#[tokio::test]
async fn server_connections_get_the_options_in_force() {
    // The only test that changes the options in force.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    set_in_force(custom());
    assert_eq!(in_force(), custom());
    let (server, _) = accept_one(&listener).await;
    server_connection(&server, "m1");
    // What is off is left at the kernel's default on a new connection: still off.
    let off = TcpOptions {
        keepalive: None,
        user_timeout: Duration::ZERO,
    };
    set_in_force(off);
    let (plain, _) = accept_one(&listener).await;
    server_connection(&plain, "m1");
    set_in_force(TcpOptions::DEFAULT);
    assert_eq!(read_back(&SockRef::from(&server)), (true, custom()));
    assert_eq!(read_back(&SockRef::from(&plain)), (true, off));
}
