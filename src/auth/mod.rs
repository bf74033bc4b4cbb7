//! Authentication for a pooler, with PgBouncer's semantics: rolegate checks clients
//! against an auth_file ([`userlist`]) with trust, md5 or SCRAM-SHA-256, and logs into
//! servers with what it learned ([`ServerCredentials`]): a password, an md5 digest, or
//! the SCRAM ClientKey recovered from a client's proof.
//!
//! Owns the auth message exchanges only; it never sends AuthenticationOk to a client
//! (the session does, after choosing a server) and never opens connections.

pub mod error;
pub mod md5;
pub mod scram;
pub mod userlist;
mod wire;

use std::sync::OnceLock;

use pgwire::messages::startup::Password;
use tokio::io::{AsyncRead, AsyncWrite};

pub use error::{AuthError, RejectReason};
pub use scram::{scram_client, scram_server, ScramKeys, ScramSecret};

use scram::DEFAULT_ITERATIONS;
pub use userlist::{Secret, UserList};

use wire::{read_server_auth, send, ServerAuth};

/// How clients prove who they are (PgBouncer's `auth_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No password asked.
    Trust,
    /// MD5 challenge; a user whose secret is a SCRAM verifier gets SCRAM instead.
    Md5,
    ScramSha256,
}

impl AuthMethod {
    /// The PgBouncer `auth_type` name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trust => "trust",
            Self::Md5 => "md5",
            Self::ScramSha256 => "scram-sha-256",
        }
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        [Self::Trust, Self::Md5, Self::ScramSha256]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| AuthError::Unsupported(format!("auth_type {s:?}")))
    }
}

/// What rolegate can log into a server with, on a client's behalf.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerCredentials {
    /// Nothing: only a trusting server accepts the login.
    None,
    Password(String),
    /// `md5(password || user)`: answers MD5 challenges only.
    Md5([u8; 16]),
    /// Recovered from the client's SCRAM proof: answers SCRAM only, and only where the
    /// server stores the same verifier.
    /// (Boxed: a client's login keeps its credentials for the whole session.)
    Scram(Box<ScramKeys>),
}

impl ServerCredentials {
    /// What a stored secret alone can log in with (a SCRAM verifier cannot).
    #[must_use]
    pub fn from_secret(secret: Option<&Secret>) -> Self {
        match secret {
            Some(Secret::Plain(p)) if !p.is_empty() => Self::Password(p.clone()),
            Some(Secret::Md5(d)) => Self::Md5(*d),
            _ => Self::None,
        }
    }
}

impl std::fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Password(_) => "Password(<redacted>)",
            Self::Md5(_) => "Md5(<redacted>)",
            Self::Scram(_) => "Scram(<redacted>)",
        })
    }
}

/// What rolegate may log into servers with for a client `method` lets in without an
/// exchange (trust, as [`authenticate_client`] does, without its future); `None` = the
/// client must be checked.
#[must_use]
pub fn trusted(method: AuthMethod, secret: Option<&Secret>) -> Option<ServerCredentials> {
    (method == AuthMethod::Trust).then(|| ServerCredentials::from_secret(secret))
}

/// Checks a client by `method` against `secret` (`None`: unknown user) and returns what
/// rolegate may log into servers with. Unknown users and unusable secrets still get a
/// full exchange before failing, so they look like a wrong password. Does not send
/// AuthenticationOk or the ErrorResponse: see [`AuthError::to_client_error`].
pub async fn authenticate_client<S>(
    stream: &mut S,
    method: AuthMethod,
    user: &str,
    secret: Option<&Secret>,
) -> Result<ServerCredentials, AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use RejectReason::{UnknownUser, UnusableSecret};
    let usable = match secret {
        // PostgreSQL never accepts an empty password.
        Some(Secret::Plain(p)) if p.is_empty() => Err(UnusableSecret),
        Some(s) => Ok(s),
        None => Err(UnknownUser),
    };
    match (method, usable) {
        (AuthMethod::Trust, _) => Ok(ServerCredentials::from_secret(secret)),
        (_, Ok(Secret::Scram(verifier))) => {
            let keys = scram_server(stream, verifier).await?;
            Ok(ServerCredentials::Scram(Box::new(keys)))
        }
        (AuthMethod::Md5, Ok(s)) => {
            md5::md5_server(stream, user, s).await?;
            Ok(ServerCredentials::from_secret(Some(s)))
        }
        (AuthMethod::Md5, Err(reason)) => Err(md5::md5_fake(stream, reason).await),
        (AuthMethod::ScramSha256, Ok(Secret::Plain(p))) => {
            let verifier = ScramSecret::from_password(p, decoy_salt(user), DEFAULT_ITERATIONS);
            scram_server(stream, &verifier).await?;
            Ok(ServerCredentials::Password(p.clone()))
        }
        (AuthMethod::ScramSha256, Ok(Secret::Md5(_))) => {
            Err(fake_scram(stream, user, UnusableSecret).await)
        }
        (AuthMethod::ScramSha256, Err(reason)) => Err(fake_scram(stream, user, reason).await),
    }
}

/// A SCRAM exchange against a verifier nobody knows, failing with `reason`.
async fn fake_scram<S>(stream: &mut S, user: &str, reason: RejectReason) -> AuthError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let decoy = ScramSecret {
        iterations: DEFAULT_ITERATIONS,
        salt: decoy_salt(user),
        stored_key: rand::random(),
        server_key: rand::random(),
    };
    scram::server::scram_fake(stream, &decoy, reason).await
}

/// The salt shown for a user without a stored one (unknown user, plain password):
/// random per process but stable per user, like a real verifier's, so repeated
/// attempts cannot tell such users apart from SCRAM users by a changing salt.
fn decoy_salt(user: &str) -> Vec<u8> {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    scram::hmac(key, &[user.as_bytes()])[..16].to_vec()
}

/// Answers a server's Authentication requests after rolegate sent it a startup packet,
/// until AuthenticationOk; what follows it (ParameterStatus, BackendKeyData,
/// ReadyForQuery) is left unread. An ErrorResponse becomes [`AuthError::Server`].
pub async fn answer_server_auth<S>(
    stream: &mut S,
    user: &str,
    creds: &ServerCredentials,
) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match read_server_auth(stream).await? {
            ServerAuth::Ok => return Ok(()),
            ServerAuth::Cleartext => {
                let ServerCredentials::Password(p) = creds else {
                    return Err(AuthError::NoCredentials("cleartext password"));
                };
                send(stream, &Password::new(p.clone())).await?;
            }
            ServerAuth::Md5(salt) => md5::md5_client(stream, user, creds, salt).await?,
            ServerAuth::Sasl(mechanisms) => scram_client(stream, creds, &mechanisms).await?,
            ServerAuth::SaslContinue(_) | ServerAuth::SaslFinal(_) => {
                return Err(AuthError::Protocol(
                    "unexpected SASL message from server".into(),
                ))
            }
            ServerAuth::Other(code) => {
                return Err(AuthError::Unsupported(format!(
                    "server requested authentication method {code}"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests;
