//! Sending a transaction's first request again, elsewhere, when the server refused it
//! without running it. During a switchover the old primary shuts down (terminating its
//! sessions with 57P01) or, once demoted, rejects writes (25006); a request that got only
//! such an error as its very first answer, and started a new transaction, did nothing
//! and can be run on the new primary. The client sees latency, not an error.

use super::frontend::Flow;
use crate::protocol::io::parse_error_fields;

/// At most this many times per request.
pub const MAX_REPLAYS: u8 = 3;

/// The client bytes that began a transaction, kept until the server's first answer. They
/// stay in the relay's read buffer (nothing is read from the client meanwhile, and the
/// buffers are kept across a retry), so only their length is kept here.
#[derive(Debug)]
pub struct Replay {
    /// (A u32, as the relay's read buffer is a few KB: this is part of every
    /// transaction's state.)
    len: u32,
    /// The flow before the chunk was sent.
    pub flow: Flow,
    pub tries: u8,
    due: bool,
}

impl Replay {
    #[must_use]
    pub fn new(len: usize, flow: Flow) -> Self {
        Self {
            len: u32::try_from(len).unwrap_or(u32::MAX),
            flow,
            tries: 0,
            due: false,
        }
    }

    /// The same request, to be sent again.
    #[must_use]
    pub fn again(mut self) -> Self {
        self.tries += 1;
        self.due = true;
        self
    }

    /// A resend is due.
    #[must_use]
    pub fn is_due(&self) -> bool {
        self.due
    }

    /// When a resend is due, its length (and it is no longer due).
    pub fn due(&mut self) -> Option<usize> {
        std::mem::take(&mut self.due).then_some(self.len as usize)
    }
}

/// The SQLSTATE, when `first` (the server's first bytes after the request) begins with a
/// whole ErrorResponse saying the request was not run: the server is shutting down or
/// cannot take connections (57P01, 57P02, 57P03), or, on a primary listener, it is
/// read-only (25006: the member was demoted under us).
#[must_use]
pub fn refused_unrun(first: &[u8], primary: bool) -> Option<String> {
    if first.first() != Some(&b'E') || first.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([first[1], first[2], first[3], first[4]]) as usize;
    let body = first.get(5..=len)?;
    let code = parse_error_fields(body)
        .into_iter()
        .find(|(k, _)| *k == b'C')
        .map(|(_, v)| v)?;
    let refused =
        matches!(code.as_str(), "57P01" | "57P02" | "57P03") || (primary && code == "25006");
    refused.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str) -> Vec<u8> {
        let body = format!("SFATAL\0C{code}\0Mterminating connection\0\0");
        let mut v = vec![b'E'];
        v.extend_from_slice(&(u32::try_from(body.len()).unwrap() + 4).to_be_bytes());
        v.extend_from_slice(body.as_bytes());
        v
    }

    #[test]
    fn only_refusals_that_ran_nothing_are_replayed() {
        assert_eq!(
            refused_unrun(&error("57P01"), false).as_deref(),
            Some("57P01")
        );
        assert_eq!(
            refused_unrun(&error("25006"), true).as_deref(),
            Some("25006")
        );
        assert_eq!(refused_unrun(&error("25006"), false), None);
        assert_eq!(refused_unrun(&error("23505"), true), None);
        // A notice first (e.g. "the transaction has already committed locally"): never.
        let mut notice = vec![b'N', 0, 0, 0, 4];
        notice.extend(error("57P01"));
        assert_eq!(refused_unrun(&notice, true), None);
        // A cut message: not enough to know.
        let e = error("57P01");
        assert_eq!(refused_unrun(&e[..e.len() - 3], true), None);
    }

    #[test]
    fn due_once_per_again() {
        let mut r = Replay::new(2, Flow::default());
        assert_eq!(r.due(), None);
        let mut r = r.again();
        assert_eq!((r.due(), r.due(), r.tries), (Some(2), None, 1));
    }
}
