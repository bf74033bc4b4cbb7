//! The pooled relay's read and write buffers, and a per-thread stash of spare ones so a
//! transaction does not allocate and zero 24 KB.

use std::collections::VecDeque;

use super::expect::Expect;
use crate::protocol::frame::Seen;

const BUF: usize = 8 * 1024;

/// Read and write buffers; held only while a server is lent, so an idle client costs
/// its socket and little else.
pub struct Bufs {
    pub client_in: Vec<u8>,
    pub server_in: Vec<u8>,
    pub out: Vec<u8>,
    /// The start of a server message a read ended in the middle of, held back from the
    /// client until the message is whole (see `relay::held`).
    pub tail: Vec<u8>,
    /// ReadyForQuery, ParameterStatus and ErrorResponse messages of the last server chunk.
    pub seen: Vec<Seen>,
    /// The allocation of the relay's queue of owed answers while it is idle and empty.
    pub queue: VecDeque<Expect>,
}

/// Buffers given back by sessions that released their server, reused by the next
/// transaction on the same thread instead of allocating and zeroing 24 KB each time.
const SPARE_BUFS: usize = 64;

thread_local! {
    // Boxed: a transaction's state keeps a pointer, and the box moves in and out whole.
    #[allow(clippy::vec_box)]
    static SPARE: std::cell::RefCell<Vec<Box<Bufs>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Bufs {
    /// Boxed, so a transaction's state holds a pointer, and the box too is reused.
    #[allow(clippy::unnecessary_box_returns)]
    pub fn new() -> Box<Self> {
        SPARE.with_borrow_mut(Vec::pop).unwrap_or_else(|| {
            Box::new(Self {
                client_in: vec![0; BUF],
                server_in: vec![0; BUF],
                out: Vec::with_capacity(BUF),
                tail: Vec::new(),
                seen: Vec::new(),
                queue: VecDeque::new(),
            })
        })
    }

    /// Keeps `bufs` for the next transaction on this thread (or frees it, past the cap).
    pub fn recycle(bufs: Option<Box<Self>>) {
        let Some(mut b) = bufs else { return };
        if b.out.capacity() > 4 * BUF {
            return; // grown by a big message: let it go
        }
        b.out.clear();
        b.tail.clear();
        b.seen.clear();
        SPARE.with_borrow_mut(|spare| {
            if spare.len() < SPARE_BUFS {
                spare.push(b);
            }
        });
    }
}
