//! MD5 password authentication (AuthenticationMD5Password), both sides: the answer is
//! `"md5" + md5hex(md5hex(password || user) || salt)`, so the stored
//! `md5(password || user)` is as good as the password here.

use ::md5::{Digest, Md5};
use pgwire::messages::startup::{Authentication, Password};
use tokio::io::{AsyncRead, AsyncWrite};

use super::scram::ct_eq;
use super::wire::{cstrings, read_password_family, send};
use super::{AuthError, RejectReason, Secret, ServerCredentials};

/// `md5(password || user)`: what PostgreSQL and auth_file store after "md5".
#[must_use]
pub fn md5_secret(password: &str, user: &str) -> [u8; 16] {
    md5(&[password.as_bytes(), user.as_bytes()])
}

/// The PasswordMessage answering a challenge with `salt`, from a stored digest.
#[must_use]
pub fn md5_response(secret: &[u8; 16], salt: [u8; 4]) -> String {
    format!("md5{}", hex(&md5(&[hex(secret).as_bytes(), &salt])))
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize());
    out
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// 32 hex digits (either case) into 16 bytes.
pub(crate) fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 16];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Challenges a client with MD5 and checks its answer against a plain or md5 `secret`.
/// A SCRAM verifier cannot check MD5 ([`RejectReason::UnusableSecret`], no exchange).
pub async fn md5_server<S>(stream: &mut S, user: &str, secret: &Secret) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let digest = match secret {
        Secret::Plain(p) if !p.is_empty() => md5_secret(p, user),
        Secret::Md5(d) => *d,
        Secret::Plain(_) | Secret::Scram(_) => {
            return Err(AuthError::Rejected(RejectReason::UnusableSecret))
        }
    };
    let salt: [u8; 4] = rand::random();
    let answer = challenge(stream, salt).await?;
    if ct_eq(answer.as_bytes(), md5_response(&digest, salt).as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Rejected(RejectReason::WrongPassword))
    }
}

/// An MD5 challenge that fails with `reason` whatever the client answers.
pub(crate) async fn md5_fake<S>(stream: &mut S, reason: RejectReason) -> AuthError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match challenge(stream, rand::random()).await {
        Ok(_) => AuthError::Rejected(reason),
        Err(e) => e,
    }
}

/// Sends AuthenticationMD5Password and reads the client's PasswordMessage.
async fn challenge<S>(stream: &mut S, salt: [u8; 4]) -> Result<String, AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send(stream, &Authentication::MD5Password(salt.to_vec())).await?;
    let body = read_password_family(stream).await?;
    let answer = cstrings(&body).next().unwrap_or_default();
    Ok(String::from_utf8_lossy(answer).into_owned())
}

/// Answers a server's MD5 challenge from a password or an md5 digest.
pub async fn md5_client<S>(
    stream: &mut S,
    user: &str,
    creds: &ServerCredentials,
    salt: [u8; 4],
) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let digest = match creds {
        ServerCredentials::Password(p) => md5_secret(p, user),
        ServerCredentials::Md5(d) => *d,
        ServerCredentials::None | ServerCredentials::Scram(_) => {
            return Err(AuthError::NoCredentials("MD5"))
        }
    };
    send(stream, &Password::new(md5_response(&digest, salt))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::wire::{read_server_auth, ServerAuth};

    #[test]
    fn known_answers() {
        // The md5 PostgreSQL stores for user "postgres" with password "postgres".
        let secret = md5_secret("postgres", "postgres");
        assert_eq!(hex(&secret), "3175bce1d3201d16594cebf9d7eb3f9d");
        assert_eq!(parse_hex16(&hex(&secret)), Some(secret));
        assert_eq!(
            parse_hex16("3175BCE1D3201D16594CEBF9D7EB3F9D"),
            Some(secret)
        );
        assert_eq!(parse_hex16("zz75bce1d3201d16594cebf9d7eb3f9d"), None);
        assert_eq!(parse_hex16("3175"), None);
        // RFC 1321 test suite.
        assert_eq!(hex(&md5(&[b"abc"])), "900150983cd24fb0d6963f7d28e17f72");
    }

    async fn exchange(stored: Secret, creds: ServerCredentials) -> Result<(), AuthError> {
        let (mut server, mut client) = tokio::io::duplex(4096);
        let client_task = tokio::spawn(async move {
            let ServerAuth::Md5(salt) = read_server_auth(&mut client).await? else {
                panic!("no md5 challenge");
            };
            md5_client(&mut client, "alice", &creds, salt).await
        });
        let result = md5_server(&mut server, "alice", &stored).await;
        client_task.await.unwrap().unwrap();
        result
    }

    #[tokio::test]
    async fn both_ways() {
        let plain = || Secret::Plain("s3cret".into());
        let digest = md5_secret("s3cret", "alice");
        let pw = || ServerCredentials::Password("s3cret".into());
        exchange(plain(), pw()).await.unwrap();
        exchange(Secret::Md5(digest), pw()).await.unwrap();
        exchange(plain(), ServerCredentials::Md5(digest))
            .await
            .unwrap();
        let wrong = ServerCredentials::Password("nope".into());
        assert!(matches!(
            exchange(plain(), wrong).await,
            Err(AuthError::Rejected(RejectReason::WrongPassword))
        ));
    }

    #[tokio::test]
    async fn scram_secret_cannot_check_md5() {
        let secret = Secret::Scram(crate::auth::ScramSecret::from_password("x", vec![1; 16], 1));
        let (mut server, _client) = tokio::io::duplex(64);
        assert!(matches!(
            md5_server(&mut server, "alice", &secret).await,
            Err(AuthError::Rejected(RejectReason::UnusableSecret))
        ));
        let (mut c, _s) = tokio::io::duplex(64);
        let keys = ServerCredentials::None;
        assert!(matches!(
            md5_client(&mut c, "alice", &keys, [0; 4]).await,
            Err(AuthError::NoCredentials(_))
        ));
    }
}
