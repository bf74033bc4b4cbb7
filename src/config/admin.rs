//! `[admin]`: the HTTP admin server (stats page, /metrics, health and role checks).

use std::net::SocketAddr;

use serde::Deserialize;

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `ip:port` of the HTTP admin server; `""` turns it off. Loopback by default.
    #[serde(default = "default_http")]
    pub http: String,
    /// When set, every endpoint but `/health` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// When set (with `password`), every endpoint but `/health` accepts HTTP basic auth.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            http: default_http(),
            token: None,
            user: None,
            password: None,
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
        if self.token.as_deref().is_some_and(str::is_empty) {
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
