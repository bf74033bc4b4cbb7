//! `conn_url` parsing: `postgres[ql]://[user[:pass]@]host[:port][/db][?query]` -> host and port.
//! Userinfo is dropped, `[v6]` hosts are unbracketed, the port defaults to 5432.

/// PostgreSQL's default port, used when `conn_url` names none.
pub(super) const DEFAULT_PORT: u16 = 5432;

/// Host and port of a `conn_url`; `None` when it is not a usable PostgreSQL URL.
pub(super) fn host_port(url: &str) -> Option<(String, u16)> {
    let authority = authority(url.trim())?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = split_port(host_port)?;
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// The part between `scheme://` and the first `/`, `?` or `#`.
fn authority(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("postgres") && !scheme.eq_ignore_ascii_case("postgresql") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Splits `host[:port]` or `[v6][:port]`; a bare IPv6 address without brackets is rejected.
fn split_port(host_port: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match host_port.split_once(':') {
        Some((_, port)) if port.contains(':') => None,
        Some((host, port)) => Some((host, Some(port))),
        None => Some((host_port, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(url: &str) -> Option<(String, u16)> {
        host_port(url)
    }

    #[test]
    fn plain_url_with_port_and_database() {
        assert_eq!(
            hp("postgres://10.0.0.12:5433/postgres"),
            Some(("10.0.0.12".into(), 5433))
        );
    }

    #[test]
    fn postgresql_scheme_and_missing_port() {
        assert_eq!(
            hp("postgresql://db1.example/postgres"),
            Some(("db1.example".into(), 5432))
        );
        assert_eq!(hp("POSTGRES://db1:"), Some(("db1".into(), 5432)));
    }

    #[test]
    fn userinfo_is_stripped() {
        let url = "postgres://repl:s3cr@t@10.0.0.1:6432/postgres?sslmode=require";
        assert_eq!(hp(url), Some(("10.0.0.1".into(), 6432)));
    }

    #[test]
    fn ipv6_hosts() {
        assert_eq!(
            hp("postgres://[fd00::12]:5434/postgres"),
            Some(("fd00::12".into(), 5434))
        );
        assert_eq!(
            hp("postgres://u:p@[::1]/postgres"),
            Some(("::1".into(), 5432))
        );
        assert_eq!(hp("postgres://fd00::12/postgres"), None);
        assert_eq!(hp("postgres://[::1]x/postgres"), None);
    }

    #[test]
    fn garbage_is_rejected() {
        for url in [
            "",
            "10.0.0.1:5432",
            "http://10.0.0.1:8008/patroni",
            "postgres://:5432/postgres",
            "postgres://h:notaport/postgres",
            "postgres://h:70000/postgres",
            "postgres://h:0/postgres",
        ] {
            assert_eq!(hp(url), None, "{url}");
        }
    }
}
