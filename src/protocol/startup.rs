//! The first packet of a connection: StartupMessage, SSLRequest, GSSENCRequest or
//! CancelRequest. It has no type byte: a length, then a 32-bit code.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use pgwire::messages::startup::Startup;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
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

/// What a client opened with.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstPacket {
    /// A StartupMessage: `raw` is the whole packet, forwarded to the server as is.
    Startup {
        raw: Bytes,
        params: BTreeMap<String, String>,
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
            Self::Startup { params, .. } => params.get(name).map(String::as_str),
            _ => None,
        }
    }
}

/// Reads one first packet. Errors on a closed connection, a bad length or version.
/// Every valid first packet has at least 8 bytes (length and code), so those are read
/// together: an SSLRequest takes one `recv`, not two. The length is checked as soon as
/// it is in, so a bad one is refused without waiting for more bytes.
pub async fn read_first_packet<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<FirstPacket, ProtocolError> {
    let closed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ProtocolError::Closed,
        _ => e.into(),
    };
    let mut head = [0u8; 8];
    let mut got = 0;
    let mut len = 0;
    while got < head.len() {
        let n = r.read(&mut head[got..]).await.map_err(closed)?;
        if n == 0 {
            return Err(ProtocolError::Closed);
        }
        got += n;
        if got >= 4 && len == 0 {
            len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            if !(8..=MAX_STARTUP_LEN).contains(&len) {
                return Err(ProtocolError::StartupLength(len));
            }
        }
    }
    let mut raw = BytesMut::zeroed(len as usize);
    raw[..8].copy_from_slice(&head);
    r.read_exact(&mut raw[8..]).await.map_err(closed)?;
    parse_first_packet(raw)
}

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
    let mut buf = raw.clone();
    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let startup = Startup::decode(&mut buf, &ctx)
        .map_err(|e| ProtocolError::Startup(e.to_string()))?
        .ok_or_else(|| ProtocolError::Startup("truncated".into()))?;
    if !startup.parameters.contains_key("user") {
        return Err(ProtocolError::Startup("no \"user\" parameter".into()));
    }
    Ok(FirstPacket::Startup {
        raw: raw.freeze(),
        params: startup.parameters,
    })
}

/// The one-byte answer to SSLRequest/GSSENCRequest when encryption is not offered.
pub const NO_ENCRYPTION: u8 = b'N';

#[cfg(test)]
mod tests;
