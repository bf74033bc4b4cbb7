use super::*;

fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(body);
    v
}

async fn read(bytes: Vec<u8>) -> Result<FirstPacket, ProtocolError> {
    read_first_packet(&mut bytes.as_slice()).await
}

#[tokio::test]
async fn startup_message() {
    let raw = packet(196_608, b"user\0alice\0database\0db1\0\0");
    let FirstPacket::Startup { raw: got, params } = read(raw.clone()).await.unwrap() else {
        panic!("not a startup");
    };
    assert_eq!(&got[..], &raw[..]);
    assert_eq!(params.get("user").unwrap(), "alice");
    assert_eq!(params.get("database").unwrap(), "db1");
}

#[tokio::test]
async fn ssl_gss_and_cancel() {
    assert_eq!(
        read(packet(SSL_REQUEST, b"")).await.unwrap(),
        FirstPacket::SslRequest
    );
    assert_eq!(
        read(packet(GSSENC_REQUEST, b"")).await.unwrap(),
        FirstPacket::GssEncRequest
    );
    let raw = packet(CANCEL_REQUEST, &[0, 0, 1, 0, 9, 9, 9, 9]);
    let FirstPacket::Cancel { key, raw: got } = read(raw.clone()).await.unwrap() else {
        panic!("not a cancel");
    };
    assert_eq!(key.pid, 256);
    assert_eq!(&key.secret[..], &[9, 9, 9, 9]);
    assert_eq!(&got[..], &raw[..]);
}

#[tokio::test]
async fn bad_first_packets_are_errors_not_panics() {
    assert!(matches!(read(vec![]).await, Err(ProtocolError::Closed)));
    assert!(matches!(read(vec![0, 0]).await, Err(ProtocolError::Closed)));
    assert!(matches!(
        read(vec![0, 0, 0, 4]).await,
        Err(ProtocolError::StartupLength(4))
    ));
    assert!(matches!(
        read(vec![0x7f, 0, 0, 0]).await,
        Err(ProtocolError::StartupLength(_))
    ));
    assert!(matches!(
        read(packet(2 << 16, b"user\0a\0\0")).await,
        Err(ProtocolError::Version { major: 2, .. })
    ));
    assert!(matches!(
        read(packet((3 << 16) | 9, b"user\0a\0\0")).await,
        Err(ProtocolError::Version { minor: 9, .. })
    ));
    assert!(matches!(
        read(packet(196_608, b"database\0d\0\0")).await,
        Err(ProtocolError::Startup(_))
    ));
    assert!(matches!(
        read(packet(SSL_REQUEST, b"xx")).await,
        Err(ProtocolError::Startup(_))
    ));
    assert!(matches!(
        read(packet(CANCEL_REQUEST, b"")).await,
        Err(ProtocolError::Startup(_))
    ));
    // Truncated body: the length promises more than arrives.
    let mut short = packet(196_608, b"user\0a\0\0");
    short.truncate(10);
    assert!(matches!(read(short).await, Err(ProtocolError::Closed)));
}

#[test]
fn every_error_maps_to_a_client_message_with_sqlstate() {
    let e = ProtocolError::Version { major: 2, minor: 0 };
    assert_eq!(e.to_client_error().unwrap().code, "0A000");
    assert_eq!(
        ProtocolError::StartupLength(3)
            .to_client_error()
            .unwrap()
            .code,
        "08P01"
    );
    assert!(ProtocolError::Closed.to_client_error().is_none());
}

#[tokio::test]
async fn packets_arriving_a_byte_at_a_time_and_bad_lengths_without_the_rest() {
    use tokio::io::AsyncWriteExt;
    // SSLRequest then a startup packet, one byte per write.
    let (mut client, mut server) = tokio::io::duplex(64);
    let mut bytes = packet(SSL_REQUEST, b"");
    bytes.extend(packet(196_608, b"user\0u\0\0"));
    let writer = tokio::spawn(async move {
        for b in bytes {
            client.write_all(&[b]).await.unwrap();
            tokio::task::yield_now().await;
        }
        client
    });
    assert!(matches!(
        read_first_packet(&mut server).await,
        Ok(FirstPacket::SslRequest)
    ));
    match read_first_packet(&mut server).await {
        Ok(FirstPacket::Startup { params, .. }) => assert_eq!(params.get("user").unwrap(), "u"),
        other => panic!("{other:?}"),
    }
    drop(writer.await.unwrap());
    // A length below 8 is refused at once, while the client keeps the connection open.
    let (mut client, mut server) = tokio::io::duplex(64);
    client.write_all(&4u32.to_be_bytes()).await.unwrap();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        read_first_packet(&mut server),
    )
    .await
    .expect("no wait for bytes that cannot come");
    assert!(matches!(r, Err(ProtocolError::StartupLength(4))), "{r:?}");
    drop(client);
}

#[tokio::test]
async fn startup_layout_follows_postgresql() {
    // Values may be empty; a later duplicate wins; bytes that are not UTF-8 are replaced.
    let FirstPacket::Startup { params, .. } =
        read(packet(196_608, b"user\0u\0options\0\0user\0v\0x\0\xff\0\0"))
            .await
            .unwrap()
    else {
        panic!("not a startup packet")
    };
    assert_eq!(params.get("user").unwrap(), "v");
    assert_eq!(params.get("options").unwrap(), "");
    assert_eq!(params.get("x").unwrap(), "\u{fffd}");
    assert_eq!(params.get("X"), None);
    assert_eq!(params.get_ignore_case("X").unwrap(), "\u{fffd}");
    assert_eq!(params.get("u"), None, "a value is not a name");
    // Pairs added later are found the same way, after the packet's.
    let mut params = params;
    params.push("DateStyle", "ISO\0junk");
    params.push("user", "w");
    assert_eq!(params.get_ignore_case("datestyle").unwrap(), "ISO");
    assert_eq!(params.get("user").unwrap(), "w");
    assert_eq!(params.get("options").unwrap(), "");
    // A name without a value, a missing terminator, bytes after the terminator: refused.
    for body in [
        &b"user\0u\0database\0"[..],
        b"user\0u\0",
        b"user\0u\0\0junk",
        b"user\0u",
    ] {
        let r = read(packet(196_608, body)).await;
        assert!(
            matches!(&r, Err(ProtocolError::Startup(m)) if m.contains("layout")),
            "{body:?}: {r:?}"
        );
    }
}

#[tokio::test]
async fn bytes_after_the_first_packet_are_refused() {
    // An SSLRequest and a startup packet sent together (the client did not wait for 'N').
    let mut bytes = packet(SSL_REQUEST, b"");
    bytes.extend(packet(196_608, b"user\0u\0\0"));
    let r = read(bytes).await;
    assert!(
        matches!(&r, Err(ProtocolError::Startup(m)) if m.contains("without waiting")),
        "{r:?}"
    );
    // A startup packet longer than the first read is read whole.
    let mut body = b"user\0u\0application_name\0".to_vec();
    body.extend(std::iter::repeat_n(b'a', 900));
    body.extend(b"\0\0");
    let FirstPacket::Startup { params, .. } = read(packet(196_608, &body)).await.unwrap() else {
        panic!("not a startup packet")
    };
    assert_eq!(params.get("application_name").unwrap().len(), 900);
}

#[tokio::test]
async fn bytes_read_at_accept_start_the_packet_wherever_they_stop() {
    // Longer than the first read too: the buffer grows to the packet.
    let long = format!("user\0alice\0application_name\0{}\0\0", "x".repeat(700));
    for body in [&b"user\0alice\0database\0db1\0\0"[..], long.as_bytes()] {
        let raw = packet(196_608, body);
        for early in [0, 1, 3, 4, 7, 8, 20, raw.len().min(FIRST_READ)] {
            let mut head = first_read_buffer();
            head[..early].copy_from_slice(&raw[..early]);
            let mut rest = &raw[early..];
            let got = read_first_packet_after(&mut rest, head, early).await;
            let Ok(FirstPacket::Startup { raw: got, params }) = got else {
                panic!("early {early}: {got:?}");
            };
            assert_eq!(&got[..], &raw[..], "early {early}");
            assert_eq!(params.get("user").unwrap(), "alice");
        }
    }
    // More than the packet already read: refused, as when read from the socket.
    let mut head = first_read_buffer();
    let two = [packet(SSL_REQUEST, b""), packet(196_608, b"user\0a\0\0")].concat();
    head[..two.len()].copy_from_slice(&two);
    let got = read_first_packet_after(&mut &[][..], head, two.len()).await;
    assert!(matches!(got, Err(ProtocolError::Startup(_))), "{got:?}");
}
