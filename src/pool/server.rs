//! One server connection of a pool: connected, logged in, and at ReadyForQuery idle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::db_limit::DbSlot;
use super::prepared::ServerStatements;
use crate::auth::{answer_server_auth, AuthError, ServerCredentials};
use crate::protocol::frame::parse_backend_key;
use crate::protocol::io::{
    message, parse_error_fields, parse_parameter_status, read_message, startup_packet,
};
use crate::protocol::{CancelKey, PgError, ProtocolError};
use crate::route::cancel::BackendAddr;
use crate::session::intern::intern;

/// How a pool logs into its servers.
#[derive(Debug, Clone)]
pub struct Login {
    /// Shared with the client's registry entry and the pool keys: cloned, not copied.
    pub user: Arc<str>,
    pub database: Arc<str>,
    pub creds: ServerCredentials,
}

/// Why a server connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0} did not finish its login within {1:?}")]
    Timeout(String, Duration),
    #[error("login to {0} failed: {1}")]
    Auth(String, AuthError),
    #[error("{member} refused the session: {code} {message}")]
    Refused {
        member: String,
        code: String,
        message: String,
    },
    #[error("{0}: {1}")]
    Protocol(String, ProtocolError),
}

impl ServerError {
    /// What the client is told.
    #[must_use]
    pub fn to_client_error(&self, user: &str) -> PgError {
        match self {
            Self::Auth(_, e) => e.to_client_error(user),
            Self::Refused { code, message, .. } => PgError::fatal(sqlstate(code), message.clone()),
            other => PgError::fatal("08001", format!("rolegate: could not open a server connection: {other}"))
                .with_hint("rolegate retries when the next transaction needs a server; check the member's PostgreSQL log."),
        }
    }
}

impl ServerError {
    /// The server is shutting down, restarting or not accepting connections yet (57P01,
    /// 57P02, 57P03), or the connection failed before the login was over (a postmaster
    /// that exits resets the connections it had not taken yet): it may be the member
    /// Patroni is demoting or promoting, so the client should wait for the role's next
    /// member rather than get the error.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        let starting_or_stopping = |code: &str| matches!(code, "57P01" | "57P02" | "57P03");
        match self {
            Self::Connect(..)
            | Self::Timeout(..)
            | Self::Auth(_, AuthError::Closed | AuthError::Io(_)) => true,
            // Before authentication (Refused) or while answering it (Auth): both happen.
            Self::Refused { code, .. } | Self::Auth(_, AuthError::Server { code, .. }) => {
                starting_or_stopping(code)
            }
            Self::Auth(..) | Self::Protocol(..) => false,
        }
    }
}

/// SQLSTATEs the server sends at login, kept as static strings for `PgError`.
fn sqlstate(code: &str) -> &'static str {
    const KNOWN: [&str; 8] = [
        "3D000", "28000", "28P01", "53300", "57P03", "42501", "08004", "0A000",
    ];
    KNOWN.into_iter().find(|k| *k == code).unwrap_or("08004")
}

/// Parameters a client may set that the server reports (GUC_REPORT) and that differ
/// between sessions; re-applied with SET when a pooled client lands on a server whose
/// values differ (PgBouncer's tracked set).
pub const TRACKED: [&str; 6] = [
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "standard_conforming_strings",
];

/// The [`TRACKED`] values of `params` as one string, in a fixed order; equal strings mean
/// equal values.
#[must_use]
pub fn tracked_text<'a>(mut get: impl FnMut(&str) -> Option<&'a str>) -> String {
    let mut text = String::new();
    for name in TRACKED {
        if let Some(v) = get(name) {
            text.push_str(name);
            text.push('\0');
            text.push_str(v);
            text.push('\0');
        }
    }
    text
}

/// A logged-in server connection.
pub struct ServerConn {
    pub stream: TcpStream,
    pub addr: BackendAddr,
    /// ParameterStatus values the server reported (kept current by the session).
    pub params: BTreeMap<String, String>,
    /// The values it reported at login, before any client changed them: the defaults a
    /// pooled client that did not set a parameter must see, whoever used the server before.
    pub defaults: BTreeMap<String, String>,
    /// Its current values of the [`TRACKED`] parameters in one string ([`tracked_text`]),
    /// interned: a client whose own text is equal needs no SET, found by comparing
    /// pointers (client texts are interned too).
    pub tracked: Arc<str>,
    /// The server's own cancel key.
    pub key: CancelKey,
    /// `addr` and `key` once more, shared: what a pooled client's cancel target points at
    /// while it uses this server, set at each checkout without copying strings.
    pub cancel_to: crate::route::cancel::ServerKey,
    pub created: Instant,
    /// `created` on the wall clock (SHOW SERVERS' connect_time).
    pub created_wall: std::time::SystemTime,
    /// When it was last returned to the pool.
    pub idle_since: Instant,
    /// (the `server_lifetime` in ns it was worked out for, when that lifetime ends; `None` =
    /// never): checked at every checkout and release, worked out again only after a
    /// reload changed the lifetime.
    lifetime_end: Option<(u64, Option<Instant>)>,
    /// Named statements rolegate prepared on it (transaction mode).
    pub statements: ServerStatements,
    /// Its share of `max_db_connections`, held until the connection is dropped.
    pub db_slot: Option<DbSlot>,
    /// The pool generation it was opened in (RECONNECT closes older ones on release).
    pub generation: u64,
    /// The server reports `in_hot_standby = on` (PostgreSQL 14+): it cannot take writes.
    /// Kept beside `params` so the check at every checkout is no map lookup.
    pub hot_standby: bool,
    /// Per-client work that depends only on this server and a client's (interned)
    /// parameter text, kept for the next client with the same text (see [`Memo`]).
    pub memo: Memo,
}

/// What a new pooled client derives from the server it first lands on, kept for the next
/// one with the same parameters (clients of one application usually have them): a
/// connection per transaction makes this once-per-client work once per transaction.
/// Keyed by the client's interned parameter text (compared by pointer).
#[derive(Default)]
pub struct Memo {
    /// (client text, that text with the server's login defaults filled in). The
    /// defaults never change, so this stays valid.
    pub adopted: Option<(std::sync::Arc<str>, std::sync::Arc<str>)>,
    /// (client text, the greeting's ParameterStatus messages). Cleared whenever the
    /// server reports a parameter: the greeting shows the server's current values.
    pub greeting: Option<(std::sync::Arc<str>, bytes::Bytes)>,
}

impl ServerConn {
    /// Records a ParameterStatus the server sent.
    pub fn set_param(&mut self, name: String, value: String) {
        self.memo.greeting = None;
        if name == "in_hot_standby" {
            self.hot_standby = value == "on";
        }
        let tracked = TRACKED.contains(&name.as_str());
        self.params.insert(name, value);
        if tracked {
            let params = &self.params;
            self.tracked = intern(&tracked_text(|k| params.get(k).map(String::as_str)));
        }
    }

    /// Connects and logs in; returns once the server is ReadyForQuery.
    pub async fn open(
        addr: &BackendAddr,
        login: &Login,
        timeout: Duration,
    ) -> Result<Self, ServerError> {
        match tokio::time::timeout(timeout, Self::open_inner(addr, login)).await {
            Ok(r) => r,
            Err(_) => Err(ServerError::Timeout(addr.member.clone(), timeout)),
        }
    }

    async fn open_inner(addr: &BackendAddr, login: &Login) -> Result<Self, ServerError> {
        let member = addr.member.clone();
        let mut stream = TcpStream::connect((addr.host.as_str(), addr.port))
            .await
            .map_err(|e| ServerError::Connect(member.clone(), e))?;
        crate::tcp::server_connection(&stream, &member);
        let startup = startup_packet(&[("user", &login.user), ("database", &login.database)]);
        let proto = |e: std::io::Error| ServerError::Protocol(member.clone(), e.into());
        stream.write_all(&startup).await.map_err(proto)?;
        answer_server_auth(&mut stream, &login.user, &login.creds)
            .await
            .map_err(|e| ServerError::Auth(member.clone(), e))?;
        let mut params = BTreeMap::new();
        let mut key = None;
        loop {
            let (tag, body) = read_message(&mut stream, 64 * 1024)
                .await
                .map_err(|e| ServerError::Protocol(member.clone(), e))?;
            match tag {
                b'S' => params.extend(parse_parameter_status(&body)),
                b'K' => key = parse_backend_key(&body),
                b'E' => return Err(refused(&member, &body)),
                b'Z' => break,
                _ => {} // NoticeResponse and anything new: not needed
            }
        }
        let (pid, secret) = key.unwrap_or((0, Vec::new()));
        let key = CancelKey {
            pid,
            secret: secret.into(),
        };
        let now = Instant::now();
        let hot_standby = params.get("in_hot_standby").is_some_and(|v| v == "on");
        Ok(Self {
            stream,
            addr: addr.clone(),
            defaults: params.clone(),
            tracked: intern(&tracked_text(|k| params.get(k).map(String::as_str))),
            params,
            cancel_to: std::sync::Arc::new((addr.clone(), key.clone())),
            key,
            created: now,
            created_wall: std::time::SystemTime::now(),
            idle_since: now,
            lifetime_end: None,
            statements: ServerStatements::default(),
            db_slot: None,
            generation: 0,
            hot_standby,
            memo: Memo::default(),
        })
    }

    /// Whether it is past a `server_lifetime` of `lifetime_ns` at `now`.
    pub fn expired(&mut self, lifetime_ns: u64, now: Instant) -> bool {
        let end = match self.lifetime_end {
            Some((ns, end)) if ns == lifetime_ns => end,
            _ => {
                let end = self
                    .created
                    .checked_add(std::time::Duration::from_nanos(lifetime_ns));
                self.lifetime_end = Some((lifetime_ns, end));
                end
            }
        };
        end.is_some_and(|end| now >= end)
    }

    /// Whether the server closed the connection while it sat idle (a read would not block).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        let mut b = [0u8; 1];
        !matches!(self.stream.try_read(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Sends Terminate without waiting; used when closing from synchronous code.
    pub fn terminate(&self) {
        let _ = self.stream.try_write(&message(b'X', b""));
    }
}

fn refused(member: &str, body: &[u8]) -> ServerError {
    let fields = parse_error_fields(body);
    let get = |c: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    ServerError::Refused {
        member: member.to_owned(),
        code: get(b'C'),
        message: get(b'M'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> ServerError {
        ServerError::Refused {
            member: "pg1".into(),
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn starting_and_stopping_servers_are_transient_refusals_are_not() {
        assert!(
            refused("57P03").is_transient(),
            "starting up / shutting down"
        );
        assert!(refused("57P01").is_transient());
        assert!(
            !refused("28P01").is_transient(),
            "a wrong password stays an error"
        );
        assert!(
            !refused("53300").is_transient(),
            "too many connections stays an error"
        );
        assert!(!refused("3D000").is_transient());
        let during_auth = |code: &str| {
            ServerError::Auth(
                "pg1".into(),
                AuthError::Server {
                    code: code.into(),
                    message: "the database system is shutting down".into(),
                },
            )
        };
        assert!(during_auth("57P03").is_transient());
        assert!(!during_auth("28P01").is_transient());
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(ServerError::Connect("pg1".into(), io).is_transient());
        // A postmaster that exits resets the connections it had not taken yet.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(ServerError::Auth("pg1".into(), AuthError::Io(reset)).is_transient());
        assert!(ServerError::Auth("pg1".into(), AuthError::Closed).is_transient());
    }
}
