//! Produce: records carved out of the request frame without a copy (the
//! request is read by `walk::parse_produce`, not by the protocol crate),
//! appended through the broker core, answered per partition — or not at
//! all under `acks=0`.

use super::codes;
use super::walk::{ProduceLayout, ProduceTopic as TopicLayout, TopicRef, str_at};
use crate::broker::{self, ProduceRequest, ProduceResponse, ProduceTopic};
use crate::protocol::carve;
use crate::security::{Operation, ResourceType};
use crate::shard::{Shard, Turn};
use crate::types::Acks;
use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceResponse as KafkaProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use std::time::Duration;

/// A produce request ready for the core, or the answer to give at once.
pub enum Decoded {
    Request(ProduceRequest),
    /// acks outside 0, 1, -1: every partition is refused.
    BadAcks(KafkaProduceResponse),
}

/// Builds the core's request from the frame and the layout the walker
/// found in it (`offset`: where the walked body starts in `frame`).
pub fn decode(frame: BytesMut, offset: usize, layout: ProduceLayout) -> Result<Decoded, String> {
    let Some(acks) = Acks::from_wire(layout.acks) else {
        return Ok(Decoded::BadAcks(refuse_all(
            &frame[offset..],
            &layout,
            layout.acks,
        )));
    };
    let mut spans = Vec::new();
    let mut names = Vec::with_capacity(layout.topics.len());
    for topic in &layout.topics {
        names.push(topic_name(&frame[offset..], topic)?);
        for partition in layout.partitions_of(topic) {
            spans.push(
                partition
                    .records
                    .clone()
                    .map_or((0, 0), |r| (offset + r.start, r.len())),
            );
        }
    }
    let mut pieces = carve(frame, &spans)?.into_iter();
    let mut topics = Vec::with_capacity(layout.topics.len());
    for (topic, name) in layout.topics.iter().zip(names) {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in layout.partitions_of(topic) {
            let data = pieces.next().expect("one piece per span");
            // A negative partition number can never exist: let it miss.
            partitions.push((u32::try_from(partition.index).unwrap_or(u32::MAX), data));
        }
        topics.push(ProduceTopic { name, partitions });
    }
    Ok(Decoded::Request(ProduceRequest {
        acks,
        timeout: Duration::from_millis(layout.timeout_ms.max(0) as u64),
        topics,
    }))
}

fn topic_name(body: &[u8], topic: &TopicLayout) -> Result<String, String> {
    match &topic.topic {
        TopicRef::Name(range) => str_at(body, range)
            .map(str::to_string)
            .ok_or_else(|| "a topic name is not UTF-8".to_string()),
        // Topic ids arrive with Produce v13, which this broker does not
        // advertise.
        TopicRef::Id(_) => Err("produce by topic id is not supported".to_string()),
    }
}

/// Appends through the core; `None` under `acks=0` (no answer is sent).
pub async fn handle(
    shard: &Rc<Shard>,
    caller: &super::Caller,
    version: i16,
    request: ProduceRequest,
    turn: Turn,
) -> Option<KafkaProduceResponse> {
    let acks = request.acks;
    // WRITE on each topic; a denied topic is answered without a write.
    let response = if shard.authorizer_enabled() {
        broker::produce_allowed(shard, request, Some(turn), |name| {
            caller.may(shard, Operation::Write, ResourceType::Topic, name)
        })
        .await
    } else {
        broker::produce(shard, request, Some(turn)).await
    };
    broker::count_produce_errors(shard, ("kafka", "Produce"), &response);
    (acks != Acks::None).then(|| encode(version, &response))
}

fn encode(version: i16, response: &ProduceResponse) -> KafkaProduceResponse {
    let mut out = KafkaProduceResponse::default();
    out.responses = response
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut r = PartitionProduceResponse::default()
                        .with_index(p.partition as i32)
                        .with_log_append_time_ms(-1);
                    match &p.result {
                        Ok(appended) => {
                            r.base_offset = appended.base_offset.0 as i64;
                            r.log_append_time_ms = appended.log_append_time.map_or(-1, |t| t.0);
                            if version >= 5 {
                                r.log_start_offset = appended.log_start_offset.0 as i64;
                            }
                        }
                        Err(e) => {
                            r.error_code = codes::code(e.kind);
                            r.base_offset = -1;
                            if version >= 8 {
                                r.error_message = Some(StrBytes::from_string(e.message.clone()));
                            }
                        }
                    }
                    r
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                .with_partition_responses(partitions)
        })
        .collect();
    out
}

/// Every partition refused with INVALID_REQUIRED_ACKS.
fn refuse_all(body: &[u8], layout: &ProduceLayout, acks: i16) -> KafkaProduceResponse {
    let mut out = KafkaProduceResponse::default();
    out.responses = layout
        .topics
        .iter()
        .map(|topic| {
            let name = match &topic.topic {
                TopicRef::Name(range) => str_at(body, range).unwrap_or_default().to_string(),
                TopicRef::Id(_) => String::new(),
            };
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partition_responses(
                    layout
                        .partitions_of(topic)
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(codes::INVALID_REQUIRED_ACKS)
                                .with_base_offset(-1)
                                .with_error_message(Some(StrBytes::from_string(format!(
                                    "acks must be 0, 1 or -1 (all), got {acks}"
                                ))))
                        })
                        .collect(),
                )
        })
        .collect();
    out
}
