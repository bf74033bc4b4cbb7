//! The client side of SCRAM-SHA-256: rolegate logs into a PostgreSQL server with a
//! password or with keys recovered from a client's proof, and checks the server's
//! signature. The pure exchange ([`ClientExchange`]) is separate from the I/O.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use pgwire::messages::startup::{SASLInitialResponse, SASLResponse};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{attributes, ct_eq, hmac, new_nonce, valid_nonce, xor, ScramKeys, MECHANISM};
use crate::auth::wire::{cstrings, read_server_auth, send, ServerAuth};
use crate::auth::{AuthError, ServerCredentials};

/// What the client proves with.
#[derive(Debug, Clone, Copy)]
pub enum ClientSecret<'a> {
    /// Keys are derived with the server's salt and iteration count.
    Password(&'a str),
    /// Keys fixed in advance: the server's verifier must be the one they came from.
    Keys(&'a ScramKeys),
}

/// The exchange after client-first went out.
#[derive(Debug)]
pub struct ClientExchange {
    client_first_bare: String,
    nonce: String,
}

impl ClientExchange {
    /// Starts with `nonce`; returns the exchange and the client-first message. `user`
    /// is ignored by PostgreSQL (the startup packet's counts); rolegate sends "".
    #[must_use]
    pub fn start(user: &str, nonce: &str) -> (Self, String) {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={user},r={nonce}");
        let first = format!("n,,{client_first_bare}");
        let exchange = Self {
            client_first_bare,
            nonce: nonce.to_owned(),
        };
        (exchange, first)
    }

    /// Handles server-first; returns client-final and the server signature to expect.
    pub fn respond(
        &self,
        secret: ClientSecret<'_>,
        server_first: &str,
    ) -> Result<(String, [u8; 32]), AuthError> {
        let attrs = attributes(server_first)?;
        let [(b'r', nonce), (b's', salt), (b'i', iterations), ..] = attrs.as_slice() else {
            return Err(protocol("malformed SCRAM server-first message"));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() || !valid_nonce(nonce)
        {
            return Err(protocol("SCRAM server nonce does not extend ours"));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| protocol("SCRAM salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|i| *i > 0)
            .ok_or_else(|| protocol("SCRAM iteration count is not a positive integer"))?;
        let derived;
        let keys = match secret {
            ClientSecret::Keys(keys) => keys,
            ClientSecret::Password(p) => {
                derived = ScramKeys::from_password(p, &salt, iterations);
                &derived
            }
        };
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = [
            self.client_first_bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = hmac(&keys.stored_key(), &auth_message);
        let proof = xor(&keys.client_key, &client_signature);
        let server_signature = hmac(&keys.server_key, &auth_message);
        let client_final = format!("{without_proof},p={}", B64.encode(proof));
        Ok((client_final, server_signature))
    }

    /// Checks server-final against the expected signature.
    pub fn verify(server_final: &str, expected: &[u8; 32]) -> Result<(), AuthError> {
        match attributes(server_final)?.as_slice() {
            [(b'v', sig), ..] => match B64.decode(sig) {
                Ok(sig) if ct_eq(&sig, expected) => Ok(()),
                _ => Err(AuthError::ServerSignature),
            },
            [(b'e', err), ..] => Err(AuthError::Server {
                code: "28000".into(),
                message: format!("SCRAM error: {err}"),
            }),
            _ => Err(protocol("malformed SCRAM server-final message")),
        }
    }
}

fn protocol(what: &str) -> AuthError {
    AuthError::Protocol(what.to_owned())
}

/// Answers a server's AuthenticationSASL (`mechanisms`: the body after the code)
/// through AuthenticationSASLFinal. The AuthenticationOk after it is left unread.
pub async fn scram_client<S>(
    stream: &mut S,
    creds: &ServerCredentials,
    mechanisms: &[u8],
) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !cstrings(mechanisms).any(|m| m == MECHANISM.as_bytes()) {
        return Err(AuthError::Unsupported(
            "server offers no SASL mechanism rolegate supports".into(),
        ));
    }
    let secret = match creds {
        ServerCredentials::Password(p) => ClientSecret::Password(p),
        ServerCredentials::Scram(keys) => ClientSecret::Keys(keys),
        ServerCredentials::None | ServerCredentials::Md5(_) => {
            return Err(AuthError::NoCredentials(MECHANISM))
        }
    };
    let (exchange, first) = ClientExchange::start("", &new_nonce());
    let initial = SASLInitialResponse::new(MECHANISM.to_owned(), Some(Bytes::from(first)));
    send(stream, &initial).await?;
    let ServerAuth::SaslContinue(server_first) = read_server_auth(stream).await? else {
        return Err(protocol("expected AuthenticationSASLContinue"));
    };
    let (client_final, expected) = exchange.respond(secret, &utf8(server_first)?)?;
    send(stream, &SASLResponse::new(Bytes::from(client_final))).await?;
    let ServerAuth::SaslFinal(server_final) = read_server_auth(stream).await? else {
        return Err(protocol("expected AuthenticationSASLFinal"));
    };
    ClientExchange::verify(&utf8(server_final)?, &expected)
}

fn utf8(bytes: Vec<u8>) -> Result<String, AuthError> {
    String::from_utf8(bytes).map_err(|_| protocol("SCRAM message is not UTF-8"))
}
