//! PgBouncer's `auth_file` (userlist.txt): one `"user" "secret"` pair a line; `""`
//! inside quotes is a quote; blank lines and lines starting with `;` or `#` are
//! skipped; anything after the second field is ignored. Owns the parsed secrets and
//! keeps them out of Debug output and error messages.

use std::collections::HashMap;
use std::path::Path;

use super::md5::parse_hex16;
use super::scram::{parse_verifier, ScramSecret};
use super::AuthError;

/// A stored password, in one of the three forms PgBouncer and PostgreSQL know.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The password itself: can answer any method.
    Plain(String),
    /// `md5(password || user)`, written `md5` + 32 hex digits.
    Md5([u8; 16]),
    /// A SCRAM-SHA-256 verifier, written as PostgreSQL stores it.
    Scram(ScramSecret),
}

impl Secret {
    /// Classifies a stored password as PgBouncer does: `md5` + 32 hex digits is an md5
    /// digest, a `SCRAM-SHA-256$` prefix must be a valid verifier, anything else is
    /// plain text.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        classify(s).map_err(AuthError::Secret)
    }
}

fn classify(s: &str) -> Result<Secret, &'static str> {
    if s.starts_with("SCRAM-SHA-256$") {
        return parse_verifier(s).map(Secret::Scram);
    }
    if let Some(digest) = s.strip_prefix("md5").and_then(parse_hex16) {
        return Ok(Secret::Md5(digest));
    }
    Ok(Secret::Plain(s.to_owned()))
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(<redacted>)"),
            Self::Md5(_) => f.write_str("Md5(<redacted>)"),
            Self::Scram(s) => f.debug_tuple("Scram").field(s).finish(),
        }
    }
}

/// The users of an auth_file and their secrets. A later line for the same user wins.
#[derive(Debug, Default, Clone)]
pub struct UserList {
    users: HashMap<String, Secret>,
}

impl UserList {
    /// Parses auth_file text; a malformed line is an error naming its number.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let fail = |reason| AuthError::UserList {
                line: i + 1,
                reason,
            };
            if let Some((user, secret)) = parse_line(line).map_err(fail)? {
                users.insert(user, classify(&secret).map_err(fail)?);
            }
        }
        Ok(Self { users })
    }

    /// Reads and parses the auth_file at `path`.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::UserListIo {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    #[must_use]
    pub fn get(&self, user: &str) -> Option<&Secret> {
        self.users.get(user)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.users.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// One line: `None` for blank and comment lines, else the user and the raw secret.
fn parse_line(line: &str) -> Result<Option<(String, String)>, &'static str> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
        return Ok(None);
    }
    let (user, rest) = quoted(line).ok_or("expected a quoted user name")?;
    if user.is_empty() {
        return Err("empty user name");
    }
    let (secret, _ignored) = quoted(rest.trim_start()).ok_or("expected a quoted password")?;
    Ok(Some((user, secret)))
}

/// A `"..."` field at the start of `s` (with `""` for a quote) and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut rest = s.strip_prefix('"')?;
    let mut out = String::new();
    loop {
        let end = rest.find('"')?;
        out.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('"') {
            Some(after) => {
                out.push('"');
                rest = after;
            }
            None => return Some((out, rest)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
        WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    #[test]
    fn parses_all_forms() {
        let text = format!(
            "; comment\n# also\n\n  \"alice\" \"pa ss\"\n\"bob\"  \"md5{}\" trailing junk\r\n\
             \"carol\" \"{VERIFIER}\"\n\"d\"\"q\" \"a\"\"b\"\"\"\n\"eve\" \"md5short\"\n",
            "3175bce1d3201d16594cebf9d7eb3f9d"
        );
        let list = UserList::parse(&text).unwrap();
        assert_eq!(list.len(), 5);
        assert_eq!(list.get("alice"), Some(&Secret::Plain("pa ss".into())));
        let Some(Secret::Md5(d)) = list.get("bob") else {
            panic!("bob")
        };
        assert_eq!(d[0], 0x31);
        let Some(Secret::Scram(s)) = list.get("carol") else {
            panic!("carol")
        };
        assert_eq!((s.iterations, s.salt.len()), (4096, 16));
        assert_eq!(list.get("d\"q"), Some(&Secret::Plain("a\"b\"".into())));
        assert_eq!(list.get("eve"), Some(&Secret::Plain("md5short".into())));
        assert_eq!(list.get("nobody"), None);
    }

    #[test]
    fn later_line_wins() {
        let list = UserList::parse("\"a\" \"1\"\n\"a\" \"2\"\n").unwrap();
        assert_eq!(list.get("a"), Some(&Secret::Plain("2".into())));
    }

    #[test]
    fn malformed_lines_name_their_number() {
        for (text, line) in [
            ("\"a\" \"b\"\nalice secret\n", 2),
            ("\n\n\"a\" \"unterminated\n", 3),
            ("\"a\"\n", 1),
            ("\"\" \"pw\"\n", 1),
            ("\"a\" \"SCRAM-SHA-256$4096:bad\"\n", 1),
            ("\"a\" \"SCRAM-SHA-256$0:AAAA$AAAA:AAAA\"\n", 1),
        ] {
            match UserList::parse(text) {
                Err(AuthError::UserList { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let list =
            UserList::parse(&format!("\"alice\" \"hunter2\"\n\"c\" \"{VERIFIER}\"")).unwrap();
        let debug = format!("{list:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("W22Z"),
            "{debug}"
        );
        let err = UserList::parse("\"a\" \"SCRAM-SHA-256$4096:hunter2$x:y\"").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn load_reports_the_path() {
        let err = UserList::load(Path::new("/nonexistent/userlist.txt")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/userlist.txt"),
            "{err}"
        );
    }
}
