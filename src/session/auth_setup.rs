//! `[auth]`, loaded and checked: the method, the auth_file's users, and `auth_query` with
//! the `auth_user` it runs as (PgBouncer's semantics). Reads the auth_file once at start;
//! running the query is [`super::auth_query`]'s job.

use std::path::PathBuf;

use crate::auth::{AuthError, AuthMethod, Secret, ServerCredentials, UserList};
use crate::config::{AuthConfig, AuthType};

/// PgBouncer's default `auth_query`, used when `auth.user` is set without `auth.query`.
pub const DEFAULT_AUTH_QUERY: &str = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";

/// `[auth]`, loaded.
pub struct AuthSetup {
    pub method: AuthMethod,
    pub users: UserList,
    /// Asks the server for users not in `users`; `None`: such users are unknown.
    pub query: Option<AuthQuery>,
}

/// `auth.query` and the `auth.user` it runs as.
pub struct AuthQuery {
    /// Returns (user name, secret) for the user name bound to `$1`.
    pub sql: String,
    /// `auth.user`.
    pub user: String,
    /// What rolegate logs in as `user` with: its auth_file password or md5 digest.
    pub creds: ServerCredentials,
}

/// Why `[auth]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("auth.file {}: {source}", path.display())]
    File { path: PathBuf, source: AuthError },
    #[error(
        "auth.user needs auth.file: rolegate logs in as auth.user with the password listed there"
    )]
    NoFile,
    #[error("auth.user {0:?} is not in auth.file; rolegate logs in as it to run auth.query, so list its password there")]
    UserMissing(String),
    #[error("auth.user {0:?}: its auth.file entry is {1}; rolegate needs the password (or its md5 digest) to log in as it")]
    UnusableSecret(String, &'static str),
}

impl AuthSetup {
    /// Users of a list only; no auth_query.
    #[must_use]
    pub fn new(method: AuthMethod, users: UserList) -> Self {
        Self {
            method,
            users,
            query: None,
        }
    }

    /// Reads `auth.file` and checks that `auth.user`, if set, can log in with its entry.
    pub fn from_config(c: &AuthConfig) -> Result<Self, AuthSetupError> {
        let users = match &c.file {
            Some(path) => UserList::load(path).map_err(|source| AuthSetupError::File {
                path: path.clone(),
                source,
            })?,
            None => UserList::default(),
        };
        let method = match c.kind {
            AuthType::Trust => AuthMethod::Trust,
            AuthType::Md5 => AuthMethod::Md5,
            AuthType::ScramSha256 => AuthMethod::ScramSha256,
        };
        let query = match &c.user {
            Some(user) => Some(AuthQuery {
                sql: c.query.clone().unwrap_or_else(|| DEFAULT_AUTH_QUERY.into()),
                creds: auth_user_creds(c, &users, user)?,
                user: user.clone(),
            }),
            None => None,
        };
        Ok(Self {
            method,
            users,
            query,
        })
    }
}

/// What `auth.user`'s auth_file entry lets rolegate log in with.
fn auth_user_creds(
    c: &AuthConfig,
    users: &UserList,
    user: &str,
) -> Result<ServerCredentials, AuthSetupError> {
    if c.file.is_none() {
        return Err(AuthSetupError::NoFile);
    }
    let unusable = |what| AuthSetupError::UnusableSecret(user.to_owned(), what);
    match users.get(user) {
        None => Err(AuthSetupError::UserMissing(user.to_owned())),
        Some(Secret::Scram(_)) => Err(unusable(
            "a SCRAM verifier, which cannot answer a server's challenge",
        )),
        Some(Secret::Plain(p)) if p.is_empty() => Err(unusable("an empty password")),
        Some(s) => Ok(ServerCredentials::from_secret(Some(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
        WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    /// Writes `userlist` to a fresh file and loads `[auth]` with `extra` keys.
    fn load(userlist: &str, extra: &str) -> Result<AuthSetup, AuthSetupError> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "rolegate-auth-setup-{}-{n}.txt",
            std::process::id()
        ));
        std::fs::write(&path, userlist).unwrap();
        let text = format!(
            "type = \"scram-sha-256\"\nfile = {:?}\n{extra}",
            path.display().to_string()
        );
        let config: AuthConfig = toml::from_str(&text).unwrap();
        let got = AuthSetup::from_config(&config);
        let _ = std::fs::remove_file(&path);
        got
    }

    #[test]
    fn auth_user_without_query_gets_pgbouncers_default() {
        let setup = load("\"pgb\" \"secret\"\n", "user = \"pgb\"").unwrap();
        let q = setup.query.unwrap();
        assert_eq!(q.sql, DEFAULT_AUTH_QUERY);
        assert_eq!(q.user, "pgb");
        assert_eq!(q.creds, ServerCredentials::Password("secret".into()));
    }

    #[test]
    fn a_set_query_is_kept_and_md5_digests_log_in() {
        let extra = "user = \"pgb\"\nquery = \"SELECT u, p FROM f($1)\"";
        let setup = load("\"pgb\" \"md5a3556571e93b0d20722ba62be61e8c2d\"\n", extra).unwrap();
        let q = setup.query.unwrap();
        assert_eq!(q.sql, "SELECT u, p FROM f($1)");
        assert!(matches!(q.creds, ServerCredentials::Md5(_)));
    }

    #[test]
    fn no_auth_user_means_no_query() {
        let setup = load("\"alice\" \"pw\"\n", "").unwrap();
        assert!(setup.query.is_none());
        assert_eq!(setup.users.len(), 1);
    }

    #[test]
    fn auth_user_must_be_able_to_log_in() {
        let e = load("\"alice\" \"pw\"\n", "user = \"pgb\"").err().unwrap();
        assert!(
            matches!(e, AuthSetupError::UserMissing(ref u) if u == "pgb"),
            "{e}"
        );
        assert!(e.to_string().contains("not in auth.file"), "{e}");
        let e = load(&format!("\"pgb\" \"{VERIFIER}\"\n"), "user = \"pgb\"")
            .err()
            .unwrap();
        assert!(e.to_string().contains("SCRAM verifier"), "{e}");
        let e = load("\"pgb\" \"\"\n", "user = \"pgb\"").err().unwrap();
        assert!(e.to_string().contains("empty password"), "{e}");
        let config: AuthConfig = toml::from_str("type = \"md5\"\nuser = \"pgb\"").unwrap();
        let e = AuthSetup::from_config(&config).err().unwrap();
        assert!(matches!(e, AuthSetupError::NoFile), "{e}");
    }

    #[test]
    fn a_bad_file_names_its_path() {
        let config: AuthConfig =
            toml::from_str("type = \"md5\"\nfile = \"/nonexistent/users.txt\"").unwrap();
        let e = AuthSetup::from_config(&config).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("auth.file /nonexistent/users.txt"),
            "{e}"
        );
    }
}
