//! A fake PostgreSQL backend for fast in-process tests of rolegate's own logic (routing,
//! fencing, cancel). The real-cluster tests use real Patroni and PostgreSQL instead.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use rolegate::config::ListenerRole;
use rolegate::route::Listener;
use rolegate::session::{AuthSetup, Shared};
use rolegate::topology::{derive, TopologyStore};

/// What a fake backend saw.
#[derive(Default)]
pub struct Seen {
    /// Startup packets, cancel packets and later bytes, in arrival order per connection.
    pub startups: usize,
    pub cancels: Vec<(i32, Vec<u8>)>,
    pub bytes_after_startup: usize,
    /// Connections that ended (client side closed or sent Terminate).
    pub closed: usize,
}

/// A backend that answers every startup with AuthenticationOk, BackendKeyData(pid, secret),
/// ReadyForQuery, and every later chunk with ReadyForQuery.
pub struct FakeBackend {
    pub addr: SocketAddr,
    pub pid: i32,
    pub seen: Arc<Mutex<Seen>>,
}

impl FakeBackend {
    pub async fn start(pid: i32) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = tcp.accept().await {
                tokio::spawn(serve(conn, pid, s.clone()));
            }
        });
        Self { addr, pid, seen }
    }
}

async fn serve(mut c: TcpStream, pid: i32, seen: Arc<Mutex<Seen>>) {
    let mut len = [0u8; 4];
    if c.read_exact(&mut len).await.is_err() {
        return;
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    if c.read_exact(&mut body).await.is_err() {
        return;
    }
    if body[..4] == 80_877_102u32.to_be_bytes() {
        let p = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        seen.lock().unwrap().cancels.push((p, body[8..].to_vec()));
        return;
    }
    seen.lock().unwrap().startups += 1;
    let mut out = msg(b'R', &0u32.to_be_bytes());
    let mut key = pid.to_be_bytes().to_vec();
    key.extend_from_slice(&secret(pid));
    out.extend(msg(b'K', &key));
    out.extend(msg(b'Z', b"I"));
    if c.write_all(&out).await.is_err() {
        return;
    }
    // Every chunk is answered with ReadyForQuery; BEGIN opens a transaction, COMMIT ends it.
    // "DIE AFTER" in a chunk: answered, then a FATAL and the connection closes (as a
    // PostgreSQL backend told to terminate right after a query does).
    let mut buf = [0u8; 1024];
    let mut in_txn = false;
    while let Ok(n) = c.read(&mut buf).await {
        if n == 0 || buf[..n] == [b'X', 0, 0, 0, 4] {
            break;
        }
        seen.lock().unwrap().bytes_after_startup += n;
        let text = String::from_utf8_lossy(&buf[..n]);
        in_txn = (in_txn || text.contains("BEGIN")) && !text.contains("COMMIT");
        let mut out = msg(b'Z', if in_txn { b"T" } else { b"I" });
        // "CUT ROW": a row description and half a row, then the connection closes (a
        // backend killed while sending a result). "SPLIT ROW": the same half, and the
        // rest of the answer 50 ms later.
        if text.contains("CUT ROW") || text.contains("SPLIT ROW") {
            let (head, rest) = row_answer();
            if c.write_all(&head).await.is_err() || text.contains("CUT ROW") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            out.splice(..0, rest);
        }
        let die = text.contains("DIE AFTER");
        if die {
            out.extend(msg(
                b'E',
                b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0",
            ));
        }
        if c.write_all(&out).await.is_err() || die {
            break;
        }
    }
    seen.lock().unwrap().closed += 1;
}

/// The answer to "SPLIT ROW" before its ReadyForQuery, cut in the middle of its DataRow:
/// RowDescription and the row's first half, then the rest and CommandComplete.
pub fn row_answer() -> (Vec<u8>, Vec<u8>) {
    let mut t = b"\0\x01x\0".to_vec();
    t.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
    ]);
    let mut d = b"\0\x01".to_vec();
    d.extend_from_slice(&100u32.to_be_bytes());
    d.extend_from_slice(&[b'r'; 100]);
    let (t, d) = (msg(b'T', &t), msg(b'D', &d));
    let half = d.len() / 2;
    let mut head = t;
    head.extend_from_slice(&d[..half]);
    let mut rest = d[half..].to_vec();
    rest.extend(msg(b'C', b"SELECT 1\0"));
    (head, rest)
}

/// A simple Query message.
pub fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', format!("{sql}\0").as_bytes())
}

pub fn secret(pid: i32) -> [u8; 4] {
    (pid.cast_unsigned() ^ 0xdead_beef).to_be_bytes()
}

pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub fn startup_packet(user: &str) -> Vec<u8> {
    let body = format!("user\0{user}\0database\0postgres\0\0");
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&196_608u32.to_be_bytes());
    v.extend_from_slice(body.as_bytes());
    v
}

pub fn cancel_packet(pid: i32, secret: &[u8]) -> Vec<u8> {
    let mut v = ((12 + secret.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&80_877_102u32.to_be_bytes());
    v.extend_from_slice(&pid.to_be_bytes());
    v.extend_from_slice(secret);
    v
}

/// Reads one backend message: (tag, body).
pub async fn read_msg(c: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 5];
    c.read_exact(&mut h).await?;
    let mut body = vec![0u8; u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize - 4];
    c.read_exact(&mut body).await?;
    Ok((h[0], body))
}

/// Fields of an ErrorResponse body, by code byte.
pub fn error_fields(body: &[u8]) -> BTreeMap<char, String> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| {
            (
                char::from(f[0]),
                String::from_utf8_lossy(&f[1..]).into_owned(),
            )
        })
        .collect()
}

/// Patroni 4.x member JSON for a member on `addr`.
pub fn member_json(addr: SocketAddr, role: &str, state: &str, lsn: u64) -> String {
    format!(
        r#"{{"conn_url":"postgres://{addr}/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"{state}","role":"{role}","version":"4.1.5","xlog_location":{lsn},"timeline":1}}"#
    )
}

/// Raw DCS keys for a sync-mode cluster.
pub fn keys(
    leader: Option<&str>,
    members: &[(&str, String)],
    sync: Option<&str>,
) -> BTreeMap<String, Vec<u8>> {
    let mut k = BTreeMap::new();
    if let Some(l) = leader {
        k.insert("leader".into(), l.as_bytes().to_vec());
        let sync_json = match sync {
            Some(s) => format!(r#"{{"leader":"{l}","quorum":0,"sync_standby":"{s}"}}"#),
            None => format!(r#"{{"leader":"{l}","quorum":0,"sync_standby":null}}"#),
        };
        k.insert("sync".into(), sync_json.into_bytes());
    }
    k.insert(
        "config".into(),
        br#"{"ttl":20,"loop_wait":2,"synchronous_mode":true}"#.to_vec(),
    );
    k.insert("status".into(), br#"{"optime":1000}"#.to_vec());
    for (name, json) in members {
        k.insert(format!("members/{name}"), json.clone().into_bytes());
    }
    k
}

/// A running proxy core fed by a store the test publishes into.
pub struct Proxy {
    pub store: Arc<TopologyStore>,
    pub shared: Arc<Shared>,
    pub addrs: Vec<SocketAddr>,
    pub listeners: Vec<Arc<Listener>>,
}

impl Proxy {
    pub async fn start(roles: &[(ListenerRole, Option<u64>)], connect_wait: Duration) -> Self {
        let specs: Vec<String> = roles
            .iter()
            .map(|(role, max_lag)| {
                let role = format!("{role:?}").to_lowercase();
                let lag = max_lag
                    .map(|l| format!("max_lag = {l}\n"))
                    .unwrap_or_default();
                format!(
                    "role = \"{role}\"\nconnect_wait = \"{}ms\"\n{lag}",
                    connect_wait.as_millis()
                )
            })
            .collect();
        Self::start_toml(&specs, None).await
    }

    /// Listeners from `[[listener]]` bodies (without `addr`, which is chosen here), with an
    /// optional `[auth]` body; everything else gets the config defaults.
    pub async fn start_toml(specs: &[String], auth: Option<&str>) -> Self {
        let store = Arc::new(TopologyStore::new());
        let shared = Shared::new(store.clone());
        let mut text = String::from("[cluster]\nscope = \"demo\"\n");
        if let Some(a) = auth {
            let _ = writeln!(text, "[auth]\n{a}");
        }
        let mut tcps = Vec::new();
        for spec in specs {
            let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = tcp.local_addr().unwrap();
            let _ = writeln!(
                text,
                "[[listener]]\naddr = \"{addr}\"\nserver_connect_timeout = \"1s\"\n{spec}"
            );
            tcps.push((tcp, addr));
        }
        let config = rolegate::config::parse(&text, "test").unwrap();
        shared.auth.store(
            config
                .auth
                .as_ref()
                .map(|a| Arc::new(AuthSetup::from_config(a).unwrap())),
        );
        let shared = Arc::new(shared);
        let mut bound = Vec::new();
        let mut addrs = Vec::new();
        for ((tcp, addr), cfg) in tcps.into_iter().zip(&config.listeners) {
            addrs.push(addr);
            bound.push((tcp, Arc::new(Listener::from_config(cfg))));
        }
        let listeners = bound.iter().map(|(_, l)| l.clone()).collect();
        rolegate::app::serve(&shared, bound);
        Self {
            store,
            shared,
            addrs,
            listeners,
        }
    }

    pub fn publish(&self, keys: &BTreeMap<String, Vec<u8>>) {
        let state = rolegate::dcs::patroni::cluster_from_keys(keys, 1);
        self.store.publish(derive(&state));
    }

    /// Publishes a cluster whose only member, pg1, is the running primary at `addr`.
    pub fn publish_primary(&self, addr: SocketAddr) {
        let members = [("pg1", member_json(addr, "primary", "running", 1000))];
        self.publish(&keys(Some("pg1"), &members, None));
    }

    /// Connects to listener `i` and completes the startup; returns the stream and the
    /// BackendKeyData (pid, secret) the client saw.
    pub async fn client(&self, i: usize) -> (TcpStream, i32, Vec<u8>) {
        self.try_client(i)
            .await
            .unwrap_or_else(|e| panic!("startup failed: {e}"))
    }

    /// [`client`](Self::client), with what went wrong (a refused connection, the
    /// ErrorResponse's fields) as an error instead of a panic.
    pub async fn try_client(&self, i: usize) -> Result<(TcpStream, i32, Vec<u8>), String> {
        let mut c = TcpStream::connect(self.addrs[i])
            .await
            .map_err(|e| e.to_string())?;
        c.write_all(&startup_packet("app"))
            .await
            .map_err(|e| e.to_string())?;
        let mut key = (0, Vec::new());
        loop {
            let (tag, body) = read_msg(&mut c).await.map_err(|e| e.to_string())?;
            match tag {
                b'K' => {
                    key = (
                        i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        body[4..].to_vec(),
                    );
                }
                b'Z' => return Ok((c, key.0, key.1)),
                b'E' => return Err(format!("{:?}", error_fields(&body))),
                _ => {}
            }
        }
    }
}

/// Three fake members pg1..pg3 (pids 101..103).
pub struct Three {
    pub b: [FakeBackend; 3],
}

impl Three {
    pub async fn start() -> Self {
        Self {
            b: [
                FakeBackend::start(101).await,
                FakeBackend::start(102).await,
                FakeBackend::start(103).await,
            ],
        }
    }
    /// pg1..pg3 with `leader` primary, others replicas; `sync` names the sync standby.
    pub fn keys(
        &self,
        leader: &str,
        sync: Option<&str>,
        lags: [u64; 3],
    ) -> BTreeMap<String, Vec<u8>> {
        let members: Vec<_> = ["pg1", "pg2", "pg3"]
            .iter()
            .zip(&self.b)
            .zip(lags)
            .map(|((n, b), lag)| {
                let role = if *n == leader { "primary" } else { "replica" };
                (*n, member_json(b.addr, role, "running", 1000 - lag))
            })
            .collect();
        keys(Some(leader), &members, sync)
    }
}
