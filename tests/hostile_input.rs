//! Seeded random input from both sides of a pooled listener: clients sending malformed,
//! out-of-place or cut-off messages to a real PostgreSQL behind rolegate, and servers
//! answering logins and queries with such messages (a fake backend: no real server does).
//! Whatever comes in, rolegate must not panic, must answer with well-formed messages (every
//! error a proper ErrorResponse with a SQLSTATE and a message), must end what it cannot go on
//! with, and must keep serving everyone else. `HOSTILE_SEED=n` reruns one client seed (the
//! hostile server's answers depend on which pooled connection a client gets, too).

mod fake;
mod hostile;
mod pg;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use fake::{error_fields, query, startup_packet, Proxy};
use hostile::{frontend_burst, HostileBackend, Rng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Panics raised in rolegate's own code (src/), in any thread of this test binary.
static PANICS: AtomicUsize = AtomicUsize::new(0);
static FIRST_PANIC: Mutex<String> = Mutex::new(String::new());

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info
                .location()
                .is_some_and(|l| l.file().starts_with("src/"))
            {
                PANICS.fetch_add(1, Ordering::SeqCst);
                let mut first = FIRST_PANIC.lock().unwrap();
                if first.is_empty() {
                    *first = info.to_string();
                }
            }
            default(info);
        }));
    });
}

fn assert_no_panics() {
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "rolegate panicked: {}",
        FIRST_PANIC.lock().unwrap()
    );
}

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("HOSTILE_SEED") {
        Ok(s) => vec![s.parse().expect("HOSTILE_SEED is a number")],
        Err(_) => default.collect(),
    }
}

/// Checks the bytes rolegate sent: whole messages only, and every ErrorResponse with a
/// severity, a five-character SQLSTATE and a message. Returns the tags. With
/// `server_hung_up`, the last message may be cut off: a passthrough port relays a server's
/// bytes as they come, and a pooled one streams a message longer than it holds back (8 KB),
/// so when the server hangs up in the middle of one, all rolegate can do is close the
/// client's connection too (as the server itself would have).
fn check_messages(bytes: &[u8], seed: u64, server_hung_up: bool) -> Vec<u8> {
    let mut tags = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if server_hung_up && !first_message_whole(rest) {
            break;
        }
        assert!(rest.len() >= 5, "seed {seed}: a cut-off header {rest:?}");
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        assert!(len >= 4, "seed {seed}: length {len} in {:?}", &rest[..5]);
        assert!(
            rest.len() > len,
            "seed {seed}: a cut-off message ({} of {} bytes) of tag {:?}",
            rest.len() - 1,
            len,
            char::from(rest[0])
        );
        let (tag, body) = (rest[0], &rest[5..=len]);
        if tag == b'E' {
            let f = error_fields(body);
            assert!(f.contains_key(&'S'), "seed {seed}: no severity in {f:?}");
            assert!(
                f.get(&'C').is_some_and(|c| c.len() == 5),
                "seed {seed}: no SQLSTATE in {f:?}"
            );
            assert!(
                f.get(&'M').is_some_and(|m| !m.is_empty()),
                "seed {seed}: no message in {f:?}"
            );
        }
        tags.push(tag);
        rest = &rest[len + 1..];
    }
    tags
}

/// Reads until rolegate closes the connection (or, with `until_ready`, until a whole
/// ReadyForQuery arrives). Ten seconds without either is a hang.
async fn read_all(c: &mut TcpStream, seed: u64, until_ready: bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: no answer and no close in 10 s"));
        match n {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if until_ready && ends_with_ready(&got) {
            return got;
        }
    }
}

/// True when the first message in `bytes` is all there.
fn first_message_whole(bytes: &[u8]) -> bool {
    bytes.len() >= 5
        && bytes.len() > u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize
}

/// True when `bytes` are whole messages and the last one is a ReadyForQuery.
fn ends_with_ready(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    let mut last = 0;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len < 4 || rest.len() <= len {
            return false;
        }
        last = rest[0];
        rest = &rest[len + 1..];
    }
    rest.is_empty() && last == b'Z'
}

async fn select_one_works(proxy: &Proxy, what: &str) {
    let (mut c, _, _) = proxy.client(0).await;
    c.write_all(&query("select 1")).await.unwrap();
    let got = read_all(&mut c, 0, true).await;
    let tags = check_messages(&got, 0, false);
    assert_eq!(tags.last(), Some(&b'Z'), "{what}: {tags:?}");
    assert!(!tags.contains(&b'E'), "{what}: {got:?}");
}

async fn pooled(extra: &str) -> Proxy {
    pooled_with("transaction", "type = \"trust\"", extra).await
}

async fn pooled_with(mode: &str, auth: &str, extra: &str) -> Proxy {
    let spec = format!(
        "role = \"primary\"\npool_mode = \"{mode}\"\nconnect_wait = \"300ms\"\n\
         query_wait_timeout = \"3s\"\npool_size = 4\n{extra}"
    );
    Proxy::start_toml(&[spec], Some(auth)).await
}

const PG_PORT: u16 = 26743;

/// Each seed's client sends up to three random bursts after `start` (its startup packet
/// and whatever follows it), then closes its side. Returns how many sessions rolegate ended
/// with an ErrorResponse.
async fn garbage_clients(proxy: &Proxy, seeds: Vec<u64>, logged_in: bool) -> usize {
    let mut ended_with_error = 0;
    for seed in seeds {
        let mut r = Rng::new(seed);
        let mut c = if logged_in {
            proxy.client(0).await.0
        } else {
            let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
            c.write_all(&startup_packet("app")).await.unwrap();
            c
        };
        for _ in 0..=r.below(3) {
            let burst = frontend_burst(&mut r);
            if c.write_all(&burst).await.is_err() {
                break;
            }
        }
        // The client is done: rolegate must answer what it can, then end the session
        // (its client has gone) without waiting for anything more.
        let _ = c.shutdown().await;
        let got = read_all(&mut c, seed, false).await;
        let tags = check_messages(&got, seed, false);
        if std::env::var("HOSTILE_SEED").is_ok() {
            eprintln!(
                "seed {seed}: rolegate sent {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        ended_with_error += usize::from(tags.last() == Some(&b'E'));
        assert_no_panics();
    }
    ended_with_error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sending_garbage_get_protocol_answers_and_break_nothing() {
    if pg::missing() {
        return;
    }
    count_panics();
    let pg = pg::Pg::start(
        PG_PORT,
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        "CREATE ROLE app LOGIN; CREATE TABLE t (a int); GRANT ALL ON t TO app;",
    )
    .expect("start PostgreSQL");
    let member = ([127, 0, 0, 1], PG_PORT).into();
    let proxy = pooled("").await;
    proxy.publish_primary(member);
    let session = pooled_with("session", "type = \"trust\"", "").await;
    session.publish_primary(member);
    let mut closed_by_rolegate = garbage_clients(&proxy, seeds(0..200), true).await;
    closed_by_rolegate += garbage_clients(&session, seeds(200..300), true).await;
    // The seeds are meant to reach rolegate's protocol errors, not only the server's.
    if std::env::var("HOSTILE_SEED").is_err() {
        assert!(
            closed_by_rolegate > 100,
            "only {closed_by_rolegate} sessions ended with an error"
        );
    }
    select_one_works(&session, "a session-mode client after 100 hostile ones").await;
    select_one_works(&proxy, "a client after 300 hostile ones").await;
    // Every client is gone: whatever server connections the pool kept are idle, none left
    // inside a transaction, a COPY or a failed transaction.
    let dirty = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state <> 'idle'";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pg.psql(dirty).unwrap().trim() != "0" && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        pg.psql("SELECT string_agg(state || ': ' || query, '; ') FROM pg_stat_activity WHERE usename = 'app' AND state <> 'idle'")
            .unwrap()
            .trim(),
        "",
        "server connections left busy after their clients left"
    );
    assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sending_garbage_instead_of_a_password_are_refused() {
    count_panics();
    let backend = fake::FakeBackend::start(301).await;
    let dir = std::env::temp_dir().join(format!("rolegate-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("userlist.txt");
    std::fs::write(&file, "\"app\" \"secret\"\n").unwrap();
    for method in ["scram-sha-256", "md5"] {
        let auth = format!(
            "type = \"{method}\"\nfile = {:?}",
            file.display().to_string()
        );
        let proxy = pooled_with("transaction", &auth, "").await;
        proxy.publish_primary(backend.addr);
        let refused = garbage_clients(&proxy, seeds(0..100), false).await;
        if std::env::var("HOSTILE_SEED").is_err() {
            assert!(
                refused > 50,
                "{method}: only {refused} of 100 were refused with an error"
            );
        }
    }
    // Nobody got past the login: the server saw no session at all.
    assert_eq!(backend.seen.lock().unwrap().bytes_after_startup, 0);
    let _ = std::fs::remove_dir_all(&dir);
    assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sending_garbage_give_clients_errors_and_the_pool_heals() {
    count_panics();
    let backend = HostileBackend::start(1000).await;
    let proxy = pooled("").await;
    proxy.publish_primary(backend.addr);
    let session = pooled_with("session", "type = \"trust\"", "").await;
    session.publish_primary(backend.addr);
    let (mut errors, mut framing_errors) =
        hostile_server_exchanges(&proxy, seeds(0..200), true).await;
    // In session mode the server is lent at login, so its garbage meets the login's path.
    let (e, f) = hostile_server_exchanges(&session, seeds(200..300), true).await;
    errors += e;
    framing_errors += f;
    // A message length no message has ends the session with an error saying so, not with
    // the connection just closing.
    if std::env::var("HOSTILE_SEED").is_err() {
        assert!(
            framing_errors > 0,
            "no client was told its server sent an invalid message"
        );
    }
    assert!(
        backend.hostile.load(Ordering::Relaxed) > 20,
        "the backend was hostile only {} times",
        backend.hostile.load(Ordering::Relaxed)
    );
    assert!(
        errors > 0,
        "no client saw an error from 200 hostile exchanges"
    );
    backend.sane.store(true, Ordering::Relaxed);
    for i in 0..6 {
        select_one_works(&proxy, &format!("client {i} once the server is sane")).await;
    }
    select_one_works(&session, "a session-mode client once the server is sane").await;
    assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sending_garbage_through_a_passthrough_port() {
    count_panics();
    let backend = HostileBackend::start(5000).await;
    let proxy = Proxy::start_toml(
        &["role = \"primary\"\nconnect_wait = \"300ms\"".to_owned()],
        None,
    )
    .await;
    proxy.publish_primary(backend.addr);
    // Each client has its own server session, its bytes relayed as they come: the login's
    // garbage reaches the client as the server sent it, but a length no message has still
    // ends the session with rolegate's error (when the client's stream is between messages).
    let (_, framing_errors) = hostile_server_exchanges(&proxy, seeds(0..200), false).await;
    if std::env::var("HOSTILE_SEED").is_err() {
        assert!(
            framing_errors > 0,
            "no client was told its server sent an invalid message"
        );
    }
    backend.sane.store(true, Ordering::Relaxed);
    select_one_works(&proxy, "a passthrough client once the server is sane").await;
    assert_no_panics();
}

/// Each seed's client logs in and runs one query, its server hostile now and then. Returns
/// how many saw an error, and how many were told their server sent an invalid message.
async fn hostile_server_exchanges(proxy: &Proxy, seeds: Vec<u64>, pooled: bool) -> (usize, usize) {
    let (mut errors, mut framing_errors) = (0, 0);
    for seed in seeds {
        let got = match login(proxy, seed, pooled).await {
            Ok(mut c) => {
                c.write_all(&query("select 1")).await.unwrap();
                let got = read_all(&mut c, seed, true).await;
                let tags = check_messages(&got, seed, true);
                errors += usize::from(tags.contains(&b'E'));
                got
            }
            Err(got) => {
                errors += 1;
                got
            }
        };
        let said = String::from_utf8_lossy(&got);
        framing_errors += usize::from(said.contains("invalid message from the server"));
        assert_no_panics();
    }
    (errors, framing_errors)
}

/// Logs in through the proxy; the login's bytes are checked like every other answer. A
/// login that does not end ready is `Err` with what came; through a pooling port, where
/// rolegate logs in to the server itself, it must end with an ErrorResponse.
async fn login(proxy: &Proxy, seed: u64, pooled: bool) -> Result<TcpStream, Vec<u8>> {
    let mut c = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    c.write_all(&startup_packet("app")).await.unwrap();
    let got = read_all(&mut c, seed, true).await;
    let tags = check_messages(&got, seed, true);
    if tags.last() == Some(&b'Z') {
        return Ok(c);
    }
    if pooled {
        assert_eq!(
            tags.last(),
            Some(&b'E'),
            "seed {seed}: login ended with {tags:?}"
        );
    }
    Err(got)
}
