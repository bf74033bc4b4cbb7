//! The serde model of `rolegate.toml`. Every key has a documented default in
//! `config/rolegate.toml`; unknown keys are errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units::{ByteSize, Dur};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub dcs: DcsConfig,
    /// `[[listener]]` tables; none means the autobase 5000-5003 layout.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub log: LogConfig,
}

/// `[cluster]`: which Patroni cluster to follow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Patroni `scope` (the cluster name).
    pub scope: String,
    /// Patroni `namespace`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "/service/".into()
}

/// `[dcs]`: where Patroni keeps the cluster state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcsConfig {
    #[serde(default)]
    pub etcd: EtcdConfig,
}

/// `[dcs.etcd]`: an etcd v3 cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// `host:port` or `http(s)://host:port`; several for an etcd cluster.
    #[serde(default = "default_endpoints")]
    pub endpoints: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: Option<EtcdTlsConfig>,
    /// Timeout of one connection attempt to etcd.
    #[serde(default = "default_dial_timeout")]
    pub dial_timeout: Dur,
    /// gRPC keepalive: a silent connection is declared dead after interval + timeout.
    #[serde(default = "default_keepalive")]
    pub keepalive_interval: Dur,
    #[serde(default = "default_keepalive")]
    pub keepalive_timeout: Dur,
    /// Upper bound of the reconnect backoff (it starts at 50ms and doubles).
    #[serde(default = "default_backoff_max")]
    pub retry_backoff_max: Dur,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: default_endpoints(),
            username: None,
            password: None,
            tls: None,
            dial_timeout: default_dial_timeout(),
            keepalive_interval: default_keepalive(),
            keepalive_timeout: default_keepalive(),
            retry_backoff_max: default_backoff_max(),
        }
    }
}

fn default_endpoints() -> Vec<String> {
    vec!["127.0.0.1:2379".into()]
}
fn default_dial_timeout() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_keepalive() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_backoff_max() -> Dur {
    Dur(Duration::from_secs(2))
}

/// `[dcs.etcd.tls]`: TLS to etcd (client certificate optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdTlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name to verify in the server certificate, when it differs from the endpoint host.
    pub domain: Option<String>,
}

/// Which role set a listener routes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerRole {
    Primary,
    Replica,
    Sync,
    Async,
}

/// How a listener picks among several members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
}

/// One `[[listener]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name in logs; defaults to the role.
    pub name: Option<String>,
    pub addr: SocketAddr,
    pub role: ListenerRole,
    #[serde(default)]
    pub balance: Balance,
    /// Replicas further behind the leader than this are not used (replica roles only).
    pub max_lag: Option<ByteSize>,
    /// How long a new client waits for a member of the role before it gets an error.
    #[serde(default = "default_connect_wait")]
    pub connect_wait: Dur,
    /// Timeout of one TCP connect to a member.
    #[serde(default = "default_server_connect_timeout")]
    pub server_connect_timeout: Dur,
}

fn default_connect_wait() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_server_connect_timeout() -> Dur {
    Dur(Duration::from_secs(2))
}

impl ListenerConfig {
    /// The autobase layout used when the file has no `[[listener]]`.
    #[must_use]
    pub fn default_layout() -> Vec<Self> {
        let lag = Some(ByteSize(100 << 20));
        [
            (5000, ListenerRole::Primary, None),
            (5001, ListenerRole::Replica, lag),
            (5002, ListenerRole::Sync, None),
            (5003, ListenerRole::Async, lag),
        ]
        .into_iter()
        .map(|(port, role, max_lag)| Self {
            name: None,
            addr: SocketAddr::from(([0, 0, 0, 0], port)),
            role,
            balance: Balance::RoundRobin,
            max_lag,
            connect_wait: default_connect_wait(),
            server_connect_timeout: default_server_connect_timeout(),
        })
        .collect()
    }

    /// The listener's name for logs: `name`, else `<role>:<port>`.
    #[must_use]
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let role = match self.role {
                ListenerRole::Primary => "primary",
                ListenerRole::Replica => "replica",
                ListenerRole::Sync => "sync",
                ListenerRole::Async => "async",
            };
            format!("{role}:{}", self.addr.port())
        })
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `rolegate=debug,info`...; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::Text,
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
