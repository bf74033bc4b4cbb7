//! `[admin]`: the HTTP admin server (stats page, /metrics, health and role checks) and
//! the users of the SQL admin console.

use std::net::SocketAddr;

use serde::Deserialize;

use super::units::SecretString;

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `ip:port` of the HTTP admin server; `""` turns it off. Loopback by default.
    #[serde(default = "default_http")]
    pub http: String,
    /// When set, every endpoint but `/health` needs `Authorization: Bearer <token>`.
    /// Printed as `<redacted>` by Debug.
    pub token: Option<SecretString>,
    /// When set (with `password`), every endpoint but `/health` accepts HTTP basic auth.
    pub user: Option<String>,
    /// Printed as `<redacted>` by Debug.
    pub password: Option<SecretString>,
    /// SQL admin console (database `pgbouncer` or `rolegate` on any listener, PgBouncer's
    /// meanings): users that may run every command. They authenticate with `[auth]`.
    #[serde(default)]
    pub admin_users: Vec<String>,
    /// SQL admin console users that may run SHOW commands only.
    #[serde(default)]
    pub stats_users: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            http: default_http(),
            token: None,
            user: None,
            password: None,
            admin_users: Vec::new(),
            stats_users: Vec::new(),
        }
    }
}

fn default_http() -> String {
    "127.0.0.1:7000".into()
}

impl AdminConfig {
    /// Where to serve HTTP, or `None` when `http = ""`.
    pub fn http_addr(&self) -> Result<Option<SocketAddr>, String> {
        let s = self.http.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|e| format!("{s:?} is not ip:port ({e})"))
    }

    /// Whether any authentication is configured.
    #[must_use]
    pub fn has_auth(&self) -> bool {
        self.token.is_some() || self.user.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        self.http_addr().map_err(|m| ("admin.http".to_owned(), m))?;
        if self.user.is_some() != self.password.is_some() {
            return Err(("admin.user".into(), "user and password go together".into()));
        }
        if self.token.as_ref().is_some_and(|t| t.expose().is_empty()) {
            return Err((
                "admin.token".into(),
                "must not be empty (omit it for no token)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_http_disables_and_bad_addresses_are_errors() {
        let mut a = AdminConfig::default();
        assert_eq!(a.http_addr(), Ok(Some("127.0.0.1:7000".parse().unwrap())));
        a.http = String::new();
        assert_eq!(a.http_addr(), Ok(None));
        a.http = "localhost".into();
        assert_eq!(a.validate().unwrap_err().0, "admin.http");
        a.http = "127.0.0.1:7001".into();
        a.user = Some("ops".into());
        assert_eq!(a.validate().unwrap_err().0, "admin.user");
        a.password = Some("pw".into());
        assert!(a.validate().is_ok());
    }
}
