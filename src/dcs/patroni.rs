//! Parsing of Patroni's DCS values (2.x, 3.x, 4.x). Garbage never panics: a value
//! that cannot be parsed is ignored with a log line.

use std::collections::BTreeMap;

use crate::topology::ClusterState;

/// Builds a [`ClusterState`] from the keys under `/<namespace>/<scope>/`, named relative
/// to that prefix (`leader`, `members/pg1`, `sync`, `config`, `status`, ...).
#[must_use]
pub fn cluster_from_keys(keys: &BTreeMap<String, Vec<u8>>, revision: i64) -> ClusterState {
    let _ = (keys, revision);
    todo!("cluster_from_keys")
}
