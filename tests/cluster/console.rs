//! The SQL admin console from tests: `psql` with database `pgbouncer`, rows as maps from
//! column name to text, errors with their SQLSTATE (VERBOSITY verbose).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// One result row: column name -> value (`""` for NULL).
pub type Row = BTreeMap<String, String>;

/// Runs `sql` on the console of the rolegate listening on `port`, as `user`. `Err` is
/// psql's error text, which starts with `ERROR:  <SQLSTATE>:` or `FATAL:  <SQLSTATE>:`.
pub fn console(port: u16, user: &str, sql: &str) -> Result<Vec<Row>, String> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={user} dbname=pgbouncer connect_timeout=5 sslmode=disable"
    );
    let out = Command::new("/usr/bin/psql")
        .args([
            "-X",
            "-A",
            "-F",
            "\t",
            "-P",
            "footer=off",
            "-v",
            "VERBOSITY=verbose",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-d", &conninfo, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run psql: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() || stderr.contains("ERROR:") || stderr.contains("FATAL:") {
        return Err(if stderr.is_empty() {
            format!("psql exited with {}", out.status)
        } else {
            stderr
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let columns: Vec<&str> = header.split('\t').collect();
    Ok(lines
        .map(|l| {
            columns
                .iter()
                .zip(l.split('\t'))
                .map(|(c, v)| ((*c).to_owned(), v.to_owned()))
                .collect()
        })
        .collect())
}

/// The SQLSTATE in a psql error text (`ERROR:  42501: ...`).
pub fn sqlstate(err: &str) -> Option<&str> {
    let rest = err
        .split_once("ERROR:  ")
        .or_else(|| err.split_once("FATAL:  "))?
        .1;
    rest.get(..5)
}

/// The rows of `rows` whose `column` equals `value`.
pub fn find<'a>(rows: &'a [Row], column: &str, value: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.get(column).is_some_and(|v| v == value))
        .collect()
}

/// `row[column]` as a number (panics with the row if it is not one).
pub fn num(row: &Row, column: &str) -> i64 {
    row.get(column)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{column} is not a number in {row:?}"))
}

/// Logs into the console as `user`; the SQLSTATE of the refusal, or `None` if it let the
/// user in.
pub fn login_refusal(port: u16, user: &str) -> Option<String> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={user} dbname=pgbouncer connect_timeout=5 sslmode=disable"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
            Ok(_) => None,
            Err(e) => Some(
                e.code()
                    .map_or_else(|| format!("no SQLSTATE: {e}"), |c| c.code().to_owned()),
            ),
        }
    })
}
