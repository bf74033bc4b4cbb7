//! Hash maps for the keys rolegate looks up while it connects and relays clients (cancel
//! keys, member names, pool keys, statement names, interned strings): foldhash, seeded
//! at random per process, in place of the standard SipHash, which cost more than a
//! connection's whole cancel-key and registry bookkeeping. Keys a client chooses (names,
//! statement names) still meet a random seed.

/// A `HashMap` with the fast hasher (build it with `HashMap::default()`).
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with the fast hasher (build it with `HashSet::default()`).
pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
