use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// Polls `f` once with the test task's waker.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

/// The only permit of `c` (size 1) taken, and two acquires waiting behind it, oldest first.
async fn held_and_two_waiters(c: &Arc<Capacity>) -> (Permit, Acquire<'_, ()>, Acquire<'_, ()>) {
    let held = c.try_acquire().unwrap();
    let (mut first, mut second) = (c.acquire(far()), c.acquire(far()));
    assert!(poll_once(&mut first).await.is_pending());
    assert!(poll_once(&mut second).await.is_pending());
    (held, first, second)
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

#[tokio::test]
async fn shrinking_with_permits_out_takes_effect_as_they_return() {
    let c = Capacity::<()>::new(3);
    let a = c.try_acquire().unwrap();
    let b = c.try_acquire().unwrap();
    c.resize(1);
    assert_eq!(c.size(), 1);
    assert_eq!(c.in_use(), 2);
    assert!(c.try_acquire().is_none());
    drop(a);
    // Still over: b is out and the limit is 1.
    assert!(c.try_acquire().is_none());
    drop(b);
    let only = c.try_acquire().unwrap();
    assert!(c.try_acquire().is_none());
    drop(only);
    assert_eq!(c.in_use(), 0);
}

#[tokio::test]
async fn a_returned_permit_goes_to_the_oldest_waiter_and_nobody_overtakes() {
    let c = Capacity::<()>::new(1);
    let (held, mut first, mut second) = held_and_two_waiters(&c).await;
    assert_eq!(c.waiting(), 2);
    drop(held);
    // Granted to `first` before it runs: not free for anyone else meanwhile.
    assert!(c.try_acquire().is_none());
    assert!(poll_once(&mut second).await.is_pending());
    let Poll::Ready(Some(p)) = poll_once(&mut first).await else {
        panic!("the oldest waiter did not get the permit");
    };
    assert_eq!((c.in_use(), c.waiting()), (1, 1));
    drop(p);
    assert!(matches!(poll_once(&mut second).await, Poll::Ready(Some(_))));
    assert_eq!((c.in_use(), c.waiting()), (0, 0));
}

#[tokio::test]
async fn a_waiter_that_leaves_passes_its_granted_permit_on() {
    let c = Capacity::<()>::new(1);
    let (held, gone, mut next) = held_and_two_waiters(&c).await;
    drop(held); // granted to `gone`...
    drop(gone); // ...which leaves without taking it
    let Poll::Ready(Some(p)) = poll_once(&mut next).await else {
        panic!("the permit was lost with the waiter that left");
    };
    assert_eq!(c.in_use(), 1);
    drop(p);
    // A waiter that leaves before any grant just leaves the queue.
    let held = c.try_acquire().unwrap();
    let mut gone = c.acquire(far());
    assert!(poll_once(&mut gone).await.is_pending());
    drop(gone);
    assert_eq!((c.in_use(), c.waiting()), (1, 0));
    drop(held);
    assert_eq!(c.in_use(), 0);
}

#[tokio::test]
async fn growing_grants_the_new_room_to_waiters() {
    let c = Capacity::<()>::new(1);
    let (held, mut a, mut b) = held_and_two_waiters(&c).await;
    c.resize(3);
    assert!(matches!(poll_once(&mut a).await, Poll::Ready(Some(_))));
    assert!(matches!(poll_once(&mut b).await, Poll::Ready(Some(_))));
    // The permits are dropped with the polls' results: only `held` is out.
    assert_eq!(c.in_use(), 1);
    drop(held);
    let all: Vec<_> = (0..3).filter_map(|_| c.try_acquire()).collect();
    assert_eq!(all.len(), 3);
    assert!(c.try_acquire().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gives_up_at_its_deadline_and_a_sooner_one_is_not_kept_waiting() {
    let c = Capacity::<()>::new(1);
    let held = c.try_acquire().unwrap();
    let start = Instant::now();
    assert!(c
        .acquire(start + Duration::from_millis(100))
        .await
        .is_none());
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(c.waiting(), 0);

    // A long waiter first, then (as after a reload that shortened the wait) a short one:
    // the short one still ends on time, the long one keeps its place.
    let long = {
        let c = c.clone();
        tokio::spawn(async move { c.acquire(far()).await.is_some() })
    };
    tokio::task::yield_now().await;
    assert_eq!(c.waiting(), 1);
    let start = Instant::now();
    assert!(c.acquire(start + Duration::from_millis(50)).await.is_none());
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert_eq!(c.waiting(), 1);
    drop(held);
    assert!(
        long.await.unwrap(),
        "the long waiter did not get the permit"
    );
    assert_eq!((c.in_use(), c.waiting()), (0, 0));
}

#[tokio::test]
async fn a_stocked_thing_and_its_permit_are_taken_and_given_back_together() {
    let c: Arc<Capacity<&str>> = Capacity::new(1);
    // Nothing in stock: no permit is taken either.
    assert_eq!(c.try_take(Vec::pop), None);
    assert_eq!(c.in_use(), 0);
    c.with_stock(|_, stock| stock.push("a"));
    assert_eq!(c.try_take(Vec::pop), Some("a"));
    assert_eq!(c.in_use(), 1);
    // The only permit is out (unwrapped): nothing more, stock or not.
    c.with_stock(|_, stock| stock.push("b"));
    assert_eq!(c.try_take(Vec::pop), None);
    assert!(c.try_acquire().is_none());
    // A waiter gets the permit given back with "a", and finds both in stock.
    let mut waiter = c.acquire(far());
    assert!(poll_once(&mut waiter).await.is_pending());
    c.put(Some("a"));
    let Poll::Ready(Some(p)) = poll_once(&mut waiter).await else {
        panic!("the waiter did not get the permit given back");
    };
    assert_eq!(
        c.with_stock(|out, stock| (out, stock.clone())),
        (1, vec!["b", "a"])
    );
    // A permit kept counted out past its wrapper is given back with `put`.
    p.into_counted();
    assert_eq!(c.in_use(), 1);
    c.put(None);
    assert_eq!((c.in_use(), c.waiting()), (0, 0));
}
