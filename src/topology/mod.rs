//! Plain data about the cluster: who is primary, sync, async, and how far behind.
//!
//! Owns the parsed DCS records ([`state`]), the pure derivation ([`mod@derive`]) of an
//! immutable [`Topology`], and the [`TopologyStore`] that publishes it with one swap.
//! Must not do I/O: the DCS watcher feeds it, routing reads it.

pub mod derive;
pub mod model;
pub mod state;
pub mod store;

pub use derive::derive;
pub use model::{Member, Service, Topology};
pub use state::{ClusterState, MemberRecord, MemberRole, SyncMode};
pub use store::TopologyStore;
