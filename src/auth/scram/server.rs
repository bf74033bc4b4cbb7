//! The server side of SCRAM-SHA-256: rolegate checks a client's proof against a stored
//! verifier and recovers the client's ClientKey from it. The pure exchange
//! ([`ServerExchange`]) is separate from the I/O ([`scram_server`]) so it can be run
//! with a fixed nonce. Sending AuthenticationOk is the caller's job.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use pgwire::messages::startup::Authentication;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{attributes, ct_eq, hmac, new_nonce, sha256, valid_nonce, xor};
use super::{ScramKeys, ScramSecret, MECHANISM};
use crate::auth::wire::{read_password_family, send};
use crate::auth::{AuthError, RejectReason};

/// The exchange after the server-first message went out.
#[derive(Debug)]
pub struct ServerExchange<'a> {
    secret: &'a ScramSecret,
    /// `n,,` or `y,,`: the client must echo it (base64) in client-final `c=`.
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// Client nonce + server nonce.
    nonce: String,
}

impl<'a> ServerExchange<'a> {
    /// Handles client-first; returns the exchange and the server-first message.
    pub fn start(
        secret: &'a ScramSecret,
        server_nonce: &str,
        client_first: &str,
    ) -> Result<(Self, String), AuthError> {
        let (gs2_header, bare) = split_gs2(client_first)?;
        let attrs = attributes(bare)?;
        let client_nonce = match attrs.as_slice() {
            [(b'm', _), ..] => return Err(unsupported("SCRAM mandatory extensions")),
            [(b'n', _), (b'r', nonce), ..] if valid_nonce(nonce) => *nonce,
            _ => return Err(protocol("malformed SCRAM client-first message")),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&secret.salt),
            secret.iterations
        );
        let exchange = Self {
            secret,
            gs2_header: gs2_header.to_owned(),
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first))
    }

    /// Handles client-final: checks the proof; returns server-final and the client's keys.
    pub fn finish(self, client_final: &str) -> Result<(String, ScramKeys), AuthError> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or_else(|| protocol("SCRAM client-final message has no proof"))?;
        let attrs = attributes(without_proof)?;
        let [(b'c', binding), (b'r', nonce), ..] = attrs.as_slice() else {
            return Err(protocol("malformed SCRAM client-final message"));
        };
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(protocol("SCRAM channel binding does not match gs2 header"));
        }
        if *nonce != self.nonce {
            return Err(protocol("SCRAM nonce does not match"));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| protocol("SCRAM proof is not 32 bytes of base64"))?;
        let auth_message = [
            self.client_first_bare.as_bytes(),
            b",",
            self.server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = hmac(&self.secret.stored_key, &auth_message);
        let client_key = xor(&proof, &client_signature);
        if !ct_eq(&sha256(&client_key), &self.secret.stored_key) {
            return Err(AuthError::Rejected(RejectReason::WrongPassword));
        }
        let server_signature = hmac(&self.secret.server_key, &auth_message);
        let keys = ScramKeys {
            client_key,
            server_key: self.secret.server_key,
        };
        Ok((format!("v={}", B64.encode(server_signature)), keys))
    }
}

/// Splits off the gs2 header (`n,,` / `y,,`); refuses channel binding and authzid.
fn split_gs2(client_first: &str) -> Result<(&str, &str), AuthError> {
    let mut parts = client_first.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(protocol("malformed SCRAM gs2 header"));
    };
    if flag.starts_with("p=") {
        return Err(unsupported("SCRAM channel binding"));
    }
    if flag != "n" && flag != "y" {
        return Err(protocol("malformed SCRAM gs2 header"));
    }
    if !authzid.is_empty() {
        return Err(unsupported("SCRAM authorization identity"));
    }
    Ok((&client_first[..flag.len() + authzid.len() + 2], bare))
}

fn protocol(what: &str) -> AuthError {
    AuthError::Protocol(what.to_owned())
}

fn unsupported(what: &str) -> AuthError {
    AuthError::Unsupported(format!("{what} not supported"))
}

/// Runs the server side of SCRAM-SHA-256 on `stream`: AuthenticationSASL through
/// AuthenticationSASLFinal. Returns the client's keys for passthrough to the server.
pub async fn scram_server<S>(stream: &mut S, secret: &ScramSecret) -> Result<ScramKeys, AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    run(stream, secret, None).await
}

/// A SCRAM exchange that always fails with `reason` once the client has sent its proof,
/// so an unknown user or unusable secret looks like a wrong password.
pub(crate) async fn scram_fake<S>(
    stream: &mut S,
    decoy: &ScramSecret,
    reason: RejectReason,
) -> AuthError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match run(stream, decoy, Some(reason)).await {
        Ok(_) => AuthError::Rejected(reason),
        Err(e) => e,
    }
}

async fn run<S>(
    stream: &mut S,
    secret: &ScramSecret,
    doomed: Option<RejectReason>,
) -> Result<ScramKeys, AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send(stream, &Authentication::SASL(vec![MECHANISM.to_owned()])).await?;
    let client_first = read_initial_response(stream).await?;
    let (exchange, server_first) = ServerExchange::start(secret, &new_nonce(), &client_first)?;
    send(stream, &Authentication::SASLContinue(server_first.into())).await?;
    let client_final = utf8(read_password_family(stream).await?)?;
    let result = exchange.finish(&client_final);
    if let Some(reason) = doomed {
        return Err(match result {
            Err(AuthError::Protocol(e)) => AuthError::Protocol(e),
            _ => AuthError::Rejected(reason),
        });
    }
    let (server_final, keys) = result?;
    send(
        stream,
        &Authentication::SASLFinal(Bytes::from(server_final)),
    )
    .await?;
    Ok(keys)
}

/// Reads SASLInitialResponse: mechanism name, then Int32 length and the client-first.
async fn read_initial_response<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, AuthError> {
    let body = read_password_family(stream).await?;
    let nul = body
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| protocol("malformed SASLInitialResponse"))?;
    if &body[..nul] != MECHANISM.as_bytes() {
        return Err(AuthError::Unsupported(format!(
            "SASL mechanism {:?} not supported",
            String::from_utf8_lossy(&body[..nul])
        )));
    }
    let rest = &body[nul + 1..];
    match rest {
        [a, b, c, d, data @ ..] if u32::from_be_bytes([*a, *b, *c, *d]) as usize == data.len() => {
            utf8(data.to_vec())
        }
        _ => Err(protocol("malformed SASLInitialResponse")),
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, AuthError> {
    String::from_utf8(bytes).map_err(|_| protocol("SCRAM message is not UTF-8"))
}
