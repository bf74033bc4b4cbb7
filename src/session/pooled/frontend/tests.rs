use super::super::backend::Fed;
use super::rewrite::resets_statements;
use super::*;
use crate::protocol::io::put_message as put;

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put(&mut v, tag, &[body]);
    v
}

/// Splits a stream back into (tag, body) messages.
fn split(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        v.push((b[0], b[5..=len].to_vec()));
        b = &b[len + 1..];
    }
    v
}

struct World {
    server: ServerStatements,
    expected: Expected,
    flow: Flow,
}

impl World {
    fn new() -> Self {
        Self {
            server: ServerStatements::default(),
            expected: Expected::default(),
            flow: Flow::default(),
        }
    }

    fn feed(&mut self, f: &mut Frontend, bytes: &[u8]) -> (Vec<(u8, Vec<u8>)>, bool) {
        let mut out = Vec::new();
        let leaving = self.feed_into(f, bytes, &mut out).unwrap();
        (split(&out), leaving)
    }

    /// Feeds `bytes` as one chunk, appending what goes to the server to `out`.
    fn feed_into(
        &mut self,
        f: &mut Frontend,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, ProtocolError> {
        let mut ctx = Ctx {
            server: &mut self.server,
            expected: &mut self.expected,
            flow: &mut self.flow,
        };
        let (leaving, fed) = f.feed(bytes, &mut ctx, out)?;
        if let Fed::Chunk(end) = fed {
            out.extend_from_slice(&bytes[..end]);
        }
        Ok(leaving)
    }

    /// The server's answers as the client would see them, for server messages `tags`.
    fn answer(&mut self, tags: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let mut b = super::super::backend::Backend::default();
        let stream: Vec<u8> = tags
            .iter()
            .flat_map(|&t| msg(t, if t == b'Z' { b"I" } else { b"" }))
            .collect();
        let fed = b.feed(&stream, &mut self.expected, &mut out, &mut seen);
        if let Ok(Fed::Chunk(end)) = fed {
            out.extend_from_slice(&stream[..end]);
        }
        fed.unwrap();
        split(&out).into_iter().map(|(t, _)| t).collect()
    }
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    msg(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
}

fn bind(name: &str) -> Vec<u8> {
    msg(b'B', format!("\0{name}\0\0\0\0\0\0\0").as_bytes())
}

#[test]
fn named_parse_is_renamed_and_prepared_once_per_server() {
    let mut f = Frontend::new(Some(10));
    let mut w = World::new();
    let mut input = parse("s1", "select 1");
    input.extend(bind("s1"));
    input.extend(msg(b'E', b"\0\0\0\0\0"));
    input.extend(msg(b'S', b""));
    let (out, _) = w.feed(&mut f, &input);
    let tags: Vec<u8> = out.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"PBES");
    assert!(out[0].1.starts_with(b"rg_"));
    let server_name = &out[0].1[..27];
    assert_eq!(
        &out[1].1[1..28],
        server_name,
        "Bind names the server statement"
    );
    assert_eq!(w.answer(b"12CZ"), b"12CZ");

    // Parse of the same text under the same name again: the server has it; answered here.
    let mut again = parse("s1", "select 1");
    again.extend(msg(b'S', b""));
    let (out, _) = w.feed(&mut f, &again);
    assert_eq!(out.iter().map(|m| m.0).collect::<Vec<_>>(), b"S");
    assert_eq!(w.answer(b"Z"), b"1Z");
}

#[test]
fn bind_on_a_new_server_prepares_first_and_hides_the_answer() {
    let mut f = Frontend::new(Some(10));
    let mut w = World::new();
    let mut input = parse("s1", "select 1");
    input.extend(msg(b'S', b""));
    w.feed(&mut f, &input);
    assert_eq!(w.answer(b"1Z"), b"1Z");

    let mut other = World::new(); // another server connection
    let mut input = bind("s1");
    input.extend(msg(b'E', b"\0\0\0\0\0"));
    input.extend(msg(b'S', b""));
    let (out, _) = other.feed(&mut f, &input);
    assert_eq!(out.iter().map(|m| m.0).collect::<Vec<_>>(), b"PBES");
    assert_eq!(other.answer(b"12CZ"), b"2CZ");
    assert!(other.expected.is_empty());
}

#[test]
fn close_is_answered_here_and_forgets_the_name() {
    let mut f = Frontend::new(Some(10));
    let mut w = World::new();
    w.feed(&mut f, &parse("s1", "select 1"));
    assert_eq!(f.statements.len(), 1);
    let mut input = msg(b'C', b"Ss1\0");
    input.extend(msg(b'S', b""));
    let (out, _) = w.feed(&mut f, &input);
    assert_eq!(out.iter().map(|m| m.0).collect::<Vec<_>>(), b"S");
    assert!(f.statements.is_empty());
    assert_eq!(w.answer(b"1Z"), b"13Z");
}

#[test]
fn full_server_cache_closes_the_least_recently_used() {
    let mut f = Frontend::new(Some(1));
    let mut w = World::new();
    let mut input = parse("a", "select 1");
    input.extend(parse("b", "select 2"));
    input.extend(msg(b'S', b""));
    let (out, _) = w.feed(&mut f, &input);
    assert_eq!(out.iter().map(|m| m.0).collect::<Vec<_>>(), b"PCPS");
    assert_eq!(out[1].1[0], b'S');
    assert_eq!(
        &out[1].1[1..28],
        &out[0].1[..27],
        "closes the first statement"
    );
    assert_eq!(w.answer(b"131Z"), b"11Z");
    assert_eq!(w.server.len(), 1);
}

#[test]
fn terminate_is_kept_from_the_server() {
    let mut f = Frontend::new(Some(10));
    let mut w = World::new();
    let mut input = msg(b'Q', b"select 1\0");
    input.extend(msg(b'X', b""));
    let (out, leaving) = w.feed(&mut f, &input);
    assert!(leaving);
    assert_eq!(out.len(), 1);
}

#[test]
fn without_tracking_bytes_pass_unchanged_however_split() {
    let mut input = parse("s1", "select 1");
    input.extend(bind("s1"));
    input.extend(msg(b'd', &[7; 300]));
    input.extend(msg(b'S', b""));
    for capacity in [None, Some(5)] {
        for cut in 0..input.len() {
            let mut f = Frontend::new(capacity);
            let mut w = World::new();
            let mut out = Vec::new();
            w.feed_into(&mut f, &input[..cut], &mut out).unwrap();
            w.feed_into(&mut f, &input[cut..], &mut out).unwrap();
            assert!(f.at_boundary());
            assert_eq!(w.flow.pending, 1);
            if capacity.is_none() {
                assert_eq!(out, input, "cut at {cut}");
            } else {
                assert_eq!(split(&out).len(), 4, "cut at {cut}");
            }
        }
    }
}

#[test]
fn bytes_that_go_as_they_came_are_not_copied() {
    let mut query = msg(b'Q', b"select 1\0");
    let plain = query.len();
    query.extend(msg(b'Q', b"\0"));
    query.extend(msg(b'H', b""));
    query.extend(msg(b'S', b""));
    let mut with_parse = query.clone();
    with_parse.extend(parse("s1", "select 1"));
    for capacity in [None, Some(5)] {
        let mut w = World::new();
        let mut f = Frontend::new(capacity);
        let mut ctx = Ctx {
            server: &mut w.server,
            expected: &mut w.expected,
            flow: &mut w.flow,
        };
        let mut out = Vec::new();
        let fed = f.feed(&query, &mut ctx, &mut out).unwrap();
        assert_eq!(fed, (false, Fed::Chunk(query.len())), "{capacity:?}");
        assert!(out.is_empty());
        // Cut in the second query's header: up to the end of the first.
        let fed = f.feed(&query[..plain + 3], &mut ctx, &mut out).unwrap();
        assert_eq!(fed, (false, Fed::Chunk(plain)), "{capacity:?}");
        // Its header began in the earlier chunk: built.
        let fed = f.feed(&query[plain + 3..], &mut ctx, &mut out).unwrap();
        assert_eq!(fed, (false, Fed::Out), "{capacity:?}");
        assert_eq!(out, query[plain..], "{capacity:?}");
        // A named Parse is renamed (statement tracking): built.
        out.clear();
        let fed = f.feed(&with_parse, &mut ctx, &mut out).unwrap();
        let tracking = capacity.is_some();
        let want = if tracking {
            Fed::Out
        } else {
            Fed::Chunk(with_parse.len())
        };
        assert_eq!(fed, (false, want), "{capacity:?}");
        if tracking {
            assert_eq!(out[..query.len()], query[..], "what came before it");
            assert_ne!(out[query.len()..], with_parse[query.len()..]);
        }
    }
}

#[test]
fn discard_all_forgets_every_statement() {
    let mut f = Frontend::new(Some(10));
    let mut w = World::new();
    w.feed(&mut f, &parse("s1", "select 1"));
    w.feed(&mut f, &msg(b'S', b""));
    w.answer(b"1Z");
    w.feed(&mut f, &msg(b'Q', b"DISCARD  ALL;\0"));
    assert!(f.statements.is_empty());
    w.answer(b"CZ");
    assert!(w.expected.effects.reset);
}

#[test]
fn garbage_length_is_an_error() {
    let mut f = Frontend::new(Some(10));
    let mut w = World::new();
    assert!(w
        .feed_into(&mut f, &[b'Q', 0xff, 0, 0, 0], &mut Vec::new())
        .is_err());
}

#[test]
fn known_statements_are_answered_without_a_server() {
    let mut f = Frontend::new(Some(10));
    let mut input = parse("p0", "BEGIN");
    input.extend(msg(b'S', b""));
    assert_eq!(f.answer_locally(&input, |_| false), None);
    assert!(f.statements.is_empty());
    let reply = f.answer_locally(&input, |_| true).expect("answered");
    assert_eq!(split(&reply), vec![(b'1', vec![]), (b'Z', b"I".to_vec())]);
    assert_eq!(f.statements.len(), 1);
    // Anything beyond Parse/Flush/Sync, or a cut message, needs a server.
    let mut with_bind = parse("p1", "BEGIN");
    with_bind.extend(bind("p1"));
    with_bind.extend(msg(b'S', b""));
    assert_eq!(f.answer_locally(&with_bind, |_| true), None);
    assert_eq!(f.answer_locally(&input[..input.len() - 1], |_| true), None);
    assert_eq!(f.answer_locally(&parse("p2", "x"), |_| true), None);
}

#[test]
fn resets_statements_knows_the_reset_commands_only() {
    for q in [
        "DISCARD ALL",
        "discard all;",
        "  Deallocate   ALL ; ",
        "DEALLOCATE PREPARE ALL",
        "deallocate\tprepare\nall",
    ] {
        assert!(resets_statements(format!("{q}\0").as_bytes()), "{q:?}");
    }
    for q in [
        "SELECT 1",
        "DISCARD",
        "DISCARD PLANS",
        "DISCARD ALL; SELECT 1",
        "DEALLOCATE p1",
        "deallocate prepare all now",
        "",
    ] {
        assert!(!resets_statements(format!("{q}\0").as_bytes()), "{q:?}");
    }
}

mod random;
