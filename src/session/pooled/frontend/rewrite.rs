//! Statement tracking's rewrites of whole client messages: named Parse, Bind, Describe and
//! Close get server names (the statement prepared first on a server that lacks it), and
//! the queries that drop every statement are noticed.

use std::num::NonZeroUsize;

use bytes::Bytes;

use super::{cstr, split_cstr, Ctx, Frontend};
use crate::pool::prepared::Statement;
use crate::protocol::io::put_message as put;
use crate::session::pooled::expect::{Action, Expect, Req};

impl Frontend {
    /// A whole Parse, Bind, Describe, Close or Query (statement tracking on).
    pub(super) fn rewrite(&mut self, tag: u8, body: &[u8], ctx: &mut Ctx<'_>, out: &mut Vec<u8>) {
        let forward = |req: Req, ctx: &mut Ctx<'_>, out: &mut Vec<u8>| {
            ctx.expected.push(Expect::new(req, Action::Forward));
            put(out, tag, &[body]);
        };
        match tag {
            b'P' => {
                let (name, rest) = split_cstr(body);
                if name.is_empty() || rest.is_none() {
                    return forward(Req::Parse, ctx, out);
                }
                let stmt = Statement::from_parse_rest(rest.unwrap_or_default());
                self.statements
                    .insert(Bytes::copy_from_slice(name), stmt.clone());
                if ctx.server.touch(&stmt.server_name) {
                    ctx.expected
                        .push(Expect::new(Req::Parse, Action::Make(b'1')));
                } else {
                    self.prepare(&stmt, Action::Forward, ctx, out);
                }
            }
            b'B' => {
                let (portal, rest) = split_cstr(body);
                let (name, rest) = split_cstr(rest.unwrap_or_default());
                match (rest, self.known(name)) {
                    (Some(rest), Some(stmt)) => {
                        self.ensure(&stmt, ctx, out);
                        ctx.expected.push(Expect::new(Req::Bind, Action::Forward));
                        put(out, tag, &[portal, b"\0", &stmt.server_name, b"\0", rest]);
                    }
                    _ => forward(Req::Bind, ctx, out),
                }
            }
            b'D' if body.first() == Some(&b'S') => match self.known(cstr(&body[1..])) {
                Some(stmt) => {
                    self.ensure(&stmt, ctx, out);
                    ctx.expected
                        .push(Expect::new(Req::Describe, Action::Forward));
                    put(out, tag, &[b"S", &stmt.server_name, b"\0"]);
                }
                None => forward(Req::Describe, ctx, out),
            },
            b'D' => forward(Req::Describe, ctx, out),
            b'C' if body.first() == Some(&b'S') && !cstr(&body[1..]).is_empty() => {
                // The server keeps its copy for other clients; the client's name goes.
                self.statements.remove(cstr(&body[1..]));
                ctx.expected
                    .push(Expect::new(Req::Close, Action::Make(b'3')));
            }
            b'C' => forward(Req::Close, ctx, out),
            _ => {
                self.query(body, ctx);
                put(out, tag, &[body]);
            }
        }
    }

    /// A whole Query (statement tracking on): its answer is expected, and a query that
    /// drops every statement is noticed. It goes to the server as it came.
    pub(super) fn query(&mut self, body: &[u8], ctx: &mut Ctx<'_>) {
        let mut e = Expect::new(Req::Query, Action::Forward);
        if resets_statements(body) {
            self.statements.clear();
            e.resets = true;
        }
        ctx.expected.push(e);
    }

    fn known(&self, name: &[u8]) -> Option<std::sync::Arc<Statement>> {
        if name.is_empty() {
            return None;
        }
        self.statements.get(name).cloned()
    }

    /// Prepares `stmt` on the server unless it has it; its ParseComplete is swallowed.
    fn ensure(&self, stmt: &Statement, ctx: &mut Ctx<'_>, out: &mut Vec<u8>) {
        if !ctx.server.touch(&stmt.server_name) {
            self.prepare(stmt, Action::Swallow, ctx, out);
        }
    }

    /// Sends the server-named Parse, closing the least recently used statement first if
    /// the server's cache is full.
    fn prepare(&self, stmt: &Statement, action: Action, ctx: &mut Ctx<'_>, out: &mut Vec<u8>) {
        let capacity = self.capacity.map_or(usize::MAX, NonZeroUsize::get);
        if let Some(victim) = ctx.server.insert(&stmt.server_name, capacity) {
            put(out, b'C', &[b"S", &victim, b"\0"]);
            ctx.expected
                .push(Expect::new(Req::Close, Action::Swallow).with_stmt(victim));
        }
        put(out, b'P', &[&stmt.parse_body]);
        ctx.expected
            .push(Expect::new(Req::Parse, action).with_stmt(stmt.server_name.clone()));
    }
}

/// A simple Query that drops every prepared statement of the session. Runs on every
/// query, so it does not allocate.
pub(super) fn resets_statements(body: &[u8]) -> bool {
    // Both statements sought start with a D: most queries are ruled out by one byte.
    let first = body
        .iter()
        .find(|c| !c.is_ascii_whitespace() && **c != b';');
    if !matches!(first, Some(b'd' | b'D')) {
        return false;
    }
    let text = cstr(body);
    if text.len() > 64 {
        return false;
    }
    // The first four words; a fourth means it is none of the statements sought.
    let mut w: [&[u8]; 4] = [b""; 4];
    let mut n = 0;
    for word in text
        .split(|c| c.is_ascii_whitespace() || *c == b';')
        .filter(|w| !w.is_empty())
    {
        if n == w.len() {
            return false;
        }
        w[n] = word;
        n += 1;
    }
    let is = |i: usize, want: &str| w[i].eq_ignore_ascii_case(want.as_bytes());
    match n {
        2 => (is(0, "discard") || is(0, "deallocate")) && is(1, "all"),
        3 => is(0, "deallocate") && is(1, "prepare") && is(2, "all"),
        _ => false,
    }
}
