//! Listeners and where their clients go: the role -> candidate members selection and
//! balancing ([`balance`]), the per-listener [`SessionRegistry`] that fences members
//! leaving a role ([`fence`]), the global [`CancelMap`], and the accept loop.
//! Reads topology snapshots; never writes them.

pub mod balance;
pub mod cancel;
pub mod fence;
pub mod listener;
pub mod registry;

pub use cancel::CancelMap;
pub use listener::Listener;
pub use registry::{KillReason, SessionGuard, SessionRegistry};
