//! Polling with a deadline: the tests wait for observable state, never for a fixed time.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How often `wait_for` re-checks its probe.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Calls `probe` until it returns `Ok(Some(value))` and returns that value.
///
/// `Ok(None)` and `Err(_)` mean "not yet"; the last one is shown if `timeout` passes,
/// in which case this panics with `what` so the test failure says what never happened.
pub fn wait_for<T, E: Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, E>,
) -> T {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Ok(Some(value)) => return value,
            Ok(None) => "condition not met".to_string(),
            Err(e) => format!("{e:?}"),
        };
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; last: {last}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `wait_for` for a plain condition.
pub fn wait_until<E: Debug>(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> Result<bool, E>,
) {
    wait_for(what, timeout, || cond().map(|ok| ok.then_some(())));
}
