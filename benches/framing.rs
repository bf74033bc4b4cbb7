//! The protocol hot path: following message boundaries in a backend result stream,
//! parsing a client's startup packet, and encoding the ErrorResponses rolegate sends.
//! Run: `cargo bench --bench framing`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rolegate::protocol::frame::{BoundaryTracker, BACKEND_KEY_DATA, READY_FOR_QUERY};
use rolegate::protocol::startup::parse_first_packet;
use rolegate::protocol::{FirstPacket, PgError};

/// Read buffer size of the forwarding loop.
const CHUNK: usize = 8 * 1024;
/// Rows in the result set.
const ROWS: usize = 1000;

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A DataRow of three text columns (id, name, timestamp): 100 bytes on the wire.
fn data_row(i: usize) -> Vec<u8> {
    let cols = [
        format!("{i:08}"),
        format!("customer-{i:08}-account-name-padding-to-40"),
        "2025-11-22 07:47:00.123456+00".to_owned(),
    ];
    let mut body = (cols.len() as u16).to_be_bytes().to_vec();
    for col in &cols {
        body.extend_from_slice(&(col.len() as u32).to_be_bytes());
        body.extend_from_slice(col.as_bytes());
    }
    message(b'D', &body)
}

/// `SELECT ...` answered: RowDescription, ROWS DataRows, CommandComplete, ReadyForQuery.
fn result_stream() -> Vec<u8> {
    let mut row_desc = 3u16.to_be_bytes().to_vec();
    for (name, oid) in [("id", 23u32), ("name", 25), ("created_at", 1184)] {
        row_desc.extend_from_slice(name.as_bytes());
        row_desc.push(0);
        row_desc.extend_from_slice(&[0; 6]); // table oid, column number
        row_desc.extend_from_slice(&oid.to_be_bytes());
        row_desc.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
        // size, typmod, format
    }
    let mut stream = message(b'T', &row_desc);
    for i in 0..ROWS {
        stream.extend(data_row(i));
    }
    stream.extend(message(b'C', format!("SELECT {ROWS}\0").as_bytes()));
    stream.extend(message(READY_FOR_QUERY, b"I"));
    stream
}

fn bench_feed(c: &mut Criterion) {
    let stream = result_stream();
    assert_eq!(data_row(0).len(), 100);
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    // Steady state: after the handshake the forwarder asks for nothing.
    // With K and Z wanted, ReadyForQuery is collected (a small allocation per result).
    for (name, wanted) in [
        ("feed_8k", &[][..]),
        (
            "feed_8k_wanted_kz",
            &[BACKEND_KEY_DATA, READY_FOR_QUERY][..],
        ),
    ] {
        group.bench_function(name, |b| {
            let mut seen = Vec::new();
            b.iter(|| {
                let mut tracker = BoundaryTracker::new();
                seen.clear();
                for chunk in black_box(&stream).chunks(CHUNK) {
                    tracker.feed(chunk, wanted, &mut seen).unwrap();
                }
                assert!(tracker.at_boundary());
            });
        });
    }
    group.finish();
}

/// What libpq (psql 17) sends: protocol 3.0, user, database, application_name, client_encoding.
fn startup_packet() -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [
        ("user", "app_user"),
        ("database", "orders"),
        ("application_name", "psql"),
        ("client_encoding", "UTF8"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = (body.len() as u32 + 4).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

fn bench_startup(c: &mut Criterion) {
    let packet = startup_packet();
    let parsed = parse_first_packet(BytesMut::from(&packet[..])).unwrap();
    assert_eq!(parsed.param("user"), Some("app_user"));
    c.bench_function("startup/parse_first_packet", |b| {
        b.iter_batched(
            || BytesMut::from(&packet[..]),
            |raw| match parse_first_packet(black_box(raw)) {
                Ok(p @ FirstPacket::Startup { .. }) => p,
                other => panic!("not a startup packet: {other:?}"),
            },
            BatchSize::SmallInput,
        );
    });
}

fn bench_error_encode(c: &mut Criterion) {
    // The message a session killed by a switchover gets.
    let err = PgError::fatal(
        "57P01",
        "terminating connection: member pg1 is no longer the primary",
    )
    .with_hint("Reconnect to reach the new primary.");
    c.bench_function("error_response/encode", |b| {
        b.iter(|| black_box(&err).encode());
    });
}

criterion_group!(benches, bench_feed, bench_startup, bench_error_encode);
criterion_main!(benches);
