//! After the member is chosen: bytes both ways without decoding. Only backend message
//! headers are followed, to find BackendKeyData (for cancel routing) and to know whether
//! a FATAL can be injected at a message boundary when the session is fenced, and
//! ReadyForQuery, to end the session between transactions when rolegate stops.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::clients::{ClientInfo, ClientState, ServerAt, ServerLink};
use super::connect::Backend;
use super::{server_broke_protocol, shutting_down, Shared};
use crate::protocol::frame::{parse_backend_key, BoundaryTracker, Seen, BACKEND_KEY_DATA};
use crate::protocol::io::cancel_packet;
use crate::protocol::{CancelKey, PgError, ProtocolError};
use crate::route::cancel::{BackendAddr, CancelGuard, CancelTarget};
use crate::route::{CancelMap, KillReason, Listener};
use crate::stats::ListenerStats;

const BUF: usize = 8 * 1024;

/// How the copy loop ended.
enum End {
    ClientClosed,
    ServerClosed,
    /// The server sent a length no message has; whether the client's stream was left
    /// between messages (the whole messages before the bad one were forwarded).
    ServerBroke(ProtocolError, bool),
    /// rolegate is stopping and the session is between transactions.
    Stopping,
    /// KILL, or the shutdown timeout: the reason for the client.
    Killed(String),
}

/// What the killer needs to know about the client side of the stream.
#[derive(Default)]
struct ClientSide {
    tracker: BoundaryTracker,
    /// A write to the client is under way (a fence may cut it).
    writing: bool,
    /// The listener's counters (bytes).
    stats: Arc<ListenerStats>,
    cancel_guard: Option<CancelGuard>,
    /// The server's last ReadyForQuery said idle and the client sent nothing since (no
    /// transaction open, no request in flight): a stopping rolegate may end the session.
    idle: bool,
}

/// Forwards the startup packet, then copies both ways until an end or a fence.
pub async fn run(
    shared: &Shared,
    listener: &Listener,
    mut client: TcpStream,
    backend: Backend,
    startup: &[u8],
    info: &ClientInfo,
) -> Result<(), ProtocolError> {
    let Backend {
        mut stream,
        addr,
        guard,
    } = backend;
    tracing::Span::current().record("member", addr.member.as_str());
    tracing::info!(member = %addr.member, "routed");
    let now = std::time::SystemTime::now();
    let link = ServerLink {
        at: ServerAt::Direct(Arc::new(addr.clone())),
        pid: 0,
        connected: now,
        since: std::time::Instant::now(),
    };
    info.set(ClientState::Active, Some(link));
    stream.write_all(startup).await?;
    let _active = listener.stats.clients_active.enter();
    let mut side = ClientSide {
        stats: listener.stats.clone(),
        ..ClientSide::default()
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = stream.split();
    let ended = {
        let copy = pin!(copy(
            &mut cr, &mut cw, &mut sr, &mut sw, &mut side, shared, &addr, info
        ));
        tokio::select! {
            end = copy => Ok(end),
            reason = guard.fenced() => Err(reason),
        }
    };
    match ended {
        Ok(End::ServerBroke(e, at_boundary)) => {
            tracing::warn!(member = %addr.member, error = %e, "server sent an invalid message; closing the session");
            if at_boundary {
                side.stats.errors.record(b"08P01");
                tell(&mut cw, &server_broke_protocol(&e)).await;
            }
            Ok(())
        }
        Ok(End::Stopping) => {
            tell(&mut cw, &shutting_down()).await;
            Ok(())
        }
        Ok(End::Killed(message)) => {
            tracing::warn!("{message}");
            if !side.writing && side.tracker.at_boundary() {
                let err = PgError::fatal("57P01", message)
                    .with_hint("rolegate ended this session (admin KILL or shutdown). Reconnect.");
                tell(&mut cw, &err).await;
            }
            Ok(())
        }
        Err(reason) => {
            fenced(&mut cw, &side, &reason).await;
            Ok(())
        }
        // Either side closed, or the registry is gone (shutting down).
        Ok(End::ClientClosed | End::ServerClosed) => Ok(()),
    }
}

/// Tells the client why it is cut off, if the stream is at a message boundary; then closes.
async fn fenced(cw: &mut WriteHalf<'_>, side: &ClientSide, reason: &KillReason) {
    tracing::warn!(member = %reason.member, "{}", reason.message);
    if side.writing || !side.tracker.at_boundary() {
        return; // mid-message: an injected message would corrupt the stream; just close
    }
    side.stats.errors.record(b"57P01");
    let err = PgError::fatal("57P01", reason.message.clone())
        .with_hint("The cluster changed roles. Reconnect: rolegate routes new connections to the member that now has the role.");
    tell(cw, &err).await;
    let _ = cw.shutdown().await;
}

/// Tells the client `err`, giving up after 100 ms (the session ends either way).
async fn tell(cw: &mut WriteHalf<'_>, err: &PgError) {
    let _ = tokio::time::timeout(Duration::from_millis(100), cw.write_all(&err.encode())).await;
}

// The two stream halves each way plus the session's context; grouping them would only
// move the same borrows into a struct.
#[allow(clippy::too_many_arguments)]
async fn copy(
    cr: &mut ReadHalf<'_>,
    cw: &mut WriteHalf<'_>,
    sr: &mut ReadHalf<'_>,
    sw: &mut WriteHalf<'_>,
    side: &mut ClientSide,
    shared: &Shared,
    addr: &BackendAddr,
    info: &ClientInfo,
) -> End {
    let mut cbuf = vec![0u8; BUF];
    let mut sbuf = vec![0u8; BUF];
    let mut seen: Vec<Seen> = Vec::new();
    // Registered once for the session, not at every turn of the loop.
    let mut killed = pin!(info.kill_signal());
    loop {
        let idle = side.idle && side.tracker.at_boundary();
        tokio::select! {
            () = &mut killed => return End::Killed(info.kill_message()),
            () = shared.gate.stopping(), if idle => return End::Stopping,
            r = cr.read(&mut cbuf) => match r {
                Ok(0) | Err(_) => return End::ClientClosed,
                Ok(n) => {
                    // A request is under way: not idle until the server's next ReadyForQuery.
                    side.idle = false;
                    side.stats.bytes_received.add(n as u64);
                    if sw.write_all(&cbuf[..n]).await.is_err() { return End::ServerClosed }
                }
            },
            r = sr.read(&mut sbuf) => match r {
                Ok(0) | Err(_) => return End::ServerClosed,
                Ok(n) => {
                    let wanted: &[u8] = if side.cancel_guard.is_none() { &[BACKEND_KEY_DATA, b'Z'] } else { b"Z" };
                    if let Err(bad) = side.tracker.feed(&sbuf[..n], wanted, &mut seen) {
                        let e = ProtocolError::MessageLength { tag: char::from(bad.tag), len: bad.len };
                        // The whole messages before the bad one still go to the client.
                        let at_boundary = match bad.before {
                            Some(at) => cw.write_all(&sbuf[..at]).await.is_ok(),
                            None => false,
                        };
                        return End::ServerBroke(e, at_boundary);
                    }
                    for s in seen.drain(..) {
                        if s.tag == b'Z' {
                            side.idle = s.body.first() == Some(&b'I');
                        } else if let Some((pid, secret)) = parse_backend_key(&s.body) {
                            if let Some(mut link) = info.row().server {
                                link.pid = pid;
                                info.set(ClientState::Active, Some(link));
                            }
                            let key = CancelKey { pid, secret: secret.into() };
                            side.cancel_guard = Some(shared.cancels.insert(key, CancelTarget::Direct(Box::new(addr.clone()))));
                        }
                    }
                    side.writing = true;
                    side.stats.bytes_sent.add(n as u64);
                    if cw.write_all(&sbuf[..n]).await.is_err() { return End::ClientClosed }
                    side.writing = false;
                }
            },
        }
    }
}

/// Sends a CancelRequest to the backend behind `key`; unknown keys, and pooled clients
/// between transactions, are ignored, as PostgreSQL ignores unknown keys.
pub async fn cancel(cancels: &CancelMap, key: &CancelKey, raw: &[u8]) {
    let (addr, packet) = match cancels.get(key) {
        Some(CancelTarget::Direct(addr)) => (*addr, Bytes::copy_from_slice(raw)),
        Some(CancelTarget::Pooled(target)) => {
            let Some((addr, server_key)) = target.get() else {
                tracing::debug!(
                    pid = key.pid,
                    "cancel request for an idle pooled client ignored"
                );
                return;
            };
            (addr, cancel_packet(&server_key))
        }
        None => {
            tracing::debug!(pid = key.pid, "cancel request for an unknown key ignored");
            return;
        }
    };
    let raw = &packet[..];
    let send = async {
        let mut s = TcpStream::connect((addr.host.as_str(), addr.port)).await?;
        s.write_all(raw).await?;
        // The server closes after reading; wait for that so the request is not cut short.
        let mut b = [0u8; 1];
        let _ = s.read(&mut b).await;
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(5), send).await {
        Ok(Ok(())) => {
            tracing::info!(member = %addr.member, pid = key.pid, "cancel request forwarded");
        }
        Ok(Err(e)) => tracing::warn!(member = %addr.member, error = %e, "cancel request failed"),
        Err(_) => tracing::warn!(member = %addr.member, "cancel request timed out"),
    }
}
