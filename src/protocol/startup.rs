//! The first packet of a connection: StartupMessage, SSLRequest, GSSENCRequest or
//! CancelRequest. It has no type byte: a length, then a 32-bit code.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::ProtocolError;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
const MAX_STARTUP_LEN: u32 = 10_000;

/// A cancel key's secret: inline up to 8 bytes (protocol 3.0's 4, and rolegate's own), so
/// a key costs no allocation of its own.
pub type Secret = smallvec::SmallVec<[u8; 8]>;

/// A backend's cancel key: process id and secret (4 bytes in 3.0, up to 256 in 3.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: Secret,
}

/// A startup packet's parameters, in the order sent. A handful per connection: a list,
/// not a map (no tree nodes to build and free per connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupParams(Vec<(String, String)>);

impl StartupParams {
    /// The value of `name`; a later duplicate wins, as PostgreSQL applies them in order.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of the parameter whose name is `name` ignoring ASCII case (the last one).
    #[must_use]
    pub fn get_ignore_case(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| name.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }

    /// Adds a pair (after the others).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }
}

/// What a client opened with.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstPacket {
    /// A StartupMessage: `raw` is the whole packet, forwarded to the server as is.
    Startup {
        raw: Bytes,
        params: StartupParams,
    },
    SslRequest,
    GssEncRequest,
    /// `raw` is the whole packet, forwarded to the backend that owns the key.
    Cancel {
        key: CancelKey,
        raw: Bytes,
    },
}

impl FirstPacket {
    /// `user` of a startup packet, for logs.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Self::Startup { params, .. } => params.get(name),
            _ => None,
        }
    }
}

/// Reads one first packet. Errors on a closed connection, a bad length or version, or
/// bytes after the packet (a client must wait for the answer to its first packet).
///
/// The first read asks for up to [`FIRST_READ`] bytes: a whole SSLRequest or a usual
/// startup packet arrives in one `recv`, and as that read is short, tokio clears the
/// socket's readiness, so the next read waits for data instead of trying a `recv` that
/// returns EAGAIN. The length is checked as soon as it is in, so a bad one is refused
/// without waiting for more bytes.
pub async fn read_first_packet<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<FirstPacket, ProtocolError> {
    read_first_packet_after(r, first_read_buffer(), 0).await
}

/// A buffer for [`read_first_packet_after`]: [`FIRST_READ`] bytes, on the heap (it
/// becomes the packet, and keeps a connection's first state small).
#[must_use]
pub fn first_read_buffer() -> BytesMut {
    BytesMut::zeroed(FIRST_READ)
}

/// [`read_first_packet`] when the first `got` bytes of the packet are in `head` already
/// (read as the connection was accepted); `head` is at least 8 bytes long. The packet is
/// parsed from `head` itself, grown if it is longer.
pub async fn read_first_packet_after<R: AsyncRead + Unpin>(
    r: &mut R,
    mut head: BytesMut,
    mut got: usize,
) -> Result<FirstPacket, ProtocolError> {
    let closed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ProtocolError::Closed,
        _ => e.into(),
    };
    let mut len = 0;
    loop {
        if got >= 4 && len == 0 {
            len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            if !(8..=MAX_STARTUP_LEN).contains(&len) {
                return Err(ProtocolError::StartupLength(len));
            }
        }
        if got >= 8 {
            break;
        }
        let n = r.read(&mut head[got..]).await.map_err(closed)?;
        if n == 0 {
            return Err(ProtocolError::Closed);
        }
        got += n;
    }
    let len = len as usize;
    if got > len {
        // PostgreSQL refuses this too after an SSLRequest (bytes sent in the clear that
        // could be taken as coming over TLS).
        return Err(ProtocolError::Startup(
            "the client sent more data after its first packet without waiting for the answer"
                .into(),
        ));
    }
    head.resize(len, 0);
    r.read_exact(&mut head[got..]).await.map_err(closed)?;
    parse_first_packet(head)
}

/// How many bytes the first read of a connection asks for: more than a usual startup
/// packet (pgbench's and psql's are under 100 bytes).
pub const FIRST_READ: usize = 512;

/// Parses a whole first packet (length included).
pub fn parse_first_packet(raw: BytesMut) -> Result<FirstPacket, ProtocolError> {
    let code = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
    match code {
        SSL_REQUEST if raw.len() == 8 => Ok(FirstPacket::SslRequest),
        GSSENC_REQUEST if raw.len() == 8 => Ok(FirstPacket::GssEncRequest),
        CANCEL_REQUEST if (16..=12 + 256).contains(&raw.len()) => {
            let pid = i32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
            let raw = raw.freeze();
            let key = CancelKey {
                pid,
                secret: Secret::from_slice(&raw[12..]),
            };
            Ok(FirstPacket::Cancel { key, raw })
        }
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => Err(ProtocolError::Startup(format!(
            "request code {code} with length {}",
            raw.len()
        ))),
        _ => parse_startup(raw, code),
    }
}

fn parse_startup(raw: BytesMut, code: u32) -> Result<FirstPacket, ProtocolError> {
    let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
    if major != 3 || minor > 2 {
        return Err(ProtocolError::Version { major, minor });
    }
    let params = startup_params(&raw[8..])?;
    if params.get("user").is_none() {
        return Err(ProtocolError::Startup("no \"user\" parameter".into()));
    }
    Ok(FirstPacket::Startup {
        raw: raw.freeze(),
        params,
    })
}

/// The name/value pairs of a StartupMessage body: NUL-terminated strings in pairs, ended
/// by an empty name that is the packet's last byte (PostgreSQL's layout rules). Parsed
/// here rather than by a general decoder: every connection pays for it, and this reads
/// the body once, copying each string once. Bytes that are not UTF-8 are replaced, as a
/// lossy decoder would; a later duplicate name wins.
fn startup_params(mut body: &[u8]) -> Result<StartupParams, ProtocolError> {
    let layout = || {
        ProtocolError::Startup(
            "invalid startup packet layout: expected a terminator as the last byte".into(),
        )
    };
    // (Eight: libpq sends 3-5, JDBC 7.)
    let mut params = StartupParams(Vec::with_capacity(8));
    loop {
        let (name, rest) = cstring(body).ok_or_else(layout)?;
        if name.is_empty() {
            return if rest.is_empty() {
                Ok(params)
            } else {
                Err(layout())
            };
        }
        let (value, rest) = cstring(rest).ok_or_else(layout)?;
        params.0.push((text(name), text(value)));
        body = rest;
    }
}

/// The bytes before the first NUL, and those after it.
fn cstring(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one-byte answer to SSLRequest/GSSENCRequest when encryption is not offered.
pub const NO_ENCRYPTION: u8 = b'N';

#[cfg(test)]
mod tests;
