//! Talking to PostgreSQL (directly or through rolegate): one-shot `psql` queries and
//! long-lived `tokio-postgres` sessions that tests hold open across cluster events.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long one query of a held session may take before the test gives up on it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `psql -XAtq -v ON_ERROR_STOP=1 -c sql` as user postgres, database postgres, on
/// 127.0.0.1:`port`, giving up connecting after `connect_timeout` seconds.
pub fn psql_command(port: u16, connect_timeout: u32, sql: &str) -> Command {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout={connect_timeout}"
    );
    let mut cmd = Command::new("/usr/bin/psql");
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        &conninfo,
        "-c",
        sql,
    ]);
    cmd
}

/// `psql -Atc sql` as user postgres, database postgres, on 127.0.0.1:`port`; trimmed stdout.
pub fn psql(port: u16, sql: &str) -> Result<String> {
    let out = psql_command(port, 3, sql)
        .env("PGAPPNAME", "rolegate-test")
        .stdin(Stdio::null())
        .output()
        .context("run psql")?;
    if !out.status.success() {
        bail!(
            "psql port {port} {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `(inet_server_port(), pg_is_in_recovery())` of a fresh connection to `port`.
pub fn server_of(port: u16) -> Result<(u16, bool)> {
    let out = psql(port, "select inet_server_port(), pg_is_in_recovery()")?;
    parse_server(&out)
}

fn parse_server(text: &str) -> Result<(u16, bool)> {
    let (port, recovery) = text
        .split_once('|')
        .ok_or_else(|| anyhow!("unexpected answer {text:?}"))?;
    Ok((port.trim().parse()?, recovery.trim() == "t"))
}

/// True if `err` says the server ended the session: SQLSTATE 57P01 (admin shutdown),
/// 08006 (connection failure) or a closed connection.
pub fn is_disconnect(err: &tokio_postgres::Error) -> bool {
    err.is_closed()
        || err.code() == Some(&SqlState::ADMIN_SHUTDOWN)
        || err.code() == Some(&SqlState::CONNECTION_FAILURE)
        || std::error::Error::source(err).is_some_and(<dyn std::error::Error>::is::<std::io::Error>)
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// A session held open from blocking test code; its connection task runs on a shared runtime.
pub struct Session {
    client: Client,
    /// Resolves when the server side ends; `Err` carries e.g. the FATAL that ended it.
    connection: Option<JoinHandle<Result<(), tokio_postgres::Error>>>,
}

impl Session {
    pub fn connect(port: u16) -> Result<Session> {
        let conninfo = format!(
            "host=127.0.0.1 port={port} user=postgres dbname=postgres \
             connect_timeout=5 sslmode=disable application_name=rolegate-test"
        );
        let (client, connection) = runtime()
            .block_on(tokio_postgres::connect(&conninfo, NoTls))
            .with_context(|| format!("connect to port {port}"))?;
        let connection = Some(runtime().spawn(connection));
        Ok(Session { client, connection })
    }

    /// Runs `sql` (simple protocol) and returns the rows as text.
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
        let messages = runtime().block_on(async {
            tokio::time::timeout(QUERY_TIMEOUT, self.client.simple_query(sql))
                .await
                .unwrap_or_else(|_| panic!("query {sql:?} hung for {QUERY_TIMEOUT:?}"))
        })?;
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// `(inet_server_port(), pg_is_in_recovery())` of the server behind this session.
    pub fn server(&self) -> Result<(u16, bool)> {
        let rows = self.query("select inet_server_port() || '|' || pg_is_in_recovery()::text")?;
        let text = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .ok_or_else(|| anyhow!("no row"))?;
        let (port, recovery) = text.split_once('|').ok_or_else(|| anyhow!("{text:?}"))?;
        Ok((port.parse()?, recovery == "true"))
    }

    /// Whether the client side already saw the connection end.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Waits up to `timeout` for the server to end the session. `Ok(Some(err))` is the error
    /// that ended it (e.g. FATAL 57P01), `Ok(None)` a clean close, `Err` if still open.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<Option<tokio_postgres::Error>> {
        let Some(handle) = self.connection.as_mut() else {
            return Ok(None);
        };
        let joined = runtime().block_on(async { tokio::time::timeout(timeout, handle).await });
        match joined {
            Err(_) => bail!("session still open after {timeout:?}"),
            Ok(result) => {
                self.connection = None;
                Ok(result.context("connection task panicked")?.err())
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(handle) = self.connection.take() {
            handle.abort();
        }
    }
}
