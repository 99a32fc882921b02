//! The Rust client's Kafka wire: what the producer, the consumer and the
//! metadata lookup send when a client speaks Kafka ([`Wire::Kafka`]) to a
//! broker's Kafka listener — the requests any Kafka client would send, in
//! the versions librdkafka 2.0 uses.
//!
//! Requests and responses are encoded and decoded with the `kafka-protocol`
//! crate, except Produce, which is written by hand so each batch goes out
//! from the producer's own buffer (as the native produce frame does).
//!
//! [`Wire::Kafka`]: super::Wire::Kafka

use super::admin::{ClusterMetadata, TopicInfo};
use super::{ClientError, Connection, Response, Result};
use crate::protocol::produce_frame::ProducePart;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

const CLIENT_ID: &str = "corelog";
const METADATA_VERSION: i16 = 9;
const PRODUCE_VERSION: i16 = 7;
const FETCH_VERSION: i16 = 11;
const LIST_OFFSETS_VERSION: i16 = 5;
/// Kafka's OFFSET_OUT_OF_RANGE.
pub(crate) const OFFSET_OUT_OF_RANGE: i16 = 1;

fn kafka_error(code: i16, message: Option<&str>) -> ClientError {
    ClientError::Kafka {
        code,
        message: message.unwrap_or("").to_string(),
    }
}

/// A request frame: size, header v1/v2 (per the API's flexible versions),
/// body.
fn request<T: Encodable>(api: ApiKey, version: i16, corr: u64, body: &T) -> Result<Vec<Bytes>> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr as u32 as i32)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let encoded = header
        .encode(&mut buf, api.request_header_version(version))
        .and_then(|()| body.encode(&mut buf, version));
    encoded.map_err(|e| ClientError::Invalid(format!("encoding a {api:?} request: {e}")))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(vec![buf.freeze()])
}

/// The body of a Kafka response.
fn decode<T: Decodable>(response: &Response, api: ApiKey, version: i16) -> Result<T> {
    // Size and correlation id; header v1 adds a tagged-field buffer.
    let mut skip = 8;
    if api.response_header_version(version) >= 1 {
        skip += 1;
    }
    let frame = response.frame();
    if frame.len() < skip {
        return Err(ClientError::Protocol(format!(
            "{api:?} response of {} bytes is too short",
            frame.len()
        )));
    }
    let mut body = frame.slice(skip..);
    T::decode(&mut body, version)
        .map_err(|e| ClientError::Protocol(format!("invalid {api:?} response: {e}")))
}

async fn call<T: Encodable, R: Decodable>(
    conn: &Connection,
    api: ApiKey,
    version: i16,
    body: &T,
    timeout: Duration,
) -> Result<R> {
    let corr = conn.next_correlation_id();
    let parts = request(api, version, corr, body)?;
    let call = conn.call_frame(corr, parts);
    let timer = glommio::timer::sleep(timeout);
    futures::pin_mut!(call, timer);
    let response = match futures::future::select(call, timer).await {
        futures::future::Either::Left((r, _)) => r?,
        futures::future::Either::Right(_) => {
            return Err(ClientError::Timeout(format!(
                "no {api:?} response from {} within {} ms",
                conn.addr(),
                timeout.as_millis()
            )));
        }
    };
    decode(&response, api, version)
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// The cluster's layout from a Kafka metadata request: every partition is
/// reached at its leader's advertised address.
pub(crate) async fn metadata(
    conn: &Connection,
    topics: &[&str],
    timeout: Duration,
) -> Result<ClusterMetadata> {
    let mut request = MetadataRequest::default();
    request.topics = (!topics.is_empty()).then(|| {
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
            .collect()
    });
    let response: MetadataResponse =
        call(conn, ApiKey::Metadata, METADATA_VERSION, &request, timeout).await?;
    let brokers: BTreeMap<i32, (IpAddr, u16)> = response
        .brokers
        .iter()
        .map(|b| {
            // A host name resolves to the address this connection reached.
            let ip = b.host.parse().unwrap_or_else(|_| conn.addr().ip());
            (b.node_id.0, (ip, b.port as u16))
        })
        .collect();
    let (host, port) = brokers
        .values()
        .next()
        .copied()
        .ok_or_else(|| ClientError::Protocol("metadata lists no broker".into()))?;
    let mut out = ClusterMetadata {
        host,
        shared_port: port,
        shard_ports: vec![port],
        topics: BTreeMap::new(),
        version: 0,
    };
    for t in &response.topics {
        let Some(topic) = &t.name else { continue };
        if t.error_code != 0 {
            continue;
        }
        let mut partitions: Vec<(i32, u16)> = t
            .partitions
            .iter()
            .map(|p| {
                let port = brokers.get(&p.leader_id.0).map_or(port, |b| b.1);
                (p.partition_index, port)
            })
            .collect();
        partitions.sort();
        out.topics.insert(
            topic.0.to_string(),
            TopicInfo {
                id: 0,
                partitions: partitions.into_iter().map(|(_, port)| (0, port)).collect(),
            },
        );
    }
    Ok(out)
}

/// A Produce v7 request, written by hand: every batch is a part of its own.
pub(crate) fn produce_parts(
    corr: u64,
    acks: i16,
    timeout_ms: u32,
    topics: &[(&str, Vec<ProducePart<'_>>)],
) -> Vec<Bytes> {
    let mut parts = Vec::new();
    let mut head = BytesMut::with_capacity(128);
    head.put_i32(0); // size, patched below
    head.put_i16(ApiKey::Produce as i16);
    head.put_i16(PRODUCE_VERSION);
    head.put_i32(corr as u32 as i32);
    put_string(&mut head, CLIENT_ID);
    head.put_i16(-1); // no transactional id
    head.put_i16(acks);
    head.put_i32(timeout_ms.min(i32::MAX as u32) as i32);
    head.put_i32(topics.len() as i32);
    let mut size = 0usize;
    for (topic, partitions) in topics {
        put_string(&mut head, topic);
        head.put_i32(partitions.len() as i32);
        for p in partitions {
            head.put_i32(p.partition as i32);
            head.put_i32(p.records.len() as i32);
            size += head.len();
            parts.push(head.split().freeze());
            size += p.records.len();
            parts.push(p.records.clone());
        }
    }
    if !head.is_empty() {
        size += head.len();
        parts.push(head.freeze());
    }
    let mut first = BytesMut::from(&parts[0][..]);
    first[..4].copy_from_slice(&((size - 4) as i32).to_be_bytes());
    parts[0] = first.freeze();
    parts
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

/// Each batch's base offset (or error) from a produce response, given each
/// batch's (topic index, position within the topic) in the request.
pub(crate) fn produce_results(
    response: &Response,
    batches: &[(&str, u32)],
    positions: &[(usize, usize)],
) -> Vec<Result<Option<u64>>> {
    let decoded: Result<ProduceResponse> = decode(response, ApiKey::Produce, PRODUCE_VERSION);
    let body = match decoded {
        Ok(b) => b,
        Err(e) => return batches.iter().map(|_| Err(e.clone())).collect(),
    };
    batches
        .iter()
        .zip(positions)
        .map(|(&(topic, partition), &(t, i))| {
            let p = body
                .responses
                .get(t)
                .filter(|r| &*r.name.0 == topic)
                .and_then(|r| r.partition_responses.get(i))
                .filter(|p| p.index == partition as i32)
                .ok_or_else(|| {
                    ClientError::Protocol(format!("no result for {topic}/{partition}"))
                })?;
            if p.error_code != 0 {
                return Err(kafka_error(p.error_code, p.error_message.as_deref()));
            }
            Ok(Some(p.base_offset as u64))
        })
        .collect()
}

/// Kafka's list-offsets spec values.
pub(crate) const EARLIEST: i64 = -2;
pub(crate) const LATEST: i64 = -1;

/// The offset a list-offsets question finds (`-1`: none).
pub(crate) async fn list_offset(
    conn: &Connection,
    topic: &str,
    partition: u32,
    timestamp: i64,
    timeout: Duration,
) -> Result<i64> {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition as i32)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let response: ListOffsetsResponse = call(
        conn,
        ApiKey::ListOffsets,
        LIST_OFFSETS_VERSION,
        &request,
        timeout,
    )
    .await?;
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| ClientError::Protocol("list offsets response without a partition".into()))?;
    if p.error_code != 0 {
        return Err(kafka_error(p.error_code, None));
    }
    Ok(p.offset)
}

/// One partition of a fetch answer, whichever protocol carried it.
pub(crate) struct Fetched {
    pub error: Option<ClientError>,
    pub out_of_range: bool,
    pub log_start: i64,
    pub high_watermark: i64,
    pub records: Option<Bytes>,
}

/// Fetch settings the consumer passes down.
pub(crate) struct FetchLimits {
    pub max_wait: Duration,
    pub min_bytes: u32,
    pub max_bytes: u32,
    pub partition_max_bytes: u32,
}

/// A Fetch v11 of `partitions` (topic, partition, offset), answered in the
/// same order.
pub(crate) async fn fetch(
    conn: &Connection,
    partitions: &[(&str, u32, u64)],
    limits: &FetchLimits,
    timeout: Duration,
) -> Result<Vec<Fetched>> {
    let mut request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(limits.max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(limits.min_bytes.min(i32::MAX as u32) as i32)
        .with_max_bytes(limits.max_bytes.min(i32::MAX as u32) as i32)
        .with_session_epoch(-1);
    // One topic entry per partition keeps the answer in request order.
    request.topics = partitions
        .iter()
        .map(|&(topic, partition, offset)| {
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition as i32)
                        .with_fetch_offset(offset as i64)
                        .with_partition_max_bytes(
                            limits.partition_max_bytes.min(i32::MAX as u32) as i32
                        ),
                ])
        })
        .collect();
    let response: FetchResponse =
        call(conn, ApiKey::Fetch, FETCH_VERSION, &request, timeout).await?;
    if response.error_code != 0 {
        return Err(kafka_error(response.error_code, None));
    }
    let answered: Vec<_> = response
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .collect();
    if answered.len() != partitions.len() {
        return Err(ClientError::Protocol(format!(
            "fetch returned {} partitions for {} asked",
            answered.len(),
            partitions.len()
        )));
    }
    Ok(answered
        .into_iter()
        .map(|p| Fetched {
            error: (p.error_code != 0).then(|| kafka_error(p.error_code, None)),
            out_of_range: p.error_code == OFFSET_OUT_OF_RANGE,
            log_start: p.log_start_offset,
            high_watermark: p.high_watermark,
            records: p.records,
        })
        .collect())
}
