//! A fair counting limit whose size can change while permits are out: `pool_size` and
//! `reserve_pool_size` (resized on reload) and `max_db_connections` (`max_client_conn` is
//! [`super::slots::ClientSlots`]).
//!
//! One mutex guards the count and a FIFO queue of waiters. A permit given back goes
//! straight to the oldest waiter (counted out on its behalf before it even runs), so a
//! free permit and a waiter never exist at once and nobody overtakes the queue. Growing
//! hands the new room to waiters at once; shrinking only lowers the size, and the permits
//! out above it are not handed on as they come back, so the limit holds as soon as enough
//! work finishes and no running transaction is cut.
//!
//! A capacity can keep a stock of things under the same lock (`T`: a pool keeps its idle
//! connections there), so taking a permit with one of them, or giving both back, is one
//! lock and not two.
//!
//! Waiters have deadlines but no timer each: one sweeper task per capacity, alive while
//! anyone waits, sleeps until the earliest deadline and lets go of the waiters past it
//! (tokio's semaphore plus a timeout per waiter cost a timer registration, a waiter-list
//! lock on every release and two wake-ups' worth of bookkeeping per waiting checkout).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use tokio::sync::Notify;
use tokio::time::Instant;

mod acquire;
#[cfg(test)]
mod tests;

pub use acquire::Acquire;

/// A resizable, fair counting limit, with a stock of `T` kept under its lock.
pub struct Capacity<T = ()> {
    state: Mutex<State<T>>,
    /// Wakes the sweeper when a waiter comes with a deadline before the one it sleeps to
    /// (possible only after a reload shortened the wait).
    sooner: Notify,
}

struct State<T> {
    size: usize,
    /// Permits out, counting those granted to waiters that have not taken them yet.
    out: usize,
    next_id: u64,
    /// Waiting acquires, oldest first: ids increase along the queue.
    queue: VecDeque<Waiter>,
    /// Acquires let go of the queue and not yet polled: granted a permit (`true`) or past
    /// their deadline (`false`). At most a few: each is polled right after its wake-up.
    settled: Vec<(u64, bool)>,
    /// When the sweeper wakes next; `None` = no sweeper (nobody waits).
    sweep_at: Option<Instant>,
    /// What the owner keeps with the count ([`Capacity::try_take`], [`Capacity::put`]).
    stock: Vec<T>,
}

struct Waiter {
    id: u64,
    deadline: Instant,
    waker: Waker,
}

impl<T> State<T> {
    /// Whether a permit is free (with a waiter queued, none is: a permit given back goes
    /// to the oldest waiter at once).
    fn has_room(&self) -> bool {
        self.out < self.size
    }

    /// Counts a permit out if one is free.
    fn take(&mut self) -> bool {
        let free = self.has_room();
        if free {
            self.out += 1;
        }
        free
    }

    /// The outcome for acquire `id` if the queue let go of it, forgotten once told:
    /// granted a permit (`true`) or past its deadline (`false`); `None` = still queued.
    fn settle(&mut self, id: u64) -> Option<bool> {
        let i = self.settled.iter().position(|&(x, _)| x == id)?;
        Some(self.settled.swap_remove(i).1)
    }

    /// Grants a permit to the oldest waiter if there is room; its waker, to wake once the
    /// lock is released.
    fn grant_one(&mut self) -> Option<Waker> {
        if !self.has_room() {
            return None;
        }
        let w = self.queue.pop_front()?;
        self.out += 1;
        self.settled.push((w.id, true));
        Some(w.waker)
    }

    /// A permit is back: hands it to the oldest waiter, or frees it.
    fn give_back(&mut self) -> Option<Waker> {
        self.out = self.out.saturating_sub(1);
        self.grant_one()
    }
}

impl<T: Send + 'static> Capacity<T> {
    #[must_use]
    pub fn new(size: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                size,
                out: 0,
                next_id: 0,
                queue: VecDeque::new(),
                settled: Vec::new(),
                sweep_at: None,
                stock: Vec::new(),
            }),
            sooner: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The configured size.
    #[must_use]
    pub fn size(&self) -> usize {
        self.lock().size
    }

    /// Permits out now.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.lock().out
    }

    /// Clients waiting for a permit now.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.lock().queue.len()
    }

    /// Changes the size; permits out stay valid. Growing grants the new room to waiters.
    pub fn resize(&self, new: usize) {
        let mut wake = Vec::new();
        {
            let mut s = self.lock();
            s.size = new;
            while let Some(w) = s.grant_one() {
                wake.push(w);
            }
        }
        wake.into_iter().for_each(Waker::wake);
    }

    /// A permit if one is free now (never past a waiter: with one waiting, none is free).
    #[must_use]
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit<T>> {
        let free = self.lock().take();
        free.then(|| self.permit())
    }

    /// Waits for a permit until `deadline`; `None` = none came by then.
    pub fn acquire(self: &Arc<Self>, deadline: Instant) -> Acquire<'_, T> {
        Acquire::new(self, deadline)
    }

    /// A permit already counted out.
    fn permit(self: &Arc<Self>) -> Permit<T> {
        Permit {
            owner: Some(self.clone()),
        }
    }

    /// A free permit and a thing of the stock at once, under one lock: `pick` chooses
    /// the thing (or none: then no permit is taken either). The permit is counted out
    /// but not wrapped; [`put`](Self::put) gives it back.
    pub fn try_take(&self, pick: impl FnOnce(&mut Vec<T>) -> Option<T>) -> Option<T> {
        let mut s = self.lock();
        if !s.has_room() {
            return None;
        }
        let taken = pick(&mut s.stock)?;
        s.out += 1;
        Some(taken)
    }

    /// Gives back a permit counted out unwrapped ([`try_take`](Self::try_take),
    /// [`Permit::into_counted`]), stocking `item` first, under one lock.
    pub fn put(&self, item: Option<T>) {
        let waker = {
            let mut s = self.lock();
            if let Some(item) = item {
                s.stock.push(item);
            }
            s.give_back()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Runs `f` on the permits out now and the stock, under the lock.
    pub fn with_stock<R>(&self, f: impl FnOnce(usize, &mut Vec<T>) -> R) -> R {
        let mut s = self.lock();
        let s = &mut *s;
        f(s.out, &mut s.stock)
    }

    fn give_back(&self) {
        self.put(None);
    }
}

/// A permit of a [`Capacity`]; dropping it gives it back (to the oldest waiter, if any).
pub struct Permit<T: Send + 'static = ()> {
    /// `None` once [`into_counted`](Self::into_counted).
    owner: Option<Arc<Capacity<T>>>,
}

impl<T: Send + 'static> Permit<T> {
    /// Keeps the permit counted out without this wrapper (and its reference to the
    /// capacity): whoever holds it gives it back with [`Capacity::put`].
    pub fn into_counted(mut self) {
        self.owner = None;
    }
}

impl<T: Send + 'static> Drop for Permit<T> {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            owner.give_back();
        }
    }
}
