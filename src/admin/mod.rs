//! Admin surfaces. Read shared state (topology store, listeners, pools, counters, the
//! client registry); never route, never write topology.
//! - [`http`]: the HTTP admin server: stats page, `/metrics`, health and role checks, JSON.
//! - [`console`]: the PgBouncer-compatible SQL admin console (database `pgbouncer` or
//!   `rolegate` on any listener). Its commands act only through the session gate, the
//!   client registry, the pools and `ControlRequest`s.

pub mod console;
pub mod http;
