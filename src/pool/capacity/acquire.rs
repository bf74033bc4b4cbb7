//! Waiting for a permit: the [`Acquire`] future, and the sweeper that lets go of waiters
//! past their deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;

use super::{Capacity, Permit, Waiter};

/// A wait for a permit of a [`Capacity`] until a deadline; `None` = the deadline passed.
/// Dropping it leaves the queue (a permit granted meanwhile goes to the next waiter).
pub struct Acquire<'a, T: Send + 'static> {
    cap: &'a Arc<Capacity<T>>,
    deadline: Instant,
    /// Its place in the queue, once it waits.
    id: Option<u64>,
}

impl<'a, T: Send + 'static> Acquire<'a, T> {
    pub(super) fn new(cap: &'a Arc<Capacity<T>>, deadline: Instant) -> Self {
        Self {
            cap,
            deadline,
            id: None,
        }
    }
}

impl<T: Send + 'static> Future for Acquire<'_, T> {
    type Output = Option<Permit<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Permit<T>>> {
        let this = &mut *self;
        let cap = this.cap;
        let mut s = cap.lock();
        let Some(id) = this.id else {
            if s.take() {
                drop(s);
                return Poll::Ready(Some(cap.permit()));
            }
            let id = s.next_id;
            s.next_id += 1;
            s.queue.push_back(Waiter {
                id,
                deadline: this.deadline,
                waker: cx.waker().clone(),
            });
            this.id = Some(id);
            match s.sweep_at {
                None => {
                    s.sweep_at = Some(this.deadline);
                    drop(s);
                    tokio::spawn(sweep(cap.clone()));
                }
                Some(at) if this.deadline < at => {
                    s.sweep_at = Some(this.deadline);
                    drop(s);
                    cap.sooner.notify_one();
                }
                Some(_) => {}
            }
            return Poll::Pending;
        };
        if let Some(granted) = s.settle(id) {
            drop(s);
            this.id = None;
            return Poll::Ready(granted.then(|| cap.permit()));
        }
        // Woken for something else: keep the waker current.
        if let Ok(i) = s.queue.binary_search_by_key(&id, |w| w.id) {
            let w = &mut s.queue[i].waker;
            if !w.will_wake(cx.waker()) {
                w.clone_from(cx.waker());
            }
        }
        Poll::Pending
    }
}

impl<T: Send + 'static> Drop for Acquire<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let waker = {
            let mut s = self.cap.lock();
            match s.settle(id) {
                // A permit granted but never taken goes on to the next waiter.
                Some(true) => s.give_back(),
                Some(false) => None,
                None => {
                    if let Ok(i) = s.queue.binary_search_by_key(&id, |w| w.id) {
                        s.queue.remove(i);
                    }
                    None
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Lets go of waiters past their deadline, sleeping until the earliest one; ends when
/// nobody waits (the next waiter starts another).
async fn sweep<T: Send + 'static>(cap: Arc<Capacity<T>>) {
    loop {
        let mut expired: Vec<Waker> = Vec::new();
        let next = {
            let mut s = cap.lock();
            let now = Instant::now();
            let s = &mut *s;
            let mut next: Option<Instant> = None;
            s.queue.retain(|w| {
                if w.deadline <= now {
                    s.settled.push((w.id, false));
                    expired.push(w.waker.clone());
                    false
                } else {
                    next = Some(next.map_or(w.deadline, |n| n.min(w.deadline)));
                    true
                }
            });
            s.sweep_at = next;
            next
        };
        expired.into_iter().for_each(Waker::wake);
        let Some(at) = next else { return };
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = cap.sooner.notified() => {}
        }
    }
}
