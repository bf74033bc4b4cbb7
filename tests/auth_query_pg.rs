//! `auth.query` end to end: tokio-postgres logs into a pooling listener (in process, fed a
//! fake topology whose only member is a real PostgreSQL 15 on 127.0.0.1:26643) as users
//! that are not in the auth_file, so rolegate asks the server for their secrets as
//! `auth.user`.

mod fake;
mod pg;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fake::Proxy;
use pg::Pg;
use tokio_postgres::NoTls;

const PORT: u16 = 26643;
/// Superuser: may read pg_shadow (the default query).
const AUTH_USER: &str = "rg_auth";
const AUTH_PW: &str = "auth-pw";
/// Not a superuser: needs a SECURITY DEFINER function.
const WEAK_AUTH: &str = "rg_weak";
const WEAK_PW: &str = "weak-pw";
const APP: &str = "app_user";
const APP_PW: &str = "app-pw";
const MD5_APP: &str = "md5_app";
const MD5_PW: &str = "md5-pw";
/// Can log in but has no password (pg_shadow.passwd is NULL).
const NO_PW: &str = "no_pw";
const LOOKUP: &str = "SELECT * FROM public.rolegate_lookup($1)";

fn start() -> anyhow::Result<Pg> {
    let hba = format!(
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
         host all {MD5_APP} 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n"
    );
    let setup = format!(
        "CREATE ROLE {AUTH_USER} LOGIN SUPERUSER PASSWORD '{AUTH_PW}'; \
         CREATE ROLE {WEAK_AUTH} LOGIN PASSWORD '{WEAK_PW}'; \
         CREATE ROLE {APP} LOGIN PASSWORD '{APP_PW}'; CREATE ROLE {NO_PW} LOGIN; \
         SET password_encryption = 'md5'; CREATE ROLE {MD5_APP} LOGIN PASSWORD '{MD5_PW}'; \
         CREATE FUNCTION public.rolegate_lookup(u text, OUT usename name, OUT passwd text) \
           RETURNS SETOF record LANGUAGE sql SECURITY DEFINER \
           AS 'SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = u'; \
         REVOKE ALL ON FUNCTION public.rolegate_lookup(text) FROM PUBLIC; \
         GRANT EXECUTE ON FUNCTION public.rolegate_lookup(text) TO {WEAK_AUTH};"
    );
    Pg::start(PORT, &hba, &setup)
}

/// A pooling primary listener whose `[auth]` is `auth`, on a cluster whose only member
/// (the leader) is at `member`.
async fn proxy(member: SocketAddr, auth: &str) -> Proxy {
    let spec = "role = \"primary\"\npool_mode = \"transaction\"\nconnect_wait = \"300ms\"\nswitchover_hold_timeout = \"300ms\"";
    let proxy = Proxy::start_toml(&[spec.to_owned()], Some(auth)).await;
    proxy.publish_primary(member);
    proxy
}

/// `[auth]` with an auth_file holding `lines`, and `extra` keys.
fn auth(dir: &std::path::Path, kind: &str, lines: &str, extra: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file: PathBuf = dir.join(format!("userlist-{}-{n}.txt", std::process::id()));
    std::fs::write(&file, lines).unwrap();
    format!(
        "type = \"{kind}\"\nfile = {:?}\n{extra}",
        file.display().to_string()
    )
}

/// Logs in through `proxy` and returns `current_user`, or the server's (code, message).
async fn login(proxy: &Proxy, user: &str, pw: &str, db: &str) -> Result<String, (String, String)> {
    let conninfo = format!(
        "host=127.0.0.1 port={} user={user} password='{pw}' dbname={db} connect_timeout=10",
        proxy.addrs[0].port()
    );
    let (client, conn) = match tokio_postgres::connect(&conninfo, NoTls).await {
        Ok(c) => c,
        Err(e) => {
            let db = e.as_db_error().unwrap_or_else(|| panic!("{user}: {e}"));
            return Err((db.code().code().to_owned(), db.message().to_owned()));
        }
    };
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    Ok(row.get(0))
}

fn refused(user: &str) -> Result<String, (String, String)> {
    Err((
        "28P01".into(),
        format!("password authentication failed for user \"{user}\""),
    ))
}

#[tokio::test]
async fn auth_query_against_postgres_15() {
    if pg::missing() {
        return;
    }
    let pg = start().expect("start PostgreSQL");
    let member: SocketAddr = ([127, 0, 0, 1], PORT).into();
    let users = format!("\"{AUTH_USER}\" \"{AUTH_PW}\"\n\"{WEAK_AUTH}\" \"{WEAK_PW}\"\n");

    // Default query (pg_shadow) as a superuser, clients checked with SCRAM.
    let extra = format!("user = \"{AUTH_USER}\"");
    let scram = proxy(member, &auth(pg.dir(), "scram-sha-256", &users, &extra)).await;
    assert_eq!(login(&scram, APP, APP_PW, "postgres").await.unwrap(), APP);
    assert_eq!(login(&scram, APP, "wrong", "postgres").await, refused(APP));
    // Unknown users and users without a password read exactly like a wrong password.
    assert_eq!(
        login(&scram, "ghost", APP_PW, "postgres").await,
        refused("ghost")
    );
    assert_eq!(login(&scram, NO_PW, "", "postgres").await, refused(NO_PW));
    // A user in the auth_file is not looked up.
    assert_eq!(
        login(&scram, AUTH_USER, AUTH_PW, "postgres").await.unwrap(),
        AUTH_USER
    );

    // md5 clients: an md5 secret is checked and replayed to the server; a SCRAM one
    // still gets SCRAM.
    let md5 = proxy(member, &auth(pg.dir(), "md5", &users, &extra)).await;
    assert_eq!(
        login(&md5, MD5_APP, MD5_PW, "postgres").await.unwrap(),
        MD5_APP
    );
    assert_eq!(
        login(&md5, MD5_APP, "wrong", "postgres").await,
        refused(MD5_APP)
    );
    assert_eq!(login(&md5, APP, APP_PW, "postgres").await.unwrap(), APP);

    // The query runs on the database the client asked for.
    let (code, message) = login(&scram, APP, APP_PW, "nosuchdb").await.unwrap_err();
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.starts_with("rolegate: auth_query failed: cannot log in as auth.user"),
        "{message}"
    );
    assert!(message.contains("\"nosuchdb\" does not exist"), "{message}");

    // auth.user with a wrong password in the auth_file.
    let bad_file = format!("\"{AUTH_USER}\" \"not-the-password\"\n");
    let bad = proxy(member, &auth(pg.dir(), "scram-sha-256", &bad_file, &extra)).await;
    let (code, message) = login(&bad, APP, APP_PW, "postgres").await.unwrap_err();
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.starts_with("rolegate: auth_query failed: cannot log in as auth.user"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "password authentication failed for user \"{AUTH_USER}\""
        )),
        "{message}"
    );

    // A non-superuser cannot read pg_shadow; through a SECURITY DEFINER function it can.
    let weak = format!("user = \"{WEAK_AUTH}\"");
    let denied = proxy(member, &auth(pg.dir(), "scram-sha-256", &users, &weak)).await;
    let (code, message) = login(&denied, APP, APP_PW, "postgres").await.unwrap_err();
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.contains("auth_query failed: the query failed: 42501 permission denied"),
        "{message}"
    );
    let custom = format!("{weak}\nquery = \"{LOOKUP}\"");
    let definer = proxy(member, &auth(pg.dir(), "scram-sha-256", &users, &custom)).await;
    assert_eq!(login(&definer, APP, APP_PW, "postgres").await.unwrap(), APP);
    assert_eq!(
        login(&definer, "ghost", "x", "postgres").await,
        refused("ghost")
    );
    drop(pg);
}

#[tokio::test]
async fn auth_query_with_no_reachable_server_is_a_clear_fatal() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let text = auth(
        &std::env::temp_dir(),
        "scram-sha-256",
        "\"a\" \"pw\"\n",
        "user = \"a\"",
    );
    let proxy = proxy(closed, &text).await; // the file is read by now
    let started = std::time::Instant::now();
    let (code, message) = login(&proxy, APP, APP_PW, "postgres").await.unwrap_err();
    assert_eq!(code, "08006", "{message}");
    assert!(
        message.starts_with("rolegate: auth_query failed: could not connect to any primary member"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
