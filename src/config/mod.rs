//! Configuration: the TOML model with defaults ([`model`]), unit parsing ([`units`]),
//! and loading with whole-file validation. Imports nothing internal.

pub mod admin;
pub mod general;
pub mod model;
pub mod reload;
pub mod units;

use std::collections::HashSet;
use std::path::Path;

pub use admin::AdminConfig;
pub use general::GeneralConfig;
pub use model::{
    AuthConfig, AuthType, Balance, ClusterConfig, Config, DcsConfig, EtcdConfig, ListenerConfig,
    ListenerRole, LogConfig, LogFormat, PoolMode,
};

/// Why a config was rejected. The message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config file {path}: {key}: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates config text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_owned(),
        message: parse_message(text, &e),
    })?;
    if config.listeners.is_empty() {
        config.listeners = ListenerConfig::default_layout();
    }
    validate(&config).map_err(|(key, message)| ConfigError::Invalid {
        path: origin.to_owned(),
        key,
        message,
    })?;
    Ok(config)
}

/// The parser's message with its line and column, but not the quoted source line: that
/// line may hold a password, and this message is logged.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.len() - start + 1;
            // The key (left of `=`) or table header names what is wrong; the value is left out.
            let source = text[start..].lines().next().unwrap_or_default();
            let key = source.split('=').next().unwrap_or_default().trim();
            format!("line {line}, column {column} ({key}): {message}")
        }
        None => message.to_owned(),
    }
}

fn validate(config: &Config) -> Result<(), (String, String)> {
    let scope = config.cluster.scope.trim();
    if scope.is_empty() || scope.contains('/') {
        return Err((
            "cluster.scope".into(),
            "must be a non-empty name without '/'".into(),
        ));
    }
    if config.dcs.etcd.endpoints.is_empty() {
        return Err((
            "dcs.etcd.endpoints".into(),
            "needs at least one endpoint".into(),
        ));
    }
    if config.dcs.etcd.username.is_some() != config.dcs.etcd.password.is_some() {
        return Err((
            "dcs.etcd.username".into(),
            "username and password go together".into(),
        ));
    }
    let mut addrs = HashSet::new();
    let mut names = HashSet::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let key = |k: &str| format!("listener[{i}].{k}");
        if !addrs.insert(l.addr) {
            return Err((key("addr"), format!("{} is used by two listeners", l.addr)));
        }
        if !names.insert(l.display_name()) {
            return Err((
                key("name"),
                format!("{:?} is used by two listeners", l.display_name()),
            ));
        }
        if l.role == ListenerRole::Primary && l.max_lag.is_some() {
            return Err((
                key("max_lag"),
                "applies to replica, sync and async listeners only".into(),
            ));
        }
        if l.server_connect_timeout.0.is_zero() {
            return Err((key("server_connect_timeout"), "must be more than 0".into()));
        }
        if l.pool_mode.is_some() {
            validate_pool(l).map_err(|(k, m)| (key(k), m))?;
        }
    }
    config.admin.validate()?;
    config.general.validate()?;
    validate_auth(config)
}

fn validate_pool(l: &ListenerConfig) -> Result<(), (&'static str, String)> {
    if l.pool_size == 0 {
        return Err(("pool_size", "must be at least 1".into()));
    }
    if l.min_pool_size > l.pool_size {
        return Err((
            "min_pool_size",
            format!("{} is more than pool_size {}", l.min_pool_size, l.pool_size),
        ));
    }
    if l.max_client_conn == 0 {
        return Err(("max_client_conn", "must be at least 1".into()));
    }
    if l.query_wait_timeout.0.is_zero() {
        return Err(("query_wait_timeout", "must be more than 0".into()));
    }
    Ok(())
}

fn validate_auth(config: &Config) -> Result<(), (String, String)> {
    let pooled = config.listeners.iter().any(|l| l.pool_mode.is_some());
    let Some(auth) = &config.auth else {
        return if pooled {
            Err(("auth".into(), "pooled listeners (pool_mode) need an [auth] section: rolegate authenticates their clients".into()))
        } else {
            Ok(())
        };
    };
    if auth.query.is_some() && auth.user.is_none() {
        return Err((
            "auth.user".into(),
            "auth.query runs as auth.user; name it (its password goes in auth.file)".into(),
        ));
    }
    if auth.file.is_none() && auth.user.is_some() {
        return Err((
            "auth.file".into(),
            "auth.user logs in with its password from auth.file (userlist.txt); set it".into(),
        ));
    }
    if auth.kind != AuthType::Trust && auth.file.is_none() {
        return Err((
            "auth.file".into(),
            "md5 and scram-sha-256 need a file (userlist.txt), and auth.query needs one for auth.user".into(),
        ));
    }
    Ok(())
}

impl Config {
    /// The etcd key prefix Patroni writes under: `/<namespace>/<scope>/`, slashes collapsed.
    #[must_use]
    pub fn dcs_prefix(&self) -> String {
        let raw = format!("/{}/{}/", self.cluster.namespace, self.cluster.scope.trim());
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            if !(c == '/' && out.ends_with('/')) {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
