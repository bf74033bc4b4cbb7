//! `run_query` against a scripted server over a duplex, and the errors clients see.

use tokio::io::AsyncWriteExt;

use super::*;

/// A DataRow with the given columns (`None` = NULL).
fn row(cols: &[Option<&str>]) -> Vec<u8> {
    let mut body = u16::try_from(cols.len()).unwrap().to_be_bytes().to_vec();
    for c in cols {
        match c {
            Some(v) => {
                body.extend_from_slice(&u32::try_from(v.len()).unwrap().to_be_bytes());
                body.extend_from_slice(v.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    message(b'D', &body).to_vec()
}

fn done() -> Vec<u8> {
    let mut v = message(b'C', b"SELECT 1\0").to_vec();
    v.extend_from_slice(&message(b'Z', b"I"));
    v
}

/// Runs the query as `user` against a server that reads the four request messages and
/// answers ParseComplete, BindComplete, then `answer`. Returns the result and what the
/// server read.
async fn ask(
    user: &str,
    answer: Vec<u8>,
) -> (Result<Option<String>, AuthQueryError>, Vec<(u8, Vec<u8>)>) {
    let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..4 {
            let (tag, body) = read_message(&mut theirs, 1 << 16).await.unwrap();
            got.push((tag, body.to_vec()));
        }
        let mut out = message(b'1', b"").to_vec();
        out.extend_from_slice(&message(b'2', b""));
        out.extend_from_slice(&answer);
        theirs.write_all(&out).await.unwrap();
        got
    });
    let result = run_query(&mut ours, "SELECT u, p FROM t WHERE u=$1", user).await;
    (result, server.await.unwrap())
}

#[tokio::test]
async fn the_user_is_bound_as_a_parameter_and_the_second_column_is_the_secret() {
    let mut answer = row(&[Some("o'brien"), Some("md5abc")]);
    answer.extend(done());
    let (got, sent) = ask("o'brien", answer).await;
    assert_eq!(got.unwrap().as_deref(), Some("md5abc"));
    let tags: Vec<u8> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"PBES");
    let parse = &sent[0].1;
    assert_eq!(&parse[..1], b"\0", "unnamed statement");
    assert!(parse.windows(5).any(|w| w == b"WHERE"));
    assert!(
        !parse.windows(7).any(|w| w == b"o'brien"),
        "name spliced into SQL"
    );
    let bind = &sent[1].1;
    assert!(bind.ends_with(b"\0\0\0\x07o'brien\0\0"), "{bind:?}");
}

#[tokio::test]
async fn no_row_or_null_is_an_unknown_user() {
    let (got, _) = ask("ghost", done()).await;
    assert_eq!(got.unwrap(), None);
    let mut answer = row(&[Some("ghost"), None]);
    answer.extend(done());
    let (got, _) = ask("ghost", answer).await;
    assert_eq!(got.unwrap(), None);
    // A NULL user name column does not shift the secret.
    let mut answer = row(&[None, Some("pw")]);
    answer.extend(done());
    assert_eq!(ask("x", answer).await.0.unwrap().as_deref(), Some("pw"));
}

#[tokio::test]
async fn a_server_error_is_reported_with_its_code() {
    let mut answer = message(
        b'E',
        b"SERROR\0C42501\0Mpermission denied for view pg_shadow\0\0",
    )
    .to_vec();
    answer.extend_from_slice(&message(b'Z', b"I"));
    match ask("alice", answer).await.0 {
        Err(AuthQueryError::Query { code, message }) => {
            assert_eq!(code, "42501");
            assert_eq!(message, "permission denied for view pg_shadow");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn answers_of_the_wrong_shape_are_errors() {
    let mut two = row(&[Some("a"), Some("1")]);
    two.extend(row(&[Some("a"), Some("2")]));
    two.extend(done());
    let mut one_column = row(&[Some("a")]);
    one_column.extend(done());
    let mut truncated = message(b'D', b"\0\x02\0\0\0\x09ab").to_vec();
    truncated.extend(done());
    for (answer, expected) in [
        (two, "more than one row"),
        (one_column, "two columns"),
        (truncated, "malformed"),
    ] {
        match ask("a", answer).await.0 {
            Err(e @ AuthQueryError::Answer(_)) => {
                assert!(e.to_string().contains(expected), "{e}");
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_closed_connection_is_broken() {
    let (mut ours, theirs) = tokio::io::duplex(1 << 16);
    drop(theirs);
    let got = run_query(&mut ours, "SELECT 1", "a").await;
    assert!(matches!(got, Err(AuthQueryError::Broken(_))), "{got:?}");
}

#[test]
fn client_errors_say_auth_query_failed_with_fitting_codes() {
    let query = AuthQueryError::Query {
        code: "42501".into(),
        message: "permission denied for view pg_shadow".into(),
    }
    .to_client_error();
    assert_eq!(query.code, "28000");
    assert_eq!(
        query.message,
        "rolegate: auth_query failed: the query failed: 42501 permission denied for view pg_shadow"
    );
    let down = AuthQueryError::NoServer(
        PgError::fatal("08001", "rolegate: could not connect to any primary member")
            .with_detail("last error: pg1: refused"),
    )
    .to_client_error();
    assert_eq!(down.code, "08006");
    assert_eq!(
        down.message,
        "rolegate: auth_query failed: could not connect to any primary member"
    );
    assert_eq!(down.detail.as_deref(), Some("last error: pg1: refused"));
    let login = AuthQueryError::Login(ServerError::Refused {
        member: "pg1".into(),
        code: "3D000".into(),
        message: "database \"x\" does not exist".into(),
    })
    .to_client_error();
    assert_eq!(login.code, "28000");
    assert!(
        login
            .message
            .contains("cannot log in as auth.user: pg1 refused"),
        "{}",
        login.message
    );
    assert_eq!(
        AuthQueryError::Timeout(Duration::from_secs(1))
            .to_client_error()
            .code,
        "08006"
    );
}
