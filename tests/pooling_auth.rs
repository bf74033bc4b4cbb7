//! Client authentication of pooling listeners against an `auth_file` on a real Patroni
//! cluster: SCRAM-SHA-256 and md5, with the secrets PostgreSQL itself stored for the roles
//! and with plain passwords. A wrong password and an unknown user read the same.

mod cluster;

use std::time::Duration;

use cluster::client::{code, listener};
use cluster::{spawn, Cluster};
use tokio_postgres::NoTls;

const BASE: u16 = 22_400;

async fn login(port: u16, user: &str, password: &str) -> Result<String, tokio_postgres::Error> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={user} password={password} dbname=postgres connect_timeout=10"
    );
    let (client, conn) = tokio_postgres::connect(&conninfo, NoTls).await?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT current_user || '|' || pg_is_in_recovery()::text",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Logs in with a wrong password and as an unknown user: both 28P01, and the messages
/// differ only in the user name.
async fn assert_rejections_alike(port: u16, user: &str) {
    let wrong = login(port, user, "wrong-pw")
        .await
        .expect_err("wrong password");
    let unknown = login(port, "mallory", "whatever")
        .await
        .expect_err("unknown user");
    assert_eq!(code(&wrong), "28P01", "{wrong}");
    assert_eq!(code(&unknown), "28P01", "{unknown}");
    let text = |e: &tokio_postgres::Error, u: &str| {
        e.as_db_error()
            .map(|d| d.message().replace(u, "<user>"))
            .unwrap_or_default()
    };
    assert_eq!(text(&wrong, user), text(&unknown, "mallory"));
    assert_eq!(
        text(&wrong, user),
        "password authentication failed for user \"<user>\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_and_md5_against_an_auth_file() {
    let cluster = Cluster::start(BASE);
    cluster.wait_healthy(Duration::from_secs(60));
    let leader = cluster.pg_port(&cluster.leader().unwrap());
    cluster
        .psql(
            leader,
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE alice LOGIN PASSWORD 'alice-pw'; \
             CREATE ROLE carol LOGIN PASSWORD 'carol-pw'; \
             SET password_encryption = 'md5'; CREATE ROLE bob LOGIN PASSWORD 'bob-pw'",
        )
        .unwrap();
    let secret = |role: &str| {
        cluster
            .psql(
                leader,
                &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"),
            )
            .unwrap()
    };
    let (alice, bob) = (secret("alice"), secret("bob"));
    assert!(alice.starts_with("SCRAM-SHA-256$"), "{alice}");
    assert!(bob.starts_with("md5"), "{bob}");

    let dir = cluster.dir();
    let scram_file = dir.join("userlist-scram.txt");
    std::fs::write(
        &scram_file,
        format!("\"alice\" \"{alice}\"\n\"carol\" \"carol-pw\"\n"),
    )
    .unwrap();
    let md5_file = dir.join("userlist-md5.txt");
    std::fs::write(
        &md5_file,
        format!("\"bob\" \"{bob}\"\n\"carol\" \"carol-pw\"\n"),
    )
    .unwrap();

    let (scram_port, md5_port) = (BASE + 41, BASE + 42);
    let scram_toml = format!(
        "[auth]\ntype = \"scram-sha-256\"\nfile = \"{}\"\n{}",
        scram_file.display(),
        listener(scram_port, "primary", Some("transaction"), "")
    );
    let md5_toml = format!(
        "[auth]\ntype = \"md5\"\nfile = \"{}\"\n{}",
        md5_file.display(),
        listener(md5_port, "primary", Some("session"), "")
    );
    let _scram = spawn::rolegate(&cluster, "rolegate-scram", &scram_toml, &[scram_port]);
    let _md5 = spawn::rolegate(&cluster, "rolegate-md5", &md5_toml, &[md5_port]);

    // SCRAM: a stored SCRAM secret and a plain password both verify; the session is on
    // the leader as that user.
    assert_eq!(
        login(scram_port, "alice", "alice-pw").await.unwrap(),
        "alice|false"
    );
    assert_eq!(
        login(scram_port, "carol", "carol-pw").await.unwrap(),
        "carol|false"
    );
    assert_rejections_alike(scram_port, "alice").await;
    assert_rejections_alike(scram_port, "carol").await;

    // md5: a stored md5 digest and a plain password.
    assert_eq!(login(md5_port, "bob", "bob-pw").await.unwrap(), "bob|false");
    assert_eq!(
        login(md5_port, "carol", "carol-pw").await.unwrap(),
        "carol|false"
    );
    assert_rejections_alike(md5_port, "bob").await;
    assert_rejections_alike(md5_port, "carol").await;
}
