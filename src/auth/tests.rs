use tokio::io::AsyncWriteExt;

use super::*;
use crate::protocol::PgError;
use pgwire::messages::startup::Authentication;

fn plain(p: &str) -> Secret {
    Secret::Plain(p.into())
}

fn scram(p: &str) -> Secret {
    Secret::Scram(ScramSecret::from_password(
        p,
        b"salt-for-tests!!".to_vec(),
        64,
    ))
}

/// `authenticate_client` on one end (followed by AuthenticationOk or the client-facing
/// ErrorResponse, as a session would send), `answer_server_auth` on the other.
async fn login(
    method: AuthMethod,
    secret: Option<Secret>,
    password: &str,
) -> (Result<ServerCredentials, AuthError>, Result<(), AuthError>) {
    let (mut s, mut c) = tokio::io::duplex(4096);
    let creds = ServerCredentials::Password(password.into());
    let client = tokio::spawn(async move { answer_server_auth(&mut c, "alice", &creds).await });
    let result = authenticate_client(&mut s, method, "alice", secret.as_ref()).await;
    match &result {
        Ok(_) => wire::send(&mut s, &Authentication::Ok).await.unwrap(),
        Err(e) => s
            .write_all(&e.to_client_error("alice").encode())
            .await
            .unwrap(),
    }
    (result, client.await.unwrap())
}

#[tokio::test]
async fn right_password_each_method_and_secret() {
    let md5 = Secret::Md5(md5::md5_secret("pw", "alice"));
    let cases = [
        (AuthMethod::Md5, plain("pw"), "Password(<redacted>)"),
        (AuthMethod::Md5, md5, "Md5(<redacted>)"),
        (AuthMethod::Md5, scram("pw"), "Scram(<redacted>)"),
        (AuthMethod::ScramSha256, plain("pw"), "Password(<redacted>)"),
        (AuthMethod::ScramSha256, scram("pw"), "Scram(<redacted>)"),
        (AuthMethod::Trust, plain("pw"), "Password(<redacted>)"),
        (AuthMethod::Trust, scram("pw"), "None"),
    ];
    for (method, secret, creds) in cases {
        let (server, client) = login(method, Some(secret.clone()), "pw").await;
        client.unwrap_or_else(|e| panic!("{method:?} {secret:?}: {e}"));
        assert_eq!(
            format!("{:?}", server.unwrap()),
            creds,
            "{method:?} {secret:?}"
        );
    }
    let (server, client) = login(AuthMethod::Trust, None, "pw").await;
    client.unwrap();
    assert_eq!(server.unwrap(), ServerCredentials::None);
}

#[tokio::test]
async fn unknown_user_looks_like_wrong_password() {
    for method in [AuthMethod::Md5, AuthMethod::ScramSha256] {
        let secret = if method == AuthMethod::Md5 {
            plain("pw")
        } else {
            scram("pw")
        };
        let (wrong, wrong_client) = login(method, Some(secret), "guess").await;
        let (unknown, unknown_client) = login(method, None, "guess").await;
        assert!(matches!(
            wrong,
            Err(AuthError::Rejected(RejectReason::WrongPassword))
        ));
        assert!(matches!(
            unknown,
            Err(AuthError::Rejected(RejectReason::UnknownUser))
        ));
        let (wrong, unknown) = (wrong.unwrap_err(), unknown.unwrap_err());
        assert_eq!(
            wrong.to_client_error("alice"),
            unknown.to_client_error("alice")
        );
        // What the client saw is identical too.
        assert_eq!(
            wrong_client.unwrap_err().to_string(),
            unknown_client.unwrap_err().to_string()
        );
    }
}

#[tokio::test]
async fn unusable_secrets_fail_after_an_exchange() {
    let md5 = Secret::Md5(md5::md5_secret("pw", "alice"));
    for (method, secret) in [
        (AuthMethod::ScramSha256, md5),
        (AuthMethod::ScramSha256, plain("")),
        (AuthMethod::Md5, plain("")),
    ] {
        let (server, client) = login(method, Some(secret), "pw").await;
        assert!(matches!(
            server,
            Err(AuthError::Rejected(RejectReason::UnusableSecret))
        ));
        assert!(matches!(client, Err(AuthError::Server { code, .. }) if code == "28P01"));
    }
}

#[test]
fn decoy_salt_is_stable_per_user() {
    assert_eq!(decoy_salt("ghost"), decoy_salt("ghost"));
    assert_ne!(decoy_salt("ghost"), decoy_salt("ghost2"));
    assert_eq!(decoy_salt("ghost").len(), 16);
}

#[test]
fn method_names() {
    for name in ["trust", "md5", "scram-sha-256"] {
        assert_eq!(name.parse::<AuthMethod>().unwrap().as_str(), name);
    }
    assert!("password".parse::<AuthMethod>().is_err());
}

/// Scripted server messages in, whatever the client answered out.
async fn answer(script: Vec<u8>, creds: ServerCredentials) -> (Result<(), AuthError>, Vec<u8>) {
    let (mut s, mut c) = tokio::io::duplex(4096);
    s.write_all(&script).await.unwrap();
    let result = answer_server_auth(&mut c, "alice", &creds).await;
    drop(c);
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s, &mut out)
        .await
        .unwrap();
    (result, out)
}

fn request(code: i32, extra: &[u8]) -> Vec<u8> {
    let mut v = vec![b'R'];
    v.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(extra);
    v
}

#[tokio::test]
async fn answers_cleartext_and_reports_server_errors() {
    let mut script = request(3, b"");
    script.extend(request(0, b""));
    let (result, out) = answer(script, ServerCredentials::Password("pw".into())).await;
    result.unwrap();
    assert_eq!(out, b"p\0\0\0\x07pw\0");

    let script = PgError::fatal("3D000", "database \"x\" does not exist").encode();
    let (result, _) = answer(script.to_vec(), ServerCredentials::None).await;
    let err = result.unwrap_err();
    assert!(matches!(&err, AuthError::Server { code, .. } if code == "3D000"));
    assert_eq!(
        err.to_client_error("alice").message,
        "rolegate could not log into the server: database \"x\" does not exist"
    );
}

#[tokio::test]
async fn refuses_what_it_cannot_answer() {
    let (result, out) = answer(request(3, b""), ServerCredentials::None).await;
    assert!(matches!(result, Err(AuthError::NoCredentials(_))));
    assert!(out.is_empty());
    let (result, _) = answer(request(2, b""), ServerCredentials::None).await;
    assert!(matches!(result, Err(AuthError::Unsupported(_))));
    let (result, _) = answer(request(12, b"v=x"), ServerCredentials::None).await;
    assert!(matches!(result, Err(AuthError::Protocol(_))));
}
