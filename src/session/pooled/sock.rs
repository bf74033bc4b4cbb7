//! Socket reads that keep tokio's cached readiness honest. Tokio marks a socket readable
//! until a read fails with `WouldBlock`, so after a short read the next read attempt is a
//! wasted `recv` returning EAGAIN: one extra syscall per socket per transaction. A short
//! read on a TCP socket drained its receive queue, so here it also clears the readiness
//! at once; new data raises a new epoll edge (and tokio's tick check keeps an edge that
//! arrived meanwhile).

use std::io::{self, Read};
use std::task::{ready, Context, Poll};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Waits until `stream` has data (or end of stream) and reads it into `buf`.
pub async fn read(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read(stream, cx, buf)).await
}

/// [`read`] as a poll: waits through the socket's own reader waker rather than a future
/// holding a waiter node, so a session's select over both sockets stays small (that state
/// is part of every session's memory).
pub fn poll_read(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    loop {
        if let Err(e) = ready!(stream.poll_read_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        match try_read(stream, buf) {
            // The readiness was cleared: the next poll registers for the next edge.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return Poll::Ready(r),
        }
    }
}

/// `stream.poll_read_ready`, answered from tokio's cached readiness first when that says
/// readable (the usual case after a wake-up: no waker, no budget check).
pub fn poll_read_ready(stream: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    if stream.try_io(Interest::READABLE, || Ok(())).is_ok() {
        return Poll::Ready(Ok(()));
    }
    stream.poll_read_ready(cx)
}

/// Writes all of `buf`: at once when the socket takes it (the usual case: no waker, no
/// budget check), else the rest the usual way, waiting for room.
pub async fn write_all(stream: &mut TcpStream, buf: &[u8]) -> io::Result<()> {
    let sent = match stream.try_write(buf) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if sent < buf.len() {
        // Boxed: rare (a full send buffer), and kept out of every caller's state.
        Box::pin(tokio::io::AsyncWriteExt::write_all(stream, &buf[sent..])).await?;
    }
    Ok(())
}

/// Writes all of `a`, then all of `b`: at once when the socket takes them (the usual
/// case: one system call, no waker), else the rest the usual way, waiting for room.
pub async fn write_all_parts(stream: &mut TcpStream, a: &[u8], b: &[u8]) -> io::Result<()> {
    let tried = if a.is_empty() || b.is_empty() {
        stream.try_write(if a.is_empty() { b } else { a })
    } else {
        stream.try_write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
    };
    let sent = match tried {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if sent < a.len() + b.len() {
        // Boxed: rare (a full send buffer), and kept out of every caller's state.
        Box::pin(async move {
            let rest_a = a.get(sent..).unwrap_or_default();
            tokio::io::AsyncWriteExt::write_all(stream, rest_a).await?;
            let rest_b = &b[sent.saturating_sub(a.len())..];
            tokio::io::AsyncWriteExt::write_all(stream, rest_b).await
        })
        .await?;
    }
    Ok(())
}

/// Reads what `stream` holds now; `WouldBlock` when it holds nothing.
pub fn try_read(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut short = None;
    let r = stream.try_io(Interest::READABLE, || {
        let n = (&*socket2::SockRef::from(stream)).read(buf)?;
        if n > 0 && n < buf.len() {
            short = Some(n);
            // Reported as WouldBlock so that tokio clears the readiness now.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match short {
        Some(n) => Ok(n),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn short_reads_full_reads_and_end_of_stream() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut tx = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (rx, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            try_read(&rx, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        tx.write_all(b"ab").await.unwrap();
        assert_eq!(read(&rx, &mut buf).await.unwrap(), 2, "a short read");
        assert_eq!(&buf[..2], b"ab");
        // Data after a short read is still seen: a new edge sets the readiness again.
        tx.write_all(b"cdefgh").await.unwrap();
        assert_eq!(read(&rx, &mut buf).await.unwrap(), 4, "a full buffer");
        assert_eq!(read(&rx, &mut buf).await.unwrap(), 2, "the rest");
        assert_eq!(&buf[..2], b"gh");
        drop(tx);
        assert_eq!(read(&rx, &mut buf).await.unwrap(), 0, "end of stream");
    }

    #[tokio::test]
    async fn read_readiness_is_told_from_the_cache_and_registers_when_not_ready() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut tx = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (rx, _) = l.accept().await.unwrap();
        let ready_now = |rx: &TcpStream| {
            let waker = futures_util::task::noop_waker();
            poll_read_ready(rx, &mut Context::from_waker(&waker)).is_ready()
        };
        // A new socket counts as readable until a read says otherwise.
        let mut buf = [0u8; 8];
        assert_eq!(
            try_read(&rx, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(!ready_now(&rx), "ready with nothing sent");
        tx.write_all(b"ab").await.unwrap();
        // Registered above: the data's edge reaches the cache.
        std::future::poll_fn(|cx| poll_read_ready(&rx, cx))
            .await
            .unwrap();
        assert!(ready_now(&rx), "not ready again with data waiting");
        assert_eq!(try_read(&rx, &mut buf).unwrap(), 2);
        assert!(!ready_now(&rx), "still ready after a short read drained it");
    }

    #[tokio::test]
    async fn write_all_sends_more_than_the_socket_takes_at_once() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut tx = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut rx, _) = l.accept().await.unwrap();
        // Far beyond loopback's socket buffers: the first send is partial, the rest waits
        // for the reader.
        let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut rx, &mut got)
                .await
                .unwrap();
            got
        });
        write_all(&mut tx, &big).await.unwrap();
        write_all(&mut tx, b"tail").await.unwrap();
        // In two parts, each cut short in turn.
        write_all_parts(&mut tx, b"head", &big).await.unwrap();
        write_all_parts(&mut tx, &big, b"end").await.unwrap();
        write_all_parts(&mut tx, b"", b"!").await.unwrap();
        drop(tx);
        let got = reader.await.unwrap();
        let n = big.len();
        assert_eq!(got.len(), 3 * n + 12);
        assert!(got[..n] == big[..], "the bytes arrive in order");
        assert_eq!(&got[n..n + 8], b"tailhead");
        assert!(got[n + 8..2 * n + 8] == big[..]);
        assert!(got[2 * n + 8..3 * n + 8] == big[..]);
        assert_eq!(&got[3 * n + 8..], b"end!");
    }
}
