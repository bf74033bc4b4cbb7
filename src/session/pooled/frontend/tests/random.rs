//! Seeded random client streams: however the network cuts a stream into chunks, the
//! frontend sends the server the same bytes and ends in the same state; and no bytes at
//! all, well-formed or not, make it panic.

use super::super::*;
use super::{msg, World};
use crate::session::pooled::backend::Backend;

/// xorshift64*, seeded: enough to pick cases reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const NAMES: [&str; 4] = ["", "a", "b", "c"];
const SQL: [&str; 4] = ["select 1", "select $1::int", "DEALLOCATE ALL", "select 2"];

/// One well-formed frontend message of the extended or simple protocol.
fn message(r: &mut Rng) -> Vec<u8> {
    let name = NAMES[r.below(NAMES.len())];
    match r.below(10) {
        0 | 1 => {
            let sql = SQL[r.below(SQL.len())];
            msg(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
        }
        2 | 3 => msg(b'B', format!("\0{name}\0\0\0\0\0\0\0").as_bytes()),
        4 => msg(b'D', format!("S{name}\0").as_bytes()),
        5 => msg(b'E', b"\0\0\0\0\0"),
        6 => msg(b'C', format!("S{name}\0").as_bytes()),
        7 => msg(b'S', b""),
        8 => msg(b'Q', format!("{}\0", SQL[r.below(SQL.len())]).as_bytes()),
        _ => msg(b'd', &vec![7; r.below(3000)]),
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
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let stream: Vec<u8> = (0..=r.below(12)).flat_map(|_| message(&mut r)).collect();
        let whole = run(&[&stream]);
        for _ in 0..8 {
            let mut cuts: Vec<usize> = (0..=r.below(4))
                .map(|_| r.below(stream.len() + 1))
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
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Half the time well-formed messages with a few bytes changed, else any bytes.
        let mut bytes: Vec<u8> = if r.below(2) == 0 {
            (0..=r.below(6)).flat_map(|_| message(&mut r)).collect()
        } else {
            (0..r.below(200)).map(|_| r.next() as u8).collect()
        };
        for _ in 0..r.below(4) {
            if !bytes.is_empty() {
                let i = r.below(bytes.len());
                bytes[i] = r.next() as u8;
            }
        }
        let mut f = Frontend::new(if seed % 2 == 0 { Some(2) } else { None });
        let mut w = World::new();
        let mut out = Vec::new();
        let cut = r.below(bytes.len() + 1);
        if w.feed_into(&mut f, &bytes[..cut], &mut out).is_ok() {
            let _ = w.feed_into(&mut f, &bytes[cut..], &mut out);
        }
        // And the server's side: whatever answers come, following them never panics.
        let mut back = Backend::default();
        let mut seen = Vec::new();
        let answer: Vec<u8> = (0..r.below(100)).map(|_| r.next() as u8).collect();
        let _ = back.feed(&answer, &mut w.expected, &mut out, &mut seen);
    }
}
