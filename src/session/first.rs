//! A client's first packet: encryption requests answered with 'N' (TLS is not offered
//! yet), cancel requests forwarded, a startup packet handed back to the session.

use std::io::Read;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{forward, Shared};
use crate::protocol::startup::{
    first_read_buffer, read_first_packet_after, StartupParams, NO_ENCRYPTION,
};
use crate::protocol::{FirstPacket, PgError, ProtocolError};

/// How long a client may take to send its startup packet (PostgreSQL's authentication_timeout
/// is 60s; a proxy holding a socket for a silent client should give up sooner).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// What the first packet asks for.
pub enum First {
    /// Answered already (a cancel request, or a refusal).
    Done,
    /// A session: its parameters and the packet as sent (for passthrough).
    Startup {
        params: StartupParams,
        raw: bytes::Bytes,
    },
}

/// Reads the first packet: answers encryption requests and forwards cancel requests.
pub async fn first_packet(shared: &Shared, client: &mut TcpStream) -> Result<First, ProtocolError> {
    let first = match tokio::time::timeout(STARTUP_TIMEOUT, negotiate(client)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            if let Some(err) = e.to_client_error() {
                let _ = client.write_all(&err.encode()).await;
            }
            return Err(e);
        }
        Err(_) => {
            let err = PgError::fatal("08P01", "rolegate: no startup packet within 15s; closing")
                .with_hint("Connect with a PostgreSQL client.");
            let _ = client.write_all(&err.encode()).await;
            return Ok(First::Done);
        }
    };
    match first {
        FirstPacket::Cancel { key, raw } => {
            // Boxed: connecting to the server is a large state, and this one is part of
            // every connection's first state.
            Box::pin(forward::cancel(&shared.cancels, &key, &raw)).await;
            Ok(First::Done)
        }
        FirstPacket::Startup { raw, params } => Ok(First::Startup { params, raw }),
        // `negotiate` never returns an encryption request; treat it as a protocol error anyway.
        FirstPacket::SslRequest | FirstPacket::GssEncRequest => Err(ProtocolError::Startup(
            "unexpected encryption request".into(),
        )),
    }
}

/// Reads packets until one that is not an encryption request, answering those with 'N'
/// (TLS is not offered yet). A client may ask for SSL and then GSS, so at most two rounds.
async fn negotiate(client: &mut TcpStream) -> Result<FirstPacket, ProtocolError> {
    // A client speaks first, usually right after connecting: its first packet is most
    // often in the socket already when the connection is accepted. Read it at once rather
    // than wait for the socket's first readiness event (a turn of the event loop and a
    // wakeup of this task per connection); nothing there yet = the usual wait.
    // The bytes read start the packet's buffer; the rest is read from the socket.
    let mut head = first_read_buffer();
    let mut got = match (&*socket2::SockRef::from(&*client)).read(&mut head) {
        Ok(0) => return Err(ProtocolError::Closed),
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e.into()),
    };
    for _ in 0..3 {
        match read_first_packet_after(client, head, got).await? {
            FirstPacket::SslRequest | FirstPacket::GssEncRequest => {
                client.write_all(&[NO_ENCRYPTION]).await?;
                (head, got) = (first_read_buffer(), 0);
            }
            other => return Ok(other),
        }
    }
    Err(ProtocolError::Startup(
        "too many encryption requests".into(),
    ))
}
