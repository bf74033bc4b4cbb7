//! etcd v3 watcher.
