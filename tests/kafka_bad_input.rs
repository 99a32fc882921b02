//! Bad input on the Kafka port: every case against a real `corelog serve`;
//! after each, nothing is stored and the broker keeps serving everyone else.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Broker, start_with_kafka};
use corelog::record::{BatchBuilder, Compression};
use corelog::types::Timestamp;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A raw Kafka connection for tests.
struct Conn(TcpStream);

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn(s)
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    fn frame<T: Encodable>(api: ApiKey, version: i16, corr: i32, body: &T) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf.to_vec()
    }

    fn send<T: Encodable>(&mut self, api: ApiKey, version: i16, corr: i32, body: &T) {
        self.send_raw(&Conn::frame(api, version, corr, body));
    }

    /// The next response's correlation id and body bytes.
    fn receive(&mut self, api: ApiKey, version: i16) -> (i32, Bytes) {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let corr = body.get_i32();
        if api.response_header_version(version) >= 1 {
            // The tagged-field buffer of header v1: empty here.
            assert_eq!(body.get_u8(), 0);
        }
        (corr, body)
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.send(api, version, 7, req);
        let (corr, mut body) = self.receive(api, version);
        assert_eq!(corr, 7);
        Resp::decode(&mut body, version).unwrap()
    }

    /// Whether the broker closed the connection (within the read timeout).
    fn is_closed(&mut self) -> bool {
        let mut one = [0u8; 1];
        matches!(self.0.read(&mut one), Ok(0) | Err(_))
    }
}

/// The broker still answers a fresh client.
fn still_serving(kafka: SocketAddr) {
    let mut c = Conn::open(kafka);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 9, &MetadataRequest::default());
    assert_eq!(r.brokers.len(), 1);
}

fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

fn batch(records: u32, value_bytes: usize) -> Bytes {
    let mut b = BatchBuilder::default();
    for i in 0..records {
        b.push(
            Timestamp::now(),
            Some(format!("k{i}").as_bytes()),
            Some(&vec![b'v'; value_bytes]),
            &[],
        );
    }
    b.finish()
}

fn produce_error(kafka: SocketAddr, topic: &str, partition: i32, records: Bytes) -> i16 {
    let mut c = Conn::open(kafka);
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        &produce_request(topic, partition, records),
    );
    r.responses[0].partition_responses[0].error_code
}

/// Each partition's latest offset, asked over Kafka: what is stored.
fn latest_offsets(kafka: SocketAddr, topic: &str, partitions: i32) -> Vec<i64> {
    let mut c = Conn::open(kafka);
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(-1)
                        })
                        .collect(),
                ),
        ]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 5, &request);
    r.topics[0].partitions.iter().map(|p| p.offset).collect()
}

fn setup() -> (tempfile::TempDir, Broker) {
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&tmp.path().join("data"), 2, &[]);
    let out = std::process::Command::new(common::corelog_bin())
        .args([
            "topic",
            "create",
            "t",
            "--partitions",
            "2",
            "--broker",
            &broker.addr.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    (tmp, broker)
}

#[test]
fn broken_frames_close_only_their_own_connection() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    // A truncated frame, then the client goes away mid-request.
    let mut c = Conn::open(kafka);
    c.send_raw(&100i32.to_be_bytes());
    c.send_raw(&[1, 2, 3]);
    drop(c);
    still_serving(kafka);
    // A length beyond the limit: closed without reading it.
    let mut c = Conn::open(kafka);
    c.send_raw(&i32::MAX.to_be_bytes());
    assert!(c.is_closed());
    // A negative length.
    let mut c = Conn::open(kafka);
    c.send_raw(&(-5i32).to_be_bytes());
    assert!(c.is_closed());
    // Random bytes (framed and not).
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..50 {
        let len: i32 = 8 + round * 3;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut c = Conn::open(kafka);
        c.send_raw(&len.to_be_bytes());
        c.send_raw(&bytes);
        assert!(
            c.is_closed(),
            "random request {round} must close the connection"
        );
    }
    still_serving(kafka);
    assert_eq!(latest_offsets(kafka, "t", 2), [0, 0], "nothing stored");
}

#[test]
fn an_unknown_api_key_closes_the_connection() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    let mut frame = Conn::frame(ApiKey::Metadata, 1, 1, &MetadataRequest::default());
    frame[4..6].copy_from_slice(&9999i16.to_be_bytes());
    let mut c = Conn::open(kafka);
    c.send_raw(&frame);
    assert!(c.is_closed());
    still_serving(kafka);
}

#[test]
fn api_versions_above_the_broker_s_gets_the_v0_answer_listing_what_it_speaks() {
    let (_tmp, broker) = setup();
    let mut c = Conn::open(broker.kafka.unwrap());
    // v5 is beyond this broker (and the crate): a v3 request relabelled.
    let mut frame = Conn::frame(ApiKey::ApiVersions, 3, 3, &ApiVersionsRequest::default());
    frame[6..8].copy_from_slice(&5i16.to_be_bytes());
    c.send_raw(&frame);
    let (corr, mut body) = c.receive(ApiKey::ApiVersions, 0);
    assert_eq!(corr, 3);
    let r = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    let av = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((av.min_version, av.max_version), (0, 4));
    // The client retries at a version it found, on the same connection.
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16 && k.max_version == 9)
    );
}

#[test]
fn a_request_version_above_the_advertised_max_is_refused() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    let mut c = Conn::open(kafka);
    c.send(ApiKey::Metadata, 13, 1, &MetadataRequest::default());
    assert!(c.is_closed(), "Metadata v13 (above v12) is refused");
    still_serving(kafka);
}

#[test]
fn an_array_count_of_two_billion_in_a_tiny_frame_allocates_nothing() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    let before = broker.peak_rss_kib();
    // Metadata v1: topics array count, then nothing.
    for version in [1i16, 9] {
        let mut frame = Conn::frame(ApiKey::Metadata, version, 1, &MetadataRequest::default());
        let body_at = frame.len();
        if version >= 9 {
            // Compact array: unsigned varint count + 1.
            frame.truncate(body_at - 4);
            frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
            frame.extend_from_slice(&[0, 0, 0, 0]);
        } else {
            frame.truncate(body_at - 4);
            frame.extend_from_slice(&i32::MAX.to_be_bytes());
        }
        while frame.len() < 44 {
            frame.push(0);
        }
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let mut c = Conn::open(kafka);
        c.send_raw(&frame);
        assert!(c.is_closed());
    }
    still_serving(kafka);
    let after = broker.peak_rss_kib();
    assert!(
        after < before + 64 * 1024,
        "peak memory grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn produce_to_an_unknown_topic_or_partition_is_refused() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    assert_eq!(produce_error(kafka, "missing", 0, batch(1, 10)), 3);
    assert_eq!(produce_error(kafka, "t", 9, batch(1, 10)), 3);
    assert_eq!(produce_error(kafka, "t", -1, batch(1, 10)), 3);
    assert_eq!(latest_offsets(kafka, "t", 2), [0, 0], "nothing stored");
    assert_eq!(produce_error(kafka, "t", 0, batch(1, 10)), 0);
    assert_eq!(latest_offsets(kafka, "t", 2), [1, 0]);
}

#[test]
fn a_batch_with_a_bad_crc_is_corrupt_and_nothing_is_stored() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    let mut bad = BytesMut::from(&batch(3, 100)[..]);
    let n = bad.len();
    bad[n - 1] ^= 0x40;
    assert_eq!(
        produce_error(kafka, "t", 0, bad.freeze()),
        2,
        "CORRUPT_MESSAGE"
    );
    assert_eq!(latest_offsets(kafka, "t", 2), [0, 0], "nothing stored");
}

#[test]
fn a_batch_over_the_topic_maximum_is_too_large() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    let out = std::process::Command::new(common::corelog_bin())
        .args([
            "topic",
            "create",
            "small",
            "--partitions",
            "1",
            "--broker",
            &broker.addr.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    // The default maximum is 16 MiB (one frame may carry up to 64 MiB).
    let big = batch(20, 1 << 20);
    assert_eq!(
        produce_error(kafka, "small", 0, big),
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(latest_offsets(kafka, "small", 1), [0], "nothing stored");
    still_serving(kafka);
}

#[test]
fn a_compressed_batch_whose_record_count_lies_is_refused() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    let mut b = BatchBuilder::default();
    for i in 0..3 {
        b.push(
            Timestamp::now(),
            None,
            Some(format!("v{i}").as_bytes()),
            &[],
        );
    }
    let mut lying = BytesMut::from(&b.finish_compressed(Compression::Gzip).unwrap()[..]);
    // Records count 4, last offset delta 3; the CRC fixed up so only the
    // count is wrong.
    lying[57..61].copy_from_slice(&4i32.to_be_bytes());
    lying[23..27].copy_from_slice(&3i32.to_be_bytes());
    let crc = crc32c::crc32c(&lying[21..]);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        produce_error(kafka, "t", 1, lying.freeze()),
        87,
        "INVALID_RECORD"
    );
    assert_eq!(latest_offsets(kafka, "t", 2), [0, 0], "nothing stored");
    still_serving(kafka);
}

/// ApiVersions v0: the smallest request every broker answers.
fn api_versions_frame() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b't');
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn a_client_trickling_a_frame_is_cut_off_at_the_frame_timeout_not_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(
        &tmp.path().join("data"),
        1,
        &["--frame-timeout-ms", "800", "--idle-timeout-ms", "600000"],
    );
    let kafka = broker.kafka.unwrap();
    // A quiet connection outlives the frame timeout: the idle timeout
    // governs the wait for a first byte.
    let mut quiet = TcpStream::connect(kafka).unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // One byte every 100 ms: the frame would take seconds.
    let mut slow = TcpStream::connect(kafka).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let frame = api_versions_frame();
    let started = std::time::Instant::now();
    let mut cut = None;
    for byte in &frame {
        if slow.write_all(&[*byte]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    // The broker closed it: reading sees the end (or a reset), never an
    // answer, and well before the idle timeout.
    let mut buf = [0u8; 64];
    let read = slow.read(&mut buf);
    assert!(
        matches!(read, Ok(0) | Err(_)) || cut.is_some(),
        "the trickling connection got {read:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The quiet one still works, 1.5+ s later.
    quiet.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    quiet.read_exact(&mut len).unwrap();
    assert!(i32::from_be_bytes(len) > 0);
}

fn describe_resource(kind: i8, name: &str) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(StrBytes::from_string(name.into()))
}

fn alter_resource(
    kind: i8,
    name: &str,
    configs: &[(&str, i8, Option<&str>)],
) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(StrBytes::from_string(name.into()))
        .with_configs(
            configs
                .iter()
                .map(|&(n, op, v)| {
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(n.into()))
                        .with_config_operation(op)
                        .with_value(v.map(|v| StrBytes::from_string(v.into())))
                })
                .collect(),
        )
}

fn retention_ms(kafka: SocketAddr) -> String {
    let mut c = Conn::open(kafka);
    let request = DescribeConfigsRequest::default().with_resources(vec![describe_resource(2, "t")]);
    let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &request);
    let retention = r.results[0]
        .configs
        .iter()
        .find(|c| &*c.name == "retention.ms")
        .unwrap();
    retention.value.as_ref().unwrap().to_string()
}

#[test]
fn config_requests_answer_each_bad_resource_on_its_own_and_change_nothing() {
    let (_tmp, broker) = setup();
    let kafka = broker.kafka.unwrap();
    let mut c = Conn::open(kafka);
    // Describe: a topic, a missing topic, an unknown resource type, this
    // broker and another broker, in every version.
    for version in 1..=4 {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            describe_resource(2, "t"),
            describe_resource(2, "missing"),
            describe_resource(99, "x"),
            describe_resource(4, "0"),
            describe_resource(4, "7"),
        ]);
        let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, version, &request);
        let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [0, 3, 42, 0, 42], "v{version}");
        assert_eq!(r.results[0].configs.len(), 12);
        assert!(
            r.results[3]
                .configs
                .iter()
                .any(|c| &*c.name == "log.retention.ms"),
            "the broker describes its topic defaults"
        );
    }
    // The same resource twice: both refused.
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![describe_resource(2, "t"), describe_resource(2, "t")]);
    let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &request);
    assert!(r.results.iter().all(|r| r.error_code == 42));
    // Many resources are answered at once, not in quadratic time.
    let many: Vec<_> = (0..40_000)
        .map(|i| describe_resource(2, &format!("m{i}")))
        .collect();
    let request = DescribeConfigsRequest::default().with_resources(many);
    let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &request);
    assert_eq!(r.results.len(), 40_000);
    assert!(r.results.iter().all(|r| r.error_code == 3));

    // Alter: an unknown operation, a null SET, a duplicate key, a bad
    // value next to a good one, the broker, a missing topic.
    let before = retention_ms(kafka);
    for version in 0..=1 {
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            alter_resource(2, "t", &[("retention.ms", 9, Some("1"))]),
            alter_resource(4, "0", &[("log.retention.ms", 0, Some("1"))]),
            alter_resource(2, "missing", &[("retention.ms", 0, Some("1"))]),
            alter_resource(77, "x", &[]),
        ]);
        let r: IncrementalAlterConfigsResponse =
            c.call(ApiKey::IncrementalAlterConfigs, version, &request);
        let codes: Vec<i16> = r.responses.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [42, 42, 3, 42], "v{version}");
        for configs in [
            &[("retention.ms", 0, None)][..],
            &[("retention.ms", 0, Some("1")), ("retention.ms", 1, None)][..],
            &[("retention.ms", 0, Some("1")), ("segment.ms", 0, Some("0"))][..],
            &[("retention.ms", 2, Some("1"))][..],
        ] {
            let request = IncrementalAlterConfigsRequest::default()
                .with_resources(vec![alter_resource(2, "t", configs)]);
            let r: IncrementalAlterConfigsResponse =
                c.call(ApiKey::IncrementalAlterConfigs, version, &request);
            assert_eq!(r.responses[0].error_code, 40, "{configs:?}");
            assert!(r.responses[0].error_message.is_some());
        }
    }
    assert_eq!(retention_ms(kafka), before, "nothing changed");
    still_serving(kafka);
}

#[test]
fn over_the_connection_limit_kafka_clients_may_look_but_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&tmp.path().join("data"), 1, &["--max-connections", "1"]);
    let kafka = broker.kafka.unwrap();
    let out = std::process::Command::new(common::corelog_bin())
        .args([
            "topic",
            "create",
            "t",
            "--partitions",
            "1",
            "--broker",
            &broker.addr.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The CLI's connection frees its place once the broker sees it close.
    let produce = produce_request("t", 0, batch(1, 10));
    let frame = Conn::frame(ApiKey::Produce, 9, 7, &produce);
    let mut writer = None;
    common::wait_until(Duration::from_secs(10), "the one regular place", || {
        let mut c = Conn::open(kafka);
        c.send_raw(&frame);
        let mut len = [0u8; 4];
        if c.0.read_exact(&mut len).is_err() {
            return false;
        }
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        c.0.read_exact(&mut body).unwrap();
        writer = Some(c);
        true
    });
    // Four more: metadata is answered, a produce closes the connection.
    let mut lookers: Vec<Conn> = (0..4).map(|_| Conn::open(kafka)).collect();
    for c in &mut lookers {
        let r: MetadataResponse = c.call(ApiKey::Metadata, 9, &MetadataRequest::default());
        assert_eq!(r.brokers.len(), 1);
    }
    // The sixth connection is closed without an answer.
    let mut refused = Conn::open(kafka);
    refused.send_raw(&api_versions_frame());
    assert!(refused.is_closed());
    lookers[0].send_raw(&frame);
    assert!(lookers[0].is_closed(), "a produce on a reserved place");
    // The writer still writes.
    let mut writer = writer.unwrap();
    let r: ProduceResponse = writer.call(ApiKey::Produce, 9, &produce);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert!(broker.log().contains("at the connection limit"));
}
