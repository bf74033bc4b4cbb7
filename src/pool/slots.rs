//! `max_client_conn`: a count of the clients a listener serves, with a limit. A client
//! over the limit is refused at once (53300), never queued, so this is two atomic counters
//! rather than a semaphore: taking and giving back a slot costs an atomic add each (a
//! semaphore's release takes its waiter list's lock, on every disconnect).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The client slots of one listener.
#[derive(Debug)]
pub struct ClientSlots {
    limit: AtomicUsize,
    taken: AtomicUsize,
}

/// One client's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<ClientSlots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClientSlots {
    #[must_use]
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicUsize::new(limit),
            taken: AtomicUsize::new(0),
        })
    }

    /// The limit.
    #[must_use]
    pub fn size(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    /// Slots taken now.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }

    /// Changes the limit. Clients over a lowered limit stay; new ones are refused until
    /// enough have left (PgBouncer's `max_client_conn` on reload).
    pub fn resize(&self, limit: usize) {
        self.limit.store(limit, Ordering::Release);
    }

    /// A slot if the limit allows one more client.
    #[must_use]
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let before = self.taken.fetch_add(1, Ordering::AcqRel);
        if before >= self.limit.load(Ordering::Acquire) {
            self.taken.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_given_back_and_resized() {
        let slots = ClientSlots::new(2);
        let first = slots.try_take().expect("first");
        let second = slots.try_take().expect("second");
        assert!(slots.try_take().is_none(), "a third over the limit");
        assert_eq!(slots.in_use(), 2, "a refusal takes nothing");
        drop(first);
        let third = slots.try_take().expect("a slot given back is free again");
        // Lowered under what is taken: those stay, new ones wait for enough to leave.
        slots.resize(1);
        assert_eq!(slots.size(), 1);
        assert!(slots.try_take().is_none());
        drop(second);
        assert!(slots.try_take().is_none(), "still one taken, the limit");
        drop(third);
        let fourth = slots.try_take().expect("under the limit again");
        slots.resize(3);
        let fifth = slots.try_take().expect("raised");
        assert_eq!(slots.in_use(), 2);
        drop((fourth, fifth));
        assert_eq!(slots.in_use(), 0);
    }
}
