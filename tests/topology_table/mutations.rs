//! Every table case's keys, damaged the ways a broken writer, a partial write or a
//! different Patroni version might damage them: whatever the DCS holds, deriving the role
//! sets never panics and never breaks the rules every port relies on.

use std::collections::BTreeMap;

use rolegate::dcs::patroni::cluster_from_keys;
use rolegate::topology::{derive, Service, Topology};

use super::cases::cases;
use super::fixtures::base;

/// Values a JSON number or string might be replaced with.
const ODD_VALUES: [&str; 10] = [
    "-1",
    "18446744073709551615",
    "1e308",
    "0.5",
    "\"50331648\"",
    "null",
    "[]",
    "{}",
    "\"\u{0}\"",
    "true",
];

/// One kind of damage to `keys`.
fn damage(r: &mut fastrand::Rng, keys: &mut BTreeMap<String, Vec<u8>>) {
    let names: Vec<String> = keys.keys().cloned().collect();
    if names.is_empty() {
        return;
    }
    let key = names[r.usize(..names.len())].clone();
    let value = keys.get_mut(&key).expect("a key just listed");
    match r.usize(..6) {
        // A byte changed.
        0 if !value.is_empty() => {
            let i = r.usize(..value.len());
            value[i] = r.u8(..);
        }
        // Cut off (a partial write).
        1 => value.truncate(r.usize(..=value.len())),
        // Gone.
        2 => {
            keys.remove(&key);
        }
        // Another key's value.
        3 => {
            let other = names[r.usize(..names.len())].clone();
            let v = keys[&other].clone();
            keys.insert(key, v);
        }
        // A number or a string value replaced with one of another type or range.
        _ => {
            let text = String::from_utf8_lossy(value).into_owned();
            let starts: Vec<usize> = text.match_indices(':').map(|(i, _)| i + 1).collect();
            if let Some(&at) = starts.get(r.usize(..starts.len().max(1))) {
                let end = text[at..].find([',', '}']).map_or(text.len(), |e| at + e);
                let odd = ODD_VALUES[r.usize(..ODD_VALUES.len())];
                *value = format!("{}{odd}{}", &text[..at], &text[end..]).into_bytes();
            }
        }
    }
}

fn names(t: &Topology, service: Service) -> Vec<&str> {
    t.candidates(service, None)
        .map(rolegate::topology::Member::name)
        .collect()
}

/// What every port relies on, whatever the keys said.
fn check_rules(t: &Topology, what: &str) {
    let primary = names(t, Service::Primary);
    let replica = names(t, Service::Replica);
    let sync = names(t, Service::Sync);
    let async_ = names(t, Service::Async);
    assert!(primary.len() <= 1, "{what}: two primaries {primary:?}");
    if let Some(p) = primary.first() {
        assert_eq!(
            t.leader.as_deref(),
            Some(*p),
            "{what}: a primary without the leader key"
        );
        assert!(
            !replica.contains(p),
            "{what}: the primary is also a replica"
        );
    }
    assert!(
        sync.iter().all(|s| replica.contains(s)),
        "{what}: sync {sync:?} not in {replica:?}"
    );
    assert!(
        async_.iter().all(|s| !sync.contains(s)),
        "{what}: {async_:?} both sync and async"
    );
    let mut both: Vec<&str> = sync.iter().chain(&async_).copied().collect();
    both.sort_unstable();
    assert_eq!(both, replica, "{what}: sync and async are not the replicas");
}

#[test]
fn damaged_keys_never_panic_and_keep_the_rules() {
    let cases = cases();
    for (n, case) in cases.iter().enumerate() {
        let mut keys = base();
        for key in case.unset {
            keys.remove(*key);
        }
        for (key, value) in case.set {
            keys.insert((*key).to_owned(), value.as_bytes().to_vec());
        }
        check_rules(&derive(&cluster_from_keys(&keys, 1)), case.name);
        for seed in 0..150u64 {
            let mut r = fastrand::Rng::with_seed(n as u64 * 1000 + seed + 1);
            let mut damaged = keys.clone();
            for _ in 0..=r.usize(..4) {
                damage(&mut r, &mut damaged);
            }
            let what = format!("{} (damage seed {seed})", case.name);
            check_rules(&derive(&cluster_from_keys(&damaged, 1)), &what);
        }
    }
}
