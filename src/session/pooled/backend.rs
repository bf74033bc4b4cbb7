//! Server → client bytes of a pooled session. Follows message boundaries; decides at
//! each header, through [`Expected`], whether the message reaches the client, and slips
//! in the answers rolegate made up. Bodies stream through; only ReadyForQuery,
//! ParameterStatus, ErrorResponse and NoticeResponse are collected whole (when small), for
//! the session to follow.

use super::expect::Expected;
use crate::protocol::frame::{Body, Seen, HEADER_LEN, MAX_MESSAGE_LEN};
use crate::protocol::ProtocolError;

/// Largest body collected.
const MAX_COLLECTED: usize = 4096;

/// The server's half of a pooled session's stream.
#[derive(Debug, Default)]
pub struct Backend {
    header: [u8; HEADER_LEN],
    /// (Small types: this is part of every transaction's state.)
    header_len: u8,
    /// Body bytes of the current message still to come (at most `MAX_MESSAGE_LEN`).
    left: u32,
    /// The current message goes to the client.
    forward: bool,
    /// The server warned it stopped waiting for a commit's synchronous replication as its
    /// session was terminated (set by the relay; see `ending::lost`).
    pub committed_locally: bool,
    collecting: Option<(u8, Body)>,
    /// Where in the last fed chunk's output the last forwarded ErrorResponse began, when
    /// it began in that chunk (see [`Backend::error_at`]).
    error_at: Option<u32>,
    /// Where in the last fed chunk's output the last forwarded message began, when it
    /// began there (see [`Backend::partial_at`]).
    msg_at: Option<u32>,
    /// The caller holds back the unfinished message's bytes and puts them at the start
    /// of the next chunk's output (see [`Backend::hold`]).
    holding: bool,
}

impl Backend {
    /// Between messages.
    #[must_use]
    pub fn at_boundary(&self) -> bool {
        self.left == 0 && self.header_len == 0
    }

    /// The client's stream is between messages: the server is, or the message it is in
    /// the middle of does not go to the client, or its bytes so far are held back.
    #[must_use]
    pub fn client_at_boundary(&self) -> bool {
        self.left == 0 || !self.forward || self.holding
    }

    /// Where, in the output of the last [`feed`](Self::feed), the message the chunk ended
    /// in the middle of began, if it goes to the client and began in that output: the
    /// caller may send the output up to there and hold the rest back ([`hold`](Self::hold)).
    #[must_use]
    pub fn partial_at(&self) -> Option<usize> {
        if self.left > 0 && self.forward {
            self.msg_at.map(|at| at as usize)
        } else {
            None
        }
    }

    /// The caller holds back the output from [`partial_at`](Self::partial_at) on and
    /// puts it at the start of the next `feed`'s output.
    pub fn hold(&mut self) {
        self.holding = true;
    }

    /// Where, in the output of the last [`feed`](Self::feed), the last ErrorResponse it
    /// forwarded began, if that message began in that chunk: a caller that finds the
    /// error was not for the client cuts the output there.
    #[must_use]
    pub fn error_at(&self) -> Option<usize> {
        self.error_at.map(|at| at as usize)
    }

    /// Feeds a server chunk and says where what the client must get is: `out` (which may
    /// already hold bytes that go first: held-back ones) then, while every byte of the
    /// chunk goes to the client as it came (the usual case), the chunk itself up to an end
    /// ([`Fed::Chunk`]), with nothing copied; else `out` alone, to which the output was
    /// appended ([`Fed::Out`]; on an error, `out` ends with the whole messages before the
    /// bad one). Positions ([`partial_at`](Self::partial_at),
    /// [`error_at`](Self::error_at)) count from the start of `out`. ReadyForQuery,
    /// ParameterStatus, ErrorResponse and NoticeResponse messages are pushed to `seen`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        expected: &mut Expected,
        out: &mut Vec<u8>,
        seen: &mut Vec<Seen>,
    ) -> Result<Fed, ProtocolError> {
        self.error_at = None;
        // Held-back bytes start the output: the message they began goes on there.
        self.msg_at = if self.holding { Some(0) } else { None };
        // The output is `out` and `chunk[..same]` while no header begun in an earlier chunk
        // goes first and nothing is left out or made up.
        let mut same = (self.header_len == 0).then_some(0);
        self.holding = false;
        let r = self.feed_from(chunk, expected, out, seen, &mut same);
        if r.is_err() {
            copy_out(&mut same, chunk, out);
        }
        r?;
        if self.at_boundary() {
            if expected.made_due() {
                copy_out(&mut same, chunk, out);
            }
            expected.flush_made(out);
        }
        Ok(same.map_or(Fed::Out, Fed::Chunk))
    }

    fn feed_from(
        &mut self,
        chunk: &[u8],
        expected: &mut Expected,
        out: &mut Vec<u8>,
        seen: &mut Vec<Seen>,
        same: &mut Option<usize>,
    ) -> Result<(), ProtocolError> {
        let mut pos = 0;
        // Every message but ReadyForQuery, ErrorResponse and the asynchronous ones goes to
        // the client unlooked-at: see [`Expected::plain`]. Looked at again after each of
        // those.
        let mut plain = expected.plain();
        while pos < chunk.len() {
            if plain && self.left == 0 && self.header_len == 0 {
                if let Some(len) = plain_message(&chunk[pos..]) {
                    // (Whole: `msg_at` is for a message the chunk ends in.)
                    if let Some(end) = same {
                        *end += len;
                    } else {
                        out.extend_from_slice(&chunk[pos..pos + len]);
                    }
                    pos += len;
                    continue;
                }
            }
            if self.left > 0 {
                let take = (chunk.len() - pos).min(self.left as usize);
                let piece = &chunk[pos..pos + take];
                pos += take;
                if !self.forward {
                    copy_out(same, chunk, out);
                } else if let Some(end) = same {
                    *end = pos;
                } else {
                    out.extend_from_slice(piece);
                }
                if let Some((_, body)) = &mut self.collecting {
                    body.extend_from_slice(piece);
                }
                self.left -= take as u32; // at most `left`
                if self.left == 0 {
                    self.finish(seen);
                }
                continue;
            }
            let rest = &chunk[pos..];
            if self.header_len == 0 && rest.len() >= HEADER_LEN {
                // The whole header is here (the usual case): read in place.
                let (tag, len) = parse_header(rest)?;
                let body_len = (len - 4) as usize;
                let forward = self.decide(tag, expected, out, same, chunk);
                plain = expected.plain();
                let Some(body) = rest.get(HEADER_LEN..HEADER_LEN + body_len) else {
                    if forward {
                        self.forwarded(tag, same, out, &rest[..HEADER_LEN]);
                    }
                    self.body_follows(tag, body_len, seen);
                    pos += HEADER_LEN;
                    continue;
                };
                // The whole message too (the usual case): at once.
                let whole = &rest[..HEADER_LEN + body_len];
                if forward {
                    self.forwarded(tag, same, out, whole);
                }
                if collected(tag, body_len) {
                    seen.push(Seen {
                        tag,
                        body: Body::from_slice(body),
                    });
                }
                pos += whole.len();
                continue;
            }
            // A header in pieces, perhaps across chunks.
            let have = usize::from(self.header_len);
            let take = (HEADER_LEN - have).min(rest.len());
            self.header[have..have + take].copy_from_slice(&rest[..take]);
            self.header_len += take as u8; // at most HEADER_LEN
            pos += take;
            if usize::from(self.header_len) < HEADER_LEN {
                continue; // the chunk ended in the header
            }
            self.header_len = 0;
            // Part of it came in an earlier chunk: the output cannot be this one.
            copy_out(same, chunk, out);
            let header = self.header;
            let (tag, len) = parse_header(&header)?;
            if self.decide(tag, expected, out, same, chunk) {
                self.forwarded(tag, same, out, &header);
            }
            plain = expected.plain();
            self.body_follows(tag, (len - 4) as usize, seen);
        }
        Ok(())
    }

    /// Whether message `tag` goes to the client (made-up answers due before it are
    /// output first); one that does not ends the output being the chunk itself.
    #[inline]
    fn decide(
        &mut self,
        tag: u8,
        expected: &mut Expected,
        out: &mut Vec<u8>,
        same: &mut Option<usize>,
        chunk: &[u8],
    ) -> bool {
        self.forward = if expected.made_due() {
            copy_out(same, chunk, out);
            expected.on_backend(tag, out)
        } else {
            expected.answer(tag)
        };
        if !self.forward {
            copy_out(same, chunk, out);
        }
        self.forward
    }

    /// A message for the client begins: `bytes` (its header, perhaps its body too, as
    /// they came) are output.
    #[inline]
    fn forwarded(&mut self, tag: u8, same: &mut Option<usize>, out: &mut Vec<u8>, bytes: &[u8]) {
        let at = if let Some(end) = same {
            let at = out.len() + *end;
            *end += bytes.len();
            at
        } else {
            let at = out.len();
            out.extend_from_slice(bytes);
            at
        };
        // An output is one read's worth plus held-back bytes (KBs): it fits.
        self.msg_at = Some(at as u32);
        if tag == b'E' {
            self.error_at = self.msg_at;
        }
    }

    /// The message's body of `len` bytes comes in later reads.
    fn body_follows(&mut self, tag: u8, len: usize, seen: &mut Vec<Seen>) {
        self.left = len as u32; // checked against MAX_MESSAGE_LEN
        if collected(tag, len) {
            self.collecting = Some((tag, Body::with_capacity(len)));
        }
        if len == 0 {
            self.finish(seen);
        }
    }

    fn finish(&mut self, seen: &mut Vec<Seen>) {
        if let Some((tag, body)) = self.collecting.take() {
            seen.push(Seen { tag, body });
        }
    }
}

/// Where the output of a feed is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// `out` as it was, then the chunk up to this end, unchanged.
    Chunk(usize),
    /// `out`.
    Out,
}

/// A message's tag and length from its header (which `bytes` starts with), the length
/// checked.
pub(super) fn parse_header(bytes: &[u8]) -> Result<(u8, u32), ProtocolError> {
    let tag = bytes[0];
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if !(4..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(ProtocolError::MessageLength {
            tag: char::from(tag),
            len,
        });
    }
    Ok((tag, len))
}

/// The length of the whole message `bytes` starts with, if it is all there and none
/// that needs a look under [`Expected::plain`] (any but ReadyForQuery, ErrorResponse,
/// NoticeResponse, ParameterStatus and NotificationResponse). A bad length is left to the
/// caller's checks.
#[inline]
fn plain_message(bytes: &[u8]) -> Option<usize> {
    let (tag, len) = parse_header(bytes.get(..HEADER_LEN)?).ok()?;
    if matches!(tag, b'Z' | b'E' | b'N' | b'S' | b'A') {
        return None;
    }
    let whole = len as usize + 1;
    (whole <= bytes.len()).then_some(whole)
}

/// Whether a message with `tag` and a body of `len` bytes goes to `seen`.
fn collected(tag: u8, len: usize) -> bool {
    matches!(tag, b'Z' | b'S' | b'E' | b'N') && len <= MAX_COLLECTED
}

/// The output stops being the chunk itself: what it was so far goes to `out`.
pub(super) fn copy_out(same: &mut Option<usize>, chunk: &[u8], out: &mut Vec<u8>) {
    if let Some(end) = same.take() {
        out.extend_from_slice(&chunk[..end]);
    }
}

#[cfg(test)]
mod tests;
