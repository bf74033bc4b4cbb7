//! The pooled session loop: client bytes go to the lent server, server bytes come back;
//! only message tags are followed, to know when a transaction ends (ReadyForQuery idle
//! with nothing pending) and the server can go back to the pool.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{apply, Client, Held};
use crate::config::PoolMode;
use crate::protocol::frame::{BoundaryTracker, Seen};
use crate::protocol::io::parse_parameter_status;
use crate::protocol::{PgError, ProtocolError};

const BUF: usize = 8 * 1024;
/// A client Terminate message.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// Where the lent server is in the client's protocol flow.
#[derive(Debug, Clone, Copy)]
struct Flow {
    /// ReadyForQuery messages still owed by the server (one per Query, Sync, FunctionCall).
    pending: u32,
    /// Extended-protocol messages were sent since the last Sync.
    extended: bool,
    /// Transaction status of the last ReadyForQuery: `I`dle, in `T`ransaction, `E`rror.
    status: u8,
}

impl Flow {
    /// Nothing owed and no transaction open: the server may serve someone else.
    fn idle(self) -> bool {
        self.pending == 0 && !self.extended && self.status == b'I'
    }

    fn client_sent(&mut self, tag: u8) {
        match tag {
            b'Q' | b'F' => self.pending += 1,
            b'S' => {
                self.pending += 1;
                self.extended = false;
            }
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' => self.extended = true,
            _ => {} // CopyData/Done/Fail, Terminate
        }
    }
}

/// What to do after one step.
enum Step {
    Go,
    /// The transaction ended: give the server back (transaction mode).
    Release,
    /// The client left; `clean` says whether the server is reusable.
    Left {
        clean: bool,
    },
    /// End the session, telling the client why if the stream allows it.
    Fail(PgError),
}

/// Relays until the client leaves or the session must end.
pub async fn run(
    c: &mut Client<'_>,
    mut stream: TcpStream,
    mut held: Option<Held>,
) -> Result<(), ProtocolError> {
    let mut cbuf = vec![0u8; BUF];
    let mut sbuf = vec![0u8; BUF];
    let mut ctrack = BoundaryTracker::tags_only();
    let mut strack = BoundaryTracker::new();
    let mut flow = Flow {
        pending: 0,
        extended: false,
        status: b'I',
    };
    loop {
        let step = match held.as_mut() {
            None => {
                let n = match stream.read(&mut cbuf).await {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(n) => n,
                };
                let (len, leaving) = client_chunk(&mut ctrack, &cbuf[..n], &mut flow)?;
                if len == 0 {
                    return Ok(()); // only a Terminate
                }
                match c.checkout().await {
                    Ok(mut h) => {
                        let sent = h.checkout.conn().stream.write_all(&cbuf[..len]).await;
                        held = Some(h);
                        match (sent, leaving) {
                            (Err(_), _) => Step::Fail(lost(c)),
                            (Ok(()), true) => Step::Left { clean: flow.idle() },
                            (Ok(()), false) => Step::Go,
                        }
                    }
                    Err(e) => Step::Fail(e),
                }
            }
            Some(h) => {
                held_step(
                    c,
                    h,
                    &mut stream,
                    (&mut cbuf, &mut sbuf),
                    (&mut ctrack, &mut strack),
                    &mut flow,
                )
                .await?
            }
        };
        match step {
            Step::Go => {}
            Step::Release => {
                if let Some(h) = held.take() {
                    c.release(h);
                }
            }
            Step::Left { clean } => {
                if let Some(h) = held.take() {
                    finish(c, h, clean).await;
                }
                return Ok(());
            }
            Step::Fail(e) => {
                if strack.at_boundary() {
                    let _ = tokio::time::timeout(
                        Duration::from_millis(100),
                        stream.write_all(&e.encode()),
                    )
                    .await;
                }
                return Ok(());
            }
        }
    }
}

/// One step while a server is lent: whichever of client data, server data, a fence, or the
/// idle-in-transaction timer comes first.
async fn held_step(
    c: &mut Client<'_>,
    h: &mut Held,
    stream: &mut TcpStream,
    (cbuf, sbuf): (&mut [u8], &mut [u8]),
    (ctrack, strack): (&mut BoundaryTracker, &mut BoundaryTracker),
    flow: &mut Flow,
) -> Result<Step, ProtocolError> {
    let in_txn_idle = flow.pending == 0 && flow.status != b'I';
    let idle_limit = c
        .setup
        .idle_transaction_timeout
        .filter(|_| in_txn_idle)
        .unwrap_or(Duration::from_secs(86_400 * 365));
    let Held { checkout, kill, .. } = h;
    let conn = checkout.conn();
    let (mut sr, mut sw) = conn.stream.split();
    let (mut cr, mut cw) = stream.split();
    let mut seen: Vec<Seen> = Vec::new();
    tokio::select! {
        r = cr.read(cbuf) => {
            let n = match r { Ok(0) | Err(_) => return Ok(Step::Left { clean: false }), Ok(n) => n };
            let (len, leaving) = client_chunk(ctrack, &cbuf[..n], flow)?;
            if sw.write_all(&cbuf[..len]).await.is_err() {
                return Ok(Step::Fail(lost(c)));
            }
            Ok(if leaving { Step::Left { clean: flow.idle() } } else { Step::Go })
        }
        r = sr.read(sbuf) => {
            let n = match r { Ok(0) | Err(_) => return Ok(Step::Fail(lost(c))), Ok(n) => n };
            if let Err((tag, len)) = strack.feed(&sbuf[..n], b"ZS", &mut seen) {
                return Err(ProtocolError::MessageLength { tag: char::from(tag), len });
            }
            for s in &seen {
                match s.tag {
                    b'Z' => {
                        flow.pending = flow.pending.saturating_sub(1);
                        flow.status = s.body.first().copied().unwrap_or(b'I');
                    }
                    _ => {
                        if let Some((k, v)) = parse_parameter_status(&s.body) {
                            c.params.set(&k, &v);
                            conn.params.insert(k, v);
                        }
                    }
                }
            }
            if cw.write_all(&sbuf[..n]).await.is_err() {
                return Ok(Step::Left { clean: false });
            }
            let release = c.setup.mode == PoolMode::Transaction && flow.idle() && strack.at_boundary();
            Ok(if release { Step::Release } else { Step::Go })
        }
        reason = kill => {
            let message = reason.map_or_else(|_| "rolegate is shutting down".to_owned(), |r| r.message);
            tracing::warn!("{message}");
            Ok(Step::Fail(PgError::fatal("57P01", message)
                .with_hint("The cluster changed roles. Reconnect: rolegate routes new connections to the member that now has the role.")))
        }
        () = tokio::time::sleep(idle_limit) => {
            Ok(Step::Fail(PgError::fatal("25P03", format!("rolegate: terminating connection: idle in transaction for more than {idle_limit:?} (idle_transaction_timeout)"))))
        }
    }
}

/// Follows a client chunk's message tags; returns how many bytes to forward (a trailing
/// Terminate is not forwarded: the server stays open for the pool) and whether the
/// client is leaving.
fn client_chunk(
    track: &mut BoundaryTracker,
    chunk: &[u8],
    flow: &mut Flow,
) -> Result<(usize, bool), ProtocolError> {
    let mut seen = Vec::new();
    track
        .feed(chunk, b"", &mut seen)
        .map_err(|(tag, len)| ProtocolError::MessageLength {
            tag: char::from(tag),
            len,
        })?;
    let mut leaving = false;
    for s in &seen {
        flow.client_sent(s.tag);
        leaving |= s.tag == b'X';
    }
    let len = if leaving && chunk.ends_with(&TERMINATE) {
        chunk.len() - TERMINATE.len()
    } else {
        chunk.len()
    };
    Ok((len, leaving))
}

/// The client is gone: a clean server goes back to the pool (after the reset query in
/// session mode); any other is closed by dropping it.
async fn finish(c: &Client<'_>, mut h: Held, clean: bool) {
    if !clean {
        return;
    }
    if c.setup.mode == PoolMode::Session && !c.setup.reset_query.is_empty() {
        let reset = tokio::time::timeout(
            Duration::from_secs(5),
            apply(h.checkout.conn(), &c.setup.reset_query),
        )
        .await;
        if !matches!(reset, Ok(Ok(()))) {
            return;
        }
    }
    c.release(h);
}

fn lost(c: &Client<'_>) -> PgError {
    PgError::fatal(
        "08006",
        "rolegate: the server connection was lost in the middle of a transaction",
    )
    .with_detail(format!("listener {}", c.listener.name))
    .with_hint("Reconnect and retry the transaction.")
}
