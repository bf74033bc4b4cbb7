//! `[general]`: process-wide settings, among them the TCP options of every client and
//! server connection (PgBouncer's `tcp_*` names and meanings, with keepalive timings an HA
//! setup wants rather than the kernel's two hours).

use std::time::Duration;

use serde::Deserialize;

use super::units::Dur;

/// `[general]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralConfig {
    /// On SIGTERM (or SHUTDOWN), how long transactions in flight may take to finish
    /// before their clients are cut off.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Dur,
    /// TCP keepalive probes on client and server connections, so that a peer that
    /// vanished (a dead application host, a member powered off) is noticed and its
    /// connection closed instead of held for ever.
    #[serde(default = "yes")]
    pub tcp_keepalive: bool,
    /// Silence on a connection before the first probe (whole seconds).
    #[serde(default = "default_keepidle")]
    pub tcp_keepidle: Dur,
    /// Between unanswered probes (whole seconds).
    #[serde(default = "default_keepintvl")]
    pub tcp_keepintvl: Dur,
    /// Unanswered probes before the connection is dropped.
    #[serde(default = "default_keepcnt")]
    pub tcp_keepcnt: u32,
    /// TCP_USER_TIMEOUT: how long sent data may stay unacknowledged before the connection
    /// is dropped; 0 = the kernel's retransmission limits (about 15 minutes).
    #[serde(default)]
    pub tcp_user_timeout: Dur,
}

impl Default for GeneralConfig {
    fn default() -> Self {
        Self {
            shutdown_timeout: default_shutdown_timeout(),
            tcp_keepalive: true,
            tcp_keepidle: default_keepidle(),
            tcp_keepintvl: default_keepintvl(),
            tcp_keepcnt: default_keepcnt(),
            tcp_user_timeout: Dur::default(),
        }
    }
}

impl GeneralConfig {
    /// Checks the TCP options against what the kernel takes; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("general.{k}");
        for (name, d) in [
            ("tcp_keepidle", self.tcp_keepidle.0),
            ("tcp_keepintvl", self.tcp_keepintvl.0),
        ] {
            if d.subsec_nanos() != 0 || !(1..=32_767).contains(&d.as_secs()) {
                return Err((
                    key(name),
                    format!(
                        "must be whole seconds from 1s to 32767s, not {d:?} (the kernel's \
                         unit and limits)"
                    ),
                ));
            }
        }
        if !(1..=127).contains(&self.tcp_keepcnt) {
            return Err((
                key("tcp_keepcnt"),
                format!("must be from 1 to 127, not {}", self.tcp_keepcnt),
            ));
        }
        if self.tcp_user_timeout.0.as_millis() > u128::from(u32::MAX) {
            return Err((
                key("tcp_user_timeout"),
                "must be under 49 days (milliseconds in 32 bits)".into(),
            ));
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

fn default_shutdown_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

fn default_keepidle() -> Dur {
    Dur(Duration::from_secs(60))
}

fn default_keepintvl() -> Dur {
    Dur(Duration::from_secs(10))
}

fn default_keepcnt() -> u32 {
    6
}
