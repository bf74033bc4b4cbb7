//! One shared copy of strings many clients have in common: user and database names, and
//! the parameter text of clients started by the same application. An idle client holds a
//! reference to them instead of an allocation of its own.

use crate::fast_hash::HashSet;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// Strings in use, and the size at which unused ones are next swept out.
struct Table {
    strings: HashSet<Arc<str>>,
    sweep_at: usize,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| {
    Mutex::new(Table {
        strings: HashSet::default(),
        sweep_at: MIN_SWEEP,
    })
});

/// No sweep below this many strings.
const MIN_SWEEP: usize = 64;

/// A shared copy of `s`. Called at login and when a client changes a tracked parameter,
/// never per transaction. Strings no client holds any more are dropped when the table has
/// doubled since the last sweep, so it stays within twice the strings in use.
#[must_use]
pub fn intern(s: &str) -> Arc<str> {
    let mut t = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = t.strings.get(s) {
        return shared.clone();
    }
    if t.strings.len() >= t.sweep_at {
        t.strings.retain(|s| Arc::strong_count(s) > 1);
        t.sweep_at = (t.strings.len() * 2).max(MIN_SWEEP);
    }
    let shared: Arc<str> = Arc::from(s);
    t.strings.insert(shared.clone());
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_copy_and_unused_ones_go() {
        let a = intern("intern-test-app");
        let b = intern(&String::from("intern-test-app"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_ne!(&*intern("intern-test-other"), &*a);
        // Unused strings are swept once the table has grown enough.
        let unused: Vec<String> = (0..4 * MIN_SWEEP)
            .map(|i| format!("intern-test-{i}"))
            .collect();
        for s in &unused {
            let _ = intern(s);
        }
        let t = TABLE.lock().unwrap();
        assert!(
            t.strings.len() < 3 * MIN_SWEEP,
            "{} strings kept",
            t.strings.len()
        );
        assert!(
            t.strings.contains("intern-test-app"),
            "a string in use stays"
        );
    }
}
