//! Reading whole messages and building the few packets rolegate sends as a client.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::frame::{HEADER_LEN, MAX_MESSAGE_LEN};
use super::ProtocolError;

/// Reads one typed message (tag + body). Bodies over `max` bytes are refused: callers that
/// only parse small control messages pass a small `max`.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
) -> Result<(u8, BytesMut), ProtocolError> {
    let mut header = [0u8; HEADER_LEN];
    if let Err(e) = r.read_exact(&mut header).await {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Closed
        } else {
            e.into()
        });
    }
    let tag = header[0];
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if !(4..=MAX_MESSAGE_LEN.min(max.saturating_add(4))).contains(&len) {
        return Err(ProtocolError::MessageLength {
            tag: char::from(tag),
            len,
        });
    }
    let mut body = BytesMut::zeroed((len - 4) as usize);
    if let Err(e) = r.read_exact(&mut body).await {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Closed
        } else {
            e.into()
        });
    }
    Ok((tag, body))
}

/// A typed message: tag, length, body.
#[must_use]
pub fn message(tag: u8, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
    b.put_u8(tag);
    b.put_u32(u32::try_from(body.len() + 4).unwrap_or(u32::MAX));
    b.put_slice(body);
    b.freeze()
}

/// Appends a message made of `parts` to `out` (no allocation beyond `out` growing).
pub fn put_message(out: &mut Vec<u8>, tag: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 4;
    out.push(tag);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// A protocol 3.0 StartupMessage with `params` (user, database, ...).
#[must_use]
pub fn startup_packet(params: &[(&str, &str)]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u32(196_608);
    for (k, v) in params {
        body.put_slice(k.as_bytes());
        body.put_u8(0);
        body.put_slice(v.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut b = BytesMut::with_capacity(body.len() + 4);
    b.put_u32(u32::try_from(body.len() + 4).unwrap_or(u32::MAX));
    b.put_slice(&body);
    b.freeze()
}

/// A CancelRequest packet for `key`.
#[must_use]
pub fn cancel_packet(key: &super::CancelKey) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + key.secret.len());
    b.put_u32(u32::try_from(12 + key.secret.len()).unwrap_or(u32::MAX));
    b.put_u32(80_877_102);
    b.put_i32(key.pid);
    b.put_slice(&key.secret);
    b.freeze()
}

/// Splits a ParameterStatus body into (name, value).
#[must_use]
pub fn parse_parameter_status(body: &[u8]) -> Option<(String, String)> {
    let mut parts = body.split(|b| *b == 0);
    let name = std::str::from_utf8(parts.next()?).ok()?;
    let value = std::str::from_utf8(parts.next()?).ok()?;
    Some((name.to_owned(), value.to_owned()))
}

/// The fields of an ErrorResponse/NoticeResponse body, by field code.
#[must_use]
pub fn parse_error_fields(body: &[u8]) -> Vec<(u8, String)> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_what_message_writes_and_refuses_oversized_bodies() {
        let mut bytes = message(b'S', b"TimeZone\0UTC\0").to_vec();
        bytes.extend_from_slice(&message(b'D', &[0; 100]));
        let mut r = bytes.as_slice();
        let (tag, body) = read_message(&mut r, 64).await.unwrap();
        assert_eq!(tag, b'S');
        assert_eq!(
            parse_parameter_status(&body),
            Some(("TimeZone".into(), "UTC".into()))
        );
        assert!(matches!(
            read_message(&mut r, 64).await,
            Err(ProtocolError::MessageLength { tag: 'D', .. })
        ));
        assert!(matches!(
            read_message(&mut [].as_slice(), 64).await,
            Err(ProtocolError::Closed)
        ));
    }

    #[test]
    fn startup_packet_round_trips_through_the_parser() {
        let p = startup_packet(&[("user", "app"), ("database", "db")]);
        let parsed = super::super::startup::parse_first_packet(BytesMut::from(&p[..])).unwrap();
        assert_eq!(parsed.param("user"), Some("app"));
        assert_eq!(parsed.param("database"), Some("db"));
    }

    #[test]
    fn cancel_packet_round_trips_through_the_parser() {
        let key = super::super::CancelKey {
            pid: 77,
            secret: crate::protocol::startup::Secret::from_slice(&[4, 3, 2, 1]),
        };
        let p = cancel_packet(&key);
        let parsed = super::super::startup::parse_first_packet(BytesMut::from(&p[..])).unwrap();
        assert!(matches!(parsed, super::super::FirstPacket::Cancel { key: k, .. } if k == key));
    }

    #[test]
    fn error_fields() {
        let f = parse_error_fields(b"SFATAL\0C28P01\0Mbad\0\0");
        assert_eq!(
            f,
            [
                (b'S', "FATAL".into()),
                (b'C', "28P01".into()),
                (b'M', "bad".into())
            ]
        );
    }
}
