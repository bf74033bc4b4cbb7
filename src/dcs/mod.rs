//! Sources of cluster state. The etcd v3 watcher keeps a raw key map of the Patroni
//! prefix, [`patroni`] parses it into a [`ClusterState`](crate::topology::ClusterState),
//! and the result is published through one `TopologyStore::publish` call.
//! Must not route or touch client connections.

pub mod etcd;
pub mod patroni;
