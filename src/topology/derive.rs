//! Pure derivation: [`ClusterState`] -> [`Topology`]. Section 5.2 of the Patroni reference.

use super::{ClusterState, Topology};

/// Builds the routing view of one DCS state. Pure: same input, same output.
#[must_use]
pub fn derive(state: &ClusterState) -> Topology {
    let _ = state;
    todo!("derive")
}
