//! The floor, tokio: the relay of `mio.rs` (see there) as one task per client on a
//! current-thread runtime, rolegate's model, reading and writing with rolegate's own
//! `session::pooled::sock` (the socket's own reader waker, a short read clearing the
//! readiness; `try_write` first), the tasks spawned as rolegate spawns them
//! (`tokio::spawn`, no LocalSet). The pool is a plain thread-local list; a client finding
//! it empty yields and looks again.
//!
//! `cargo run --release --example floor_tokio -- 127.0.0.1:23105 127.0.0.1:23011 20`

#[path = "common.rs"]
mod common;

use std::cell::RefCell;
use std::sync::Arc;

use rolegate::session::pooled::sock::{read, write_all};
use tokio::net::{TcpListener, TcpStream};

struct Server {
    sock: TcpStream,
    frames: common::Frames,
}

thread_local! {
    /// The idle servers (the runtime has one thread).
    static POOL: RefCell<Vec<Server>> = const { RefCell::new(Vec::new()) };
}

async fn client(mut sock: TcpStream, greeting: Arc<[u8]>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut startup = Vec::new();
    let mut ready = false;
    while !ready {
        let n = read(&sock, &mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        startup.extend_from_slice(&buf[..n]);
        while let Some((len, ssl)) = common::first_packet(&startup) {
            startup.drain(..len);
            if ssl {
                write_all(&mut sock, b"N").await?;
            } else {
                write_all(&mut sock, &greeting).await?;
                ready = true;
            }
        }
    }
    let mut answer = vec![0u8; 16 * 1024];
    loop {
        let n = read(&sock, &mut buf).await?;
        if n == 0 || buf[0] == b'X' {
            return Ok(());
        }
        let mut server = loop {
            match POOL.with_borrow_mut(Vec::pop) {
                Some(s) => break s,
                None => tokio::task::yield_now().await,
            }
        };
        write_all(&mut server.sock, &buf[..n]).await?;
        loop {
            let m = read(&server.sock, &mut answer).await?;
            assert!(m > 0, "a server closed its connection");
            let idle = server.frames.feed(&answer[..m]);
            write_all(&mut sock, &answer[..m]).await?;
            if idle {
                break;
            }
        }
        POOL.with_borrow_mut(|p| p.push(server));
    }
}

fn main() -> std::io::Result<()> {
    let (listen, server, size) = common::args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        for _ in 0..size {
            let mut s = std::net::TcpStream::connect(&server)?;
            s.set_nodelay(true)?;
            common::login(&mut s)?;
            s.set_nonblocking(true)?;
            let server = Server {
                sock: TcpStream::from_std(s)?,
                frames: common::Frames::default(),
            };
            POOL.with_borrow_mut(|p| p.push(server));
        }
        let greeting: Arc<[u8]> = common::greeting().into();
        let listener = TcpListener::bind(&listen).await?;
        loop {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            tokio::spawn(client(s, greeting.clone()));
        }
    })
}
