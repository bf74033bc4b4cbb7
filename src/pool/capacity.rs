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

/// A resizable, fair counting limit.
pub struct Capacity {
    state: Mutex<State>,
    /// Wakes the sweeper when a waiter comes with a deadline before the one it sleeps to
    /// (possible only after a reload shortened the wait).
    sooner: Notify,
}

struct State {
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
}

struct Waiter {
    id: u64,
    deadline: Instant,
    waker: Waker,
}

impl State {
    /// Counts a permit out if one is free (with a waiter queued, none is).
    fn take(&mut self) -> bool {
        let free = self.out < self.size;
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
        if self.out >= self.size {
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

impl Capacity {
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
            }),
            sooner: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
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
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let free = self.lock().take();
        free.then(|| self.permit())
    }

    /// Waits for a permit until `deadline`; `None` = none came by then.
    pub fn acquire(self: &Arc<Self>, deadline: Instant) -> Acquire<'_> {
        Acquire::new(self, deadline)
    }

    /// A permit already counted out.
    fn permit(self: &Arc<Self>) -> Permit {
        Permit {
            owner: self.clone(),
        }
    }

    fn give_back(&self) {
        let waker = self.lock().give_back();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A permit of a [`Capacity`]; dropping it gives it back (to the oldest waiter, if any).
pub struct Permit {
    owner: Arc<Capacity>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.owner.give_back();
    }
}
