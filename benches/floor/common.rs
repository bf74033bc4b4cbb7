//! What both floor relays share: the few protocol bytes a relay with no features needs.
//! See `mio.rs` for what the floor relays are for. Messages made once at start-up come
//! from rolegate's own builders; what runs per connection or per message is the floor's.

use std::io::{Read, Write};

use rolegate::protocol::io::{put_message, startup_packet};

/// Command line: `LISTEN SERVER POOL` (cargo may add `--bench`; it is skipped).
pub fn args() -> (String, String, usize) {
    let a: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let usage =
        "usage: LISTEN_ADDR SERVER_ADDR POOL_SIZE (e.g. 127.0.0.1:23104 127.0.0.1:23011 20)";
    if let (Some(l), Some(s), Some(p)) =
        (a.first(), a.get(1), a.get(2).and_then(|p| p.parse().ok()))
    {
        return (l.clone(), s.clone(), p);
    }
    eprintln!("{usage}");
    std::process::exit(2);
}

/// What a client gets after its startup packet: AuthenticationOk, the ParameterStatus
/// values libpq and pgbench read, BackendKeyData, ReadyForQuery.
pub fn greeting() -> Vec<u8> {
    let mut g = Vec::new();
    put_message(&mut g, b'R', &[&0u32.to_be_bytes()]);
    for (k, v) in [
        ("server_version", "15.0"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("standard_conforming_strings", "on"),
        ("integer_datetimes", "on"),
        ("DateStyle", "ISO, MDY"),
    ] {
        put_message(&mut g, b'S', &[k.as_bytes(), b"\0", v.as_bytes(), b"\0"]);
    }
    put_message(&mut g, b'K', &[&[0, 0, 0, 1, 0, 0, 0, 7]]);
    put_message(&mut g, b'Z', &[b"I"]);
    g
}

/// Logs `s` in as postgres to database postgres (the server must trust it) and returns
/// once the server is ready for queries.
pub fn login(s: &mut std::net::TcpStream) -> std::io::Result<()> {
    s.write_all(&startup_packet(&[
        ("user", "postgres"),
        ("database", "postgres"),
    ]))?;
    let mut frames = Frames::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if frames.feed(&buf[..n]) {
            return Ok(());
        }
    }
}

/// Follows the server's messages across chunks.
#[derive(Default)]
pub struct Frames {
    header: [u8; 5],
    have: usize,
    left: usize,
    tag: u8,
}

impl Frames {
    /// Feeds a chunk; true when it ended right after a ReadyForQuery saying idle (the
    /// server can go back to the pool).
    pub fn feed(&mut self, mut chunk: &[u8]) -> bool {
        let mut idle = false;
        while !chunk.is_empty() {
            if self.left > 0 {
                let take = self.left.min(chunk.len());
                idle = self.tag == b'Z' && take == self.left && chunk[take - 1] == b'I';
                self.left -= take;
                chunk = &chunk[take..];
                continue;
            }
            idle = false;
            let take = (5 - self.have).min(chunk.len());
            self.header[self.have..self.have + take].copy_from_slice(&chunk[..take]);
            self.have += take;
            chunk = &chunk[take..];
            if self.have == 5 {
                let [tag, a, b, c, d] = self.header;
                self.tag = tag;
                self.left = (u32::from_be_bytes([a, b, c, d]) as usize).saturating_sub(4);
                self.have = 0;
            }
        }
        idle
    }
}

/// A whole startup-phase packet at the start of `b`: its length, and whether it is an
/// SSLRequest (answered 'N').
pub fn first_packet(b: &[u8]) -> Option<(usize, bool)> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let code = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
    (len >= 8 && b.len() >= len).then_some((len, code == 80_877_103))
}
