//! ErrorResponse messages that rolegate itself sends to clients.

use bytes::{Bytes, BytesMut};
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::Message;

/// `ERROR` ends a statement; `FATAL` ends the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
        }
    }
}

/// An error for the client: SQLSTATE, a message saying what happened, a hint saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub severity: Severity,
    /// Five-character SQLSTATE.
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    #[must_use]
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// An error that ends the statement, not the session.
    #[must_use]
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            ..Self::fatal(code, message)
        }
    }

    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The wire form: one ErrorResponse ('E') message.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let sev = self.severity.as_str().to_owned();
        let mut fields = vec![
            (b'S', sev.clone()),
            (b'V', sev),
            (b'C', self.code.to_owned()),
            (b'M', self.message.clone()),
        ];
        if let Some(d) = &self.detail {
            fields.push((b'D', d.clone()));
        }
        if let Some(h) = &self.hint {
            fields.push((b'H', h.clone()));
        }
        let mut buf = BytesMut::new();
        // Encoding into a BytesMut only fails on length overflow, impossible for our messages.
        if ErrorResponse::new(fields).encode(&mut buf).is_err() {
            buf.clear();
        }
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_fields_in_order() {
        let e = PgError::fatal("57P01", "member pg1 is no longer primary").with_hint("reconnect");
        let b = e.encode();
        assert_eq!(b[0], b'E');
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        assert_eq!(len + 1, b.len());
        let body = &b[5..];
        let text = String::from_utf8_lossy(body);
        assert!(text
            .starts_with("SFATAL\0VFATAL\0C57P01\0Mmember pg1 is no longer primary\0Hreconnect\0"));
        assert_eq!(*body.last().unwrap(), 0);
    }
}
