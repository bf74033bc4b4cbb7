//! Transactions per second per listener, from samples of the transaction counters taken
//! once a second by the admin server (never on the session path).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Samples kept per listener: a 5-second window.
const WINDOW: usize = 6;

/// Recent `(when, transactions)` samples by listener name.
#[derive(Default)]
pub struct Rates(Mutex<HashMap<String, VecDeque<(Instant, u64)>>>);

impl Rates {
    /// Adds a sample of `listener`'s transaction counter.
    pub fn sample(&self, listener: &str, at: Instant, transactions: u64) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let q = map.entry(listener.to_owned()).or_default();
        q.push_back((at, transactions));
        while q.len() > WINDOW {
            q.pop_front();
        }
    }

    /// Transactions per second over the window; 0 until two samples exist.
    #[must_use]
    pub fn tps(&self, listener: &str) -> f64 {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(q) = map.get(listener) else {
            return 0.0;
        };
        match (q.front(), q.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                #[allow(clippy::cast_precision_loss)]
                let n = n1.saturating_sub(*n0) as f64;
                (n / (*t1 - *t0).as_secs_f64() * 10.0).round() / 10.0
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tps_is_the_slope_over_the_window() {
        let r = Rates::default();
        let t = Instant::now();
        assert!(r.tps("p").abs() < f64::EPSILON);
        for i in 0..10u64 {
            r.sample("p", t + Duration::from_secs(i), i * 100);
        }
        assert!((r.tps("p") - 100.0).abs() < 1e-9);
    }
}
