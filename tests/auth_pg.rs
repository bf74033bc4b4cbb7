//! `rolegate::auth` against a real PostgreSQL 15: logging into it with passwords, md5
//! digests and SCRAM keys recovered from a client's proof, and psql logging into
//! `authenticate_client`. Starts its own server (as the `postgres` user) on
//! 127.0.0.1:26543 and stops it on drop, also when a check panics.

mod pg;

use std::process::Stdio;

use rolegate::auth::md5::md5_secret;
use rolegate::auth::{
    answer_server_auth, authenticate_client, AuthError, AuthMethod, ScramKeys, Secret,
    ServerCredentials,
};
use rolegate::protocol::startup::{read_first_packet, NO_ENCRYPTION};
use rolegate::protocol::FirstPacket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use pg::Pg;

const PORT: u16 = 26543;
const SCRAM_USER: &str = "scram_user";
const SCRAM_PW: &str = "scram-pw";
const MD5_USER: &str = "md5_user";
const MD5_PW: &str = "md5-pw";

/// The server: SCRAM_USER with a SCRAM verifier, MD5_USER with an md5 digest.
fn start() -> anyhow::Result<Pg> {
    let hba = format!(
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
         host all {MD5_USER} 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n"
    );
    let setup = format!(
        "CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{SCRAM_PW}'; SET password_encryption = 'md5'; \
         CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PW}';"
    );
    Pg::start(PORT, &hba, &setup)
}

/// Connects, sends a v3.0 startup packet, lets `answer_server_auth` log in, then reads
/// through ReadyForQuery so the session is known to be usable.
async fn login(user: &str, creds: &ServerCredentials) -> Result<(), AuthError> {
    let mut stream = TcpStream::connect(("127.0.0.1", PORT)).await?;
    let params = format!("user\0{user}\0database\0postgres\0\0");
    let mut packet = ((params.len() + 8) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&196_608u32.to_be_bytes());
    packet.extend_from_slice(params.as_bytes());
    stream.write_all(&packet).await?;
    answer_server_auth(&mut stream, user, creds).await?;
    loop {
        let tag = stream.read_u8().await?;
        let len = stream.read_u32().await?;
        let mut body = vec![0; len as usize - 4];
        stream.read_exact(&mut body).await?;
        if tag == b'Z' {
            return Ok(());
        }
    }
}

fn assert_rejected(result: Result<(), AuthError>) {
    match result {
        Err(AuthError::Server { code, message }) => {
            assert_eq!(code, "28P01", "{message}");
            assert!(
                message.contains("password authentication failed"),
                "{message}"
            );
        }
        other => panic!("expected a 28P01 from the server, got {other:?}"),
    }
}

/// The proxy's client side: SCRAM-checks a client against `secret` over a duplex and
/// returns what it recovered, as a session would before logging into the server.
async fn recover(secret: &Secret, password: &str) -> ServerCredentials {
    let (mut proxy, mut client) = tokio::io::duplex(4096);
    let creds = ServerCredentials::Password(password.to_owned());
    let client = tokio::spawn(async move {
        let _ = answer_server_auth(&mut client, SCRAM_USER, &creds).await;
    });
    let method = AuthMethod::ScramSha256;
    let got = authenticate_client(&mut proxy, method, SCRAM_USER, Some(secret)).await;
    drop(proxy);
    client.await.unwrap();
    got.expect("client proof accepted")
}

/// Serves one psql connection with `authenticate_client`; returns psql's stderr and
/// the type of the first message psql sent after the login, if it succeeded.
async fn psql_through(
    method: AuthMethod,
    user: &str,
    secret: Secret,
    pw: &str,
) -> (String, Option<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let user_owned = user.to_owned();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let first = loop {
            match read_first_packet(&mut s).await.unwrap() {
                FirstPacket::SslRequest | FirstPacket::GssEncRequest => {
                    s.write_all(&[NO_ENCRYPTION]).await.unwrap();
                }
                other => break other,
            }
        };
        assert_eq!(first.param("user"), Some(user_owned.as_str()));
        match authenticate_client(&mut s, method, &user_owned, Some(&secret)).await {
            // AuthenticationOk, then ReadyForQuery (idle): psql, content with the login
            // (and with our SCRAM signature), sends its Query, which is left unanswered.
            Ok(_) => {
                s.write_all(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I")
                    .await
                    .unwrap();
                s.read_u8().await.ok()
            }
            Err(e) => {
                s.write_all(&e.to_client_error(&user_owned).encode())
                    .await
                    .unwrap();
                None
            }
        }
    });
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={user} dbname=postgres sslmode=disable connect_timeout=5"
    );
    let out = tokio::process::Command::new("/usr/bin/psql")
        .args(["-X", "-d", &conninfo, "-c", "select 1"])
        .env("PGPASSWORD", pw)
        .env("PGPASSFILE", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let next = server.await.unwrap();
    (String::from_utf8_lossy(&out.stderr).into_owned(), next)
}

#[tokio::test]
async fn auth_against_postgres_15() {
    if pg::missing() {
        return;
    }
    let pg = start().expect("start PostgreSQL");

    // Plain passwords, both methods.
    login(SCRAM_USER, &ServerCredentials::Password(SCRAM_PW.into()))
        .await
        .unwrap();
    login(MD5_USER, &ServerCredentials::Password(MD5_PW.into()))
        .await
        .unwrap();
    assert_rejected(login(SCRAM_USER, &ServerCredentials::Password("nope".into())).await);
    assert_rejected(login(MD5_USER, &ServerCredentials::Password("nope".into())).await);

    // The md5 digest PostgreSQL stores is enough to answer its own challenge.
    let Secret::Md5(digest) = pg.stored_secret(MD5_USER).unwrap() else {
        panic!("{MD5_USER} has no md5 secret");
    };
    assert_eq!(digest, md5_secret(MD5_PW, MD5_USER));
    login(MD5_USER, &ServerCredentials::Md5(digest))
        .await
        .unwrap();

    // SCRAM keys derived from the stored verifier's salt and the known password.
    let stored = pg.stored_secret(SCRAM_USER).unwrap();
    let Secret::Scram(verifier) = &stored else {
        panic!("{SCRAM_USER} has no SCRAM verifier");
    };
    let keys = ScramKeys::from_password(SCRAM_PW, &verifier.salt, verifier.iterations);
    assert_eq!(keys.stored_key(), verifier.stored_key);
    login(SCRAM_USER, &ServerCredentials::Scram(Box::new(keys)))
        .await
        .unwrap();

    // Passthrough: keys recovered from a client's proof (the proxy never sees the
    // password) log into the real server.
    let recovered = recover(&stored, SCRAM_PW).await;
    assert!(matches!(recovered, ServerCredentials::Scram(_)));
    login(SCRAM_USER, &recovered).await.unwrap();

    // psql authenticating against rolegate's server side.
    for (method, user, secret, pw) in [
        (
            AuthMethod::ScramSha256,
            SCRAM_USER,
            stored.clone(),
            SCRAM_PW,
        ),
        (AuthMethod::Md5, MD5_USER, Secret::Md5(digest), MD5_PW),
    ] {
        let (ok, next) = psql_through(method, user, secret.clone(), pw).await;
        assert!(
            !ok.contains("password authentication failed"),
            "{method:?}: {ok}"
        );
        assert_eq!(next, Some(b'Q'), "{method:?}: psql sent no query: {ok}");
        let (bad, _) = psql_through(method, user, secret, "wrong").await;
        let expected = format!("password authentication failed for user \"{user}\"");
        assert!(bad.contains(&expected), "{method:?}: {bad}");
    }
    drop(pg);
}
