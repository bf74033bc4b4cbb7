//! The pooled session loop: client bytes go to the lent server through [`Frontend`],
//! server bytes come back through [`Backend`]; message boundaries are followed to know
//! when a transaction ends (ReadyForQuery idle with nothing owed) and the server can go
//! back to the pool.

use std::task::Poll;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod held;

use super::backend::{Backend, Fed};
use super::bufs::Bufs;
use super::checkout::prepare;
use super::ending::{client_broke_protocol, fail, finish, killed, lost, say};
use super::expect::Expected;
use super::frontend::{Ctx, Flow, Frontend};
use super::replay::Replay;
use super::sock;
use super::{Client, Held};
use crate::config::PoolMode;
use crate::protocol::{PgError, ProtocolError};
use crate::session::{shutting_down, Stop};

/// A client Terminate message.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// What to do after one step.
enum Step {
    Go,
    /// The transaction ended: give the server back (transaction mode).
    Release,
    /// The transaction ended, and the server said it is closing: drop it (transaction
    /// mode).
    Discard,
    /// The client left; `clean` says whether the server is reusable.
    Left {
        clean: bool,
    },
    /// End the session, telling the client why if the stream allows it (boxed: rare, and
    /// a step is kept in every transaction's state).
    Fail(Box<PgError>),
    /// The server refused the transaction's first request without running it (it is
    /// shutting down, or it is no longer the primary): drop it and send the request to
    /// a server of the member that now has the role.
    Retry,
}

/// What a client keeps between transactions: its half of the protocol (its prepared
/// statements, where it is in its message stream) and the flow the last one left.
struct Kept {
    front: Frontend,
    flow: Flow,
}

impl Step {
    fn fail(e: PgError) -> Self {
        Self::Fail(Box::new(e))
    }
}

/// The protocol state of one transaction; built when the client sends, dropped when the
/// server goes back, so an idle client keeps only [`Kept`] (whose frontend it borrows).
struct Relay<'k> {
    front: &'k mut Frontend,
    back: Backend,
    expected: Expected,
    flow: Flow,
    bufs: Option<Box<Bufs>>,
    replay: Option<Replay>,
    /// When the oldest request the server has not answered with ReadyForQuery was sent.
    query_sent: Option<Instant>,
    /// When the last ReadyForQuery came (a clock reading taken for the query's time,
    /// reused as the transaction's end when the server goes back).
    answered: Option<Instant>,
}

/// How a transaction ended.
enum End {
    /// The server went back (or none was needed): wait for the client's next bytes.
    Idle,
    /// The session is over.
    Over,
}

/// Relays until the client leaves or the session must end.
///
/// A plain fn returning an `async move` block rather than an `async fn`: an async fn keeps
/// its arguments twice in its state (as received and as moved into the body), and this
/// state lives as long as the client does. Between transactions the session waits here,
/// keeping only `Kept`; each transaction runs in a boxed future of its own (one
/// allocation per transaction, freed when the server goes back). `lent` is the server
/// lent at login in session mode.
pub fn run<'a, 'b>(
    c: &'a mut Client<'b>,
    stream: &'a mut TcpStream,
    mut lent: Option<Box<Held>>,
) -> impl std::future::Future<Output = Result<(), ProtocolError>> + use<'a, 'b> {
    let max_prepared = c.setup.settings().max_prepared_statements;
    let tracking =
        (c.setup.mode == PoolMode::Transaction && max_prepared > 0).then_some(max_prepared);
    let mut kept = Kept {
        front: Frontend::new(tracking),
        flow: Flow::default(),
    };
    async move {
        loop {
            if lent.is_none() {
                // The client's next bytes, or KILL or shutdown (which kills clients between
                // transactions at once); the socket first.
                let readable = std::future::poll_fn(|cx| match sock::poll_read_ready(stream, cx) {
                    Poll::Ready(r) => Poll::Ready(Some(r.is_ok())),
                    Poll::Pending => c.info.poll_killed(cx).map(|()| None),
                });
                match readable.await {
                    Some(true) => {}
                    Some(false) => return Ok(()),
                    None => {
                        // Boxed, like the write below: rare, and kept out of the idle state.
                        Box::pin(fail(c, stream, killed(c.info.kill_message()), true)).await;
                        return Ok(());
                    }
                }
            }
            let held = lent.take().map(|h| *h);
            let fut = crate::boxed::pin_in_box!(transaction(c, &mut kept, stream, held));
            match fut.await? {
                End::Over => return Ok(()),
                End::Idle if c.shared.gate.stop_state() != Stop::Running => {
                    // The transaction is done; rolegate is stopping, so the session is too.
                    Box::pin(say(stream, shutting_down())).await;
                    return Ok(());
                }
                End::Idle => {}
            }
        }
    }
}

/// One transaction: from the client's bytes (or the session-mode server lent at login) to
/// the server's release, or the session's end. A plain fn returning an `async move` block
/// (see [`run`]): this state is allocated per transaction, and without its arguments
/// twice it stays within mimalloc's small sizes (at most 1024 bytes; 936 in a release
/// build at 2026-12-03). Past that, every transaction's box takes the allocator's generic
/// path (~300 instructions more): print `size_of_val` of this future after changing what
/// it holds (the relay's fields, the steps' locals).
#[allow(clippy::manual_async_fn)]
fn transaction<'s, 'a>(
    c: &'s mut Client<'a>,
    kept: &'s mut Kept,
    stream: &'s mut TcpStream,
    mut held: Option<Held>,
) -> impl std::future::Future<Output = Result<End, ProtocolError>> + use<'s, 'a> {
    async move {
        let mut r = Relay {
            front: &mut kept.front,
            back: Backend::default(),
            expected: Expected::default(),
            flow: kept.flow,
            bufs: None,
            replay: None,
            query_sent: None,
            answered: None,
        };
        let end = r.steps(c, stream, &mut held).await;
        kept.flow = r.flow;
        end
    }
}

impl Relay<'_> {
    /// Steps until the server goes back or the session ends.
    async fn steps(
        &mut self,
        c: &mut Client<'_>,
        stream: &mut TcpStream,
        held: &mut Option<Held>,
    ) -> Result<End, ProtocolError> {
        let mut first = true;
        loop {
            let step = match held.as_mut() {
                None if first || self.replay.as_ref().is_some_and(Replay::is_due) => {
                    first = false;
                    let (step, h) = self.idle_step(c, stream).await?;
                    *held = h;
                    step
                }
                None => return Ok(End::Idle),
                Some(h) => self.held_step(c, h, stream).await?,
            };
            match step {
                Step::Go => {}
                Step::Release | Step::Discard => {
                    if let Some(h) = held.take() {
                        if matches!(step, Step::Release) {
                            let now = self.answered.take().unwrap_or_else(Instant::now);
                            c.release_at(h, now);
                        }
                        // Discard: dropped, the server is closed.
                    }
                    if let Some(b) = self.bufs.as_mut() {
                        self.expected.stash(&mut b.queue);
                    }
                    Bufs::recycle(self.bufs.take());
                    return Ok(End::Idle);
                }
                Step::Left { clean } => {
                    Bufs::recycle(self.bufs.take());
                    if let Some(h) = held.take() {
                        // Boxed: the reset query's state is needed once, at the end.
                        Box::pin(finish(c, h, clean)).await;
                    }
                    return Ok(End::Over);
                }
                Step::Retry => {
                    // Dropped, not released: the server is going away or is not the primary.
                    // The buffers stay: they hold the request to send again.
                    drop(held.take());
                }
                Step::Fail(e) => {
                    // Boxed: rare, and kept out of every transaction's state.
                    Box::pin(fail(c, stream, *e, self.back.client_at_boundary())).await;
                    return Ok(End::Over);
                }
            }
        }
    }
}

impl Relay<'_> {
    /// No server lent: read the client's next bytes (the caller saw the socket readable),
    /// then borrow a server for them; or send a refused request again.
    async fn idle_step(
        &mut self,
        c: &mut Client<'_>,
        stream: &mut TcpStream,
    ) -> Result<(Step, Option<Held>), ProtocolError> {
        if let Some(n) = self.replay.as_mut().and_then(Replay::due) {
            if self.bufs.is_none() {
                // Cannot happen: a retry keeps the buffers holding the request.
                let e = PgError::fatal("XX000", "rolegate: lost a request it was to resend")
                    .with_hint("Reconnect and run the transaction again.");
                return Ok((Step::fail(e), None));
            }
            self.flow = self.replay.as_ref().map_or(self.flow, |rp| rp.flow);
            self.back = Backend::default();
            self.expected = Expected::default();
            return self.lend(c, n, stream).await;
        }
        let bufs = self.bufs.get_or_insert_with(Bufs::new);
        self.expected.unstash(&mut bufs.queue);
        let n = match sock::try_read(stream, &mut bufs.client_in) {
            Ok(0) => return Ok((Step::Left { clean: true }, None)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Bufs::recycle(self.bufs.take());
                return Ok((Step::Go, None));
            }
            Err(_) => return Ok((Step::Left { clean: true }, None)),
        };
        c.listener.stats.bytes_received.add(n as u64);
        if self.front.at_boundary() && bufs.client_in[..n] == TERMINATE {
            return Ok((Step::Left { clean: true }, None));
        }
        let (db, user) = (&c.login.database, &c.login.user);
        let known = &c.setup.known_statements;
        if let Some(reply) = self
            .front
            .answer_locally(&bufs.client_in[..n], |s| known.contains(db, user, s))
        {
            Bufs::recycle(self.bufs.take());
            c.listener.stats.bytes_sent.add(reply.len() as u64);
            let step = match stream.write_all(&reply).await {
                Ok(()) => Step::Go,
                Err(_) => Step::Left { clean: true },
            };
            return Ok((step, None));
        }
        self.replay = (c.setup.mode == PoolMode::Transaction && self.front.at_boundary())
            .then(|| Replay::new(n, self.flow));
        self.lend(c, n, stream).await
    }

    /// Borrows a server and sends it the `n` bytes in `bufs.client_in`.
    async fn lend(
        &mut self,
        c: &mut Client<'_>,
        n: usize,
        stream: &mut TcpStream,
    ) -> Result<(Step, Option<Held>), ProtocolError> {
        let held = if let Some(h) = c.checkout_now() {
            Ok(h)
        } else {
            // The client waits for a server: it keeps only its request's bytes meanwhile,
            // not the relay's buffers (24 KB), which go back to the thread's spares.
            let request: Box<[u8]> = self
                .bufs
                .as_ref()
                .map_or(&[][..], |b| &b.client_in[..n])
                .into();
            Bufs::recycle(self.bufs.take());
            let held = crate::boxed::pin_in_box!(c.checkout()).await;
            let bufs = self.bufs.get_or_insert_with(Bufs::new);
            bufs.client_in[..request.len()].copy_from_slice(&request);
            held
        };
        let mut h = match held {
            Ok(h) => h,
            Err(e) => return Ok((Step::fail(e), None)),
        };
        // `Client::ready` in place: the server is kept once in this state, not also in a
        // future of its own (a transaction's state stays under the allocator's small size).
        if let Some(sql) = c.lent(&mut h) {
            if let Err(e) = Box::pin(prepare(&mut h, sql)).await {
                return Ok((Step::fail(e), None));
            }
        }
        // The request goes out now: the checkout's clock reading serves as its send time.
        let at = h.checkout.since;
        let step = self.client_sent(n, &mut h, stream, Some(at)).await?;
        if !self.front.at_boundary() {
            self.replay = None; // the request goes on in the next chunk
        }
        Ok((step, Some(h)))
    }

    /// Forwards `n` bytes the client sent (in `bufs.client_in`) to the lent server.
    async fn client_sent(
        &mut self,
        n: usize,
        h: &mut Held,
        stream: &mut TcpStream,
        now: Option<Instant>,
    ) -> Result<Step, ProtocolError> {
        let bufs = self.bufs.get_or_insert_with(Bufs::new);
        let conn = h.checkout.conn();
        bufs.out.clear();
        let mut ctx = Ctx {
            server: &mut conn.statements,
            expected: &mut self.expected,
            flow: &mut self.flow,
        };
        let (leaving, fed) = match self
            .front
            .feed(&bufs.client_in[..n], &mut ctx, &mut bufs.out)
        {
            Ok(sent) => sent,
            Err(e) => return Ok(Step::fail(client_broke_protocol(&e))),
        };
        // The client's bytes as they came (nothing copied), or what the frontend built.
        let output = match fed {
            Fed::Chunk(end) => &bufs.client_in[..end],
            Fed::Out => &bufs.out[..],
        };
        if !output.is_empty() {
            if let Err(e) = sock::write_all(&mut conn.stream, output).await {
                return Ok(self.lost(conn, &e));
            }
        }
        if self.query_sent.is_none() && self.flow.pending > 0 {
            self.query_sent = Some(now.unwrap_or_else(Instant::now));
        }
        // Answers rolegate made up with nothing owed before them are due now.
        if self.back.at_boundary() {
            bufs.out.clear();
            self.expected.flush_made(&mut bufs.out);
            if !bufs.out.is_empty() && sock::write_all(stream, &bufs.out).await.is_err() {
                return Ok(Step::Left { clean: false });
            }
        }
        Ok(if leaving {
            Step::Left { clean: self.idle() }
        } else {
            Step::Go
        })
    }

    fn idle(&self) -> bool {
        quiet(self.flow, &self.expected, &self.back)
    }

    /// The lent server's connection broke (`cause`): the session ends with 08006 (see
    /// [`lost`]), saying whether the server had committed locally and, in the log,
    /// whether it answered the transaction's first request at all.
    fn lost(&self, conn: &crate::pool::ServerConn, cause: &dyn std::fmt::Display) -> Step {
        Step::fail(lost(
            conn,
            cause,
            self.back.committed_locally,
            self.replay.is_some(),
        ))
    }
}

/// Nothing owed either way and the server between messages: the transaction is over
/// (transaction mode) or the session can stop. Field by field, for callers that hold
/// another borrow of the relay.
fn quiet(flow: Flow, expected: &Expected, back: &Backend) -> bool {
    flow.idle() && expected.is_empty() && back.at_boundary()
}
