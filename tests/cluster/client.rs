//! Async `tokio-postgres` clients for the pooling and failure tests: connecting with extra
//! conninfo, one-value queries, the SQLSTATE of a failure, and the listener TOML they use.

use anyhow::{anyhow, Result};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// A client and its connection task (which resolves with the error that ended it).
pub struct Conn {
    pub client: Client,
    pub task: JoinHandle<Result<(), tokio_postgres::Error>>,
}

/// Connects as postgres/postgres to 127.0.0.1:`port`; `extra` is appended to the conninfo.
pub async fn connect(port: u16, extra: &str) -> Result<Conn, tokio_postgres::Error> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=10 {extra}"
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await?;
    let task = tokio::spawn(connection);
    Ok(Conn { client, task })
}

/// The first column of the first row of `sql` (simple protocol), as text; `None` for NULL.
pub async fn value(client: &Client, sql: &str) -> Result<Option<String>, tokio_postgres::Error> {
    for m in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = m {
            return Ok(row.get(0).map(str::to_owned));
        }
    }
    Ok(None)
}

/// `value` that must succeed and be non-NULL.
pub async fn text(client: &Client, sql: &str) -> Result<String> {
    value(client, sql)
        .await?
        .ok_or_else(|| anyhow!("{sql}: no value"))
}

/// The SQLSTATE of `e`, or "none" when it carries no server error (I/O, closed).
pub fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map_or_else(|| "none".to_owned(), |c| c.code().to_owned())
}

/// SQLSTATE, message and hint of `e` (its `Display` says only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(
        || format!("none: {e}"),
        |d| {
            format!(
                "{} {}: {} (hint: {:?})",
                d.severity(),
                d.code().code(),
                d.message(),
                d.hint()
            )
        },
    )
}

/// One `[[listener]]` table: `pool` is `None` for passthrough, else the pool mode; `extra`
/// holds more `key = value` lines.
pub fn listener(port: u16, role: &str, pool: Option<&str>, extra: &str) -> String {
    let pool = pool.map_or(String::new(), |m| format!("pool_mode = \"{m}\"\n"));
    format!("[[listener]]\naddr = \"127.0.0.1:{port}\"\nrole = \"{role}\"\n{pool}{extra}\n")
}

/// `[auth]` with trust.
pub const TRUST: &str = "[auth]\ntype = \"trust\"\n";

/// `psql -XAtq -v ON_ERROR_STOP=1 -c sql` on `port` with `input` on its stdin (for
/// `COPY ... FROM STDIN`); trimmed stdout.
pub fn psql_stdin(port: u16, sql: &str, input: &[u8]) -> Result<String> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = super::pg::psql_command(port, 5, sql)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("stdin"))?
        .write_all(input)?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
