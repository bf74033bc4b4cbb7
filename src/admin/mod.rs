//! Admin surfaces. Only reads shared state (topology store, listeners, pools, counters);
//! never routes, never writes topology.
//! - [`http`]: the HTTP admin server: stats page, `/metrics`, health and role checks, JSON.

pub mod http;
