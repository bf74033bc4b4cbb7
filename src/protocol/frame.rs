//! Message boundaries of the v3 protocol after startup: a type byte and a big-endian
//! length that counts itself but not the type byte.

/// Type byte + length.
pub const HEADER_LEN: usize = 5;
/// PostgreSQL's own limit for most messages is 1 GB; anything larger is garbage.
pub const MAX_MESSAGE_LEN: u32 = 1 << 30;

pub const BACKEND_KEY_DATA: u8 = b'K';
pub const READY_FOR_QUERY: u8 = b'Z';
pub const ERROR_RESPONSE: u8 = b'E';

/// A header with a length no message has: the stream is not (or no longer) PostgreSQL's
/// protocol.
#[derive(Debug, PartialEq, Eq)]
pub struct BadMessage {
    pub tag: u8,
    pub len: u32,
    /// Where the bad header began in the chunk fed, if it began there: the bytes before it
    /// end on a message boundary. `None` when it began in an earlier chunk.
    pub before: Option<usize>,
}

/// Follows message boundaries in a byte stream without copying or decoding bodies.
/// Feed every chunk in order; it reports whole small messages of interest as it goes.
#[derive(Debug, Default)]
pub struct BoundaryTracker {
    /// Bytes of the current message body still to come (0 = at a boundary or in a header).
    body_left: u64,
    /// A header split across chunks.
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Body of a message of interest being collected (only small ones).
    collecting: Option<(u8, Body)>,
    /// Report every message's tag at its header, with no body.
    tags_only: bool,
}

/// The body of a [`Seen`] message: inline up to 32 bytes (ReadyForQuery, most
/// ParameterStatus), so following a transaction's end does not allocate.
pub type Body = smallvec::SmallVec<[u8; 32]>;

/// A small message the caller asked to see, whole.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub tag: u8,
    pub body: Body,
}

impl BoundaryTracker {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker that reports the tag of every message (body left empty), whatever its size.
    #[must_use]
    pub fn tags_only() -> Self {
        Self {
            tags_only: true,
            ..Self::default()
        }
    }

    /// True when the bytes fed so far end exactly at a message boundary.
    #[must_use]
    pub fn at_boundary(&self) -> bool {
        self.body_left == 0 && self.header_len == 0
    }

    /// Feeds `chunk`; messages whose tag is in `wanted` (and body <= 1 KiB) are pushed to `seen`.
    /// Fails on an impossible length (the stream is not PostgreSQL).
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        wanted: &[u8],
        seen: &mut Vec<Seen>,
    ) -> Result<(), BadMessage> {
        let whole = chunk.len();
        while !chunk.is_empty() {
            if self.body_left > 0 {
                let take = chunk
                    .len()
                    .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
                if let Some((_, body)) = &mut self.collecting {
                    body.extend_from_slice(&chunk[..take]);
                }
                self.body_left -= take as u64;
                chunk = &chunk[take..];
                if self.body_left == 0 {
                    if let Some((tag, body)) = self.collecting.take() {
                        seen.push(Seen { tag, body });
                    }
                }
                continue;
            }
            let need = HEADER_LEN - self.header_len;
            let take = need.min(chunk.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&chunk[..take]);
            self.header_len += take;
            chunk = &chunk[take..];
            if self.header_len == HEADER_LEN {
                self.header_len = 0;
                if let Err((tag, len)) = self.start_message(wanted, seen) {
                    let before = (whole - chunk.len()).checked_sub(HEADER_LEN);
                    return Err(BadMessage { tag, len, before });
                }
            }
        }
        Ok(())
    }

    fn start_message(&mut self, wanted: &[u8], seen: &mut Vec<Seen>) -> Result<(), (u8, u32)> {
        let tag = self.header[0];
        let len = u32::from_be_bytes([
            self.header[1],
            self.header[2],
            self.header[3],
            self.header[4],
        ]);
        if !(4..=MAX_MESSAGE_LEN).contains(&len) {
            return Err((tag, len));
        }
        self.body_left = u64::from(len - 4);
        if self.tags_only {
            seen.push(Seen {
                tag,
                body: Body::new(),
            });
        } else if wanted.contains(&tag) && len - 4 <= 1024 {
            if self.body_left == 0 {
                seen.push(Seen {
                    tag,
                    body: Body::new(),
                });
            } else {
                self.collecting = Some((tag, Body::with_capacity((len - 4) as usize)));
            }
        }
        Ok(())
    }
}

/// Parses a BackendKeyData body: process id and secret key (4 bytes in protocol 3.0,
/// up to 256 in 3.2).
#[must_use]
pub fn parse_backend_key(body: &[u8]) -> Option<(i32, Vec<u8>)> {
    if body.len() < 8 || body.len() > 4 + 256 {
        return None;
    }
    let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    Some((pid, body[4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn tracks_boundaries_across_any_split() {
        let mut stream = msg(b'R', &[0, 0, 0, 0]);
        stream.extend(msg(b'S', b"client_encoding\0UTF8\0"));
        stream.extend(msg(b'K', &[0, 0, 0, 42, 1, 2, 3, 4]));
        stream.extend(msg(b'Z', b"I"));
        for split in 0..=stream.len() {
            let mut t = BoundaryTracker::new();
            let mut seen = Vec::new();
            t.feed(&stream[..split], b"KZ", &mut seen).unwrap();
            t.feed(&stream[split..], b"KZ", &mut seen).unwrap();
            assert!(t.at_boundary(), "split at {split}");
            assert_eq!(seen.len(), 2, "split at {split}");
            assert_eq!(
                parse_backend_key(&seen[0].body),
                Some((42, vec![1, 2, 3, 4]))
            );
            assert_eq!(
                seen[1],
                Seen {
                    tag: b'Z',
                    body: Body::from_slice(b"I")
                }
            );
        }
    }

    #[test]
    fn byte_by_byte_reports_mid_message() {
        let stream = msg(b'D', b"abcdef");
        let mut t = BoundaryTracker::new();
        let mut seen = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            t.feed(std::slice::from_ref(b), b"", &mut seen).unwrap();
            assert_eq!(t.at_boundary(), i + 1 == stream.len());
        }
    }

    #[test]
    fn tags_only_reports_every_message_whatever_its_size() {
        let mut stream = msg(b'P', &[b'x'; 5000]);
        stream.extend(msg(b'B', b"b"));
        stream.extend(msg(b'S', b""));
        let mut t = BoundaryTracker::tags_only();
        let mut seen = Vec::new();
        for chunk in stream.chunks(7) {
            t.feed(chunk, b"", &mut seen).unwrap();
        }
        let tags: Vec<u8> = seen.iter().map(|s| s.tag).collect();
        assert_eq!(tags, b"PBS");
        assert!(t.at_boundary());
    }

    #[test]
    fn rejects_impossible_lengths() {
        let mut t = BoundaryTracker::new();
        let bad = |tag, len, before| Err(BadMessage { tag, len, before });
        assert_eq!(
            t.feed(&[b'D', 0, 0, 0, 3], b"", &mut Vec::new()),
            bad(b'D', 3, Some(0))
        );
        // After a whole message in the same chunk: the bytes before the bad one are whole.
        let mut t = BoundaryTracker::new();
        let mut chunk = msg(b'C', b"SELECT 1\0");
        let good = chunk.len();
        chunk.extend_from_slice(&[b'D', 0, 0, 0, 2, 9, 9]);
        assert_eq!(
            t.feed(&chunk, b"", &mut Vec::new()),
            bad(b'D', 2, Some(good))
        );
        // A bad header that began in an earlier chunk: no boundary in this one.
        let mut t = BoundaryTracker::new();
        t.feed(&[b'D', 0], b"", &mut Vec::new()).unwrap();
        assert_eq!(t.feed(&[0, 0, 1], b"", &mut Vec::new()), bad(b'D', 1, None));
        let mut t = BoundaryTracker::new();
        assert!(t
            .feed(&[b'D', 0xff, 0xff, 0xff, 0xff], b"", &mut Vec::new())
            .is_err());
    }

    #[test]
    fn backend_key_lengths() {
        assert_eq!(parse_backend_key(&[0, 0, 0, 1]), None);
        assert!(parse_backend_key(&[0; 4 + 32]).is_some());
        assert_eq!(parse_backend_key(&[0; 4 + 257]), None);
    }
}
