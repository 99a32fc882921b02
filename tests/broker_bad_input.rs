//! Bad input against a real broker, byte by byte over raw TCP: each case
//! gets a stable error code (or a closed connection), nothing is stored,
//! and the broker keeps serving other clients.

mod common;

use common::{Broker, run};
use corelog::client::Admin;
use corelog::protocol::{parse_response, wire};
use corelog::record::BatchBuilder;
use corelog::types::Timestamp;
use flatbuffers::FlatBufferBuilder;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use wire::ErrorCode;

fn connect(broker: &Broker) -> TcpStream {
    let s = TcpStream::connect(broker.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// The next response frame (prefix included), or `None` at end of stream.
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return None;
        }
        Err(e) => panic!("reading a response: {e}"),
    }
    let mut frame = len.to_vec();
    frame.resize(4 + u32::from_le_bytes(len) as usize, 0);
    s.read_exact(&mut frame[4..]).unwrap();
    Some(frame)
}

fn envelope(
    corr: u64,
    build: impl FnOnce(
        &mut FlatBufferBuilder<'static>,
    ) -> (
        wire::Request,
        flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
    ),
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let (kind, body) = build(&mut fbb);
    let env = wire::RequestEnvelope::create(
        &mut fbb,
        &wire::RequestEnvelopeArgs {
            correlation_id: corr,
            request_type: kind,
            request: Some(body),
        },
    );
    fbb.finish_size_prefixed(env, None);
    fbb.finished_data().to_vec()
}

fn stats_frame(corr: u64) -> Vec<u8> {
    envelope(corr, |fbb| {
        (
            wire::Request::StatsRequest,
            wire::StatsRequest::create(fbb, &wire::StatsRequestArgs {}).as_union_value(),
        )
    })
}

fn create_frame(corr: u64, name: &str, partitions: u32) -> Vec<u8> {
    envelope(corr, |fbb| {
        let name = fbb.create_string(name);
        let body = wire::CreateTopicRequest::create(
            fbb,
            &wire::CreateTopicRequestArgs {
                name: Some(name),
                partitions,
                config: None,
                replication_factor: 1,
            },
        );
        (wire::Request::CreateTopicRequest, body.as_union_value())
    })
}

fn produce_frame(corr: u64, topic: &str, partition: u32, records: &[u8]) -> Vec<u8> {
    envelope(corr, |fbb| {
        let records = fbb.create_vector(records);
        let part = wire::ProducePartitionData::create(
            fbb,
            &wire::ProducePartitionDataArgs {
                partition,
                records: Some(records),
            },
        );
        let parts = fbb.create_vector(&[part]);
        let name = fbb.create_string(topic);
        let t = wire::ProduceTopicData::create(
            fbb,
            &wire::ProduceTopicDataArgs {
                topic: Some(name),
                partitions: Some(parts),
            },
        );
        let topics = fbb.create_vector(&[t]);
        let body = wire::ProduceRequest::create(
            fbb,
            &wire::ProduceRequestArgs {
                acks: 1,
                timeout_ms: 10_000,
                topics: Some(topics),
            },
        );
        (wire::Request::ProduceRequest, body.as_union_value())
    })
}

/// Sends `frame` and returns (correlation id, envelope error, message).
fn call(s: &mut TcpStream, frame: &[u8]) -> (u64, ErrorCode, String) {
    s.write_all(frame).unwrap();
    let response = read_frame(s).expect("a response");
    let env = parse_response(&response).expect("responses verify");
    (
        env.correlation_id(),
        env.error(),
        env.error_message().unwrap_or("").to_string(),
    )
}

/// The first partition result of a produce response.
fn produce_result(s: &mut TcpStream, frame: &[u8]) -> (ErrorCode, String) {
    s.write_all(frame).unwrap();
    let response = read_frame(s).expect("a response");
    let env = parse_response(&response).unwrap();
    assert_eq!(env.error(), ErrorCode::NONE, "{:?}", env.error_message());
    let p = env
        .response_as_produce_response()
        .unwrap()
        .topics()
        .unwrap()
        .get(0)
        .partitions()
        .unwrap()
        .get(0);
    (p.error(), p.error_message().unwrap_or("").to_string())
}

/// The broker still answers a fresh client.
fn still_serving(broker: &Broker) {
    let mut s = connect(broker);
    let (corr, error, _) = call(&mut s, &stats_frame(7));
    assert_eq!((corr, error), (7, ErrorCode::NONE));
}

fn end_offsets(broker: &Broker, topic: &str) -> Vec<u64> {
    let addr = broker.addr;
    let topic = topic.to_string();
    run(async move {
        let admin = Admin::connect(addr).await.unwrap();
        admin
            .describe_topic(&topic)
            .await
            .unwrap()
            .partitions
            .iter()
            .map(|p| p.end_offset)
            .collect()
    })
}

fn broker_with_topic(tmp: &tempfile::TempDir) -> (Broker, TcpStream) {
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    let mut s = connect(&broker);
    let (_, error, message) = call(&mut s, &create_frame(1, "t", 2));
    assert_eq!(error, ErrorCode::NONE, "{message}");
    (broker, s)
}

fn good_batch() -> Vec<u8> {
    let mut b = BatchBuilder::default();
    b.push(Timestamp(1000), Some(b"k"), Some(b"v"), &[]);
    b.push(Timestamp(1001), Some(b"k2"), Some(b"v2"), &[]);
    b.finish().to_vec()
}

fn recrc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn an_oversized_frame_gets_frame_too_large_and_the_connection_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    let mut s = connect(&broker);
    // Only the length is sent: the broker must refuse before allocating.
    s.write_all(&(1u32 << 30).to_le_bytes()).unwrap();
    let response = read_frame(&mut s).expect("an error response before the close");
    let env = parse_response(&response).unwrap();
    assert_eq!(env.error(), ErrorCode::FRAME_TOO_LARGE);
    assert!(env.error_message().unwrap().contains("1073741824"));
    assert!(read_frame(&mut s).is_none(), "the connection must close");
    still_serving(&broker);
}

#[test]
fn a_truncated_frame_closes_the_connection_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let frame = produce_frame(2, "t", 0, &good_batch());
    s.write_all(&frame[..frame.len() / 2]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        read_frame(&mut s).is_none(),
        "a truncated frame ends the connection without a response"
    );
    assert_eq!(end_offsets(&broker, "t"), vec![0, 0], "nothing stored");
    still_serving(&broker);
}

#[test]
fn random_bytes_get_invalid_request_and_the_connection_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let mut seed = 0x9e37_79b9_u64;
    for len in [1usize, 7, 64, 300, 4096] {
        let body: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut frame = (len as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let (corr, error, _) = call(&mut s, &frame);
        assert_eq!(
            (corr, error),
            (0, ErrorCode::INVALID_REQUEST),
            "{len} random bytes"
        );
    }
    // Same connection, still in step.
    let (corr, error, _) = call(&mut s, &stats_frame(9));
    assert_eq!((corr, error), (9, ErrorCode::NONE));
    assert_eq!(end_offsets(&broker, "t"), vec![0, 0]);
    still_serving(&broker);
}

#[test]
fn a_flatbuffer_that_fails_verification_gets_invalid_request() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let mut frame = produce_frame(3, "t", 0, &good_batch());
    // Point the root offset past the end of the buffer.
    frame[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let (corr, error, message) = call(&mut s, &frame);
    assert_eq!((corr, error), (0, ErrorCode::INVALID_REQUEST), "{message}");
    assert!(message.contains("not a valid request"), "{message}");
    assert_eq!(end_offsets(&broker, "t"), vec![0, 0]);
    still_serving(&broker);
}

#[test]
fn an_unknown_request_kind_gets_unknown_request_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    // Union member 200 does not exist in this protocol version.
    let frame = envelope(4, |fbb| {
        (
            wire::Request(200),
            wire::StatsRequest::create(fbb, &wire::StatsRequestArgs {}).as_union_value(),
        )
    });
    let (corr, error, message) = call(&mut s, &frame);
    assert_eq!(
        (corr, error),
        (4, ErrorCode::UNKNOWN_REQUEST_KIND),
        "{message}"
    );
    still_serving(&broker);
}

#[test]
fn produce_to_an_unknown_topic_gets_unknown_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let (error, message) = produce_result(&mut s, &produce_frame(5, "nope", 0, &good_batch()));
    assert_eq!(error, ErrorCode::UNKNOWN_TOPIC, "{message}");
    assert!(message.contains("nope"));
    still_serving(&broker);
}

#[test]
fn produce_to_a_partition_out_of_range_gets_unknown_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let (error, message) = produce_result(&mut s, &produce_frame(6, "t", 2, &good_batch()));
    assert_eq!(error, ErrorCode::UNKNOWN_PARTITION, "{message}");
    assert!(message.contains("0..2"), "{message}");
    assert_eq!(end_offsets(&broker, "t"), vec![0, 0]);
    still_serving(&broker);
}

#[test]
fn a_batch_with_a_bad_crc_is_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let mut batch = good_batch();
    let n = batch.len();
    batch[n - 1] ^= 0x01;
    let (error, message) = produce_result(&mut s, &produce_frame(7, "t", 0, &batch));
    assert_eq!(error, ErrorCode::CORRUPT_BATCH_CRC, "{message}");
    assert_eq!(end_offsets(&broker, "t"), vec![0, 0]);
    still_serving(&broker);
}

#[test]
fn a_batch_with_the_wrong_magic_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let mut batch = good_batch();
    batch[16] = 1;
    let (error, message) = produce_result(&mut s, &produce_frame(8, "t", 1, &batch));
    assert_eq!(error, ErrorCode::UNSUPPORTED_MAGIC, "{message}");
    assert_eq!(end_offsets(&broker, "t"), vec![0, 0]);
    still_serving(&broker);
}

#[test]
fn a_records_count_that_disagrees_with_the_bytes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let mut batch = good_batch();
    batch[57..61].copy_from_slice(&5i32.to_be_bytes());
    batch[23..27].copy_from_slice(&4i32.to_be_bytes());
    recrc(&mut batch);
    let (error, message) = produce_result(&mut s, &produce_frame(9, "t", 0, &batch));
    assert_eq!(error, ErrorCode::RECORD_COUNT_MISMATCH, "{message}");
    // A good batch before a bad one in the same request: all or nothing.
    let mut two = good_batch();
    two.extend_from_slice(&batch);
    let (error, _) = produce_result(&mut s, &produce_frame(10, "t", 0, &two));
    assert_eq!(error, ErrorCode::RECORD_COUNT_MISMATCH);
    assert_eq!(end_offsets(&broker, "t"), vec![0, 0]);
    still_serving(&broker);
}

#[test]
fn creating_an_existing_topic_gets_topic_already_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, mut s) = broker_with_topic(&tmp);
    let (corr, error, message) = call(&mut s, &create_frame(11, "t", 5));
    assert_eq!(
        (corr, error),
        (11, ErrorCode::TOPIC_ALREADY_EXISTS),
        "{message}"
    );
    assert_eq!(
        end_offsets(&broker, "t").len(),
        2,
        "the topic keeps its partitions"
    );
    still_serving(&broker);
}

#[test]
fn creating_a_topic_with_zero_partitions_gets_invalid_partition_count() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    let mut s = connect(&broker);
    let (corr, error, message) = call(&mut s, &create_frame(12, "z", 0));
    assert_eq!(
        (corr, error),
        (12, ErrorCode::INVALID_PARTITION_COUNT),
        "{message}"
    );
    let (_, error, _) = call(&mut s, &create_frame(13, "bad/name", 1));
    assert_eq!(error, ErrorCode::INVALID_TOPIC_NAME);
    let addr = broker.addr;
    let topics = run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .list_topics()
            .await
            .unwrap()
    });
    assert!(topics.is_empty(), "nothing created: {topics:?}");
    still_serving(&broker);
}

#[test]
fn a_client_speaking_another_protocol_version_is_told_so() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 1, &[]);
    let mut s = connect(&broker);
    let frame = envelope(14, |fbb| {
        let id = fbb.create_string("old-client");
        (
            wire::Request::Handshake,
            wire::Handshake::create(
                fbb,
                &wire::HandshakeArgs {
                    protocol_version: 99,
                    client_id: Some(id),
                },
            )
            .as_union_value(),
        )
    });
    let (corr, error, message) = call(&mut s, &frame);
    assert_eq!((corr, error), (14, ErrorCode::UNSUPPORTED_VERSION));
    assert!(
        message.contains("old-client") && message.contains("99"),
        "{message}"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order_beyond_the_in_flight_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    let mut s = connect(&broker);
    let mut all = Vec::new();
    for corr in 1..=500u64 {
        all.extend_from_slice(&stats_frame(corr));
    }
    s.write_all(&all).unwrap();
    for corr in 1..=500u64 {
        let frame = read_frame(&mut s).unwrap();
        assert_eq!(parse_response(&frame).unwrap().correlation_id(), corr);
    }
}

#[test]
fn idle_connections_are_closed_and_a_full_shard_keeps_slots_for_operators() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &tmp.path().join("data"),
        1,
        &["--idle-timeout-ms", "300", "--max-connections", "2"],
    );
    let mut a = connect(&broker);
    let (_, error, message) = call(&mut a, &create_frame(1, "t", 1));
    assert_eq!(error, ErrorCode::NONE, "{message}");
    let mut b = connect(&broker);
    let (_, error, _) = call(&mut b, &produce_frame(2, "t", 0, &good_batch()));
    assert_eq!(error, ErrorCode::NONE);
    // Over the limit: four connections that may look but not write.
    let mut admin: Vec<TcpStream> = (0..4).map(|_| connect(&broker)).collect();
    for (i, s) in admin.iter_mut().enumerate() {
        let (corr, error, _) = call(s, &stats_frame(10 + i as u64));
        assert_eq!((corr, error), (10 + i as u64, ErrorCode::NONE));
        let (corr, error, message) = call(s, &produce_frame(20 + i as u64, "t", 0, &good_batch()));
        assert_eq!((corr, error), (20 + i as u64, ErrorCode::CONNECTION_LIMIT));
        assert!(message.contains("connection limit"), "{message}");
    }
    // Beyond those: the first request is answered with the limit error
    // (same correlation id), then the connection closes.
    let mut refused = connect(&broker);
    let (corr, error, message) = call(&mut refused, &stats_frame(30));
    assert_eq!(
        (corr, error),
        (30, ErrorCode::CONNECTION_LIMIT),
        "{message}"
    );
    assert!(
        read_frame(&mut refused).is_none(),
        "closed after the answer"
    );
    // The idle ones are closed by the broker within a bounded time.
    let started = std::time::Instant::now();
    assert!(read_frame(&mut a).is_none());
    assert!(started.elapsed() < Duration::from_secs(9));
    assert!(read_frame(&mut b).is_none());
    for s in &mut admin {
        assert!(read_frame(s).is_none());
    }
    assert!(broker.log().contains("closing idle connection"));
    still_serving(&broker);
}

/// What a connection over the limit turned out to be.
#[derive(Debug, PartialEq)]
enum Place {
    /// Produce works.
    Regular,
    /// Produce refused with CONNECTION_LIMIT, stats answered.
    AdminOnly,
    /// The first request got CONNECTION_LIMIT, then the connection closed.
    Refused,
}

fn place_of(s: &mut TcpStream, corr: u64) -> Place {
    let (got, error, message) = call(s, &produce_frame(corr, "t", 0, &good_batch()));
    assert_eq!(got, corr);
    match error {
        ErrorCode::NONE => Place::Regular,
        ErrorCode::CONNECTION_LIMIT => match read_frame_or_eof(s, &stats_frame(corr + 1)) {
            Some(ErrorCode::NONE) => Place::AdminOnly,
            None => Place::Refused,
            Some(other) => panic!("stats on a connection over the limit: {other:?}"),
        },
        other => panic!("produce: {other:?} {message}"),
    }
}

/// Sends `frame`; the envelope error of the answer, or `None` when the
/// connection closed instead.
fn read_frame_or_eof(s: &mut TcpStream, frame: &[u8]) -> Option<ErrorCode> {
    if s.write_all(frame).is_err() {
        return None;
    }
    read_frame(s).map(|f| parse_response(&f).unwrap().error())
}

#[test]
fn the_connection_limit_is_exact_across_shards_and_refusals_are_logged_sparingly() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &["--max-connections", "10"]);
    let mut first = connect(&broker);
    let (_, error, message) = call(&mut first, &create_frame(1, "t", 1));
    assert_eq!(error, ErrorCode::NONE, "{message}");
    let mut conns = vec![first];
    let mut places = vec![Place::Regular];
    // Opened one at a time, each asked before the next opens: the kernel
    // spreads them over both shards; a shard at its share hands them on.
    for i in 1..40u64 {
        let mut s = connect(&broker);
        places.push(place_of(&mut s, 100 + 10 * i));
        conns.push(s);
    }
    let count = |p: Place| places.iter().filter(|&q| *q == p).count();
    assert_eq!(count(Place::Regular), 10, "exactly the limit: {places:?}");
    assert!(
        places[..10].iter().all(|p| *p == Place::Regular),
        "the first ten are served: {places:?}"
    );
    let admin = count(Place::AdminOnly);
    assert!(
        (4..=8).contains(&admin),
        "4 reserved slots per shard: {places:?}"
    );
    assert_eq!(count(Place::Refused), 30 - admin);
    let lines = broker.log().matches("at the connection limit").count();
    // One line per shard per 10 s interval (two intervals at most on a
    // slow machine), not one per refusal.
    assert!((1..=4).contains(&lines), "{lines} log lines");
    // Closing connections frees their places.
    conns.truncate(5);
    common::wait_until(Duration::from_secs(10), "a freed place", || {
        let mut s = connect(&broker);
        place_of(&mut s, 9000) == Place::Regular
    });
}

#[test]
fn half_received_frames_are_bounded_by_the_request_memory_budget() {
    let tmp = tempfile::tempdir().unwrap();
    // 128 MiB over 2 shards: each shard holds one 64 MiB frame at a time.
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &["--request-memory-bytes", "134217728"],
    );
    still_serving(&broker);
    let rss_before = broker.rss_kib();
    let declared = (64u32 << 20) - 64;
    let sent = 48usize << 20;
    let senders: Vec<_> = (0..20)
        .map(|_| {
            let mut s = connect(&broker);
            s.set_write_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            std::thread::spawn(move || {
                let chunk = vec![0x5au8; 1 << 20];
                let mut out = declared.to_le_bytes().to_vec();
                out.extend_from_slice(&chunk[..(1 << 20) - 4]);
                let mut ok = s.write_all(&out).is_ok();
                let mut written = 1usize << 20;
                while ok && written < sent {
                    ok = s.write_all(&chunk).is_ok();
                    written += chunk.len();
                }
                // Keep the connection (and its half frame) open.
                s
            })
        })
        .collect();
    let held: Vec<TcpStream> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let peak = broker.peak_rss_kib();
    eprintln!(
        "20 connections x 48 MiB of a 64 MiB frame: RSS before {} MiB, peak {} MiB",
        rss_before / 1024,
        peak / 1024
    );
    // Without the budget every half frame is held: ~960 MiB more.
    assert!(
        peak < rss_before + 400 * 1024,
        "RSS grew from {rss_before} KiB to {peak} KiB"
    );
    drop(held);
    // The half frames are dropped with their connections; memory returns
    // and the broker serves.
    common::wait_until(Duration::from_secs(20), "RSS back near its start", || {
        broker.rss_kib() < rss_before + 40 * 1024
    });
    still_serving(&broker);
    eprintln!(
        "RSS after the connections closed: {} MiB",
        broker.rss_kib() / 1024
    );
}
