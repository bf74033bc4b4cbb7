//! Client → server bytes of a pooled session. Follows message boundaries and the
//! protocol flow; with statement tracking on (transaction mode), rewrites the names of
//! named prepared statements to their server names and prepares them on the lent server
//! when it lacks them. Everything else streams through unchanged, bodies uncopied into
//! any intermediate buffer but the output.

use std::num::NonZeroUsize;

use bytes::Bytes;

use super::backend::{copy_out, parse_header, Fed};
use super::expect::{Action, Expect, Expected, Req};
use crate::pool::prepared::{ClientStatements, ServerStatements, Statement};
use crate::protocol::frame::HEADER_LEN;
use crate::protocol::ProtocolError;

/// Where the lent server is in the client's protocol flow.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// ReadyForQuery messages still owed by the server (one per Query, Sync, FunctionCall).
    pub pending: u32,
    /// Extended-protocol messages were sent since the last Sync.
    pub extended: bool,
    /// Transaction status of the last ReadyForQuery: `I`dle, in `T`ransaction, `E`rror.
    pub status: u8,
}

impl Default for Flow {
    fn default() -> Self {
        Self {
            pending: 0,
            extended: false,
            status: b'I',
        }
    }
}

impl Flow {
    /// Nothing owed and no transaction open: the server may serve someone else.
    #[must_use]
    pub fn idle(self) -> bool {
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

enum State {
    Header,
    /// Streaming the body of a message that needs no change.
    Pass(u64),
    /// Collecting a message that may be rewritten.
    Collect {
        tag: u8,
        left: usize,
        body: Vec<u8>,
    },
}

/// The lent server's side of the work: its statements and the answers it owes.
pub struct Ctx<'a> {
    pub server: &'a mut ServerStatements,
    pub expected: &'a mut Expected,
    pub flow: &'a mut Flow,
}

/// The client's half of a pooled session's stream.
pub struct Frontend {
    header: [u8; HEADER_LEN],
    /// (Small types here: the frontend lives in every idle session.)
    header_len: u8,
    state: State,
    /// Server-side statement cache size; `None` = statement names pass through.
    capacity: Option<NonZeroUsize>,
    pub statements: ClientStatements,
}

impl Frontend {
    #[must_use]
    pub fn new(capacity: Option<usize>) -> Self {
        Self {
            header: [0; HEADER_LEN],
            header_len: 0,
            state: State::Header,
            capacity: capacity.and_then(NonZeroUsize::new),
            statements: ClientStatements::default(),
        }
    }

    /// Between messages.
    #[must_use]
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header) && self.header_len == 0
    }

    /// Answers a chunk of named Parse messages followed by Sync without a server, when
    /// every statement is `known` to parse (outside a transaction only: the caller holds
    /// no server). Returns the reply, or None when a server is needed.
    pub fn answer_locally(
        &mut self,
        mut chunk: &[u8],
        known: impl Fn(&Bytes) -> bool,
    ) -> Option<Vec<u8>> {
        if self.capacity.is_none() || !self.at_boundary() {
            return None;
        }
        let mut parsed = Vec::new();
        loop {
            let (&tag, rest) = chunk.split_first()?;
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let body = rest.get(4..len)?;
            chunk = &rest[len..];
            match tag {
                b'P' => {
                    let (name, Some(tail)) = split_cstr(body) else {
                        return None;
                    };
                    let stmt = Statement::from_parse_rest(tail);
                    if name.is_empty() || !known(&stmt.server_name) {
                        return None;
                    }
                    parsed.push((Bytes::copy_from_slice(name), stmt));
                }
                b'H' => {}
                b'S' if chunk.is_empty() && !parsed.is_empty() => break,
                _ => return None,
            }
        }
        let mut reply = Vec::with_capacity(parsed.len() * 5 + 6);
        for (name, stmt) in parsed {
            self.statements.insert(name, stmt);
            reply.extend_from_slice(&[b'1', 0, 0, 0, 4]);
        }
        reply.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
        Some(reply)
    }

    /// Feeds a client chunk and says where what the server must get is: the chunk itself
    /// up to an end while every byte so far goes as it came (the usual case: nothing
    /// copied), else `out`, to which it was appended (see [`Fed`]). True when the client
    /// sent Terminate (which is not forwarded: the server stays pooled).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        ctx: &mut Ctx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(bool, Fed), ProtocolError> {
        // As for the backend: only when nothing of this output came before the chunk.
        let mut same = (out.is_empty() && self.at_boundary()).then_some(0);
        let leaving = self.feed_from(chunk, ctx, out, &mut same)?;
        Ok((leaving, same.map_or(Fed::Out, Fed::Chunk)))
    }

    fn feed_from(
        &mut self,
        chunk: &[u8],
        ctx: &mut Ctx<'_>,
        out: &mut Vec<u8>,
        same: &mut Option<usize>,
    ) -> Result<bool, ProtocolError> {
        let mut pos = 0;
        while pos < chunk.len() {
            match &mut self.state {
                State::Pass(left) => {
                    let take =
                        (chunk.len() - pos).min(usize::try_from(*left).unwrap_or(usize::MAX));
                    if let Some(end) = same {
                        *end += take;
                    } else {
                        out.extend_from_slice(&chunk[pos..pos + take]);
                    }
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = State::Header;
                    }
                    pos += take;
                }
                State::Collect { left, body, .. } => {
                    let take = (chunk.len() - pos).min(*left);
                    if body.capacity() == 0 {
                        body.reserve((*left).min(64 * 1024));
                    }
                    body.extend_from_slice(&chunk[pos..pos + take]);
                    *left -= take;
                    pos += take;
                    if *left == 0 {
                        if let State::Collect { tag, body, .. } =
                            std::mem::replace(&mut self.state, State::Header)
                        {
                            copy_out(same, chunk, out);
                            self.rewrite(tag, &body, ctx, out);
                        }
                    }
                }
                State::Header => {
                    let have = usize::from(self.header_len);
                    let take = (HEADER_LEN - have).min(chunk.len() - pos);
                    self.header[have..have + take].copy_from_slice(&chunk[pos..pos + take]);
                    // At most HEADER_LEN (5): fits.
                    self.header_len = u8::try_from(have + take).unwrap_or(u8::MAX);
                    pos += take;
                    if usize::from(self.header_len) < HEADER_LEN {
                        continue;
                    }
                    self.header_len = 0;
                    if take < HEADER_LEN {
                        // Part of the header came in an earlier chunk.
                        copy_out(same, chunk, out);
                    }
                    if self.start(ctx, out, same)? {
                        return Ok(true);
                    }
                    // A message to rewrite that is whole in this chunk: used in place.
                    if let State::Collect { tag, left, .. } = self.state {
                        if left <= chunk.len() - pos {
                            self.state = State::Header;
                            let body = &chunk[pos..pos + left];
                            match same {
                                // A query goes as it came (the usual case).
                                Some(end) if tag == b'Q' => {
                                    self.query(body, ctx);
                                    *end += HEADER_LEN + left;
                                }
                                _ => {
                                    copy_out(same, chunk, out);
                                    self.rewrite(tag, body, ctx, out);
                                }
                            }
                            pos += left;
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// A whole header arrived; returns true for Terminate. A message that is not
    /// collected has its header output.
    fn start(
        &mut self,
        ctx: &mut Ctx<'_>,
        out: &mut Vec<u8>,
        same: &mut Option<usize>,
    ) -> Result<bool, ProtocolError> {
        let (tag, len) = parse_header(&self.header)?;
        ctx.flow.client_sent(tag);
        if tag == b'X' {
            return Ok(true);
        }
        let body = (len - 4) as usize;
        if self.capacity.is_some() {
            if matches!(tag, b'P' | b'B' | b'D' | b'C' | b'Q') {
                self.state = State::Collect {
                    tag,
                    left: body,
                    body: Vec::new(), // allocated if the body spans chunks
                };
                return Ok(false); // (an empty body: handled by the caller, in place)
            }
            let req = match tag {
                b'E' => Some(Req::Execute),
                b'S' => Some(Req::Sync),
                b'F' => Some(Req::Function),
                _ => None,
            };
            if let Some(req) = req {
                ctx.expected.push(Expect::new(req, Action::Forward));
            }
        }
        if let Some(end) = same {
            *end += HEADER_LEN;
        } else {
            out.extend_from_slice(&self.header);
        }
        if body > 0 {
            self.state = State::Pass(body as u64);
        }
        Ok(false)
    }
}

/// The NUL-terminated string at the start of `b`, and what follows its NUL (None if
/// there is no NUL).
fn split_cstr(b: &[u8]) -> (&[u8], Option<&[u8]>) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    }
}

fn cstr(b: &[u8]) -> &[u8] {
    split_cstr(b).0
}

mod rewrite;

#[cfg(test)]
mod tests;
