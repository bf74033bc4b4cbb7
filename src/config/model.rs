//! The serde model of `rolegate.toml`. Every key has a documented default in
//! `config/rolegate.toml`; unknown keys are errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units::{ByteSize, Dur, SecretString};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// `[auth]`: how pooled listeners authenticate clients. Required when any listener pools.
    pub auth: Option<AuthConfig>,
    /// `[admin]`: the HTTP admin server and who may use the SQL admin console.
    #[serde(default)]
    pub admin: super::admin::AdminConfig,
    /// `[general]`: process-wide settings.
    #[serde(default)]
    pub general: super::general::GeneralConfig,
}

/// `[auth]`, with PgBouncer's meanings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `trust`, `md5` or `scram-sha-256` (PgBouncer's `auth_type`).
    #[serde(rename = "type")]
    pub kind: AuthType,
    /// PgBouncer `auth_file` (userlist.txt): `"user" "password-or-md5-or-SCRAM-secret"`.
    pub file: Option<PathBuf>,
    /// PgBouncer `auth_query`, run as `auth_user` for users not in `file`; `$1` is the user name.
    pub query: Option<String>,
    /// PgBouncer `auth_user`: its password must be in `file`.
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthType {
    Trust,
    Md5,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

/// How a listener uses server connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// One server connection per client session, reset with `server_reset_query` on release.
    Session,
    /// A server connection per transaction, returned at ReadyForQuery idle.
    Transaction,
}

/// `[cluster]`: which Patroni cluster to follow.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcsConfig {
    #[serde(default)]
    pub etcd: EtcdConfig,
}

/// `[dcs.etcd]`: an etcd v3 cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// `host:port` or `http(s)://host:port`; several for an etcd cluster.
    #[serde(default = "default_endpoints")]
    pub endpoints: Vec<String>,
    pub username: Option<String>,
    /// Printed as `<redacted>` by Debug.
    pub password: Option<SecretString>,
    pub tls: Option<EtcdTlsConfig>,
    /// Timeout of one connection attempt to etcd.
    #[serde(default = "default_dial_timeout")]
    pub dial_timeout: Dur,
    /// gRPC keepalive: a silent connection is declared dead after interval + timeout.
    /// etcd answers pings more frequent than its `--grpc-keepalive-min-time` (default 5s)
    /// with GOAWAY, which breaks the watch: keep the interval above it.
    #[serde(default = "default_keepalive_interval")]
    pub keepalive_interval: Dur,
    #[serde(default = "default_keepalive_timeout")]
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
            keepalive_interval: default_keepalive_interval(),
            keepalive_timeout: default_keepalive_timeout(),
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
fn default_keepalive_interval() -> Dur {
    Dur(Duration::from_secs(6))
}
fn default_keepalive_timeout() -> Dur {
    Dur(Duration::from_secs(3))
}
fn default_backoff_max() -> Dur {
    Dur(Duration::from_secs(2))
}

/// `[dcs.etcd.tls]`: TLS to etcd (client certificate optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    /// While the leader changes (switchover, failover, promotion, or the primary cannot be
    /// reached), new connections and transactions on a primary listener wait this long
    /// for the new primary.
    #[serde(default = "default_switchover_hold_timeout")]
    pub switchover_hold_timeout: Dur,
    /// Timeout of one TCP connect to a member (and, when pooling, of its login).
    #[serde(default = "default_server_connect_timeout")]
    pub server_connect_timeout: Dur,
    /// Absent: no pooling, the client's own session is proxied byte for byte.
    pub pool_mode: Option<PoolMode>,
    // The pool settings below apply when `pool_mode` is set; PgBouncer's meanings.
    /// Server connections per (member, database, user).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Kept open even when idle.
    #[serde(default)]
    pub min_pool_size: u32,
    /// Extra connections allowed once a client waited `reserve_pool_timeout`.
    #[serde(default)]
    pub reserve_pool_size: u32,
    #[serde(default = "default_reserve_pool_timeout")]
    pub reserve_pool_timeout: Dur,
    /// Clients beyond this get SQLSTATE 53300 at once.
    #[serde(default = "default_max_client_conn")]
    pub max_client_conn: u32,
    /// Server connections per (member, database) across users; 0 = no limit.
    #[serde(default)]
    pub max_db_connections: u32,
    /// Idle server connections older than this are closed.
    #[serde(default = "default_server_idle_timeout")]
    pub server_idle_timeout: Dur,
    /// Server connections are closed (when released) after this long.
    #[serde(default = "default_server_lifetime")]
    pub server_lifetime: Dur,
    /// A client waiting this long for a server connection gets an error.
    #[serde(default = "default_query_wait_timeout")]
    pub query_wait_timeout: Dur,
    /// Run on a server connection before another session may use it (session mode).
    #[serde(default = "default_server_reset_query")]
    pub server_reset_query: String,
    /// A client idle inside a transaction this long is disconnected; 0 = never.
    #[serde(default)]
    pub idle_transaction_timeout: Dur,
    /// Named prepared statements tracked per server connection (transaction mode); 0 = off.
    #[serde(default = "default_max_prepared_statements")]
    pub max_prepared_statements: u32,
}

fn default_pool_size() -> u32 {
    20
}
fn default_reserve_pool_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_max_client_conn() -> u32 {
    5000
}
fn default_server_idle_timeout() -> Dur {
    Dur(Duration::from_secs(600))
}
fn default_server_lifetime() -> Dur {
    Dur(Duration::from_secs(3600))
}
fn default_query_wait_timeout() -> Dur {
    Dur(Duration::from_secs(120))
}
fn default_server_reset_query() -> String {
    "DISCARD ALL".into()
}
fn default_max_prepared_statements() -> u32 {
    200
}

fn default_switchover_hold_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_connect_wait() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_server_connect_timeout() -> Dur {
    Dur(Duration::from_secs(2))
}

impl ListenerConfig {
    /// The autobase layout used when the file has no `[[listener]]`: 5000 primary,
    /// 5001 replica and 5003 async with `max_lag = "100MB"`, 5002 sync; all on 0.0.0.0.
    #[must_use]
    pub fn default_layout() -> Vec<Self> {
        const LAYOUT: &str = r#"
            [[listener]]
            addr = "0.0.0.0:5000"
            role = "primary"
            [[listener]]
            addr = "0.0.0.0:5001"
            role = "replica"
            max_lag = "100MB"
            [[listener]]
            addr = "0.0.0.0:5002"
            role = "sync"
            [[listener]]
            addr = "0.0.0.0:5003"
            role = "async"
            max_lag = "100MB"
        "#;
        #[derive(Deserialize)]
        struct Layout {
            listener: Vec<ListenerConfig>,
        }
        // A constant that the config tests parse; it cannot fail at run time.
        toml::from_str::<Layout>(LAYOUT)
            .map(|l| l.listener)
            .unwrap_or_default()
    }

    /// A primary listener on 0.0.0.0:5000 with every other key at its default (what
    /// SHOW CONFIG prints as defaults).
    ///
    /// # Panics
    /// Never: the text is a constant that the config tests parse.
    #[must_use]
    pub fn defaults() -> Self {
        toml::from_str("addr = \"0.0.0.0:5000\"\nrole = \"primary\"")
            .expect("the default listener parses")
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

/// `[runtime]`: the async runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads; 0 = one per CPU. 1 spends the least CPU per transaction (no
    /// cross-thread wake-ups), like PgBouncer's single thread; more scale past one core.
    #[serde(default)]
    pub worker_threads: usize,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
