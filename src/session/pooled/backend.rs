//! Server → client bytes of a pooled session. Follows message boundaries; decides at
//! each header, through [`Expected`], whether the message reaches the client, and slips
//! in the answers rolegate made up. Bodies stream through; only ReadyForQuery,
//! ParameterStatus, ErrorResponse and NoticeResponse are collected whole (when small), for
//! the session to follow.

use super::expect::Expected;
use crate::protocol::frame::{Body, Seen, HEADER_LEN, MAX_MESSAGE_LEN};
use crate::protocol::ProtocolError;

/// Largest body collected.
const MAX_COLLECTED: u32 = 4096;

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

    /// Feeds a server chunk: appends what the client must get to `out`, and pushes
    /// ReadyForQuery, ParameterStatus, ErrorResponse and NoticeResponse messages to `seen`.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        expected: &mut Expected,
        out: &mut Vec<u8>,
        seen: &mut Vec<Seen>,
    ) -> Result<(), ProtocolError> {
        self.error_at = None;
        // Held-back bytes start the output: the message they began goes on there.
        self.msg_at = if self.holding { Some(0) } else { None };
        self.holding = false;
        while !chunk.is_empty() {
            if self.left > 0 {
                let take = chunk
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                if self.forward {
                    out.extend_from_slice(&chunk[..take]);
                }
                if let Some((_, body)) = &mut self.collecting {
                    body.extend_from_slice(&chunk[..take]);
                }
                self.left -= u32::try_from(take).unwrap_or(u32::MAX);
                chunk = &chunk[take..];
                if self.left == 0 {
                    self.finish(seen);
                }
                continue;
            }
            let have = usize::from(self.header_len);
            let take = (HEADER_LEN - have).min(chunk.len());
            self.header[have..have + take].copy_from_slice(&chunk[..take]);
            self.header_len += take as u8; // at most HEADER_LEN
            chunk = &chunk[take..];
            if usize::from(self.header_len) == HEADER_LEN {
                self.header_len = 0;
                self.start(expected, out, seen)?;
            }
        }
        if self.at_boundary() {
            expected.flush_made(out);
        }
        Ok(())
    }

    fn start(
        &mut self,
        expected: &mut Expected,
        out: &mut Vec<u8>,
        seen: &mut Vec<Seen>,
    ) -> Result<(), ProtocolError> {
        let tag = self.header[0];
        let len = u32::from_be_bytes([
            self.header[1],
            self.header[2],
            self.header[3],
            self.header[4],
        ]);
        if !(4..=MAX_MESSAGE_LEN).contains(&len) {
            return Err(ProtocolError::MessageLength {
                tag: char::from(tag),
                len,
            });
        }
        self.forward = expected.on_backend(tag, out);
        if self.forward {
            // An output is one read's worth plus held-back bytes (KBs): it fits.
            self.msg_at = Some(out.len() as u32);
            if tag == b'E' {
                self.error_at = self.msg_at;
            }
            out.extend_from_slice(&self.header);
        }
        self.left = len - 4;
        if matches!(tag, b'Z' | b'S' | b'E' | b'N') && len - 4 <= MAX_COLLECTED {
            self.collecting = Some((tag, Body::with_capacity((len - 4) as usize)));
        }
        if self.left == 0 {
            self.finish(seen);
        }
        Ok(())
    }

    fn finish(&mut self, seen: &mut Vec<Seen>) {
        if let Some((tag, body)) = self.collecting.take() {
            seen.push(Seen { tag, body });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::expect::{Action, Expect, Req};
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(u32::try_from(body.len()).unwrap() + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn split_anywhere_gives_the_same_output() {
        let mut stream = Vec::new();
        for m in [
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'D', b"\0\x01\0\0\0\x03abc"),
            msg(b'S', b"TimeZone\0UTC\0"),
            msg(b'C', b"SELECT 1\0"),
            msg(b'Z', b"I"),
        ] {
            stream.extend(m);
        }
        let mut want = Vec::new();
        for m in [
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'D', b"\0\x01\0\0\0\x03abc"),
            msg(b'S', b"TimeZone\0UTC\0"),
            msg(b'C', b"SELECT 1\0"),
            msg(b'3', b""),
            msg(b'Z', b"I"),
        ] {
            want.extend(m);
        }
        for cut in 0..stream.len() {
            let mut q = Expected::default();
            q.push(Expect::new(Req::Parse, Action::Make(b'1')));
            q.push(Expect::new(Req::Parse, Action::Swallow));
            q.push(Expect::new(Req::Bind, Action::Forward));
            q.push(Expect::new(Req::Execute, Action::Forward));
            q.push(Expect::new(Req::Close, Action::Make(b'3')));
            q.push(Expect::new(Req::Sync, Action::Forward));
            let (mut b, mut out, mut seen) = (Backend::default(), Vec::new(), Vec::new());
            b.feed(&stream[..cut], &mut q, &mut out, &mut seen).unwrap();
            b.feed(&stream[cut..], &mut q, &mut out, &mut seen).unwrap();
            assert_eq!(out, want, "cut at {cut}");
            assert_eq!(seen.len(), 2);
            assert_eq!(seen[1].body.as_slice(), b"I");
            assert!(q.is_empty() && b.at_boundary());
        }
    }

    /// Whole messages only: true when `out` is a run of complete messages.
    fn whole(mut out: &[u8]) -> bool {
        while out.len() >= 5 {
            let len = u32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize;
            if out.len() < len + 1 {
                return false;
            }
            out = &out[len + 1..];
        }
        out.is_empty()
    }

    #[test]
    fn held_back_messages_leave_every_output_whole() {
        let big = vec![b'x'; 300];
        let mut stream = Vec::new();
        for m in [
            msg(b'T', b"\0\x01a\0"),
            msg(b'D', &big),
            msg(b'D', b"\0\x01\0\0\0\x01y"),
            msg(b'C', b"SELECT 2\0"),
            msg(b'Z', b"I"),
        ] {
            stream.extend(m);
        }
        // Every cut in two and in three: what the relay sends (the output up to
        // `partial_at`, the rest held and put first in the next output) is whole messages
        // each time, and the same bytes in all.
        for a in 0..=stream.len() {
            for b in (a..=stream.len()).step_by(7) {
                let mut q = Expected::default();
                q.push(Expect::new(Req::Sync, Action::Forward));
                let mut back = Backend::default();
                let (mut sent, mut tail) = (Vec::new(), Vec::new());
                for chunk in [&stream[..a], &stream[a..b], &stream[b..]] {
                    let mut out = std::mem::take(&mut tail);
                    back.feed(chunk, &mut q, &mut out, &mut Vec::new()).unwrap();
                    if let Some(at) = back.partial_at() {
                        tail = out.split_off(at);
                        back.hold();
                    }
                    assert!(whole(&out), "cuts {a}, {b}: {out:?}");
                    assert!(back.client_at_boundary(), "cuts {a}, {b}");
                    sent.extend(out);
                }
                assert_eq!(sent, stream, "cuts {a}, {b}");
                assert!(tail.is_empty() && back.at_boundary());
            }
        }
        // Not held: the client's stream is in the middle of the message.
        let mut q = Expected::default();
        q.push(Expect::new(Req::Sync, Action::Forward));
        let mut back = Backend::default();
        let mut out = Vec::new();
        back.feed(&stream[..20], &mut q, &mut out, &mut Vec::new())
            .unwrap();
        assert_eq!(
            back.partial_at(),
            Some(9),
            "the DataRow began after the RowDescription"
        );
        assert!(!back.client_at_boundary());
        out.clear();
        back.feed(&stream[20..30], &mut q, &mut out, &mut Vec::new())
            .unwrap();
        assert_eq!(back.partial_at(), None, "it began in an earlier output");
    }

    #[test]
    fn impossible_length_is_an_error() {
        let mut q = Expected::default();
        let r = Backend::default().feed(
            &[b'Z', 0, 0, 0, 1],
            &mut q,
            &mut Vec::new(),
            &mut Vec::new(),
        );
        assert!(r.is_err());
    }
}
