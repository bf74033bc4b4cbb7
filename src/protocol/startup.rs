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

/// A startup packet's parameters, in the order sent: the body's text, decoded once, and
/// where each name and value lies in it. Every connection pays for this, so it is one
/// allocation (the text) rather than one per string, and no tree or list nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupParams {
    /// Names and values, each followed by a NUL (as in the packet).
    text: String,
    /// (name start, value start, value end) in `text`; a name ends one byte (its NUL)
    /// before its value starts. Inline for eight pairs (libpq sends 3-5, JDBC 7). `u16`
    /// suffices: a packet is at most 10,000 bytes.
    pairs: smallvec::SmallVec<[(u16, u16, u16); 8]>,
}

impl StartupParams {
    /// The value of `name`; a later duplicate wins, as PostgreSQL applies them in order.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(|k| k == name.as_bytes())
    }

    /// The value of the parameter whose name is `name` ignoring ASCII case (the last one).
    #[must_use]
    pub fn get_ignore_case(&self, name: &str) -> Option<&str> {
        self.find(|k| name.as_bytes().eq_ignore_ascii_case(k))
    }

    /// The value of the last pair whose name `is` accepts. Names are compared as bytes
    /// (no character boundary checks for the names passed over).
    fn find(&self, mut is: impl FnMut(&[u8]) -> bool) -> Option<&str> {
        let bytes = self.text.as_bytes();
        let &(_, v, end) = self.pairs.iter().rev().find(|&&(k, v, _)| {
            bytes
                .get(usize::from(k)..usize::from(v).saturating_sub(1))
                .is_some_and(&mut is)
        })?;
        self.text.get(usize::from(v)..usize::from(end))
    }

    /// Adds a pair (after the others), for tests that make parameters without a packet.
    /// Names and values hold no NUL (a packet cannot carry one); one given here ends the
    /// string there.
    ///
    /// # Panics
    /// If the text grows past 64 KiB (a startup packet is at most 10,000 bytes).
    #[cfg(test)]
    pub fn push(&mut self, name: &str, value: &str) {
        let (name, value) = (Self::before_nul(name), Self::before_nul(value));
        let at =
            |text: &String| u16::try_from(text.len()).expect("startup parameters under 64 KiB");
        let k = at(&self.text);
        self.text.push_str(name);
        self.text.push('\0');
        let v = at(&self.text);
        self.text.push_str(value);
        let end = at(&self.text);
        self.text.push('\0');
        self.pairs.push((k, v, end));
    }

    #[cfg(test)]
    fn before_nul(s: &str) -> &str {
        s.find('\0').map_or(s, |end| &s[..end])
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
/// here rather than by a general decoder: every connection pays for it. The body is
/// checked for UTF-8 once and copied once; bytes that are not UTF-8 are replaced, as a
/// lossy decoder would (a replacement is never a NUL, so the layout stays); a later
/// duplicate name wins.
fn startup_params(body: &[u8]) -> Result<StartupParams, ProtocolError> {
    let layout = || {
        ProtocolError::Startup(
            "invalid startup packet layout: expected a terminator as the last byte".into(),
        )
    };
    // The layout ends with an empty name: the body's last byte is a NUL that ends the
    // pairs, and the one before it ends the last value (or the body is that NUL alone).
    let Some((&0, pairs)) = body.split_last() else {
        return Err(layout());
    };
    let text = match String::from_utf8(pairs.to_vec()) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    let mut params = StartupParams {
        text,
        pairs: smallvec::SmallVec::new(),
    };
    let bytes = params.text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let name_end = nul_after(bytes, at).ok_or_else(layout)?;
        if name_end == at {
            // An empty name before the end: the pairs ended early.
            return Err(layout());
        }
        let value_end = nul_after(bytes, name_end + 1).ok_or_else(layout)?;
        // Both fit: the text is at most a 10,000-byte packet (replacements aside, and a
        // replaced byte grows to three, so at most 30,000).
        let offset = |i: usize| u16::try_from(i).map_err(|_| layout());
        params
            .pairs
            .push((offset(at)?, offset(name_end + 1)?, offset(value_end)?));
        at = value_end + 1;
    }
    Ok(params)
}

/// The index of the first NUL at or after `from`.
fn nul_after(b: &[u8], from: usize) -> Option<usize> {
    b[from..].iter().position(|&c| c == 0).map(|i| from + i)
}

/// The one-byte answer to SSLRequest/GSSENCRequest when encryption is not offered.
pub const NO_ENCRYPTION: u8 = b'N';

#[cfg(test)]
mod tests;
