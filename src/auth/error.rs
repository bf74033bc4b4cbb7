//! What can go wrong while authenticating a client or logging into a server, and the
//! ErrorResponse a client sees for each. No message here ever contains a secret.

use std::path::PathBuf;

use crate::protocol::PgError;

/// Why a client's credentials were refused. All three look the same to the client
/// (PostgreSQL does the same); the reason is only for rolegate's own logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No such user in the auth file (a fake exchange was run to hide that).
    UnknownUser,
    /// The password or SCRAM proof did not match the stored secret.
    WrongPassword,
    /// The stored secret cannot check this method (an md5 secret under
    /// scram-sha-256, an empty password).
    UnusableSecret,
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownUser => "unknown user",
            Self::WrongPassword => "wrong password",
            Self::UnusableSecret => "stored secret cannot verify this method",
        })
    }
}

/// An authentication failure, on either side of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication rejected: {0}")]
    Rejected(RejectReason),
    /// A peer sent something the protocol does not allow. The text names the message,
    /// never its content.
    #[error("protocol violation during authentication: {0}")]
    Protocol(String),
    /// The peer wants a mechanism or feature rolegate does not implement.
    #[error("unsupported authentication: {0}")]
    Unsupported(String),
    /// The server asked for a method the credentials rolegate holds cannot answer.
    #[error("server requested {0} authentication and rolegate has no credentials usable for it")]
    NoCredentials(&'static str),
    /// The server's SCRAM signature was wrong: it does not know the verifier.
    #[error("server failed to prove it knows the SCRAM verifier")]
    ServerSignature,
    /// The server answered the login with an ErrorResponse.
    #[error("server rejected login: {code} {message}")]
    Server { code: String, message: String },
    #[error("connection closed during authentication")]
    Closed,
    #[error("I/O error during authentication: {0}")]
    Io(#[from] std::io::Error),
    /// A malformed auth_file line (1-based).
    #[error("auth_file line {line}: {reason}")]
    UserList { line: usize, reason: &'static str },
    #[error("cannot read auth_file {}: {source}", path.display())]
    UserListIo {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A stored secret that does not parse.
    #[error("invalid secret: {0}")]
    Secret(&'static str),
}

/// Prefix of every client-facing error caused by the server side of the login.
const SERVER_PREFIX: &str = "rolegate could not log into the server: ";

/// SQLSTATEs a server may plausibly send during login, passed to the client as they are.
/// `PgError::code` is `&'static str`, so other codes become 08004.
const PASSED_CODES: &[&str] = &[
    "28000", "28P01", "3D000", "42501", "42704", "53000", "53100", "53200", "53300", "55000",
    "57P01", "57P02", "57P03", "08001", "08004", "08006", "08P01", "0A000", "XX000",
];

impl AuthError {
    /// The FATAL ErrorResponse the client gets. Wrong password, unknown user and an
    /// unusable secret read the same, so a client cannot probe which users exist.
    #[must_use]
    pub fn to_client_error(&self, user: &str) -> PgError {
        match self {
            Self::Rejected(_) => PgError::fatal(
                "28P01",
                format!("password authentication failed for user \"{user}\""),
            ),
            Self::Protocol(_) => PgError::fatal("08P01", self.to_string()),
            Self::Unsupported(_) => PgError::fatal("28000", self.to_string()),
            Self::NoCredentials(_) | Self::ServerSignature => {
                PgError::fatal("08004", format!("{SERVER_PREFIX}{self}"))
            }
            Self::Server { code, message } => {
                let code = PASSED_CODES
                    .iter()
                    .find(|c| **c == code.as_str())
                    .copied()
                    .unwrap_or("08004");
                PgError::fatal(code, format!("{SERVER_PREFIX}{message}"))
            }
            Self::Closed | Self::Io(_) => {
                PgError::fatal("08006", "connection failure during authentication")
            }
            Self::UserList { .. } | Self::UserListIo { .. } | Self::Secret(_) => {
                PgError::fatal("XX000", "rolegate authentication is misconfigured")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_read_the_same() {
        let a = AuthError::Rejected(RejectReason::UnknownUser).to_client_error("bob");
        let b = AuthError::Rejected(RejectReason::WrongPassword).to_client_error("bob");
        assert_eq!(a, b);
        assert_eq!(a.code, "28P01");
        assert_eq!(a.message, "password authentication failed for user \"bob\"");
    }

    #[test]
    fn server_errors_keep_their_code() {
        let e = AuthError::Server {
            code: "3D000".into(),
            message: "database \"x\" does not exist".into(),
        };
        let pg = e.to_client_error("bob");
        assert_eq!(pg.code, "3D000");
        assert_eq!(
            pg.message,
            "rolegate could not log into the server: database \"x\" does not exist"
        );
        let odd = AuthError::Server {
            code: "P0001".into(),
            message: "m".into(),
        };
        assert_eq!(odd.to_client_error("bob").code, "08004");
    }

    #[test]
    fn other_codes() {
        let proto = AuthError::Protocol("bad".into()).to_client_error("u");
        assert_eq!(proto.code, "08P01");
        let unsup = AuthError::Unsupported("channel binding".into()).to_client_error("u");
        assert_eq!(unsup.code, "28000");
    }
}
