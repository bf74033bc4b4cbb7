//! Seeded random protocol input for tests/hostile_input.rs: what a broken or malicious client
//! or server might send, and a backend that sends it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::fake::msg;

/// Seeded randomness, with the few shapes the generators need.
pub struct Rng(fastrand::Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }
    pub fn next(&mut self) -> u64 {
        self.0.u64(..)
    }
    /// 0..n
    pub fn below(&mut self, n: usize) -> usize {
        self.0.usize(..n)
    }
    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One of `choices` NUL-terminated, now and then without its NUL or with bytes that are
/// not UTF-8.
fn cstr(r: &mut Rng, choices: &[&str]) -> Vec<u8> {
    let mut v = if r.one_in(6) {
        r.bytes(12)
    } else {
        r.pick(choices).as_bytes().to_vec()
    };
    if !r.one_in(8) {
        v.push(0);
    }
    v
}

/// A result or parameter format code: text, binary, or one that does not exist.
fn format_code(r: &mut Rng) -> [u8; 2] {
    *r.pick(&[[0, 0], [0, 1], [0, 2]])
}

fn i16s(r: &mut Rng, v: &mut Vec<u8>) -> i16 {
    let n = *r.pick(&[0i16, 1, 2, 3, -1, 300, i16::MAX]);
    v.extend_from_slice(&n.to_be_bytes());
    n
}

fn i32_len(r: &mut Rng) -> i32 {
    *r.pick(&[-1, 0, 1, 4, 8, -7, 1 << 20, i32::MAX])
}

/// The body of a frontend message with tag `tag`, right or subtly wrong.
fn frontend_body(r: &mut Rng, tag: u8) -> Vec<u8> {
    let mut v = Vec::new();
    match tag {
        b'Q' => v = cstr(r, SQL),
        b'P' => {
            v.extend(cstr(r, &["", "s1", "P_0"]));
            v.extend(cstr(r, SQL));
            for _ in 0..i16s(r, &mut v).clamp(0, 4) {
                v.extend_from_slice(&(r.next() as u32).to_be_bytes());
            }
        }
        b'B' => {
            v.extend(cstr(r, &["", "p1"]));
            v.extend(cstr(r, &["", "s1", "P_0", "never prepared"]));
            for _ in 0..i16s(r, &mut v).clamp(0, 4) {
                v.extend_from_slice(&format_code(r));
            }
            for _ in 0..i16s(r, &mut v).clamp(0, 4) {
                let len = i32_len(r);
                v.extend_from_slice(&len.to_be_bytes());
                v.extend(r.bytes(usize::try_from(len).unwrap_or(0).min(8)));
            }
            for _ in 0..i16s(r, &mut v).clamp(0, 4) {
                v.extend_from_slice(&format_code(r));
            }
        }
        b'D' | b'C' => {
            v.push(*r.pick(b"SPX\0"));
            v.extend(cstr(r, &["", "s1", "p1", "P_0"]));
        }
        b'E' => {
            v.extend(cstr(r, &["", "p1"]));
            v.extend_from_slice(&i32_len(r).to_be_bytes());
        }
        b'S' | b'H' | b'c' => {
            if r.one_in(8) {
                v = r.bytes(6);
            }
        }
        // CopyData, CopyFail, a password, a function call, or no message at all: any bytes.
        _ => v = r.bytes(40),
    }
    v
}

const SQL: &[&str] = &[
    "select 1",
    "BEGIN",
    "COMMIT",
    "SET application_name = 'x'",
    "copy t from stdin",
    "",
    "select 1; select 2",
];

/// One frame: a message's tag, length and body, with the length now and then wrong.
fn frame(r: &mut Rng, tag: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32 + 4;
    let len = match r.below(14) {
        0 => r.below(4) as u32,
        1 => u32::MAX,
        2 => 0x7fff_ffff,
        3 => len + 1 + r.below(8) as u32,
        _ => len,
    };
    let mut v = vec![tag];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Up to eight frontend messages, as a client would send them in one go.
pub fn frontend_burst(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..=r.below(8) {
        let tag = if r.one_in(10) {
            r.next() as u8
        } else {
            *r.pick(b"QPBDECSHdcfpFX")
        };
        let body = frontend_body(r, tag);
        out.extend(frame(r, tag, &body));
    }
    if r.one_in(5) {
        out.truncate(r.below(out.len() + 1));
    }
    out
}

/// One backend message, well-formed or not. Never an ErrorResponse: a server's errors go to
/// the client as the server wrote them, and the tests check only that errors are well-formed.
fn backend_message(r: &mut Rng) -> Vec<u8> {
    let tag = *r.pick(b"TDCZZIRSKNAGHWdcs123ntv?\0");
    let body = match tag {
        b'Z' => vec![*r.pick(b"ITEX")],
        b'T' => {
            let mut v = vec![0, 1];
            v.extend(cstr(r, &["col"]));
            v.extend_from_slice(&[0; 18]);
            v
        }
        b'D' => {
            let mut v = vec![0, 1];
            let len = i32_len(r);
            v.extend_from_slice(&len.to_be_bytes());
            v.extend(r.bytes(usize::try_from(len).unwrap_or(0).min(8)));
            v
        }
        b'C' => cstr(r, &["SELECT 1"]),
        b'R' => (r.below(13) as u32).to_be_bytes().to_vec(),
        b'S' => [cstr(r, &["TimeZone"]), cstr(r, &["UTC"])].concat(),
        b'N' => [b"SNOTICE\0C00000\0Mhello\0".to_vec(), cstr(r, &[""])].concat(),
        b'K' => r.bytes(12),
        b'G' | b'H' | b'W' => {
            let mut v = vec![0];
            i16s(r, &mut v);
            v
        }
        _ => r.bytes(24),
    };
    frame(r, tag, &body)
}

/// A backend that logs in and answers like a (very simple) PostgreSQL while `sane`, and
/// otherwise answers its login or a query with random messages and hangs up. Each
/// connection draws its own seed from `seed`.
pub struct HostileBackend {
    pub addr: SocketAddr,
    pub sane: Arc<AtomicBool>,
    /// Connections that got a hostile answer.
    pub hostile: Arc<AtomicUsize>,
}

impl HostileBackend {
    pub async fn start(seed: u64) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let sane = Arc::new(AtomicBool::new(false));
        let hostile = Arc::new(AtomicUsize::new(0));
        let (s, h) = (sane.clone(), hostile.clone());
        let next = Arc::new(AtomicU64::new(seed));
        tokio::spawn(async move {
            while let Ok((conn, _)) = tcp.accept().await {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(conn, Rng::new(seed), s.clone(), h.clone()));
            }
        });
        Self {
            addr,
            sane,
            hostile,
        }
    }
}

async fn serve(mut c: TcpStream, mut r: Rng, sane: Arc<AtomicBool>, hostile: Arc<AtomicUsize>) {
    let mut len = [0u8; 4];
    if c.read_exact(&mut len).await.is_err() {
        return;
    }
    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    if c.read_exact(&mut body).await.is_err() || body.starts_with(&80_877_102u32.to_be_bytes()) {
        return;
    }
    let is_sane = || sane.load(Ordering::Relaxed);
    if !is_sane() && r.one_in(4) {
        hostile.fetch_add(1, Ordering::Relaxed);
        return garbage(&mut c, &mut r).await;
    }
    let mut ok = msg(b'R', &0u32.to_be_bytes());
    ok.extend(msg(b'K', &[0, 0, 1, 44, 1, 2, 3, 4]));
    ok.extend(msg(b'Z', b"I"));
    if c.write_all(&ok).await.is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = c.read(&mut buf).await {
        if n == 0 || buf[..n].starts_with(&[b'X', 0, 0, 0, 4]) {
            return;
        }
        if !is_sane() && r.one_in(2) {
            hostile.fetch_add(1, Ordering::Relaxed);
            return garbage(&mut c, &mut r).await;
        }
        // Sane: one complete answer per chunk, as the tests send one query at a time.
        let mut out = msg(b'T', b"\0\x01col\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        out.extend(msg(b'D', b"\0\x01\0\0\0\x011"));
        out.extend(msg(b'C', b"SELECT 1\0"));
        out.extend(msg(b'Z', b"I"));
        if c.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Random messages, sometimes cut off mid-message, then the connection closes.
async fn garbage(c: &mut TcpStream, r: &mut Rng) {
    let mut out = Vec::new();
    for _ in 0..=r.below(6) {
        out.extend(backend_message(r));
    }
    if r.one_in(3) {
        out.truncate(r.below(out.len() + 1));
    }
    let _ = c.write_all(&out).await;
    let _ = c.shutdown().await;
}
