//! The TCP options of rolegate's connections: TCP_NODELAY always (a pooler writes whole
//! messages, which must not wait for Nagle's algorithm), keepalive probes and
//! TCP_USER_TIMEOUT as `[general] tcp_*` say.
//!
//! Client connections get them from their listening socket: Linux copies a listening
//! socket's options into each connection it accepts, so accepting costs no system call
//! for them (`accepted_connections_inherit_the_listening_sockets_options` checks that the
//! kernel does). Server connections get them right after connecting. The options in force
//! are kept here, process-wide like the section they come from; a reload replaces them and
//! sets them again on the listening sockets.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

use crate::config::GeneralConfig;

/// Keepalive probe timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence before the first probe.
    pub idle: Duration,
    /// Between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the kernel drops the connection.
    pub count: u32,
}

/// What is set on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// `None`: no keepalive probes.
    pub keepalive: Option<Keepalive>,
    /// TCP_USER_TIMEOUT; zero leaves the kernel's retransmission limits.
    pub user_timeout: Duration,
}

impl TcpOptions {
    /// `[general]`'s defaults (a test holds them to `GeneralConfig::default()`).
    pub const DEFAULT: Self = Self {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            count: 6,
        }),
        user_timeout: Duration::ZERO,
    };

    #[must_use]
    pub fn from_config(g: &GeneralConfig) -> Self {
        Self {
            keepalive: g.tcp_keepalive.then_some(Keepalive {
                idle: g.tcp_keepidle.0,
                interval: g.tcp_keepintvl.0,
                count: g.tcp_keepcnt,
            }),
            user_timeout: g.tcp_user_timeout.0,
        }
    }

    /// Sets all of them on `sock` (a listening socket, for the connections it will
    /// accept, or a connection). On a `fresh` socket, which has the kernel's defaults,
    /// what is off is left alone: a system call less per server connection.
    pub fn apply(&self, sock: &SockRef<'_>, fresh: bool) -> io::Result<()> {
        sock.set_tcp_nodelay(true)?;
        match self.keepalive {
            Some(k) => sock.set_tcp_keepalive(
                &TcpKeepalive::new()
                    .with_time(k.idle)
                    .with_interval(k.interval)
                    .with_retries(k.count),
            )?,
            None if fresh => {}
            None => sock.set_keepalive(false)?,
        }
        if fresh && self.user_timeout.is_zero() {
            return Ok(());
        }
        let user_timeout = (!self.user_timeout.is_zero()).then_some(self.user_timeout);
        sock.set_tcp_user_timeout(user_timeout)
    }
}

static IN_FORCE: RwLock<TcpOptions> = RwLock::new(TcpOptions::DEFAULT);

/// The options new server connections get.
#[must_use]
pub fn in_force() -> TcpOptions {
    *IN_FORCE.read().unwrap_or_else(PoisonError::into_inner)
}

/// Replaces the options new server connections get (at start and on reload).
pub fn set_in_force(options: TcpOptions) {
    *IN_FORCE.write().unwrap_or_else(PoisonError::into_inner) = options;
    SERVER_WARNED.store(false, Ordering::Relaxed);
}

/// Whether a server connection's options failed to set since the options in force last
/// changed (logged once as a warning, then at debug level: a kernel that refuses one
/// refuses it for every connection).
static SERVER_WARNED: AtomicBool = AtomicBool::new(false);

/// Sets the options in force on a server connection just made. A failure is logged and
/// otherwise ignored: the connection works without them.
pub fn server_connection(stream: &TcpStream, member: &str) {
    if let Err(e) = in_force().apply(&SockRef::from(stream), true) {
        if SERVER_WARNED.swap(true, Ordering::Relaxed) {
            tracing::debug!(member, error = %e, "could not set TCP options on a server connection");
        } else {
            tracing::warn!(
                member,
                error = %e,
                "could not set TCP options on a server connection; connections go on \
                 without them (further failures at debug level)"
            );
        }
    }
}

/// Sets the options in force on a listening socket, for the connections it accepts from
/// now on. A failure is logged: connections work without them.
pub fn listening_socket(socket: &tokio::net::TcpListener, listener: &str) {
    if let Err(e) = in_force().apply(&SockRef::from(socket), false) {
        tracing::warn!(listener, error = %e, "could not set TCP options on the listening socket");
    }
}

#[cfg(test)]
mod tests;
