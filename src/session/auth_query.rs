//! `auth_query` (PgBouncer's semantics): the secret of a user who is not in the auth_file
//! comes from the server. rolegate logs in as `auth.user` to the database the client asked
//! for, on a member of the listener's role set, runs the query with the user name as `$1`
//! (extended protocol, so the name is never spliced into SQL), takes the second column of
//! the answer and closes the connection. No row, or NULL, means an unknown user, which
//! the client cannot tell from a wrong password.
//!
//! Owns the lookup only; checking the client against the secret stays in `crate::auth`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::connect::{with_member, Attempt};
use super::{AuthSetup, Shared};
use crate::auth::Secret;
use crate::pool::{Login, PoolSetup, ServerConn, ServerError};
use crate::protocol::io::{message, parse_error_fields, read_message};
use crate::protocol::{PgError, ProtocolError};
use crate::route::Listener;

/// Why the auth query gave no answer. Never names a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthQueryError {
    /// No member of the role could be reached (the error a client would get otherwise).
    #[error("{}", .0.message.trim_start_matches("rolegate: "))]
    NoServer(PgError),
    /// Logging in as `auth.user` failed.
    #[error("cannot log in as auth.user: {0}")]
    Login(ServerError),
    /// The server answered the query with an error.
    #[error("the query failed: {code} {message}")]
    Query { code: String, message: String },
    /// The answer is not one row of (user name, secret).
    #[error("{0}")]
    Answer(&'static str),
    #[error("the server connection broke: {0}")]
    Broken(ProtocolError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl AuthQueryError {
    /// The FATAL the client gets: 08006 when no server could be asked, 28000 when one was
    /// asked and the answer was unusable.
    #[must_use]
    pub fn to_client_error(&self) -> PgError {
        let code = match self {
            Self::NoServer(_)
            | Self::Broken(_)
            | Self::Timeout(_)
            | Self::Login(ServerError::Connect(..) | ServerError::Timeout(..)) => "08006",
            Self::Login(_) | Self::Query { .. } | Self::Answer(_) => "28000",
        };
        let e = PgError::fatal(code, format!("rolegate: auth_query failed: {self}")).with_hint(
            "Check auth.user's password in auth.file, its right to run auth.query, and the server's log.",
        );
        match self {
            Self::NoServer(PgError {
                detail: Some(d), ..
            }) => e.with_detail(d.clone()),
            _ => e,
        }
    }
}

impl AuthSetup {
    /// The stored secret of `user`: its auth_file entry, else (with `auth.user` set) the
    /// auth query's answer on `database`. `Ok(None)`: an unknown user.
    pub async fn secret_for(
        &self,
        shared: &Shared,
        listener: &Arc<Listener>,
        setup: &PoolSetup,
        user: &str,
        database: &str,
    ) -> Result<Option<Secret>, AuthQueryError> {
        if let Some(s) = self.users.get(user) {
            return Ok(Some(s.clone()));
        }
        let Some(query) = &self.query else {
            return Ok(None);
        };
        let login = Login {
            user: query.user.as_str().into(),
            database: database.into(),
            creds: query.creds.clone(),
        };
        let settings = setup.settings();
        let answer = with_member(shared, listener, |addr| {
            let login = &login;
            let settings = &settings;
            async move {
                let mut conn = match ServerConn::open(&addr, login, settings.connect_timeout).await
                {
                    Ok(c) => c,
                    Err(e @ (ServerError::Connect(..) | ServerError::Timeout(..))) => {
                        return Attempt::Failed(e.to_string())
                    }
                    Err(e) => return Attempt::Done(Err(AuthQueryError::Login(e))),
                };
                let wait = settings.wait_timeout;
                let ran = tokio::time::timeout(wait, run_query(&mut conn.stream, &query.sql, user));
                let answer = ran.await.unwrap_or(Err(AuthQueryError::Timeout(wait)));
                conn.terminate();
                Attempt::Done(answer)
            }
        })
        .await
        .map_err(AuthQueryError::NoServer)??;
        answer
            .map(|text| Secret::parse(&text))
            .transpose()
            .map_err(|_| {
                AuthQueryError::Answer(
                    "the secret it returned is not a valid md5 or SCRAM-SHA-256 secret",
                )
            })
    }
}

/// Runs `sql` with `user` bound to `$1` (text) and returns the second column of the
/// answer: `None` for no row or NULL. Reads through ReadyForQuery so errors are whole.
pub async fn run_query<S>(
    stream: &mut S,
    sql: &str,
    user: &str,
) -> Result<Option<String>, AuthQueryError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream
        .write_all(&request(sql, user))
        .await
        .map_err(|e| AuthQueryError::Broken(e.into()))?;
    let mut rows = Vec::new();
    let mut failed = None;
    loop {
        let (tag, body) = read_message(stream, 1 << 20)
            .await
            .map_err(AuthQueryError::Broken)?;
        match tag {
            b'D' => rows.push(second_column(&body)?),
            b'E' => failed = Some(body),
            b'Z' => break,
            _ => {} // ParseComplete, BindComplete, CommandComplete, notices
        }
    }
    if let Some(body) = failed {
        let fields = parse_error_fields(&body);
        let get = |c: u8| {
            fields
                .iter()
                .find(|(k, _)| *k == c)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        return Err(AuthQueryError::Query {
            code: get(b'C'),
            message: get(b'M'),
        });
    }
    if rows.len() > 1 {
        return Err(AuthQueryError::Answer("it returned more than one row"));
    }
    Ok(rows.pop().flatten())
}

/// Parse, Bind (`$1` = `user` as text), Execute, Sync: unnamed statement and portal.
fn request(sql: &str, user: &str) -> BytesMut {
    let mut parse = BytesMut::new();
    parse.put_u8(0); // unnamed statement
    parse.put_slice(sql.as_bytes());
    parse.put_u8(0);
    parse.put_i16(1);
    parse.put_u32(0); // parameter type: let the server infer it
    let mut bind = BytesMut::new();
    bind.put_slice(b"\0\0"); // unnamed portal, unnamed statement
    bind.put_i16(0); // parameters in text format
    bind.put_i16(1);
    bind.put_i32(i32::try_from(user.len()).unwrap_or(i32::MAX));
    bind.put_slice(user.as_bytes());
    bind.put_i16(0); // results in text format
    let mut out = BytesMut::new();
    out.put_slice(&message(b'P', &parse));
    out.put_slice(&message(b'B', &bind));
    out.put_slice(&message(b'E', b"\0\0\0\0\0")); // unnamed portal, all rows
    out.put_slice(&message(b'S', b""));
    out
}

/// The second column of a DataRow body, as text; `None` for NULL.
fn second_column(body: &[u8]) -> Result<Option<String>, AuthQueryError> {
    let bad = || AuthQueryError::Answer("it sent a malformed row");
    let count = body.get(..2).ok_or_else(bad)?;
    if i16::from_be_bytes([count[0], count[1]]) < 2 {
        return Err(AuthQueryError::Answer(
            "it must return two columns: the user name and the secret",
        ));
    }
    let mut rest = &body[2..];
    for column in 0..2 {
        let len = rest.get(..4).ok_or_else(bad)?;
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        rest = &rest[4..];
        let Ok(len) = usize::try_from(len) else {
            if column == 1 {
                return Ok(None); // NULL (-1)
            }
            continue;
        };
        let value = rest.get(..len).ok_or_else(bad)?;
        if column == 1 {
            return String::from_utf8(value.to_vec())
                .map(Some)
                .map_err(|_| AuthQueryError::Answer("the secret it returned is not UTF-8"));
        }
        rest = &rest[len..];
    }
    Err(bad())
}

#[cfg(test)]
mod tests;
