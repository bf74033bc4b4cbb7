//! PostgreSQL v3 framing and the few messages rolegate reads or writes. No policy.
//!
//! The hot path never decodes bodies: [`frame`] reads only the 5-byte header of backend
//! messages to keep track of message boundaries. [`startup`] reads the untyped first
//! packet of a connection; [`error`] builds the ErrorResponses clients see.

pub mod error;
pub mod frame;
pub mod io;
pub mod startup;

pub use error::{PgError, Severity};
pub use startup::{CancelKey, FirstPacket};

/// Why a peer's bytes could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("connection closed")]
    Closed,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid length {0} in startup packet")]
    StartupLength(u32),
    #[error("unsupported frontend protocol {major}.{minor}: rolegate supports 3.0 to 3.2")]
    Version { major: u16, minor: u16 },
    #[error("invalid startup packet: {0}")]
    Startup(String),
    #[error("invalid message length {len} for message type {tag:?}")]
    MessageLength { tag: char, len: u32 },
}

impl ProtocolError {
    /// The ErrorResponse a client should get for this, if any is worth sending.
    #[must_use]
    pub fn to_client_error(&self) -> Option<PgError> {
        match self {
            Self::Closed | Self::Io(_) => None,
            Self::Version { .. } => Some(PgError::fatal("0A000", self.to_string())),
            _ => Some(PgError::fatal("08P01", self.to_string())),
        }
    }
}
