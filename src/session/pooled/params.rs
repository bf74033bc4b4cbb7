//! The session parameters a pooled client expects, re-applied on whichever server it lands.

use std::collections::BTreeMap;

use crate::pool::server::tracked_text;
pub use crate::pool::server::TRACKED;

/// The client's view of its tracked parameters.
#[derive(Debug, Default, Clone)]
pub struct ClientParams {
    values: BTreeMap<&'static str, String>,
    /// `values` as [`tracked_text`]: equal to a server's `tracked` = nothing to SET.
    text: String,
    /// Defaults were taken from a server's login values (once is enough: a pool's servers
    /// log in as the same user to the same database).
    adopted: bool,
}

impl ClientParams {
    /// From the startup packet (names compared case-insensitively, as PostgreSQL does).
    #[must_use]
    pub fn from_startup(params: &BTreeMap<String, String>) -> Self {
        let mut me = Self::default();
        for (k, v) in params {
            if let Some(t) = TRACKED.iter().find(|t| t.eq_ignore_ascii_case(k)) {
                me.values.insert(t, v.clone());
            }
        }
        me.retext();
        me
    }

    /// Records a value (from the startup packet, or a ParameterStatus after the client's SET).
    pub fn set(&mut self, name: &str, value: &str) {
        if let Some(t) = TRACKED.iter().find(|t| t.eq_ignore_ascii_case(name)) {
            if self.values.get(t).map(String::as_str) != Some(value) {
                self.values.insert(t, value.to_owned());
                self.retext();
            }
        }
    }

    fn retext(&mut self) {
        let values = &self.values;
        self.text = tracked_text(|k| values.get(k).map(String::as_str));
    }

    /// Fills in what the client did not set from a server's login values (`ServerConn::defaults`,
    /// never its current ones: another client may have changed those).
    pub fn adopt_defaults(&mut self, server: &BTreeMap<String, String>) {
        if self.adopted {
            return;
        }
        self.adopted = true;
        for t in TRACKED {
            if let Some(v) = server.get(t) {
                self.values.entry(t).or_insert_with(|| v.clone());
            }
        }
        self.retext();
    }

    /// `SET` statements that make `server` match the client, or `None` if it already does.
    /// `tracked` is the server's [`tracked_text`]; when it equals the client's, no lookup
    /// is needed (the common case, once per transaction).
    #[must_use]
    pub fn sync_sql(&self, server: &BTreeMap<String, String>, tracked: &str) -> Option<String> {
        if self.text == tracked {
            return None;
        }
        let sets: Vec<String> = self
            .values
            .iter()
            .filter(|(k, v)| server.get(**k) != Some(*v))
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
        for (k, v) in server {
            let mine = self
                .values
                .get(k.as_str())
                .map_or(v.as_str(), String::as_str);
            f(k, mine);
        }
        for (k, v) in &self.values {
            if !server.contains_key(*k) {
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

    fn text(m: &BTreeMap<String, String>) -> String {
        tracked_text(|k| m.get(k).map(String::as_str))
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_differences_are_set_and_values_are_quoted() {
        let mut c = ClientParams::from_startup(&map(&[
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
        c.adopt_defaults(&server);
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
}
