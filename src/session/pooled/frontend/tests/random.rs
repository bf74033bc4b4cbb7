//! Seeded random client streams: however the network cuts a stream into chunks, the
//! frontend sends the server the same bytes and ends in the same state; and no bytes at
//! all, well-formed or not, make it panic.

use super::super::*;
use super::{msg, World};
use crate::session::pooled::backend::Backend;

const NAMES: [&str; 4] = ["", "a", "b", "c"];
const SQL: [&str; 4] = ["select 1", "select $1::int", "DEALLOCATE ALL", "select 2"];

/// One well-formed frontend message of the extended or simple protocol.
fn message(r: &mut fastrand::Rng) -> Vec<u8> {
    let name = NAMES[r.usize(..NAMES.len())];
    match r.usize(..10) {
        0 | 1 => {
            let sql = SQL[r.usize(..SQL.len())];
            msg(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
        }
        2 | 3 => msg(b'B', format!("\0{name}\0\0\0\0\0\0\0").as_bytes()),
        4 => msg(b'D', format!("S{name}\0").as_bytes()),
        5 => msg(b'E', b"\0\0\0\0\0"),
        6 => msg(b'C', format!("S{name}\0").as_bytes()),
        7 => msg(b'S', b""),
        8 => msg(b'Q', format!("{}\0", SQL[r.usize(..SQL.len())]).as_bytes()),
        _ => msg(b'd', &vec![7; r.usize(..3000)]),
    }
}

/// The frontend's output for `chunks`, and its state afterwards.
fn run(chunks: &[&[u8]]) -> (Vec<u8>, bool, String) {
    let mut f = Frontend::new(Some(2)); // small: evictions happen
    let mut w = World::new();
    let mut out = Vec::new();
    let mut leaving = false;
    for chunk in chunks {
        leaving |= w.feed_into(&mut f, chunk, &mut out).unwrap();
    }
    // (The statement maps are compared by size: their Debug order is a hash map's.)
    let state = format!(
        "{:?} {:?} server {} client {} {}",
        w.flow,
        w.expected,
        w.server.len(),
        f.statements.len(),
        f.at_boundary()
    );
    (out, leaving, state)
}

#[test]
fn any_chunking_gives_the_same_server_bytes_and_state() {
    for seed in 1..2000u64 {
        let mut r = fastrand::Rng::with_seed(seed);
        let stream: Vec<u8> = (0..=r.usize(..12)).flat_map(|_| message(&mut r)).collect();
        let whole = run(&[&stream]);
        for _ in 0..8 {
            let mut cuts: Vec<usize> = (0..=r.usize(..4))
                .map(|_| r.usize(..=stream.len()))
                .collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for cut in cuts {
                chunks.push(&stream[at..cut]);
                at = cut;
            }
            chunks.push(&stream[at..]);
            assert_eq!(
                run(&chunks),
                whole,
                "seed {seed}, chunk lengths {:?}",
                chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn random_bytes_are_an_error_or_passed_on_never_a_panic() {
    for seed in 1..20_000u64 {
        let mut r = fastrand::Rng::with_seed(seed);
        // Half the time well-formed messages with a few bytes changed, else any bytes.
        let mut bytes: Vec<u8> = if r.usize(..2) == 0 {
            (0..=r.usize(..6)).flat_map(|_| message(&mut r)).collect()
        } else {
            (0..r.usize(..200)).map(|_| r.u8(..)).collect()
        };
        for _ in 0..r.usize(..4) {
            if !bytes.is_empty() {
                let i = r.usize(..bytes.len());
                bytes[i] = r.u8(..);
            }
        }
        let mut f = Frontend::new(if seed % 2 == 0 { Some(2) } else { None });
        let mut w = World::new();
        let mut out = Vec::new();
        let cut = r.usize(..=bytes.len());
        if w.feed_into(&mut f, &bytes[..cut], &mut out).is_ok() {
            let _ = w.feed_into(&mut f, &bytes[cut..], &mut out);
        }
        // And the server's side: whatever answers come, following them never panics.
        let mut back = Backend::default();
        let mut seen = Vec::new();
        let answer: Vec<u8> = (0..r.usize(..100)).map(|_| r.u8(..)).collect();
        let _ = back.feed(&answer, &mut w.expected, &mut out, &mut seen);
    }
}
