//! The session parameters a pooled client expects, re-applied on whichever server it lands.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::session::intern::intern;

use crate::pool::server::tracked_text;
pub use crate::pool::server::TRACKED;

/// The client's view of its tracked parameters, kept as one [`tracked_text`] string
/// ("name\0value\0" in [`TRACKED`] order): it is compared with a server's `tracked` once
/// per transaction, and it is all an idle client keeps of them (no map per client).
/// The text is shared ([`intern`]): clients of one application usually have the same.
#[derive(Debug, Default, Clone)]
pub struct ClientParams {
    text: Arc<str>,
    /// Defaults were taken from a server's login values (once is enough: a pool's servers
    /// log in as the same user to the same database).
    adopted: bool,
}

/// The (name, value) pairs of a [`tracked_text`] string.
fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut parts = text.split('\0');
    std::iter::from_fn(move || Some((parts.next()?, parts.next()?))).filter(|(k, _)| !k.is_empty())
}

/// The value of `name` in a [`tracked_text`] string.
fn lookup<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    pairs(text).find(|(k, _)| *k == name).map(|(_, v)| v)
}

impl ClientParams {
    /// From the startup packet (names compared case-insensitively, as PostgreSQL does).
    #[must_use]
    pub fn from_startup(params: &crate::protocol::startup::StartupParams) -> Self {
        let mut me = Self::default();
        me.set_text(&tracked_text(|t| params.get_ignore_case(t)));
        me
    }

    /// Keeps `text` (a shared copy: it is kept for the client's whole life).
    fn set_text(&mut self, text: &str) {
        self.text = intern(text);
    }

    /// The client's value of tracked parameter `name` (its canonical spelling).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        lookup(&self.text, name)
    }

    /// Records a value (from the startup packet, or a ParameterStatus after the client's SET).
    pub fn set(&mut self, name: &str, value: &str) {
        let Some(t) = TRACKED.iter().find(|t| t.eq_ignore_ascii_case(name)) else {
            return;
        };
        if self.get(t) == Some(value) {
            return;
        }
        let old = std::mem::take(&mut self.text);
        let text = tracked_text(|k| {
            if k == *t {
                Some(value)
            } else {
                lookup(&old, k)
            }
        });
        self.set_text(&text);
    }

    /// Fills in what the client did not set from a server's login values (`ServerConn::defaults`,
    /// never its current ones: another client may have changed those).
    /// `memo` is the server's (client text, result) of the last client that did this.
    pub fn adopt_defaults(
        &mut self,
        server: &BTreeMap<String, String>,
        memo: &mut Option<(Arc<str>, Arc<str>)>,
    ) {
        if self.adopted {
            return;
        }
        self.adopted = true;
        if let Some((from, to)) = memo.as_ref() {
            if Arc::ptr_eq(from, &self.text) {
                self.text = to.clone();
                return;
            }
        }
        let old = std::mem::take(&mut self.text);
        let text = tracked_text(|k| lookup(&old, k).or_else(|| server.get(k).map(String::as_str)));
        self.set_text(&text);
        *memo = Some((old, self.text.clone()));
    }

    /// The client's parameter text (interned: equal texts are one allocation).
    #[must_use]
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// `SET` statements that make `server` match the client, or `None` if it already does.
    /// `tracked` is the server's [`tracked_text`]; when it equals the client's, no lookup
    /// is needed (the common case, once per transaction).
    #[must_use]
    pub fn sync_sql(
        &self,
        server: &BTreeMap<String, String>,
        tracked: &Arc<str>,
    ) -> Option<String> {
        // Both are interned: equal texts are one copy, and the pointers tell.
        if Arc::ptr_eq(&self.text, tracked) || *self.text == **tracked {
            return None;
        }
        let sets: Vec<String> = pairs(&self.text)
            .filter(|(k, v)| server.get(*k).map(String::as_str) != Some(*v))
            .map(|(k, v)| format!("SET {k} TO {};", quote(v)))
            .collect();
        (!sets.is_empty()).then(|| sets.join(" "))
    }

    /// What the client is told at login: the server's parameters, with its own values
    /// (and those it set that the server did not report), each passed to `f`.
    pub fn for_each_merged(
        &self,
        server: &BTreeMap<String, String>,
        mut f: impl FnMut(&str, &str),
    ) {
        // Split once: the text is looked up for every server parameter.
        let mine: smallvec::SmallVec<[(&str, &str); 8]> = pairs(&self.text).collect();
        for (k, v) in server {
            let own = mine.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            f(k, own.unwrap_or(v));
        }
        for (k, v) in mine {
            if !server.contains_key(k) {
                f(k, v);
            }
        }
    }
}

/// A SQL string literal.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's text, not interned: the comparison must not rely on the pointers.
    fn text(m: &BTreeMap<String, String>) -> Arc<str> {
        Arc::from(tracked_text(|k| m.get(k).map(String::as_str)))
    }

    fn startup_of(pairs: &[(&str, &str)]) -> crate::protocol::startup::StartupParams {
        let mut p = crate::protocol::startup::StartupParams::default();
        for (k, v) in pairs {
            p.push(k, v);
        }
        p
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_differences_are_set_and_values_are_quoted() {
        let mut c = ClientParams::from_startup(&startup_of(&[
            ("user", "u"),
            ("application_name", "it's me"),
            ("datestyle", "ISO, DMY"),
        ]));
        let server = map(&[
            ("application_name", ""),
            ("DateStyle", "ISO, DMY"),
            ("TimeZone", "UTC"),
        ]);
        assert_eq!(
            c.sync_sql(&server, &text(&server)).as_deref(),
            Some("SET application_name TO 'it''s me';")
        );
        c.adopt_defaults(&server, &mut None);
        let same = map(&[
            ("application_name", "it's me"),
            ("DateStyle", "ISO, DMY"),
            ("TimeZone", "UTC"),
        ]);
        assert_eq!(c.sync_sql(&same, &text(&same)), None);
        c.set("TimeZone", "Europe/Paris");
        assert_eq!(
            c.sync_sql(&same, &text(&same)).as_deref(),
            Some("SET TimeZone TO 'Europe/Paris';")
        );
        let merged = |c: &ClientParams, server| {
            let mut all = BTreeMap::new();
            c.for_each_merged(server, |k, v| {
                all.insert(k.to_owned(), v.to_owned());
            });
            all
        };
        assert_eq!(merged(&c, &same)["TimeZone"], "Europe/Paris");
        assert_eq!(merged(&c, &same)["DateStyle"], "ISO, DMY");
        c.set("search_path", "x");
        assert!(!merged(&c, &same).contains_key("search_path"));
        // A value the client set that the server did not report is still told.
        c.set("client_encoding", "LATIN1");
        assert_eq!(merged(&c, &same)["client_encoding"], "LATIN1");
    }

    #[test]
    fn adopting_defaults_is_remembered_for_clients_with_the_same_parameters() {
        let startup = startup_of(&[("application_name", "app")]);
        let server = map(&[("application_name", ""), ("TimeZone", "UTC")]);
        let mut memo = None;
        let mut first = ClientParams::from_startup(&startup);
        first.adopt_defaults(&server, &mut memo);
        let (from, to) = memo.clone().unwrap();
        assert_eq!(&*to, &**first.text());
        assert_eq!(first.get("TimeZone"), Some("UTC"));
        assert_eq!(first.get("application_name"), Some("app"));
        // Same text (interned: the same allocation): the memo's result, not a new one.
        let mut second = ClientParams::from_startup(&startup);
        assert!(Arc::ptr_eq(second.text(), &from));
        second.adopt_defaults(&server, &mut memo);
        assert!(Arc::ptr_eq(second.text(), &to));
        // Other parameters: worked out afresh, and remembered instead.
        let mut other = ClientParams::from_startup(&startup_of(&[("application_name", "other")]));
        other.adopt_defaults(&server, &mut memo);
        assert_eq!(other.get("application_name"), Some("other"));
        assert_eq!(other.get("TimeZone"), Some("UTC"));
        assert!(Arc::ptr_eq(&memo.unwrap().1, other.text()));
    }
}
