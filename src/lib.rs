//! rolegate: a Patroni-aware PostgreSQL proxy.
//!
//! # Layout
//! - [`config`]: the TOML model, defaults, validation and loading. Imports nothing internal.
//! - [`protocol`]: PostgreSQL v3 framing and the few messages we read or write. No policy.
//! - [`dcs`]: cluster-state sources (etcd v3 watch, Patroni JSON parsing); writes topology
//!   only through [`topology::TopologyStore::publish`].
//! - [`topology`]: plain data about members and roles; derivation is a pure function.
//! - [`route`]: listeners, candidate selection and balancing, the session registry that
//!   fences members leaving a role, and cancel-key routing.
//! - [`auth`]: client auth (trust/md5/SCRAM, auth_file) and server login with SCRAM passthrough.
//! - [`pool`]: server connection pools per (member, database, user), RAII checkouts,
//!   `max_db_connections` per (member, database), idle/lifetime maintenance, draining
//!   members that leave a role.
//! - [`session`]: one client connection: startup, auth_query lookups, forwarding, being
//!   killed on role change.
//! - [`stats`]: shared atomic counters (per listener, DCS, switchover holds, reloads) that
//!   the hot path bumps and the admin server reads. Imports nothing internal.
//! - [`tcp`]: the TCP options of client and server connections (nodelay, keepalive,
//!   user timeout).
//! - [`admin`]: the HTTP admin server (stats page, /metrics, health and role checks, JSON
//!   views). Only reads shared state.
//! - [`app`]: wiring only: builds shared state, spawns tasks, owns shutdown.

pub mod admin;
pub mod app;
pub mod auth;
mod boxed;
pub mod config;
pub mod dcs;
pub mod fast_hash;
pub mod pool;
pub mod protocol;
pub mod route;
pub mod session;
pub mod stats;
pub mod tcp;
pub mod topology;
