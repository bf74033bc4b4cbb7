//! The floor, hand-written loop: a transaction-mode relay on one mio event loop, the shape
//! of PgBouncer's libevent loop, doing the least any transaction pooler must (each client's
//! query to an idle server, the answer back, the server idle again at ReadyForQuery) and
//! nothing else: no authentication, no statement tracking, no parameters, no cancel, no
//! statistics, no timeouts, no error handling a real proxy needs. `floor_tokio` is the same
//! relay as one tokio task per client, the shape rolegate has. benches/compare/run measures
//! both beside PgBouncer and rolegate at `-S -c 16`: the CPU a relay cannot go below on this
//! machine, with each model, so the gap between a pooler and its floor is the cost of its
//! features. Not for use: a dirty server is never cleaned, a slow client blocks the loop.
//!
//! `cargo run --release --example floor_mio -- 127.0.0.1:23104 127.0.0.1:23011 20`

#[path = "common.rs"]
mod common;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// Tokens of servers start here; below are clients.
const SERVERS: usize = 1 << 30;

struct Client {
    sock: TcpStream,
    ready: bool,
    startup: Vec<u8>,
    server: Option<usize>,
}

struct Server {
    sock: TcpStream,
    client: Option<usize>,
    frames: common::Frames,
}

/// Writes all of `b` (small: the socket takes it at once; else spins).
fn send(s: &mut TcpStream, mut b: &[u8]) {
    while !b.is_empty() {
        match s.write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(_) => return,
        }
    }
}

/// One read; `None` when the socket is drained. A short read drained it: the next data
/// raises a new edge, so no read is wasted on EAGAIN (as rolegate does).
fn recv(s: &mut TcpStream, buf: &mut [u8]) -> Option<usize> {
    match s.read(buf) {
        Ok(n) => Some(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(_) => Some(0),
    }
}

struct Relay {
    poll: Poll,
    clients: Vec<Option<Client>>,
    free: Vec<usize>,
    servers: Vec<Server>,
    idle: Vec<usize>,
    waiting: VecDeque<(usize, Vec<u8>)>,
    buf: Vec<u8>,
    greeting: Vec<u8>,
}

impl Relay {
    fn accept(&mut self, listener: &TcpListener) {
        while let Ok((mut sock, _)) = listener.accept() {
            let _ = sock.set_nodelay(true);
            let id = self.free.pop().unwrap_or_else(|| {
                self.clients.push(None);
                self.clients.len() - 1
            });
            if self
                .poll
                .registry()
                .register(&mut sock, Token(id), Interest::READABLE)
                .is_ok()
            {
                self.clients[id] = Some(Client {
                    sock,
                    ready: false,
                    startup: Vec::new(),
                    server: None,
                });
            } else {
                self.free.push(id);
            }
        }
    }

    fn server_readable(&mut self, si: usize) {
        loop {
            let Some(n) = recv(&mut self.servers[si].sock, &mut self.buf) else {
                return;
            };
            assert!(n > 0, "server {si} closed its connection");
            let server = &mut self.servers[si];
            let idle = server.frames.feed(&self.buf[..n]);
            if let Some(ci) = server.client {
                if let Some(c) = self.clients[ci].as_mut() {
                    send(&mut c.sock, &self.buf[..n]);
                    if idle {
                        c.server = None;
                    }
                }
                if idle {
                    server.client = None;
                    self.give_back(si);
                }
            }
            if n < self.buf.len() {
                return;
            }
        }
    }

    fn give_back(&mut self, si: usize) {
        if let Some((ci, bytes)) = self.waiting.pop_front() {
            self.lend(si, ci, &bytes);
        } else {
            self.idle.push(si);
        }
    }

    fn lend(&mut self, si: usize, ci: usize, bytes: &[u8]) {
        self.servers[si].client = Some(ci);
        if let Some(c) = self.clients[ci].as_mut() {
            c.server = Some(si);
        }
        send(&mut self.servers[si].sock, bytes);
    }

    fn client_readable(&mut self, ci: usize) {
        loop {
            let Some(c) = self.clients[ci].as_mut() else {
                return;
            };
            let Some(n) = recv(&mut c.sock, &mut self.buf) else {
                return;
            };
            if n == 0 || (c.ready && c.server.is_none() && self.buf[0] == b'X') {
                self.close(ci);
                return;
            }
            if !c.ready {
                c.startup.extend_from_slice(&self.buf[..n]);
                while let Some((len, ssl)) = common::first_packet(&c.startup) {
                    c.startup.drain(..len);
                    if ssl {
                        send(&mut c.sock, b"N");
                    } else {
                        c.ready = true;
                        send(&mut c.sock, &self.greeting);
                    }
                }
            } else if let Some(si) = c.server {
                send(&mut self.servers[si].sock, &self.buf[..n]);
            } else if let Some(si) = self.idle.pop() {
                let bytes = std::mem::take(&mut self.buf);
                self.lend(si, ci, &bytes[..n]);
                self.buf = bytes;
            } else {
                self.waiting.push_back((ci, self.buf[..n].to_vec()));
            }
            if n < self.buf.len() {
                return;
            }
        }
    }

    fn close(&mut self, ci: usize) {
        if let Some(mut c) = self.clients[ci].take() {
            let _ = self.poll.registry().deregister(&mut c.sock);
            self.free.push(ci);
            if let Some(si) = c.server {
                // Left mid-transaction: the floor does not clean servers; it drops this one.
                self.servers[si].client = None;
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let (listen, server, size) = common::args();
    let poll = Poll::new()?;
    let mut listener = TcpListener::bind(listen.parse().map_err(std::io::Error::other)?)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut servers = Vec::new();
    for i in 0..size {
        let mut s = std::net::TcpStream::connect(&server)?;
        s.set_nodelay(true)?;
        common::login(&mut s)?;
        s.set_nonblocking(true)?;
        let mut sock = TcpStream::from_std(s);
        poll.registry()
            .register(&mut sock, Token(SERVERS + i), Interest::READABLE)?;
        servers.push(Server {
            sock,
            client: None,
            frames: common::Frames::default(),
        });
    }
    let mut relay = Relay {
        poll,
        clients: Vec::new(),
        free: Vec::new(),
        idle: (0..size).collect(),
        servers,
        waiting: VecDeque::new(),
        buf: vec![0; 16 * 1024],
        greeting: common::greeting(),
    };
    let mut events = Events::with_capacity(256);
    loop {
        if let Err(e) = relay.poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events {
            match ev.token() {
                LISTENER => relay.accept(&listener),
                Token(t) if t >= SERVERS => relay.server_readable(t - SERVERS),
                Token(ci) => relay.client_readable(ci),
            }
        }
    }
}
