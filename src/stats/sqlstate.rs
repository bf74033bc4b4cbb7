//! Errors counted by SQLSTATE class: a fixed table of PostgreSQL's classes plus `other`,
//! so the `class` label comes from a closed set whatever a server sends.

use super::Counter;

/// PostgreSQL's SQLSTATE classes (Appendix A of its manual).
pub const CLASSES: [&str; 43] = [
    "00", "01", "02", "03", "08", "09", "0A", "0B", "0F", "0L", "0P", "0Z", "20", "21", "22", "23",
    "24", "25", "26", "27", "28", "2B", "2D", "2F", "34", "38", "39", "3B", "3D", "3F", "40", "42",
    "44", "53", "54", "55", "57", "58", "72", "F0", "HV", "P0", "XX",
];

/// One counter per class, the last for codes of no known class.
#[derive(Debug)]
pub struct ErrorCounters([Counter; CLASSES.len() + 1]);

impl Default for ErrorCounters {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Counter::default()))
    }
}

impl ErrorCounters {
    /// Counts one error with SQLSTATE `code` (5 characters; only the first two matter).
    pub fn record(&self, code: &[u8]) {
        let class = code.get(..2).unwrap_or_default();
        let i = CLASSES
            .iter()
            .position(|c| c.as_bytes().eq_ignore_ascii_case(class))
            .unwrap_or(CLASSES.len());
        self.0[i].inc();
    }

    /// Counts the error in an ErrorResponse body (its `C` field); `other` if it has none.
    pub fn record_response(&self, body: &[u8]) {
        self.record(sqlstate_of(body).unwrap_or_default());
    }

    /// `(class, count)` for every class seen at least once.
    #[must_use]
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        CLASSES
            .iter()
            .copied()
            .chain(std::iter::once("other"))
            .zip(&self.0)
            .map(|(c, n)| (c, n.get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// All errors.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
}

/// The SQLSTATE in an ErrorResponse/NoticeResponse body: fields are `type byte, cstring`.
#[must_use]
pub fn sqlstate_of(body: &[u8]) -> Option<&[u8]> {
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            return None;
        }
        let end = tail.iter().position(|&b| b == 0)?;
        if kind == b'C' {
            return Some(&tail[..end]);
        }
        rest = &tail[end + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_the_code_field() {
        let e = ErrorCounters::default();
        e.record_response(b"SERROR\0VERROR\0C42P01\0Mrelation does not exist\0\0");
        e.record_response(b"SFATAL\0C57P01\0Mterminating\0\0");
        e.record_response(b"C57P03\0\0");
        e.record_response(b"Mno code at all\0\0");
        e.record(b"ZZ999");
        assert_eq!(e.nonzero(), [("42", 1), ("57", 2), ("other", 2)]);
        assert_eq!(e.total(), 5);
    }

    #[test]
    fn truncated_bodies_do_not_panic() {
        assert_eq!(sqlstate_of(b"C42"), None);
        assert_eq!(sqlstate_of(b""), None);
        assert_eq!(sqlstate_of(b"SERROR"), None);
    }
}
