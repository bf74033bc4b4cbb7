//! The list of every client: joined once per connection, left once, never touched per
//! transaction. A slot table (a free slot reused, its index kept by the client's guard)
//! rather than an ordered map: a join and a leave are a push and a store, with no tree
//! nodes to balance, allocate and free; listings sort by id, which is rare.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use futures_util::task::AtomicWaker;

use super::{ClientInfo, ClientRow, ClientState, Now};

/// Who a new client is.
pub struct NewClient<'a> {
    pub id: u64,
    pub listener: &'a Arc<str>,
    pub user: &'a str,
    pub database: &'a str,
    pub peer: SocketAddr,
    pub pooled: bool,
}

/// All clients.
#[derive(Default)]
pub struct ClientRegistry {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Option<Arc<ClientInfo>>>,
    /// Empty slots, reused before the table grows (the clients listed are the slots
    /// not in it).
    free: Vec<usize>,
    /// The interned names of the last client to join: a new client usually has the same
    /// (an application's connections), and comparing them costs less than interning.
    last_names: Option<(Arc<str>, Arc<str>)>,
}

/// Keeps a client listed; dropping it removes the entry.
pub struct ClientGuard {
    registry: Arc<ClientRegistry>,
    slot: usize,
    pub info: Arc<ClientInfo>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut t = self.registry.lock();
        if let Some(entry) = t.slots.get_mut(self.slot) {
            if entry.take().is_some() {
                t.free.push(self.slot);
            }
        }
    }
}

impl ClientRegistry {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists a client in the Login state.
    pub fn join(self: &Arc<Self>, c: &NewClient<'_>) -> ClientGuard {
        let mut t = self.lock();
        let (user, database) = match &t.last_names {
            Some((user, db)) if **user == *c.user && **db == *c.database => {
                (user.clone(), db.clone())
            }
            _ => {
                let names = (
                    crate::session::intern::intern(c.user),
                    crate::session::intern::intern(c.database),
                );
                t.last_names = Some(names.clone());
                names
            }
        };
        let info = Arc::new(ClientInfo {
            id: c.id,
            listener: c.listener.clone(),
            user,
            database,
            peer: c.peer,
            connected: SystemTime::now(),
            pooled: c.pooled,
            now: Mutex::new(Now {
                state: ClientState::Login,
                since: Instant::now(),
                server: None,
                transactions: 0,
            }),
            kill_flag: AtomicBool::new(false),
            kill_waker: AtomicWaker::new(),
            reason: Mutex::new(None),
        });
        let entry = Some(info.clone());
        let slot = if let Some(slot) = t.free.pop() {
            t.slots[slot] = entry;
            slot
        } else {
            t.slots.push(entry);
            t.slots.len() - 1
        };
        drop(t);
        ClientGuard {
            registry: self.clone(),
            slot,
            info,
        }
    }

    /// Every client listed now, in no order.
    fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.lock().slots.iter().flatten().cloned().collect()
    }

    /// Wakes every client's session to look at its fence: a fence fired (see
    /// [`crate::route::SessionGuard::poll_fenced`]). Pooled sessions watch their fence
    /// through their kill waker, not a waiter list of their own, so fencing costs them
    /// nothing per step; the few sessions on other members wake for nothing, once.
    pub fn wake_all(&self) {
        for c in self.all() {
            c.kill_waker.wake();
        }
    }

    /// Every client, oldest first.
    #[must_use]
    pub fn rows(&self) -> Vec<ClientRow> {
        let mut all = self.all();
        all.sort_unstable_by_key(|c| c.id);
        all.iter().map(|c| c.row()).collect()
    }

    /// How many clients are listed.
    #[must_use]
    pub fn len(&self) -> usize {
        let t = self.lock();
        t.slots.len() - t.free.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kills the clients `which` selects; returns how many.
    pub fn kill_where(&self, which: impl Fn(&ClientRow) -> bool, reason: &str) -> usize {
        let mut n = 0;
        for c in self.all() {
            if which(&c.row()) {
                c.kill(reason);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(reg: &Arc<ClientRegistry>, id: u64, user: &str, db: &str) -> ClientGuard {
        reg.join(&NewClient {
            id,
            listener: &Arc::from("primary:5000"),
            user,
            database: db,
            peer: "127.0.0.1:40000".parse().unwrap(),
            pooled: true,
        })
    }

    #[test]
    fn slots_are_reused_listings_are_oldest_first_and_names_shared() {
        let reg = Arc::new(ClientRegistry::default());
        let first = join(&reg, 1, "app", "db");
        let second = join(&reg, 2, "app", "db");
        let third = join(&reg, 3, "other", "db");
        assert!(Arc::ptr_eq(&first.info.user, &second.info.user));
        assert!(Arc::ptr_eq(&first.info.database, &third.info.database));
        assert_eq!(&*third.info.user, "other");
        drop(first);
        assert_eq!(reg.len(), 2);
        // The freed slot comes first in the table; the listing is still by age.
        let fourth = join(&reg, 4, "app", "db");
        assert_eq!(fourth.slot, 0, "the free slot is reused");
        let ids: Vec<u64> = reg.rows().iter().map(|r| r.id).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(&*fourth.info.user, "app");
        drop((second, third, fourth));
        assert!(reg.is_empty());
        assert_eq!(
            reg.lock().slots.len(),
            3,
            "no slot added past the most at once"
        );
    }
}
