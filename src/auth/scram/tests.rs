use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use tokio::io::{AsyncWriteExt, DuplexStream};

use super::client::{ClientExchange, ClientSecret};
use super::server::ServerExchange;
use super::*;
use crate::auth::wire::{read_server_auth, ServerAuth};
use crate::auth::{RejectReason, ServerCredentials};

// RFC 7677 section 3: user "user", password "pencil".
const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
    p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_secret() -> ScramSecret {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    ScramSecret::from_password("pencil", salt, 4096)
}

fn verifier_text(s: &ScramSecret) -> String {
    format!(
        "SCRAM-SHA-256${}:{}${}:{}",
        s.iterations,
        B64.encode(&s.salt),
        B64.encode(s.stored_key),
        B64.encode(s.server_key)
    )
}

#[test]
fn rfc7677_server_side() {
    let secret = rfc_secret();
    let (exchange, first) = ServerExchange::start(&secret, SERVER_NONCE, CLIENT_FIRST).unwrap();
    assert_eq!(first, SERVER_FIRST);
    let (last, keys) = exchange.finish(CLIENT_FINAL).unwrap();
    assert_eq!(last, SERVER_FINAL);
    assert_eq!(keys.stored_key(), secret.stored_key);
    assert_eq!(keys, ScramKeys::from_password("pencil", &secret.salt, 4096));
}

#[test]
fn rfc7677_client_side() {
    let keys = ScramKeys::from_password("pencil", &rfc_secret().salt, 4096);
    for secret in [ClientSecret::Password("pencil"), ClientSecret::Keys(&keys)] {
        let (exchange, first) = ClientExchange::start("user", CLIENT_NONCE);
        assert_eq!(first, CLIENT_FIRST);
        let (last, expected) = exchange.respond(secret, SERVER_FIRST).unwrap();
        assert_eq!(last, CLIENT_FINAL);
        ClientExchange::verify(SERVER_FINAL, &expected).unwrap();
        let forged = "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert!(matches!(
            ClientExchange::verify(forged, &expected),
            Err(AuthError::ServerSignature)
        ));
    }
}

#[test]
fn verifier_round_trip_and_redaction() {
    let secret = rfc_secret();
    let parsed = ScramSecret::parse(&verifier_text(&secret)).unwrap();
    assert_eq!(parsed, secret);
    assert_eq!(
        format!("{parsed:?}"),
        "ScramSecret { iterations: 4096, .. }"
    );
    assert_eq!(
        format!("{:?}", ScramKeys::from_password("p", b"s", 1)),
        "ScramKeys { .. }"
    );
    assert!(matches!(
        ScramSecret::parse("md5abc"),
        Err(AuthError::Secret(_))
    ));
}

#[test]
fn client_first_checks() {
    let secret = rfc_secret();
    let start = |msg: &str| ServerExchange::start(&secret, SERVER_NONCE, msg).map(|_| ());
    assert!(start("y,,n=user,r=abc").is_ok());
    assert!(start("n,,n=,r=abc,x=ext").is_ok());
    for unsupported in [
        "p=tls-server-end-point,,n=,r=abc",
        "n,a=bob,n=,r=abc",
        "n,,m=x,n=,r=a",
    ] {
        assert!(
            matches!(start(unsupported), Err(AuthError::Unsupported(_))),
            "{unsupported}"
        );
    }
    for bad in [
        "",
        "n,,",
        "x,,n=,r=abc",
        "n,,r=abc",
        "n,,n=,r=",
        "n,,n=,r=a,b",
        "n,,n=,r=a b",
    ] {
        assert!(matches!(start(bad), Err(AuthError::Protocol(_))), "{bad:?}");
    }
}

#[test]
fn client_final_checks() {
    let secret = rfc_secret();
    let finish = |first: &str, last: &str| {
        let (ex, _) = ServerExchange::start(&secret, SERVER_NONCE, first).unwrap();
        ex.finish(last).map(|_| ())
    };
    // "y,," must be echoed as c=eSws, not c=biws.
    let y_first = CLIENT_FIRST.replacen('n', "y", 1);
    assert!(matches!(
        finish(&y_first, CLIENT_FINAL),
        Err(AuthError::Protocol(_))
    ));
    let nonce = CLIENT_FINAL.replace("$k0", "$k1");
    assert!(matches!(
        finish(CLIENT_FIRST, &nonce),
        Err(AuthError::Protocol(_))
    ));
    let no_proof = CLIENT_FINAL.split(",p=").next().unwrap();
    assert!(matches!(
        finish(CLIENT_FIRST, no_proof),
        Err(AuthError::Protocol(_))
    ));
    let short = format!("{no_proof},p=AAAA");
    assert!(matches!(
        finish(CLIENT_FIRST, &short),
        Err(AuthError::Protocol(_))
    ));
    let wrong = format!("{no_proof},p={}", B64.encode([7u8; 32]));
    assert!(matches!(
        finish(CLIENT_FIRST, &wrong),
        Err(AuthError::Rejected(RejectReason::WrongPassword))
    ));
}

/// The frontend half: waits for AuthenticationSASL, then runs `scram_client`.
async fn frontend(mut c: DuplexStream, creds: ServerCredentials) -> Result<(), AuthError> {
    let ServerAuth::Sasl(mechanisms) = read_server_auth(&mut c).await? else {
        panic!("no SASL request");
    };
    scram_client(&mut c, &creds, &mechanisms).await
}

/// Runs `scram_server` against `scram_client`; on failure the server sends the
/// ErrorResponse a real session would.
async fn exchange(
    secret: &ScramSecret,
    creds: ServerCredentials,
) -> (Result<ScramKeys, AuthError>, Result<(), AuthError>) {
    let (mut s, c) = tokio::io::duplex(4096);
    let client = tokio::spawn(frontend(c, creds));
    let server = scram_server(&mut s, secret).await;
    if let Err(e) = &server {
        s.write_all(&e.to_client_error("user").encode())
            .await
            .unwrap();
    }
    (server, client.await.unwrap())
}

#[tokio::test]
async fn server_and_client_agree() {
    let secret = ScramSecret::from_password("s3cret", b"0123456789abcdef".to_vec(), 64);
    let (server, client) = exchange(&secret, ServerCredentials::Password("s3cret".into())).await;
    client.unwrap();
    let keys = server.unwrap();
    assert_eq!(keys.stored_key(), secret.stored_key);
}

#[tokio::test]
async fn wrong_password_fails_on_both_sides() {
    let secret = ScramSecret::from_password("s3cret", b"0123456789abcdef".to_vec(), 64);
    let (server, client) = exchange(&secret, ServerCredentials::Password("guess".into())).await;
    assert!(matches!(
        server,
        Err(AuthError::Rejected(RejectReason::WrongPassword))
    ));
    match client {
        Err(AuthError::Server { code, message }) => {
            assert_eq!(code, "28P01");
            assert_eq!(message, "password authentication failed for user \"user\"");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn recovered_client_key_logs_in_elsewhere() {
    // The proxy checks the client against the verifier, then logs into a server that
    // stores the same verifier using only the recovered keys.
    let secret = ScramSecret::from_password("s3cret", b"0123456789abcdef".to_vec(), 64);
    let (server, _) = exchange(&secret, ServerCredentials::Password("s3cret".into())).await;
    let keys = server.unwrap();
    let (upstream, client) =
        exchange(&secret, ServerCredentials::Scram(Box::new(keys.clone()))).await;
    client.unwrap();
    assert_eq!(upstream.unwrap(), keys);
    // Keys for another verifier (other salt) are refused by the server.
    let other = ScramSecret::from_password("s3cret", b"fedcba9876543210".to_vec(), 64);
    let (upstream, _) = exchange(&other, ServerCredentials::Scram(Box::new(keys))).await;
    assert!(matches!(upstream, Err(AuthError::Rejected(_))));
}

#[tokio::test]
async fn client_refuses_unusable_credentials() {
    let (mut c, _s) = tokio::io::duplex(64);
    let mechs = b"SCRAM-SHA-256\0\0";
    let md5 = ServerCredentials::Md5([0; 16]);
    assert!(matches!(
        scram_client(&mut c, &md5, mechs).await,
        Err(AuthError::NoCredentials(_))
    ));
    let pw = ServerCredentials::Password("x".into());
    let plus_only = b"SCRAM-SHA-256-PLUS\0\0";
    assert!(matches!(
        scram_client(&mut c, &pw, plus_only).await,
        Err(AuthError::Unsupported(_))
    ));
}
