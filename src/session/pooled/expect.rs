//! The responses a lent server still owes, in order, and how each is to be treated:
//! forwarded, dropped (it answers a message rolegate injected), or replaced by one
//! rolegate makes up (for a message it answered itself). This keeps the client's view of
//! the extended protocol exact while statements are re-prepared behind its back.

use std::collections::VecDeque;

use bytes::Bytes;

/// A request whose response is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req {
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Sync,
    Query,
    Function,
}

impl Req {
    /// Whether backend message `tag` is the last one answering this request.
    fn completed_by(self, tag: u8) -> bool {
        match self {
            Self::Parse => tag == b'1' || tag == b'E',
            Self::Bind => tag == b'2' || tag == b'E',
            Self::Describe => matches!(tag, b'T' | b'n' | b'E'),
            Self::Execute => matches!(tag, b'C' | b'I' | b's' | b'E'),
            Self::Close => tag == b'3' || tag == b'E',
            Self::Sync | Self::Query | Self::Function => tag == b'Z',
        }
    }

    /// Requests whose error does not put the server into skip-to-Sync mode.
    fn self_contained(self) -> bool {
        matches!(self, Self::Query | Self::Function | Self::Sync)
    }
}

/// What to do with the answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward the server's answer.
    Forward,
    /// Drop the server's answer (errors still go through): rolegate injected the request.
    Swallow,
    /// Nothing comes from the server: send the client this empty-bodied message.
    Make(u8),
}

/// One awaited response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub req: Req,
    pub action: Action,
    /// The server statement a Parse creates or a Close removes.
    pub stmt: Option<Bytes>,
    /// A Query that empties the server's statements when it succeeds (DISCARD/DEALLOCATE ALL).
    pub resets: bool,
    errored: bool,
}

impl Expect {
    #[must_use]
    pub fn new(req: Req, action: Action) -> Self {
        Self {
            req,
            action,
            stmt: None,
            resets: false,
            errored: false,
        }
    }

    #[must_use]
    pub fn with_stmt(mut self, stmt: Bytes) -> Self {
        self.stmt = Some(stmt);
        self
    }
}

/// What an answer showed about one server statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Parse succeeded: the server has it (and it is valid SQL).
    Prepared,
    /// Parse never ran or failed: the server does not have it.
    NotPrepared,
    /// Eviction Close never ran: the server still has it.
    StillPrepared,
}

/// What happened to server statements as answers arrived.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// In the order they were seen. (One list, not one per kind: an empty one is dropped
    /// with every transaction's state.)
    pub changes: Vec<(Effect, Bytes)>,
    /// DISCARD ALL / DEALLOCATE ALL succeeded: the server has none.
    pub reset: bool,
}

impl Effects {
    /// Nothing happened to the server's statements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.reset
    }

    /// The statements with `effect`, in the order seen.
    #[must_use]
    pub fn of(&self, effect: Effect) -> Vec<Bytes> {
        let with = self.changes.iter().filter(|(e, _)| *e == effect);
        with.map(|(_, s)| s.clone()).collect()
    }

    fn add(&mut self, effect: Effect, stmt: Option<Bytes>) {
        if let Some(s) = stmt {
            self.changes.push((effect, s));
        }
    }
}

/// The queue of awaited responses of one lent server.
#[derive(Debug, Default)]
pub struct Expected {
    queue: VecDeque<Expect>,
    pub effects: Effects,
}

/// Messages a backend sends at any time, answering nothing.
fn asynchronous(tag: u8) -> bool {
    matches!(tag, b'N' | b'S' | b'A')
}

impl Expected {
    /// Hands the queue's allocation to `spare` while nothing is owed, so that an idle
    /// client keeps none ([`Self::unstash`] takes one back).
    pub fn stash(&mut self, spare: &mut VecDeque<Expect>) {
        if self.queue.is_empty() && spare.capacity() == 0 {
            std::mem::swap(&mut self.queue, spare);
        }
    }

    /// Takes an empty allocation from `spare` if the queue has none.
    pub fn unstash(&mut self, spare: &mut VecDeque<Expect>) {
        if self.queue.capacity() == 0 && spare.is_empty() {
            std::mem::swap(&mut self.queue, spare);
        }
    }

    pub fn push(&mut self, e: Expect) {
        self.queue.push_back(e);
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Decides, at its header, whether backend message `tag` goes to the client; made-up
    /// answers due before it are appended to `out` first.
    pub fn on_backend(&mut self, tag: u8, out: &mut Vec<u8>) -> bool {
        if asynchronous(tag) {
            return true;
        }
        self.flush_made(out);
        self.answer(tag)
    }

    /// [`on_backend`](Self::on_backend) when no made-up answer is due
    /// ([`made_due`](Self::made_due) is false), so nothing is appended. (Inline: it runs
    /// at every server message.)
    #[inline]
    pub fn answer(&mut self, tag: u8) -> bool {
        if asynchronous(tag) {
            return true;
        }
        let Some(front) = self.queue.front_mut() else {
            return true;
        };
        if tag == b'E' {
            front.errored = true;
        }
        let forward = matches!(front.action, Action::Forward) || tag == b'E';
        if front.req.completed_by(tag) {
            self.completed(tag);
        }
        forward
    }

    /// The request at the front is answered (by `tag`, its last answer).
    fn completed(&mut self, tag: u8) {
        let Some(done) = self.queue.pop_front() else {
            return;
        };
        if tag == b'E' {
            if done.req == Req::Parse {
                self.effects.add(Effect::NotPrepared, done.stmt);
            }
            if !done.req.self_contained() {
                self.skip_to_sync();
            }
            return;
        }
        if done.resets && !done.errored {
            self.effects.reset = true;
        }
        if done.req == Req::Parse {
            self.effects.add(Effect::Prepared, done.stmt);
        }
    }

    /// Whether every server message but ReadyForQuery, ErrorResponse and the asynchronous
    /// ones is forwarded without a look until one of those comes: no made-up answer is
    /// due, and nothing is owed or the request owed first is forwarded and answered only
    /// by ReadyForQuery (a Query, a Sync, a FunctionCall), so no other message changes
    /// the queue.
    #[inline]
    #[must_use]
    pub fn plain(&self) -> bool {
        match self.queue.front() {
            None => true,
            Some(e) => {
                e.action == Action::Forward
                    && matches!(e.req, Req::Query | Req::Sync | Req::Function)
            }
        }
    }

    /// Whether a made-up answer is at the front of the queue ([`flush_made`](Self::flush_made)
    /// would append something).
    #[inline]
    #[must_use]
    pub fn made_due(&self) -> bool {
        matches!(
            self.queue.front(),
            Some(Expect {
                action: Action::Make(_),
                ..
            })
        )
    }

    /// Made-up answers at the front of the queue are due now (everything before them
    /// was answered); appends them to `out`.
    /// (Inline: it runs at every server message's header, and almost always finds a
    /// forwarded answer first and stops.)
    #[inline]
    pub fn flush_made(&mut self, out: &mut Vec<u8>) {
        while let Some(Expect {
            action: Action::Make(t),
            ..
        }) = self.queue.front()
        {
            out.extend_from_slice(&[*t, 0, 0, 0, 4]);
            self.queue.pop_front();
        }
    }

    /// After an error the server ignores everything up to Sync: so do we, made-up answers
    /// included (PostgreSQL would not have sent them either).
    fn skip_to_sync(&mut self) {
        while let Some(e) = self.queue.front() {
            if e.req == Req::Sync {
                break;
            }
            let Some(e) = self.queue.pop_front() else {
                break;
            };
            match (e.req, e.action, e.stmt) {
                (Req::Parse, Action::Forward | Action::Swallow, Some(s)) => {
                    self.effects.add(Effect::NotPrepared, Some(s));
                }
                (Req::Close, Action::Swallow, Some(s)) => {
                    self.effects.add(Effect::StillPrepared, Some(s));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(q: &mut Expected, tags: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut out, mut made) = (Vec::new(), Vec::new());
        for &t in tags {
            let mut before = Vec::new();
            if q.on_backend(t, &mut before) {
                out.push(t);
            }
            made.extend(before.iter().step_by(5));
        }
        let mut tail = Vec::new();
        q.flush_made(&mut tail);
        made.extend(tail.iter().step_by(5));
        (out, made)
    }

    #[test]
    fn swallowed_parse_and_made_answers_keep_order() {
        let mut q = Expected::default();
        q.push(Expect::new(Req::Parse, Action::Make(b'1')));
        q.push(Expect::new(Req::Parse, Action::Swallow).with_stmt(Bytes::from_static(b"rg_x")));
        q.push(Expect::new(Req::Bind, Action::Forward));
        q.push(Expect::new(Req::Execute, Action::Forward));
        q.push(Expect::new(Req::Close, Action::Make(b'3')));
        q.push(Expect::new(Req::Sync, Action::Forward));
        let (out, made) = run(&mut q, b"12DDCZ");
        assert_eq!(out, b"2DDCZ");
        assert_eq!(made, b"13");
        assert!(q.is_empty());
        assert_eq!(
            q.effects.of(Effect::Prepared),
            vec![Bytes::from_static(b"rg_x")]
        );
        assert_eq!(q.effects.changes.len(), 1);
    }

    #[test]
    fn error_skips_to_sync_and_forgets_unrun_parses() {
        let mut q = Expected::default();
        q.push(Expect::new(Req::Bind, Action::Forward));
        q.push(Expect::new(Req::Parse, Action::Swallow).with_stmt(Bytes::from_static(b"rg_a")));
        q.push(Expect::new(Req::Close, Action::Swallow).with_stmt(Bytes::from_static(b"rg_b")));
        q.push(Expect::new(Req::Describe, Action::Make(b'1')));
        q.push(Expect::new(Req::Sync, Action::Forward));
        let (out, made) = run(&mut q, b"EZ");
        assert_eq!(out, b"EZ");
        assert!(made.is_empty());
        assert_eq!(
            q.effects.of(Effect::NotPrepared),
            vec![Bytes::from_static(b"rg_a")]
        );
        assert_eq!(
            q.effects.of(Effect::StillPrepared),
            vec![Bytes::from_static(b"rg_b")]
        );
    }

    #[test]
    fn failed_injected_parse_reaches_the_client() {
        let mut q = Expected::default();
        q.push(Expect::new(Req::Parse, Action::Swallow).with_stmt(Bytes::from_static(b"rg_a")));
        q.push(Expect::new(Req::Bind, Action::Forward));
        q.push(Expect::new(Req::Sync, Action::Forward));
        let (out, _) = run(&mut q, b"NEZ");
        assert_eq!(out, b"NEZ");
        assert_eq!(
            q.effects.of(Effect::NotPrepared),
            vec![Bytes::from_static(b"rg_a")]
        );
    }

    #[test]
    fn reset_counts_only_when_the_query_succeeds() {
        let mut q = Expected::default();
        let mut e = Expect::new(Req::Query, Action::Forward);
        e.resets = true;
        q.push(e.clone());
        run(&mut q, b"EZ");
        assert!(!q.effects.reset);
        q.push(e);
        run(&mut q, b"CZ");
        assert!(q.effects.reset);
    }
}
