//! A real PostgreSQL backend killed (SIGKILL) while it streams a result to a pooled client:
//! the client gets the rows that arrived whole, then FATAL 08006, never half a message; and
//! once PostgreSQL has recovered, the pool serves new clients.

mod fake;
mod pg;

use std::time::{Duration, Instant};

use fake::{error_fields, query, read_msg, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PG_PORT: u16 = 26843;

/// Sends `sql` and returns the first column of the first row as text, or the error.
async fn one_value(c: &mut TcpStream, sql: &str) -> Result<String, String> {
    c.write_all(&query(sql)).await.map_err(|e| e.to_string())?;
    let mut value = None;
    loop {
        let (tag, body) = read_msg(c).await.map_err(|e| e.to_string())?;
        match tag {
            b'D' => {
                let len = u32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
                value = Some(String::from_utf8_lossy(&body[6..6 + len]).into_owned());
            }
            b'E' => return Err(format!("{:?}", error_fields(&body))),
            b'Z' => return value.ok_or_else(|| "no row".to_owned()),
            _ => {}
        }
    }
}

/// Splits `bytes` into messages; panics on a cut-off one. Returns (tag, body) pairs.
fn messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 5, "a cut-off header at the end: {bytes:?}");
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert!(
            bytes.len() > len,
            "a cut-off message at the end: {} of {len} bytes of tag {:?}",
            bytes.len() - 1,
            char::from(bytes[0])
        );
        out.push((bytes[0], bytes[5..=len].to_vec()));
        bytes = &bytes[len + 1..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_result_gives_the_client_an_error_between_rows() {
    if pg::missing() {
        return;
    }
    let pg = pg::Pg::start(
        PG_PORT,
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        "CREATE ROLE app LOGIN",
    )
    .expect("start PostgreSQL");
    let member = ([127, 0, 0, 1], PG_PORT).into();
    let spec = "role = \"primary\"\npool_mode = \"transaction\"\nconnect_wait = \"300ms\"\n\
                pool_size = 1\n";
    let proxy = Proxy::start_toml(&[spec.to_owned()], Some("type = \"trust\"")).await;
    proxy.publish_primary(member);

    let (mut c, _, _) = proxy.client(0).await;
    // One server in the pool: the next query runs on this backend.
    let pid: u32 = one_value(&mut c, "select pg_backend_pid()")
        .await
        .unwrap()
        .parse()
        .unwrap();
    // ~200 MB of 1 KB rows: PostgreSQL sends them in 8 KB writes, so messages are cut at
    // every write, and the kill finds one half sent.
    c.write_all(&query(
        "select repeat('x', 1000) from generate_series(1, 200000)",
    ))
    .await
    .unwrap();
    let mut got = vec![0u8; 1 << 20];
    c.read_exact(&mut got).await.unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -KILL {pid}");
    tokio::time::timeout(Duration::from_secs(30), c.read_to_end(&mut got))
        .await
        .expect("the client's connection ends")
        .unwrap();

    let msgs = messages(&got);
    let rows = msgs.iter().filter(|(t, _)| *t == b'D').count();
    assert!(rows > 900, "the rows before the kill arrive: {rows}");
    assert!(rows < 200_000, "the kill came before the end of the result");
    let (tag, body) = msgs.last().unwrap();
    assert_eq!(*tag, b'E', "the last message is an error");
    let e = error_fields(body);
    assert_eq!(e[&'C'], "08006", "{e:?}");
    assert_eq!(e[&'S'], "FATAL", "{e:?}");
    assert!(
        msgs[..msgs.len() - 1]
            .iter()
            .all(|(t, _)| matches!(t, b'T' | b'D')),
        "only the result's rows before the error"
    );

    // PostgreSQL restarts its backends after a crash; then a new client is served.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = match proxy.try_client(0).await {
            Ok((mut c, _, _)) => one_value(&mut c, "select 41 + 1").await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(v) => {
                assert_eq!(v, "42");
                break;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("while PostgreSQL recovers: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no service 30 s after the crash: {e}"),
        }
    }
    drop(pg);
}
