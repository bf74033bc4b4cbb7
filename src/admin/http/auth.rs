//! Admin HTTP authentication: a bearer token and/or HTTP basic credentials, compared in
//! constant time. No configured credentials: every request passes (the default listen
//! address is loopback).

use base64::Engine;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::config::AdminConfig;

/// The accepted credentials.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    token: Option<String>,
    /// `user:password`, as basic auth sends it before base64.
    basic: Option<String>,
}

impl Auth {
    #[must_use]
    pub fn from_config(c: &AdminConfig) -> Self {
        Self {
            token: c.token.as_ref().map(|t| t.expose().to_owned()),
            basic: match (&c.user, &c.password) {
                (Some(u), Some(p)) => Some(format!("{u}:{}", p.expose())),
                _ => None,
            },
        }
    }

    /// Ok when the request may pass; else the `WWW-Authenticate` challenge to send.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), HeaderValue> {
        if self.token.is_none() && self.basic.is_none() {
            return Ok(());
        }
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let (Some(token), Some(t)) = (&self.token, given.strip_prefix("Bearer ")) {
            if same(t.trim().as_bytes(), token.as_bytes()) {
                return Ok(());
            }
        }
        if let (Some(basic), Some(b)) = (&self.basic, given.strip_prefix("Basic ")) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .unwrap_or_default();
            if same(&decoded, basic.as_bytes()) {
                return Ok(());
            }
        }
        Err(HeaderValue::from_static(if self.basic.is_some() {
            "Basic realm=\"rolegate\""
        } else {
            "Bearer realm=\"rolegate\""
        }))
    }
}

/// Equal, in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn token_and_basic_are_checked() {
        let c = AdminConfig {
            token: Some("s3cret".into()),
            user: Some("ops".into()),
            password: Some("pw".into()),
            ..AdminConfig::default()
        };
        let a = Auth::from_config(&c);
        assert!(a.check(&HeaderMap::new()).is_err());
        assert!(a.check(&headers("Bearer s3cret")).is_ok());
        assert!(a.check(&headers("Bearer s3cres")).is_err());
        // "ops:pw"
        assert!(a.check(&headers("Basic b3BzOnB3")).is_ok());
        assert!(a.check(&headers("Basic b3BzOnB4")).is_err());
        assert!(a.check(&headers("Basic !!!")).is_err());
        assert!(Auth::default().check(&HeaderMap::new()).is_ok());
    }
}
