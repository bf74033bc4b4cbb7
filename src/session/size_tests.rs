//! What an idle client costs: the session task's future is allocated once per client and
//! lives as long as the connection, so its size is memory per idle client.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use super::{run, Shared};
use crate::route::Listener;
use crate::topology::TopologyStore;

#[tokio::test]
async fn a_session_task_stays_small() {
    let config = crate::config::parse(
        r#"
        [cluster]
        scope = "demo"
        [auth]
        type = "trust"
        [[listener]]
        addr = "127.0.0.1:1"
        role = "primary"
        pool_mode = "transaction"
        "#,
        "test",
    )
    .expect("config");
    let shared = Arc::new(Shared::new(Arc::new(TopologyStore::new())));
    let listener = Arc::new(Listener::from_config(&config.listeners[0]));
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(tcp.local_addr().expect("addr"))
        .await
        .expect("connect");
    let peer = client.local_addr().expect("peer");
    let params = crate::protocol::startup::StartupParams::default();
    let setup = listener.pool.as_ref().expect("pooling");
    let client2 = TcpStream::connect(tcp.local_addr().expect("addr"))
        .await
        .expect("connect");
    let guard = shared.clients.join(&super::NewClient {
        id: 1,
        listener: &listener.name,
        user: "u",
        database: "d",
        peer,
        pooled: true,
    });
    let pooled = std::mem::size_of_val(&super::pooled::run(
        &shared,
        &listener,
        setup,
        client2,
        params,
        &guard.info,
        false,
    ));
    println!("pooled future: {pooled} bytes");
    let size = std::mem::size_of_val(&run(shared.clone(), listener.clone(), client, peer));
    println!("session future: {size} bytes");
    // An idle session keeps only this (a transaction's state is boxed while it runs, the
    // login's and startup's are freed): 368 bytes in a debug build when this was written.
    let limit = 448;
    assert!(
        size <= limit,
        "a session future of {size} bytes (limit {limit})"
    );
    assert!(
        pooled <= limit,
        "a pooled session future of {pooled} bytes (limit {limit})"
    );
}
