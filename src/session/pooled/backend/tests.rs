use super::super::expect::{Action, Expect, Req};
use super::*;

/// `Backend::feed`, its output appended to `out` wherever it is.
fn feed(
    b: &mut Backend,
    chunk: &[u8],
    q: &mut Expected,
    out: &mut Vec<u8>,
    seen: &mut Vec<Seen>,
) -> Result<Fed, ProtocolError> {
    let fed = b.feed(chunk, q, out, seen)?;
    if let Fed::Chunk(end) = fed {
        out.extend_from_slice(&chunk[..end]);
    }
    Ok(fed)
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(u32::try_from(body.len()).unwrap() + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Messages `(tag, body)` one after another.
fn stream(msgs: &[(u8, &[u8])]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|&(tag, body)| msg(tag, body))
        .collect()
}

/// A query's answer of one row, the server idle after it.
const ANSWER: [(u8, &[u8]); 4] = [
    (b'T', b"\0\x01a\0"),
    (b'D', b"\0\x01\0\0\0\x01y"),
    (b'C', b"SELECT 1\0"),
    (b'Z', b"I"),
];

#[test]
fn split_anywhere_gives_the_same_output() {
    let stream = stream(&[
        (b'1', b""),
        (b'2', b""),
        (b'D', b"\0\x01\0\0\0\x03abc"),
        (b'S', b"TimeZone\0UTC\0"),
        (b'C', b"SELECT 1\0"),
        (b'Z', b"I"),
    ]);
    let mut want = stream[..stream.len() - 6].to_vec();
    want.extend(msg(b'3', b""));
    want.extend(msg(b'Z', b"I"));
    for cut in 0..stream.len() {
        let mut q = Expected::default();
        q.push(Expect::new(Req::Parse, Action::Make(b'1')));
        q.push(Expect::new(Req::Parse, Action::Swallow));
        q.push(Expect::new(Req::Bind, Action::Forward));
        q.push(Expect::new(Req::Execute, Action::Forward));
        q.push(Expect::new(Req::Close, Action::Make(b'3')));
        q.push(Expect::new(Req::Sync, Action::Forward));
        let (mut b, mut out, mut seen) = (Backend::default(), Vec::new(), Vec::new());
        feed(&mut b, &stream[..cut], &mut q, &mut out, &mut seen).unwrap();
        feed(&mut b, &stream[cut..], &mut q, &mut out, &mut seen).unwrap();
        assert_eq!(out, want, "cut at {cut}");
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].body.as_slice(), b"I");
        assert!(q.is_empty() && b.at_boundary());
    }
}

#[test]
fn a_pipeline_after_a_query_is_followed_however_split() {
    // A query's answer, then a Parse rolegate sent (answer swallowed), a made-up
    // CloseComplete and a Sync: the messages after the query's ReadyForQuery are looked at
    // again wherever the reads end.
    let mut stream = stream(&ANSWER);
    let first = stream.len(); // the query's answer
    let rest = [
        (b'1', &b""[..]),
        (b'D', b"\0\x01\0\0\0\x01z"),
        (b'C', b"SELECT 1\0"),
        (b'Z', b"T"),
    ];
    stream.extend(self::stream(&rest));
    let mut want = stream[..first].to_vec();
    want.extend(msg(b'3', b""));
    want.extend(self::stream(&rest[1..]));
    for a in 0..=stream.len() {
        for b in a..=stream.len() {
            let mut q = Expected::default();
            q.push(Expect::new(Req::Query, Action::Forward));
            q.push(Expect::new(Req::Parse, Action::Swallow));
            q.push(Expect::new(Req::Close, Action::Make(b'3')));
            q.push(Expect::new(Req::Execute, Action::Forward));
            q.push(Expect::new(Req::Sync, Action::Forward));
            let (mut back, mut out, mut seen) = (Backend::default(), Vec::new(), Vec::new());
            for chunk in [&stream[..a], &stream[a..b], &stream[b..]] {
                feed(&mut back, chunk, &mut q, &mut out, &mut seen).unwrap();
            }
            assert_eq!(out, want, "cuts {a}, {b}");
            let ready: Vec<_> = seen.iter().map(|s| s.body.as_slice()).collect();
            assert_eq!(ready, [b"I", b"T"], "cuts {a}, {b}");
            assert!(q.is_empty() && back.at_boundary(), "cuts {a}, {b}");
        }
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
    let stream = stream(&[
        (b'T', b"\0\x01a\0"),
        (b'D', &big),
        (b'D', b"\0\x01\0\0\0\x01y"),
        (b'C', b"SELECT 2\0"),
        (b'Z', b"I"),
    ]);
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
                feed(&mut back, chunk, &mut q, &mut out, &mut Vec::new()).unwrap();
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
    feed(&mut back, &stream[..20], &mut q, &mut out, &mut Vec::new()).unwrap();
    assert_eq!(
        back.partial_at(),
        Some(9),
        "the DataRow began after the RowDescription"
    );
    assert!(!back.client_at_boundary());
    out.clear();
    feed(
        &mut back,
        &stream[20..30],
        &mut q,
        &mut out,
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(back.partial_at(), None, "it began in an earlier output");
}

#[test]
fn a_chunk_forwarded_as_it_came_is_not_copied() {
    let stream = stream(&ANSWER);
    let mut q = Expected::default();
    q.push(Expect::new(Req::Query, Action::Forward));
    let (mut b, mut out, mut seen) = (Backend::default(), Vec::new(), Vec::new());
    // Cut in the ReadyForQuery's header: the output is the chunk up to that header.
    let cut = stream.len() - 3;
    let fed = b.feed(&stream[..cut], &mut q, &mut out, &mut seen).unwrap();
    assert_eq!(fed, Fed::Chunk(stream.len() - 6));
    assert!(out.is_empty() && seen.is_empty());
    assert_eq!(
        b.partial_at(),
        None,
        "a header not yet whole is not output at all"
    );
    // The header began in the earlier chunk: this output is built.
    let fed = b.feed(&stream[cut..], &mut q, &mut out, &mut seen).unwrap();
    assert_eq!(fed, Fed::Out);
    assert_eq!(out, msg(b'Z', b"I"));
    let z = Seen {
        tag: b'Z',
        body: Body::from_slice(b"I"),
    };
    assert_eq!(seen, [z]);
    // Whole, collected in place.
    let mut q = Expected::default();
    q.push(Expect::new(Req::Query, Action::Forward));
    let (mut b, mut seen) = (Backend::default(), Vec::new());
    out.clear();
    out.extend_from_slice(b"held");
    let fed = b.feed(&stream, &mut q, &mut out, &mut seen);
    assert_eq!(
        fed.unwrap(),
        Fed::Chunk(stream.len()),
        "after what out held"
    );
    assert_eq!(out, b"held", "out left as it was");
    out.clear();
    q.push(Expect::new(Req::Query, Action::Forward));
    seen.clear();
    let fed = b.feed(&stream, &mut q, &mut out, &mut seen).unwrap();
    assert_eq!(fed, Fed::Chunk(stream.len()));
    assert!(out.is_empty());
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_slice(), b"I");
    // An answer left out (to a Parse rolegate sent): built, without it.
    q.push(Expect::new(Req::Parse, Action::Swallow));
    q.push(Expect::new(Req::Sync, Action::Forward));
    let mut parsed = msg(b'1', b"");
    parsed.extend(msg(b'Z', b"I"));
    assert_eq!(
        b.feed(&parsed, &mut q, &mut out, &mut seen).ok(),
        Some(Fed::Out)
    );
    assert_eq!(out, msg(b'Z', b"I"));
    // A made-up answer due first: built, with it.
    q.push(Expect::new(Req::Close, Action::Make(b'3')));
    q.push(Expect::new(Req::Sync, Action::Forward));
    out.clear();
    let z = msg(b'Z', b"I");
    assert_eq!(b.feed(&z, &mut q, &mut out, &mut seen).ok(), Some(Fed::Out));
    let mut want = msg(b'3', b"");
    want.extend(msg(b'Z', b"I"));
    assert_eq!(out, want);
    // A bad message after whole ones: `out` holds those.
    q.push(Expect::new(Req::Query, Action::Forward));
    out.clear();
    let mut bad = msg(b'C', b"SELECT 1\0");
    bad.extend([b'Z', 0, 0, 0, 1]);
    assert!(b.feed(&bad, &mut q, &mut out, &mut seen).is_err());
    assert_eq!(out, msg(b'C', b"SELECT 1\0"));
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
