//! Table test: raw Patroni keys (as Patroni writes them) -> the four role sets.
//! Covers the edge cases of section 5.3 of the Patroni reference.

use rolegate::dcs::patroni::cluster_from_keys;
use rolegate::topology::{derive, Service, Topology};

#[path = "topology_table/cases.rs"]
mod cases;
#[path = "topology_table/fixtures.rs"]
mod fixtures;
#[path = "topology_table/mutations.rs"]
mod mutations;

use cases::cases;
use fixtures::*;

fn names(t: &Topology, service: Service, max_lag: Option<u64>) -> Vec<&str> {
    t.candidates(service, max_lag)
        .map(rolegate::topology::Member::name)
        .collect()
}

#[test]
fn role_sets_for_every_edge_case() {
    let cases = cases();
    assert!(cases.len() >= 40, "table shrank to {}", cases.len());
    for case in &cases {
        let mut keys = base();
        for key in case.unset {
            keys.remove(*key);
        }
        for (key, value) in case.set {
            keys.insert((*key).to_owned(), value.as_bytes().to_vec());
        }
        let topology = derive(&cluster_from_keys(&keys, 100));
        let name = case.name;
        assert_eq!(
            names(&topology, Service::Primary, case.max_lag),
            case.primary,
            "5000: {name}"
        );
        assert_eq!(
            names(&topology, Service::Replica, case.max_lag),
            case.replica,
            "5001: {name}"
        );
        assert_eq!(
            names(&topology, Service::Sync, case.max_lag),
            case.sync,
            "5002: {name}"
        );
        assert_eq!(
            names(&topology, Service::Async, case.max_lag),
            case.async_,
            "5003: {name}"
        );
        assert_eq!(topology.revision, 100, "{name}");
        if let Some(check) = case.check {
            check(&topology);
        }
    }
}

#[test]
fn healthy_base_topology_details() {
    let topology = derive(&cluster_from_keys(&base(), 7));
    assert_eq!(topology.leader.as_deref(), Some("pg1"));
    assert_eq!(
        (topology.optime, topology.timeline, topology.generation),
        (Some(50_331_648), Some(3), 0)
    );
    let lags: Vec<_> = topology
        .members
        .iter()
        .map(|m| (m.name(), m.lag_bytes))
        .collect();
    assert_eq!(
        lags,
        [("pg1", Some(0)), ("pg2", Some(0)), ("pg3", Some(48))]
    );
    assert_eq!(
        topology.primary().and_then(|m| m.addr()),
        Some(("10.0.0.11", 5432))
    );
}

#[test]
fn derive_is_deterministic() {
    let state = cluster_from_keys(&base(), 7);
    assert_eq!(derive(&state), derive(&state));
}
