use super::*;

fn client(reg: &Arc<ClientRegistry>, id: u64, db: &str) -> ClientGuard {
    reg.join(&NewClient {
        id,
        listener: &Arc::from("primary:5000"),
        user: "app",
        database: db,
        peer: "127.0.0.1:40000".parse().unwrap(),
        pooled: true,
    })
}

#[tokio::test]
async fn lists_states_and_kills_by_selection() {
    let reg = Arc::new(ClientRegistry::default());
    let a = client(&reg, 1, "app");
    let b = client(&reg, 2, "other");
    a.info.set(ClientState::Idle, None);
    b.info.set(ClientState::Waiting, None);
    let rows = reg.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].state, ClientState::Idle);
    assert_eq!(rows[1].state, ClientState::Waiting);
    assert_eq!(reg.kill_where(|r| &*r.database == "other", "KILL other"), 1);
    assert_eq!(b.info.killed().await, "KILL other");
    assert!(a.info.kill_reason().is_none());
    drop(b);
    assert_eq!(reg.len(), 1);
}

fn pool(member: &str) -> Arc<ServerPool> {
    let settings = crate::pool::PoolSettings {
        size: 1,
        min_size: 0,
        reserve_size: 0,
        reserve_timeout: std::time::Duration::from_secs(5),
        idle_timeout: std::time::Duration::from_secs(600),
        lifetime: std::time::Duration::from_secs(3600),
        wait_timeout: std::time::Duration::from_secs(1),
        connect_timeout: std::time::Duration::from_secs(1),
        db_size: 0,
        max_client_conn: 10,
        reset_query: String::new(),
        idle_transaction_timeout: None,
        max_prepared_statements: 0,
    };
    let addr = BackendAddr {
        member: member.into(),
        host: "127.0.0.1".into(),
        port: 1,
    };
    let login = crate::pool::Login {
        user: "u".into(),
        database: "app".into(),
        creds: crate::auth::ServerCredentials::None,
    };
    let settings = Arc::new(arc_swap::ArcSwap::from_pointee(settings));
    ServerPool::new(addr, login, settings, None)
}

#[test]
fn a_pooled_client_shows_its_server_while_active_only() {
    let reg = Arc::new(ClientRegistry::default());
    let a = client(&reg, 1, "app");
    let (one, two) = (pool("one"), pool("two"));
    let t0 = Instant::now();
    a.info.lend_at(&one, 11, SystemTime::UNIX_EPOCH, t0);
    let row = a.info.row();
    assert_eq!(row.state, ClientState::Active);
    let link = row.server.expect("a server while active");
    assert_eq!((link.pid, link.at.addr().member.as_str()), (11, "one"));
    a.info.idle_at(Instant::now());
    let row = a.info.row();
    assert_eq!(row.state, ClientState::Idle);
    assert!(row.server.is_none(), "no server shown while idle");
    // The same pool again: the link is updated in place, no new reference taken.
    let refs = Arc::strong_count(&one);
    a.info
        .lend_at(&one, 12, SystemTime::UNIX_EPOCH, Instant::now());
    assert_eq!(Arc::strong_count(&one), refs);
    assert_eq!(a.info.row().server.map(|l| l.pid), Some(12));
    // Another pool: the link is replaced.
    a.info.idle_at(Instant::now());
    a.info
        .lend_at(&two, 21, SystemTime::UNIX_EPOCH, Instant::now());
    let link = a.info.row().server.expect("a server while active");
    assert_eq!((link.pid, link.at.addr().member.as_str()), (21, "two"));
    assert_eq!(Arc::strong_count(&one), refs - 1, "the old pool let go");
    assert_eq!(a.info.transactions(), 3);
}

#[test]
fn active_counts_transactions() {
    let reg = Arc::new(ClientRegistry::default());
    let a = client(&reg, 1, "app");
    for _ in 0..3 {
        a.info.set(ClientState::Active, None);
        a.info.set(ClientState::Idle, None);
    }
    assert_eq!(a.info.transactions(), 3);
}
