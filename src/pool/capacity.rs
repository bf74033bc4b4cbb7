//! A semaphore whose size can change while permits are out (`pool_size` and
//! `reserve_pool_size` on reload; `max_client_conn` is [`super::slots::ClientSlots`]). Growing adds permits at once;
//! shrinking forgets free permits now and owes the rest, paid by forgetting permits as
//! they come back, so the limit holds as soon as enough work finishes and no running
//! transaction is cut.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// A resizable counting limit.
pub struct Capacity {
    sem: Arc<Semaphore>,
    /// The configured size; serialises resizes.
    size: Mutex<usize>,
    /// Permits still to forget when they are given back (after a shrink).
    debt: AtomicUsize,
    /// Permits out now (exact: taken by `acquire`, returned by `Permit`'s drop).
    out: Arc<AtomicUsize>,
}

impl Capacity {
    #[must_use]
    pub fn new(size: usize) -> Arc<Self> {
        Arc::new(Self {
            sem: Arc::new(Semaphore::new(size)),
            size: Mutex::new(size),
            debt: AtomicUsize::new(0),
            out: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The configured size.
    #[must_use]
    pub fn size(&self) -> usize {
        *self.size.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Permits out now.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.out.load(Ordering::Acquire)
    }

    /// Changes the size; permits out stay valid.
    pub fn resize(&self, new: usize) {
        let mut size = self.size.lock().unwrap_or_else(PoisonError::into_inner);
        let old = *size;
        if new > old {
            let mut grow = new - old;
            // Cancel debt first: those permits were never forgotten.
            let paid = self
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    Some(d.saturating_sub(grow))
                })
                .unwrap_or(0);
            grow -= paid.min(grow);
            self.sem.add_permits(grow);
        } else if new < old {
            let shrink = old - new;
            let forgotten = self.sem.forget_permits(shrink);
            self.debt.fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        *size = new;
    }

    /// Waits for a permit.
    pub async fn acquire(self: &Arc<Self>) -> Result<Permit, AcquireError> {
        let p = self.sem.clone().acquire_owned().await?;
        Ok(self.wrap(p))
    }

    /// A permit if one is free now.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, TryAcquireError> {
        let p = self.sem.clone().try_acquire_owned()?;
        Ok(self.wrap(p))
    }

    fn wrap(self: &Arc<Self>, p: OwnedSemaphorePermit) -> Permit {
        self.out.fetch_add(1, Ordering::AcqRel);
        Permit {
            permit: Some(p),
            owner: self.clone(),
        }
    }
}

/// A permit of a [`Capacity`]; dropping it gives it back, or pays a shrink's debt.
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    owner: Arc<Capacity>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.owner.out.fetch_sub(1, Ordering::AcqRel);
        let paid = self
            .owner
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok();
        if let Some(p) = self.permit.take() {
            if paid {
                p.forget();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_with_permits_out_takes_effect_as_they_return() {
        let c = Capacity::new(3);
        let a = c.try_acquire().unwrap();
        let b = c.try_acquire().unwrap();
        c.resize(1);
        assert_eq!(c.size(), 1);
        assert_eq!(c.in_use(), 2);
        assert!(c.try_acquire().is_err());
        drop(a);
        // Still over: b is out and the limit is 1.
        assert!(c.try_acquire().is_err());
        drop(b);
        let only = c.try_acquire().unwrap();
        assert!(c.try_acquire().is_err());
        drop(only);
        assert_eq!(c.in_use(), 0);
    }

    #[test]
    fn growing_cancels_debt_before_adding() {
        let c = Capacity::new(2);
        let a = c.try_acquire().unwrap();
        let b = c.try_acquire().unwrap();
        c.resize(0); // owes 2
        c.resize(3); // cancels the debt, adds 1
        let x = c.try_acquire().unwrap();
        assert!(c.try_acquire().is_err());
        drop((a, b, x));
        let held: Vec<_> = (0..3).map(|_| c.try_acquire().unwrap()).collect();
        assert!(c.try_acquire().is_err());
        assert_eq!(held.len(), 3);
    }
}
