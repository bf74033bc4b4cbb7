//! Named prepared statements in transaction mode.
//!
//! A client's statement `foo` may be needed on whichever server runs its next Bind, so
//! rolegate keeps, per client, the Parse that created each name, and prepares it under a
//! name derived from its text (`rg_<hash>`) on every server that lacks it. Servers keep
//! what they were given, up to `max_prepared_statements`, evicting the least recently
//! used; clients sharing a query share its server-side statement.

use crate::fast_hash::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};

/// One statement as the server knows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Statement {
    /// `rg_` + 24 hex digits of SHA-256 over the query text and parameter types.
    pub server_name: Bytes,
    /// The body of a Parse message creating it under `server_name`.
    pub parse_body: Bytes,
}

impl Statement {
    /// From a client's Parse body split after its statement name: `rest` is the query
    /// text (with its NUL) and the parameter types.
    #[must_use]
    pub fn from_parse_rest(rest: &[u8]) -> Arc<Self> {
        let digest = Sha256::digest(rest);
        let mut name = BytesMut::with_capacity(27);
        name.put_slice(b"rg_");
        for b in &digest[..12] {
            name.put_slice(format!("{b:02x}").as_bytes());
        }
        let name = name.freeze();
        let mut body = BytesMut::with_capacity(name.len() + 1 + rest.len());
        body.put_slice(&name);
        body.put_u8(0);
        body.put_slice(rest);
        Arc::new(Self {
            server_name: name,
            parse_body: body.freeze(),
        })
    }
}

/// The named statements one client has prepared, by the client's names.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<Bytes, Arc<Statement>>,
}

impl ClientStatements {
    pub fn insert(&mut self, name: Bytes, stmt: Arc<Statement>) {
        self.by_name.insert(name, stmt);
    }

    #[must_use]
    pub fn get(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        self.by_name.get(name)
    }

    pub fn remove(&mut self, name: &[u8]) {
        self.by_name.remove(name);
    }

    pub fn clear(&mut self) {
        self.by_name.clear();
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The statements one server connection holds, by server name, with LRU ticks.
#[derive(Debug, Default)]
pub struct ServerStatements {
    used: HashMap<Bytes, u64>,
    tick: u64,
}

impl ServerStatements {
    /// Whether the server has `name`; marks it used.
    pub fn touch(&mut self, name: &Bytes) -> bool {
        self.tick += 1;
        match self.used.get_mut(name) {
            Some(t) => {
                *t = self.tick;
                true
            }
            None => false,
        }
    }

    /// Records `name` as prepared; if that makes more than `capacity`, returns the least
    /// recently used other name, which the caller must Close on the server.
    pub fn insert(&mut self, name: &Bytes, capacity: usize) -> Option<Bytes> {
        self.tick += 1;
        self.used.insert(name.clone(), self.tick);
        if self.used.len() <= capacity.max(1) {
            return None;
        }
        let victim = self
            .used
            .iter()
            .filter(|(n, _)| *n != name)
            .min_by_key(|(_, t)| **t)
            .map(|(n, _)| n.clone())?;
        self.used.remove(&victim);
        Some(victim)
    }

    /// Records `name` as present without evicting (a Close that never ran).
    pub fn restore(&mut self, name: Bytes) {
        self.used.insert(name, 0);
    }

    pub fn remove(&mut self, name: &[u8]) {
        self.used.remove(name);
    }

    pub fn clear(&mut self) {
        self.used.clear();
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.used.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

/// Statements some server of a listener parsed successfully, per (database, user): a
/// client's Parse of one of them, outside a transaction, is answered without a server.
/// This saves a round trip, and keeps clients that prepare synchronously (pgbench, many
/// drivers) from waiting for a server while others of theirs hold every server.
#[derive(Debug, Default)]
pub struct KnownStatements {
    /// database -> user -> statement names (nested so a lookup needs no owned key).
    map: Mutex<HashMap<String, HashMap<String, HashSet<Bytes>>>>,
}

/// Past this many statements per (database, user) the registry starts over.
const MAX_KNOWN: usize = 10_000;

impl KnownStatements {
    pub fn add(&self, database: &str, user: &str, name: Bytes) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let set = map
            .entry(database.to_owned())
            .or_default()
            .entry(user.to_owned())
            .or_default();
        if set.len() >= MAX_KNOWN {
            set.clear();
        }
        set.insert(name);
    }

    #[must_use]
    pub fn contains(&self, database: &str, user: &str, name: &Bytes) -> bool {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(database)
            .and_then(|users| users.get(user))
            .is_some_and(|s| s.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_name_other_types_other_name() {
        let a = Statement::from_parse_rest(b"select $1\0\0\x01\0\0\0\x17");
        let b = Statement::from_parse_rest(b"select $1\0\0\x01\0\0\0\x17");
        let c = Statement::from_parse_rest(b"select $1\0\0\x01\0\0\0\x19");
        assert_eq!(a.server_name, b.server_name);
        assert_ne!(a.server_name, c.server_name);
        assert_eq!(a.server_name.len(), 27);
        assert!(a.parse_body.starts_with(&a.server_name));
        assert!(a.parse_body.ends_with(b"select $1\0\0\x01\0\0\0\x17"));
    }

    #[test]
    fn server_cache_evicts_least_recently_used() {
        let mut s = ServerStatements::default();
        let n = |i: u8| Bytes::from(vec![b'a' + i]);
        assert_eq!(s.insert(&n(0), 2), None);
        assert_eq!(s.insert(&n(1), 2), None);
        assert!(s.touch(&n(0)));
        assert_eq!(s.insert(&n(2), 2), Some(n(1)));
        assert!(!s.touch(&n(1)));
        assert!(s.touch(&n(0)) && s.touch(&n(2)));
        assert_eq!(s.len(), 2);
    }
}
