//! One `ArcSwap` holding the current [`Topology`], plus a change signal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::Topology;

/// Owns the published topology. Writers call [`publish`](Self::publish); readers
/// [`load`](Self::load) a snapshot or [`subscribe`](Self::subscribe) to changes.
pub struct TopologyStore {
    current: ArcSwap<Topology>,
    generation: AtomicU64,
    /// The generation of the topology `current` holds, set once it is stored (see
    /// [`published`](Self::published)).
    published: AtomicU64,
    /// Carries the generation; receivers wake on every publish.
    changed: watch::Sender<u64>,
    /// When the DCS last answered (watch event, progress, or read); for staleness.
    last_contact: std::sync::Mutex<Option<Instant>>,
    /// The DCS watch's health and last event, written by the DCS source.
    pub dcs: crate::stats::DcsStats,
}

impl Default for TopologyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TopologyStore {
    #[must_use]
    pub fn new() -> Self {
        let (changed, _) = watch::channel(0);
        Self {
            current: ArcSwap::from_pointee(Topology::default()),
            generation: AtomicU64::new(0),
            published: AtomicU64::new(0),
            changed,
            last_contact: std::sync::Mutex::new(None),
            dcs: crate::stats::DcsStats::default(),
        }
    }

    /// The current snapshot. Cheap; route on one snapshot, never mix two.
    #[must_use]
    pub fn load(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// Stores `topology` with the next generation and wakes subscribers.
    /// Returns the generation it got. Skips (and returns the current
    /// generation) when nothing but the revision changed.
    pub fn publish(&self, mut topology: Topology) -> u64 {
        let old = self.current.load();
        let mut same = topology.clone();
        same.generation = old.generation;
        same.revision = old.revision;
        if *old.as_ref() == same && old.generation != 0 {
            return old.generation;
        }
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        topology.generation = generation;
        self.current.store(Arc::new(topology));
        self.published.store(generation, Ordering::SeqCst);
        self.changed.send_replace(generation);
        generation
    }

    /// The generation of the stored topology: an atomic load, cheaper than
    /// [`load`](Self::load) when only "has anything changed since generation G" matters.
    /// Set after the topology is stored and before subscribers (the fencer) are woken.
    #[must_use]
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }

    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Records that the DCS answered just now.
    pub fn touch(&self) {
        if let Ok(mut t) = self.last_contact.lock() {
            *t = Some(Instant::now());
        }
    }

    /// When the DCS last answered, if ever.
    #[must_use]
    pub fn last_contact(&self) -> Option<Instant> {
        self.last_contact.lock().ok().and_then(|t| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_follows_each_stored_topology_and_skips_no_op_publishes() {
        let store = TopologyStore::new();
        assert_eq!(store.published(), 0);
        let mut t = Topology::default();
        let first = store.publish(t.clone());
        assert_eq!(store.published(), first);
        assert_eq!(store.load().generation, first);
        // Only the revision differs: nothing is stored, the generation stays.
        t.revision += 1;
        assert_eq!(store.publish(t.clone()), first);
        assert_eq!(store.published(), first);
        t.leader = Some("pg2".into());
        let second = store.publish(t);
        assert!(second > first);
        assert_eq!(store.published(), second);
        assert_eq!(store.load().generation, second);
    }
}
