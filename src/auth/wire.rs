//! The few messages of the authentication exchange, read and written byte-exact on the
//! stream (nothing is read past a message, so the caller can take over the stream).
//! Encoding uses `pgwire::messages`; decoding peer bytes is done here, bounds-checked,
//! because a peer's bytes must never be able to panic us.

use bytes::BytesMut;
use pgwire::messages::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::AuthError;

/// Largest auth message body accepted (PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH).
const MAX_BODY: usize = 65_535;

/// Encodes `msg` and writes it out, flushed.
pub(crate) async fn send<S, M>(stream: &mut S, msg: &M) -> Result<(), AuthError>
where
    S: AsyncWrite + Unpin,
    M: Message,
{
    let mut buf = BytesMut::new();
    msg.encode(&mut buf)
        .map_err(|e| AuthError::Protocol(format!("cannot encode message: {e}")))?;
    stream.write_all(&buf).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one typed message: its tag and body.
pub(crate) async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(u8, Vec<u8>), AuthError> {
    let mut header = [0u8; 5];
    read_exact(stream, &mut header).await?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if !(4..=MAX_BODY + 4).contains(&len) {
        return Err(AuthError::Protocol(format!(
            "invalid length {len} for message type {:?}",
            char::from(header[0])
        )));
    }
    let mut body = vec![0u8; len - 4];
    read_exact(stream, &mut body).await?;
    Ok((header[0], body))
}

async fn read_exact<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), AuthError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(AuthError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Reads a frontend PasswordMessage-family ('p') body. Terminate means the client left.
pub(crate) async fn read_password_family<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Vec<u8>, AuthError> {
    match read_message(stream).await? {
        (b'p', body) => Ok(body),
        (b'X', _) => Err(AuthError::Closed),
        (tag, _) => Err(AuthError::Protocol(format!(
            "expected a password message, got message type {:?}",
            char::from(tag)
        ))),
    }
}

/// A backend Authentication ('R') request, decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerAuth {
    Ok,
    Cleartext,
    Md5([u8; 4]),
    /// Body after the code: the NUL-terminated mechanism names.
    Sasl(Vec<u8>),
    SaslContinue(Vec<u8>),
    SaslFinal(Vec<u8>),
    /// Kerberos, GSS, SSPI or unknown.
    Other(i32),
}

/// Reads backend messages until an Authentication request; skips NoticeResponse and
/// NegotiateProtocolVersion, turns ErrorResponse into [`AuthError::Server`].
pub(crate) async fn read_server_auth<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<ServerAuth, AuthError> {
    loop {
        let (tag, body) = read_message(stream).await?;
        match tag {
            b'R' => return decode_auth(body),
            b'E' => return Err(decode_error(&body)),
            b'N' | b'v' => {}
            _ => {
                return Err(AuthError::Protocol(format!(
                    "expected an authentication request, got message type {:?}",
                    char::from(tag)
                )))
            }
        }
    }
}

fn decode_auth(mut body: Vec<u8>) -> Result<ServerAuth, AuthError> {
    if body.len() < 4 {
        return Err(AuthError::Protocol(
            "truncated authentication request".into(),
        ));
    }
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = body.split_off(4);
    Ok(match (code, rest.len()) {
        (0, 0) => ServerAuth::Ok,
        (3, 0) => ServerAuth::Cleartext,
        (5, 4) => ServerAuth::Md5([rest[0], rest[1], rest[2], rest[3]]),
        (10, _) => ServerAuth::Sasl(rest),
        (11, _) => ServerAuth::SaslContinue(rest),
        (12, _) => ServerAuth::SaslFinal(rest),
        (0 | 3 | 5, _) => {
            return Err(AuthError::Protocol(format!(
                "authentication request {code} has a body of {} bytes",
                rest.len()
            )))
        }
        _ => ServerAuth::Other(code),
    })
}

/// The SQLSTATE ('C') and message ('M') fields of an ErrorResponse body.
fn decode_error(body: &[u8]) -> AuthError {
    let (mut code, mut message) = (String::new(), String::new());
    let mut fields = body.split(|b| *b == 0);
    while let Some(field) = fields.next().filter(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    AuthError::Server { code, message }
}

/// The NUL-terminated strings of a body (SASL mechanism list, Password message).
pub(crate) fn cstrings(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|b| *b == 0).take_while(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn decodes_requests_and_errors() {
        let mut bytes = msg(b'N', b"SNOTICE\0\0");
        bytes.extend(msg(b'R', &[0, 0, 0, 5, 1, 2, 3, 4]));
        bytes.extend(msg(b'E', b"SFATAL\0C28P01\0Mno\0\0"));
        bytes.extend(msg(b'R', &[0, 0, 0, 5, 1]));
        let mut r = bytes.as_slice();
        let got = read_server_auth(&mut r).await.unwrap();
        assert_eq!(got, ServerAuth::Md5([1, 2, 3, 4]));
        match read_server_auth(&mut r).await {
            Err(AuthError::Server { code, message }) => {
                assert_eq!((code.as_str(), message.as_str()), ("28P01", "no"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_server_auth(&mut r).await,
            Err(AuthError::Protocol(_))
        ));
        assert!(matches!(
            read_server_auth(&mut r).await,
            Err(AuthError::Closed)
        ));
    }

    #[tokio::test]
    async fn rejects_bad_lengths() {
        let mut r: &[u8] = &[b'p', 0, 0, 0, 3];
        assert!(matches!(
            read_password_family(&mut r).await,
            Err(AuthError::Protocol(_))
        ));
        let mut r: &[u8] = &[b'p', 0x7f, 0, 0, 0];
        assert!(matches!(
            read_password_family(&mut r).await,
            Err(AuthError::Protocol(_))
        ));
    }
}
