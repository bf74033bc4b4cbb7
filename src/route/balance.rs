//! Pure choice of one member among a listener's candidates.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Balance;
use crate::topology::Member;

/// Picks a member: round-robin over `candidates` (name order), or the one with the fewest
/// sessions (`load`), ties broken round-robin so equal members share the work.
pub fn pick<'a>(
    candidates: &[&'a Member],
    balance: Balance,
    rr: &AtomicUsize,
    load: impl Fn(&str) -> usize,
) -> Option<&'a Member> {
    if candidates.is_empty() {
        return None;
    }
    let start = rr.fetch_add(1, Ordering::Relaxed) % candidates.len();
    let rotated = candidates.iter().cycle().skip(start).take(candidates.len());
    match balance {
        Balance::RoundRobin => Some(candidates[start]),
        Balance::LeastConnections => rotated.min_by_key(|m| load(m.name())).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{MemberRecord, MemberRole};

    fn member(name: &str) -> Member {
        Member {
            record: MemberRecord {
                host: Some("127.0.0.1".into()),
                role: MemberRole::Replica,
                state: "running".into(),
                ..MemberRecord::new(name)
            },
            primary_ok: false,
            replica_ok: true,
            is_sync: false,
            lag_bytes: None,
        }
    }

    #[test]
    fn round_robin_cycles_through_all() {
        let (a, b, c) = (member("a"), member("b"), member("c"));
        let cands = [&a, &b, &c];
        let rr = AtomicUsize::new(0);
        let got: Vec<_> = (0..6)
            .map(|_| {
                pick(&cands, Balance::RoundRobin, &rr, |_| 0)
                    .unwrap()
                    .name()
                    .to_owned()
            })
            .collect();
        assert_eq!(got, ["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn least_connections_prefers_the_idle_member_and_rotates_ties() {
        let (a, b, c) = (member("a"), member("b"), member("c"));
        let cands = [&a, &b, &c];
        let rr = AtomicUsize::new(0);
        let load = |n: &str| if n == "b" { 0 } else { 5 };
        for _ in 0..4 {
            assert_eq!(
                pick(&cands, Balance::LeastConnections, &rr, load)
                    .unwrap()
                    .name(),
                "b"
            );
        }
        let mut seen: Vec<_> = (0..3)
            .map(|_| {
                pick(&cands, Balance::LeastConnections, &rr, |_| 1)
                    .unwrap()
                    .name()
                    .to_owned()
            })
            .collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"]);
    }

    #[test]
    fn empty_set_gives_none() {
        assert!(pick(&[], Balance::RoundRobin, &AtomicUsize::new(0), |_| 0).is_none());
    }
}
