//! A step of the relay while a server is lent: whichever comes first of the server's
//! answer, more from the client, a kill or a fence, shutdown, or the idle-in-transaction
//! timer; the server's answer is relayed to the client.

use std::future::Future;
use std::task::{Context, Poll};

use tokio::net::TcpStream;

use super::{quiet, Backend, Relay, Step};
use crate::config::PoolMode;
use crate::protocol::io::parse_parameter_status;
use crate::protocol::{PgError, ProtocolError};
use crate::route::SessionGuard;
use crate::session::clients::ClientInfo;
use crate::session::pooled::backend::Fed;
use crate::session::pooled::bufs::Bufs;
use crate::session::pooled::ending::{
    apply_effects, killed, query_done, server_broke_protocol, shutdown_during_commit,
};
use crate::session::pooled::replay::{refused_unrun, MAX_REPLAYS};
use crate::session::pooled::{sock, Client, Held};
use crate::session::shutting_down;
use crate::topology::Service;

/// The longest start of a server message held back until the message is whole.
const MAX_HELD: usize = 8 * 1024;

impl Relay<'_> {
    /// One step while a server is lent: whichever of client data, server data, a fence,
    /// or the idle-in-transaction timer comes first.
    pub(super) async fn held_step(
        &mut self,
        c: &mut Client<'_>,
        h: &mut Held,
        stream: &mut TcpStream,
    ) -> Result<Step, ProtocolError> {
        let in_txn_idle = self.flow.pending == 0 && self.flow.status != b'I';
        let idle_limit = if in_txn_idle {
            c.setup.settings().idle_transaction_timeout
        } else {
            None
        };
        // No timer at all unless one can fire: arming one per step costs a timer-wheel lock.
        // Both optional waits are boxed only when used, keeping every session's state small.
        let mut idle_timer = idle_limit.map(|d| Box::pin(tokio::time::sleep(d)));
        let mut stopping = self.idle().then(|| Box::pin(c.shared.gate.stopping()));
        let bufs = self.bufs.get_or_insert_with(Bufs::new);
        let Held {
            checkout, guard, ..
        } = h;
        let conn = checkout.conn();
        bufs.seen.clear();
        // In this order: no random start per poll, and the server (what a step mostly
        // waits for) is looked at first. (A hand-written poll rather than `select!`: this
        // runs at every step, and the macro's bookkeeping for optional branches costs.)
        let got = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = sock::poll_read(&conn.stream, cx, &mut bufs.server_in) {
                return Poll::Ready(Got::Server(r));
            }
            if let Poll::Ready(r) = sock::poll_read(stream, cx, &mut bufs.client_in) {
                return Poll::Ready(Got::Client(r));
            }
            if let Poll::Ready(e) = poll_ended(c.info, guard, cx) {
                return Poll::Ready(Got::Ended(e));
            }
            if let Some(s) = stopping.as_mut() {
                if s.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Got::Ended(shutting_down()));
                }
            }
            if let Some(t) = idle_timer.as_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    let limit = idle_limit.unwrap_or_default();
                    return Poll::Ready(Got::Ended(PgError::fatal("25P03", format!("rolegate: terminating connection: idle in transaction for more than {limit:?} (idle_transaction_timeout)"))));
                }
            }
            Poll::Pending
        })
        .await;
        match got {
            Got::Ended(e) => Ok(Step::fail(e)),
            Got::Client(Ok(0) | Err(_)) => Ok(Step::Left { clean: false }),
            Got::Client(Ok(n)) => {
                c.listener.stats.bytes_received.add(n as u64);
                self.replay = None;
                self.client_sent(n, h, stream, None).await
            }
            Got::Server(Err(e)) => Ok(self.lost(conn, &e)),
            Got::Server(Ok(0)) => Ok(self.lost(conn, &"closed by the server")),
            Got::Server(Ok(n)) => self.server_sent(n, c, h, stream).await,
        }
    }

    /// The lent server sent `n` bytes (in `bufs.server_in`): a refused first request is
    /// sent elsewhere; else the answers are followed and relayed to the client.
    async fn server_sent(
        &mut self,
        n: usize,
        c: &mut Client<'_>,
        h: &mut Held,
        stream: &mut TcpStream,
    ) -> Result<Step, ProtocolError> {
        let bufs = self.bufs.get_or_insert_with(Bufs::new);
        let conn = h.checkout.conn();
        if let Some(rp) = self.replay.take() {
            let primary = c.listener.service == Service::Primary;
            if let Some(code) = refused_unrun(&bufs.server_in[..n], primary) {
                if rp.tries < MAX_REPLAYS {
                    tracing::info!(member = %conn.addr.member, %code, "server refused a transaction before running it; sending it to the current {} instead", c.listener.service);
                    self.replay = Some(rp.again());
                    return Ok(Step::Retry);
                }
            }
        }
        bufs.out.clear();
        if !bufs.tail.is_empty() {
            // The held-back bytes start this output: the buffers change places, and the
            // tail's (cleared) is free for the next hold.
            std::mem::swap(&mut bufs.out, &mut bufs.tail);
        }
        let fed = self.back.feed(
            &bufs.server_in[..n],
            &mut self.expected,
            &mut bufs.out,
            &mut bufs.seen,
        );
        let fed = match fed {
            Ok(fed) => fed,
            Err(e) => {
                // `out` ends where the bad message began (a header is forwarded only
                // once its length is checked): the client gets the whole messages before
                // it, then the error, which `steps` sends when the backend is between
                // messages, as it is again once started over.
                let _ = sock::write_all(stream, &bufs.out).await;
                self.back = Backend::default();
                return Ok(Step::fail(server_broke_protocol(conn, &e)));
            }
        };
        // What the client gets: `out` (held-back bytes, or all the backend built), then
        // the server's bytes as they came (nothing copied); `len` of it, once cut below.
        let head = &bufs.out[..];
        let body = match fed {
            Fed::Chunk(end) => &bufs.server_in[..end],
            Fed::Out => &[][..],
        };
        let mut len = head.len() + body.len();
        apply_effects(c, &mut self.expected, &mut conn.statements);
        let stats = &c.listener.stats;
        let transaction_mode = c.setup.mode == PoolMode::Transaction;
        // An ErrorResponse with no answer owed: the server's last word before it closes
        // (a FATAL sent while idle: shutdown, pg_terminate_backend, idle_session_timeout).
        let mut closing = None;
        for s in &bufs.seen {
            match s.tag {
                b'Z' => {
                    self.flow.pending = self.flow.pending.saturating_sub(1);
                    self.flow.status = s.body.first().copied().unwrap_or(b'I');
                    self.answered = query_done(&mut self.query_sent, self.flow, stats);
                }
                b'E' if self.flow.pending == 0 => closing = Some(&s.body),
                b'E' => stats.errors.record_response(&s.body),
                b'N' => self.back.committed_locally |= shutdown_during_commit(&s.body),
                _ => {
                    if let Some((k, v)) = parse_parameter_status(&s.body) {
                        c.params.set(&k, &v);
                        conn.set_param(k, v);
                    }
                }
            }
        }
        // (`idle()` through the fields: `bufs` is still borrowed.)
        let release = transaction_mode && quiet(self.flow, &self.expected, &self.back);
        if let Some(body) = closing {
            if release {
                // The client's transaction is over and the error is not about it: the
                // client does not see it (when it began in this chunk), and the server
                // is closed rather than given back with its last words read.
                if let Some(at) = self.back.error_at() {
                    len = len.min(at);
                }
                tracing::info!(member = %conn.addr.member, pid = conn.key.pid, "server sent an error after its transaction ended (it is closing); closing it");
            } else {
                stats.errors.record_response(body);
            }
        }
        // A message the read ended in the middle of waits for its end, so that the client's
        // stream stays between messages should the server go away (it then gets an error
        // rather than part of a message). A long one streams on as it comes.
        if let Some(at) = self.back.partial_at() {
            if len - at <= MAX_HELD {
                let (h, b) = parts(head, body, at, len);
                bufs.tail.extend_from_slice(h);
                bufs.tail.extend_from_slice(b);
                len = at;
                self.back.hold();
            }
        }
        stats.bytes_sent.add(len as u64);
        let (h, b) = parts(head, body, 0, len);
        if len > 0 && sock::write_all_parts(stream, h, b).await.is_err() {
            return Ok(Step::Left { clean: false });
        }
        Ok(match (release, closing) {
            (true, Some(_)) => Step::Discard,
            (true, None) => Step::Release,
            (false, _) => Step::Go,
        })
    }
}

/// Ready with the error to end the session with once it is killed (KILL, or shutdown) or
/// its member's fence fired. One waker serves both: the fencer wakes every client's kill
/// waker after firing a fence, so a step registers in no waiter list for fencing.
fn poll_ended(info: &ClientInfo, guard: &SessionGuard, cx: &mut Context<'_>) -> Poll<PgError> {
    // Registers the waker first: a fence fired after the check below wakes it.
    if info.poll_killed(cx).is_ready() {
        return Poll::Ready(killed(info.kill_message()));
    }
    match guard.poll_fenced() {
        Some(reason) => {
            let message = reason.message;
            tracing::warn!("{message}");
            Poll::Ready(PgError::fatal("57P01", message).with_hint(
                "The cluster changed roles. Reconnect: rolegate routes new connections to the member that now has the role.",
            ))
        }
        None => Poll::Pending,
    }
}

/// Bytes `from..to` of `head` followed by `body`, as the parts in each.
fn parts<'a>(head: &'a [u8], body: &'a [u8], from: usize, to: usize) -> (&'a [u8], &'a [u8]) {
    let n = head.len();
    (
        &head[from.min(n)..to.min(n)],
        &body[from.saturating_sub(n)..to.saturating_sub(n)],
    )
}

enum Got {
    Client(std::io::Result<usize>),
    Server(std::io::Result<usize>),
    /// Killed, fenced, shutdown or idle in transaction too long: the session ends.
    Ended(PgError),
}
