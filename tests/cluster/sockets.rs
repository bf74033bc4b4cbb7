//! A process's TCP connections as the kernel sees them (`ss`), with their keepalive
//! timers: how tests check the TCP options rolegate sets on its sockets.

use std::process::Command;

/// One established connection of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    pub local_port: u16,
    pub peer_port: u16,
    /// Seconds left on the keepalive timer; `None` when no keepalive timer runs (no
    /// SO_KEEPALIVE, or another timer, such as a retransmission, is pending).
    pub keepalive_left: Option<u32>,
}

/// The established TCP connections of process `pid` (`ss -tnop`).
pub fn of_process(pid: u32) -> Vec<Conn> {
    let out = Command::new("ss")
        .args(["-tnopH", "state", "established"])
        .output()
        .expect("run ss (iproute2)");
    assert!(out.status.success(), "ss: {out:?}");
    let owner = format!("pid={pid},");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&owner))
        .filter_map(parse)
        .collect()
}

/// `0 0 127.0.0.1:5000 127.0.0.1:41234 users:((...)) timer:(keepalive,32sec,0)`.
fn parse(line: &str) -> Option<Conn> {
    let mut fields = line.split_whitespace().skip(2);
    let port = |a: &str| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    let local_port = port(fields.next()?)?;
    let peer_port = port(fields.next()?)?;
    let keepalive_left = line
        .split_once("timer:(keepalive,")
        .and_then(|(_, t)| seconds(t.split(',').next()?));
    Some(Conn {
        local_port,
        peer_port,
        keepalive_left,
    })
}

/// `32sec`, `1min5sec`, `2min`.
fn seconds(t: &str) -> Option<u32> {
    let (min, rest) = match t.split_once("min") {
        Some((m, rest)) => (m.parse::<u32>().ok()?, rest),
        None => (0, t),
    };
    let sec = match rest.strip_suffix("sec") {
        Some(s) => s.parse::<u32>().ok()?,
        None if rest.is_empty() => 0,
        None => return None,
    };
    Some(min * 60 + sec)
}
