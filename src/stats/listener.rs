//! The counters of one listener, held by its `Listener` in an `Arc` that every session of
//! the listener already has.

use super::{Counter, ErrorCounters, Gauge, Histogram};

/// Clients, transactions, bytes and errors of one listener.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Client connections open now (from accept to close).
    pub clients: Gauge,
    /// Clients waiting for a member or a pooled server connection now.
    pub clients_waiting: Gauge,
    /// Clients holding a server connection now (pooled: inside a transaction; passthrough:
    /// connected to a member).
    pub clients_active: Gauge,
    /// Client connections accepted since start.
    pub clients_accepted: Counter,
    /// Transactions ended (pooled listeners: ReadyForQuery idle after work).
    pub transactions: Counter,
    /// Queries: simple-protocol queries and extended-protocol Syncs/function calls.
    pub queries: Counter,
    /// Bytes read from clients.
    pub bytes_received: Counter,
    /// Bytes written to clients.
    pub bytes_sent: Counter,
    /// ErrorResponses sent to clients (the server's and rolegate's own), by SQLSTATE class.
    pub errors: ErrorCounters,
    /// How long clients waited for a member or a pooled server connection.
    pub wait_time: Histogram,
    /// Query latency: request sent to the server until its ReadyForQuery.
    pub query_time: Histogram,
    /// Transaction duration: server lent until given back (pooled listeners).
    pub transaction_time: Histogram,
}

impl ListenerStats {
    /// Clients connected but neither waiting nor holding a server.
    #[must_use]
    pub fn clients_idle(&self) -> u64 {
        self.clients
            .get()
            .saturating_sub(self.clients_waiting.get() + self.clients_active.get())
    }
}
