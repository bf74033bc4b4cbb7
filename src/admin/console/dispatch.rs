//! Parsing console commands (case-insensitive, `;`-separated, optional argument) and
//! checking who may run them: stats users only SHOW.

use bytes::BytesMut;

use super::table::Table;
use super::{cluster, commands, conns, pools};
use crate::protocol::PgError;
use crate::session::Shared;

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `[admin] admin_users`: everything.
    Admin,
    /// `[admin] stats_users`: SHOW only.
    Stats,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Show(String),
    Pause(String),
    Resume(String),
    Reconnect(String),
    Kill(String),
    Disable(String),
    Enable(String),
    Reload,
    Shutdown,
}

/// Parses one statement; `Err` is a syntax error for the client.
pub fn parse(stmt: &str) -> Result<Command, PgError> {
    let mut words = stmt.split_whitespace();
    let verb = words.next().unwrap_or_default().to_ascii_uppercase();
    let arg: Vec<&str> = words.collect();
    let one = |what: &str| -> Result<String, PgError> {
        match arg.as_slice() {
            [] => Ok(String::new()),
            [a] => Ok((*a).to_owned()),
            _ => Err(syntax(&format!("{what} takes at most one name"))),
        }
    };
    Ok(match verb.as_str() {
        "SHOW" => match arg.as_slice() {
            [what] => Command::Show(what.to_ascii_uppercase()),
            _ => {
                return Err(syntax(
                    "SHOW needs one word, e.g. SHOW POOLS; see SHOW HELP",
                ))
            }
        },
        "PAUSE" => Command::Pause(one("PAUSE")?),
        "RESUME" => Command::Resume(one("RESUME")?),
        "RECONNECT" => Command::Reconnect(one("RECONNECT")?),
        "KILL" => {
            let db = one("KILL")?;
            if db.is_empty() {
                return Err(syntax("KILL needs a database name"));
            }
            Command::Kill(db)
        }
        "DISABLE" | "ENABLE" => {
            let db = one(&verb)?;
            if db.is_empty() {
                return Err(syntax(&format!("{verb} needs a database name")));
            }
            if verb == "DISABLE" {
                Command::Disable(db)
            } else {
                Command::Enable(db)
            }
        }
        "RELOAD" if arg.is_empty() => Command::Reload,
        "SHUTDOWN" if arg.is_empty() => Command::Shutdown,
        _ => {
            return Err(syntax(&format!(
                "unknown command {:?}; SHOW HELP lists the commands",
                stmt.trim()
            )))
        }
    })
}

fn syntax(message: &str) -> PgError {
    PgError::error("42601", format!("rolegate admin console: {message}"))
}

/// Runs every statement of a simple query, appending the answers to `out`. The first
/// error ends the query, as in PostgreSQL.
pub async fn run_query(shared: &Shared, access: Access, sql: &str, out: &mut BytesMut) {
    let stmts: Vec<&str> = sql
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if stmts.is_empty() {
        out.extend_from_slice(&crate::protocol::io::message(b'I', b""));
        return;
    }
    for stmt in stmts {
        let done = match parse(stmt) {
            Ok(cmd) => run(shared, access, cmd, out).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            out.extend_from_slice(&e.encode());
            return;
        }
    }
}

async fn run(
    shared: &Shared,
    access: Access,
    cmd: Command,
    out: &mut BytesMut,
) -> Result<(), PgError> {
    if access == Access::Stats && !matches!(cmd, Command::Show(_)) {
        return Err(PgError::error(
            "42501",
            "rolegate admin console: stats users may only run SHOW commands",
        )
        .with_hint("Connect as one of [admin] admin_users."));
    }
    match cmd {
        Command::Show(what) => show(shared, &what)?.encode(out),
        other => commands::run(shared, other, out).await?,
    }
    Ok(())
}

/// The answer to `SHOW <what>`.
pub fn show(shared: &Shared, what: &str) -> Result<Table, PgError> {
    Ok(match what {
        "POOLS" => pools::pools(shared),
        "STATS" => pools::stats(shared),
        "LISTS" => pools::lists(shared),
        "CLIENTS" => conns::clients(shared),
        "SERVERS" => conns::servers(shared),
        "DATABASES" => cluster::databases(shared),
        "TOPOLOGY" => cluster::topology(shared),
        "CONFIG" => super::config::config(shared),
        "VERSION" => cluster::version(),
        "STATE" => cluster::state(shared),
        "STATS_TOTALS" => super::totals::stats_totals(shared),
        "TOTALS" => super::totals::totals(shared),
        "USERS" => super::totals::users(shared),
        "HELP" => cluster::help(),
        other => {
            return Err(syntax(&format!(
                "unknown SHOW {other}; SHOW HELP lists the commands"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_arguments() {
        assert_eq!(parse("show pools").unwrap(), Command::Show("POOLS".into()));
        assert_eq!(parse("PAUSE").unwrap(), Command::Pause(String::new()));
        assert_eq!(parse("pause app").unwrap(), Command::Pause("app".into()));
        assert_eq!(
            parse("RESUME app@primary:5000").unwrap(),
            Command::Resume("app@primary:5000".into())
        );
        assert_eq!(parse("reload").unwrap(), Command::Reload);
        assert_eq!(parse("KILL db").unwrap(), Command::Kill("db".into()));
    }

    #[test]
    fn syntax_errors_are_42601() {
        for bad in ["SELECT 1", "SHOW", "KILL", "PAUSE a b", "RELOAD now"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, "42601", "{bad}");
        }
    }
}
