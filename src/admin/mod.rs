//! Operator interfaces. [`console`]: the PgBouncer-compatible SQL admin console (database
//! `pgbouncer` or `rolegate` on any listener). Reads shared state; its commands act only
//! through the session gate, the client registry, the pools and `ControlRequest`s.

pub mod console;
