//! The admin console in process, through tokio-postgres (a real driver) against fake
//! backends: the result sets decode, numbers are real (a waiting client shows in
//! cl_waiting), permissions and syntax errors carry their SQLSTATE, a PAUSE whose
//! console client goes away stops waiting, and time held by PAUSE does not count against
//! query_wait_timeout. The real-cluster version is `admin_console.rs`.

mod fake;

use std::sync::Arc;
use std::time::Duration;

use fake::{query, read_msg, FakeBackend, Proxy};
use tokio::io::AsyncWriteExt;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

async fn setup() -> (FakeBackend, Proxy) {
    setup_waiting(401, "5s").await
}

/// A transaction-mode listener with one server and the console's users, against fake
/// backend `pid`; clients wait for the server up to `query_wait_timeout`.
async fn setup_waiting(pid: i32, query_wait_timeout: &str) -> (FakeBackend, Proxy) {
    let b = FakeBackend::start(pid).await;
    let spec = format!("name = \"rw\"\nrole = \"primary\"\npool_mode = \"transaction\"\npool_size = 1\nquery_wait_timeout = \"{query_wait_timeout}\"\n");
    let proxy = Proxy::start_toml(&[spec], Some("type = \"trust\"")).await;
    let text =
        "[cluster]\nscope = \"demo\"\n[admin]\nadmin_users = [\"ops\"]\nstats_users = [\"mon\"]\n";
    let config = rolegate::config::parse(text, "test").unwrap();
    proxy.shared.config.store(Some(Arc::new(config)));
    proxy.publish_primary(b.addr);
    (b, proxy)
}

async fn console(proxy: &Proxy, user: &str) -> Result<Client, tokio_postgres::Error> {
    let a = proxy.addrs[0];
    let conninfo = format!(
        "host={} port={} user={user} dbname=pgbouncer sslmode=disable",
        a.ip(),
        a.port()
    );
    let (client, conn) = tokio_postgres::connect(&conninfo, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Rows as (column, value) lists.
async fn show(c: &Client, sql: &str) -> Vec<Vec<(String, Option<String>)>> {
    c.simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, col)| (col.name().to_owned(), r.get(i).map(str::to_owned)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn get<'a>(row: &'a [(String, Option<String>)], col: &str) -> Option<&'a str> {
    row.iter()
        .find(|(c, _)| c == col)
        .and_then(|(_, v)| v.as_deref())
}

#[tokio::test]
async fn a_driver_reads_real_counts_and_errors_carry_sqlstates() {
    let (_b, proxy) = setup().await;
    let admin = console(&proxy, "ops").await.unwrap();
    // One client holds the only server in a transaction; a second one waits for it.
    let (mut holder, _, _) = proxy.client(0).await;
    let (mut waiter, _, _) = proxy.client(0).await;
    holder.write_all(&query("BEGIN")).await.unwrap();
    while read_msg(&mut holder).await.unwrap().0 != b'Z' {}
    waiter.write_all(&query("select 1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pools = show(&admin, "SHOW POOLS").await;
    let row = pools
        .iter()
        .find(|r| get(r, "database") == Some("postgres@rw"))
        .unwrap_or_else(|| panic!("{pools:?}"));
    assert_eq!(get(row, "sv_active"), Some("1"), "{row:?}");
    assert_eq!(get(row, "cl_waiting"), Some("1"), "{row:?}");
    assert_eq!(get(row, "cl_active"), Some("1"), "{row:?}");
    assert_eq!(get(row, "pool_mode"), Some("transaction"));
    let clients = show(&admin, "SHOW CLIENTS").await;
    assert_eq!(clients.len(), 2, "{clients:?}");
    let users = show(&admin, "SHOW USERS").await;
    assert_eq!(get(&users[0], "name"), Some("app"), "{users:?}");
    assert_eq!(
        get(&users[0], "current_connections"),
        Some("1"),
        "{users:?}"
    );
    assert_eq!(
        get(&users[0], "current_client_connections"),
        Some("2"),
        "{users:?}"
    );
    let totals = show(&admin, "SHOW STATS_TOTALS").await;
    assert!(
        totals[0].iter().all(|(c, _)| !c.starts_with("avg_")),
        "{totals:?}"
    );
    let sums = show(&admin, "SHOW TOTALS").await;
    assert!(
        sums.iter().any(|r| get(r, "name") == Some("xact_count")),
        "{sums:?}"
    );
    // Two statements in one query: both answered.
    let two = admin
        .simple_query("SHOW VERSION; SHOW LISTS")
        .await
        .unwrap();
    let rows = two
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
        .count();
    assert!(rows > 10, "{rows}");
    let e = admin.simple_query("SHOW NOTHING").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42601");
    let mon = console(&proxy, "mon").await.unwrap();
    assert_eq!(show(&mon, "SHOW STATS").await.len(), 1);
    let e = mon.simple_query("RESUME").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42501");
    let e = console(&proxy, "app").await.err().unwrap();
    assert_eq!(e.code().unwrap().code(), "28000");
    // DISABLE refuses new clients of the database; ENABLE lets them in again.
    admin.simple_query("DISABLE postgres").await.unwrap();
    let mut refused = tokio::net::TcpStream::connect(proxy.addrs[0])
        .await
        .unwrap();
    refused
        .write_all(&fake::startup_packet("app"))
        .await
        .unwrap();
    let (tag, body) = read_msg(&mut refused).await.unwrap();
    assert_eq!(tag, b'E');
    assert_eq!(fake::error_fields(&body)[&'C'], "57P03");
    let dbs = show(&admin, "SHOW DATABASES").await;
    let row = dbs
        .iter()
        .find(|r| get(r, "name") == Some("postgres@rw"))
        .unwrap();
    assert_eq!(get(row, "disabled"), Some("1"), "{row:?}");
    admin.simple_query("ENABLE postgres").await.unwrap();
    assert!(!proxy.shared.gate.is_disabled("rw", "postgres"));
    // No control loop in process: RELOAD says so instead of hanging.
    let e = admin.simple_query("RELOAD").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "0A000");
}

#[tokio::test]
async fn a_pause_abandoned_by_its_client_stops_waiting() {
    let (_b, proxy) = setup().await;
    let (mut holder, _, _) = proxy.client(0).await;
    holder.write_all(&query("BEGIN")).await.unwrap();
    while read_msg(&mut holder).await.unwrap().0 != b'Z' {}
    let admin = console(&proxy, "ops").await.unwrap();
    let pause = tokio::spawn(async move {
        let r = admin.simple_query("PAUSE postgres").await;
        (admin, r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !pause.is_finished(),
        "PAUSE did not wait for the busy server"
    );
    pause.abort();
    let _ = pause.await;
    // The pause itself stays in force until RESUME, as in PgBouncer.
    assert!(proxy.shared.gate.is_paused("rw", "postgres"));
    let admin = console(&proxy, "ops").await.unwrap();
    let state = show(&admin, "SHOW STATE").await;
    let paused = state
        .iter()
        .find(|r| get(r, "key") == Some("paused_databases"))
        .and_then(|r| get(r, "value"));
    assert_eq!(paused, Some("postgres"), "{state:?}");
    admin.simple_query("RESUME").await.unwrap();
    assert!(!proxy.shared.gate.is_paused("rw", "postgres"));
}

#[tokio::test]
async fn console_users_authenticate_with_the_auth_file() {
    let b = FakeBackend::start(402).await;
    let path = std::env::temp_dir().join(format!("rolegate-console-{}.txt", std::process::id()));
    std::fs::write(&path, "\"ops\" \"s3cret\"\n").unwrap();
    let auth = format!(
        "type = \"scram-sha-256\"\nfile = {:?}",
        path.display().to_string()
    );
    let spec = "name = \"rw\"\nrole = \"primary\"\n".to_owned();
    let proxy = Proxy::start_toml(&[spec], Some(&auth)).await;
    let text = "[cluster]\nscope = \"demo\"\n[admin]\nadmin_users = [\"ops\", \"nofile\"]\n";
    let config = rolegate::config::parse(text, "test").unwrap();
    proxy.shared.config.store(Some(Arc::new(config)));
    proxy.publish_primary(b.addr);
    let a = proxy.addrs[0];
    let connect = |user: &str, password: &str| {
        let conninfo = format!(
            "host={} port={} user={user} password={password} dbname=rolegate sslmode=disable",
            a.ip(),
            a.port()
        );
        async move { tokio_postgres::connect(&conninfo, NoTls).await }
    };
    let e = connect("ops", "wrong").await.err().unwrap();
    assert_eq!(e.code().unwrap().code(), "28P01");
    // Listed as an admin but absent from the auth file: no password can match.
    let e = connect("nofile", "x").await.err().unwrap();
    assert!(matches!(e.code().unwrap().code(), "28P01" | "28000"), "{e}");
    let (client, conn) = connect("ops", "s3cret").await.unwrap();
    tokio::spawn(conn);
    let v = show(&client, "SHOW VERSION").await;
    assert!(get(&v[0], "version").unwrap().starts_with("rolegate "));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_client_held_by_pause_past_query_wait_timeout_still_waits_its_turn_after_resume() {
    // query_wait_timeout counts the wait for a server, not a PAUSE: a client held longer
    // than it by PAUSE that then waits behind another client still gets the server.
    let (_b, proxy) = setup_waiting(403, "400ms").await;
    let admin = console(&proxy, "ops").await.unwrap();
    // Logged in before the PAUSE (a login needs a server's parameters).
    let (mut first, _, _) = proxy.client(0).await;
    let (mut second, _, _) = proxy.client(0).await;
    admin.simple_query("PAUSE postgres").await.unwrap();
    first.write_all(&query("BEGIN")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    second.write_all(&query("SELECT 1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    admin.simple_query("RESUME").await.unwrap();
    // `first` gets the only server and keeps it for a while; `second` waits in the pool.
    while read_msg(&mut first).await.unwrap().0 != b'Z' {}
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.write_all(&query("COMMIT")).await.unwrap();
    while read_msg(&mut first).await.unwrap().0 != b'Z' {}
    loop {
        let (tag, body) = read_msg(&mut second).await.unwrap();
        assert_ne!(
            tag,
            b'E',
            "the client held by PAUSE was refused: {}",
            String::from_utf8_lossy(&body)
        );
        if tag == b'Z' {
            break;
        }
    }
}
