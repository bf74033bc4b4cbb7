//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: the key arithmetic and
//! the stored verifier here, the server exchange in [`server`] (rolegate checks a
//! client), the client exchange in [`client`] (rolegate logs into a server).
//!
//! Channel binding is not offered: gs2 headers `n,,` and `y,,` are accepted, `p=` is
//! refused. The user name inside SCRAM messages is ignored, as PostgreSQL does; the
//! startup packet's user is the one that counts.

pub mod client;
pub mod server;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::AuthError;

pub use client::scram_client;
pub use server::scram_server;

/// The SASL mechanism name.
pub const MECHANISM: &str = "SCRAM-SHA-256";
/// Iterations for verifiers rolegate derives itself (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Random bytes in a nonce before base64 (PostgreSQL uses 18).
const NONCE_BYTES: usize = 18;

type HmacSha256 = Hmac<Sha256>;

/// A SCRAM-SHA-256 verifier as PostgreSQL stores it in `pg_authid.rolpassword`:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    /// H(ClientKey): checks a client proof.
    pub stored_key: [u8; 32],
    /// Signs the server's final message.
    pub server_key: [u8; 32],
}

impl ScramSecret {
    /// Parses the stored verifier form. The error never echoes the input.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        parse_verifier(s).map_err(AuthError::Secret)
    }

    /// The verifier of `password` with this `salt` and `iterations`.
    #[must_use]
    pub fn from_password(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let keys = ScramKeys::from_password(password, &salt, iterations);
        Self {
            iterations,
            salt,
            stored_key: keys.stored_key(),
            server_key: keys.server_key,
        }
    }
}

pub(crate) fn parse_verifier(s: &str) -> Result<ScramSecret, &'static str> {
    let rest = s
        .strip_prefix("SCRAM-SHA-256$")
        .ok_or("not a SCRAM-SHA-256 verifier")?;
    let (params, keys) = rest.split_once('$').ok_or("SCRAM verifier lacks '$'")?;
    let (iterations, salt) = params.split_once(':').ok_or("SCRAM verifier lacks salt")?;
    let (stored, server) = keys
        .split_once(':')
        .ok_or("SCRAM verifier lacks ServerKey")?;
    let iterations: u32 = iterations
        .parse()
        .ok()
        .filter(|i| *i > 0)
        .ok_or("SCRAM iteration count is not a positive integer")?;
    let salt = B64.decode(salt).map_err(|_| "SCRAM salt is not base64")?;
    if salt.is_empty() {
        return Err("SCRAM salt is empty");
    }
    Ok(ScramSecret {
        iterations,
        salt,
        stored_key: decode_key(stored).ok_or("SCRAM StoredKey is not 32 bytes of base64")?,
        server_key: decode_key(server).ok_or("SCRAM ServerKey is not 32 bytes of base64")?,
    })
}

impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// ClientKey and ServerKey: enough to log into a server that stores the matching
/// verifier, without knowing the password (recovered from a client's proof).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub client_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl ScramKeys {
    /// Keys of `password` (SASLprep'd as PostgreSQL does) for this salt and count.
    #[must_use]
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(password, salt, iterations);
        Self {
            client_key: hmac(&salted, &[b"Client Key"]),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    /// H(ClientKey), what the server stores.
    #[must_use]
    pub fn stored_key(&self) -> [u8; 32] {
        sha256(&self.client_key)
    }
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramKeys { .. }")
    }
}

/// Hi(SASLprep(password), salt, i) of RFC 5802 (PBKDF2-HMAC-SHA-256, one block).
/// Like PostgreSQL, a password SASLprep rejects is used as raw bytes.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let prepared = stringprep::saslprep(password);
    let bytes = prepared.as_deref().unwrap_or(password).as_bytes();
    let keyed = HmacSha256::new_from_slice(bytes).expect("HMAC takes keys of any length");
    let run = |data: &[&[u8]]| {
        let mut mac = keyed.clone();
        for d in data {
            mac.update(d);
        }
        to_array(&mac.finalize().into_bytes())
    };
    let mut u = run(&[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = run(&[&u]);
        out = xor(&out, &u);
    }
    out
}

pub(crate) fn hmac(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for d in data {
        mac.update(d);
    }
    to_array(&mac.finalize().into_bytes())
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    to_array(&Sha256::digest(data))
}

fn to_array(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(bytes);
    out
}

pub(crate) fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Equality whose time does not depend on where the inputs differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_key(s: &str) -> Option<[u8; 32]> {
    B64.decode(s).ok()?.try_into().ok()
}

/// A fresh printable nonce (base64 never contains ',').
pub(crate) fn new_nonce() -> String {
    B64.encode(rand::random::<[u8; NONCE_BYTES]>())
}

/// Splits `a=x,b=y` into attributes; each must be one ASCII letter, '=', a value.
pub(crate) fn attributes(msg: &str) -> Result<Vec<(u8, &str)>, AuthError> {
    msg.split(',')
        .map(|part| match part.as_bytes() {
            [name, b'=', ..] if name.is_ascii_alphabetic() => Ok((*name, &part[2..])),
            _ => Err(AuthError::Protocol("malformed SCRAM attribute".into())),
        })
        .collect()
}

/// A nonce is printable ASCII without ','.
pub(crate) fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

#[cfg(test)]
mod tests;
