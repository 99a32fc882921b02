//! Fetch: reads through the broker core; answers every partition asked for,
//! declines fetch sessions, reports no aborted transactions (the broker has
//! none: the last stable offset is the high watermark).

use super::codes;
use crate::broker::{self, FetchPartition, FetchRequest, FetchResponse, FetchTopic};
use crate::security::{Operation, ResourceType};
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{
    FetchRequest as KafkaFetchRequest, FetchResponse as KafkaFetchResponse,
};
use std::rc::Rc;
use std::time::Duration;

/// `session_epoch` of a request that uses no fetch session.
const NO_SESSION_EPOCH: i32 = -1;

pub async fn handle(
    shard: &Rc<Shard>,
    caller: &super::Caller,
    version: i16,
    request: KafkaFetchRequest,
) -> KafkaFetchResponse {
    // Fetch sessions (KIP-227) are declined: a request that opens one
    // (epoch 0) gets session id 0 back and keeps sending full requests; a
    // request in a session this broker never gave out is refused.
    if version >= 7 && request.session_id != 0 && request.session_epoch != NO_SESSION_EPOCH {
        let mut out = KafkaFetchResponse::default();
        out.error_code = codes::FETCH_SESSION_ID_NOT_FOUND;
        return out;
    }
    let topics: Vec<FetchTopic> = request
        .topics
        .iter()
        .map(|t| FetchTopic {
            name: t.topic.0.to_string(),
            partitions: t
                .partitions
                .iter()
                .map(|p| FetchPartition {
                    // A negative partition number can never exist.
                    partition: u32::try_from(p.partition).unwrap_or(u32::MAX),
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as u32,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: -1,
                })
                .collect(),
        })
        .collect();
    let core = FetchRequest {
        max_wait: Duration::from_millis(request.max_wait_ms.max(0) as u64),
        min_bytes: request.min_bytes.max(0) as u32,
        max_bytes: request.max_bytes.max(0) as u32,
        topics,
        replica: None,
    };
    // READ on each topic; a denied topic is answered without a read.
    let response = if shard.authorizer_enabled() {
        broker::fetch_allowed(shard, core, |name| {
            caller.may(shard, Operation::Read, ResourceType::Topic, name)
        })
        .await
    } else {
        broker::fetch(shard, core).await
    };
    broker::count_fetch_errors(shard, ("kafka", "Fetch"), &response);
    encode(version, request, &response)
}

fn encode(
    version: i16,
    request: KafkaFetchRequest,
    response: &FetchResponse,
) -> KafkaFetchResponse {
    let mut out = KafkaFetchResponse::default();
    out.responses = request
        .topics
        .into_iter()
        .zip(response)
        .map(|(asked, answered)| {
            let partitions = answered
                .partitions
                .iter()
                .map(|p| {
                    let mut d = PartitionData::default().with_partition_index(p.partition as i32);
                    match &p.result {
                        Ok(data) => {
                            d.high_watermark = data.high_watermark.0 as i64;
                            d.last_stable_offset = data.high_watermark.0 as i64;
                            d.log_start_offset = data.log_start.0 as i64;
                            d.records = Some(join(&data.chunks));
                        }
                        Err(failure) => {
                            d.error_code = codes::code(failure.error.kind);
                            let (start, end) = failure
                                .range
                                .map_or((-1, -1), |(s, e)| (s.0 as i64, e.0 as i64));
                            d.high_watermark = end;
                            d.last_stable_offset = end;
                            d.log_start_offset = start;
                            d.records = Some(Bytes::new());
                        }
                    }
                    d.aborted_transactions = Some(Vec::new());
                    if version < 5 {
                        d.log_start_offset = -1;
                    }
                    d
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(asked.topic)
                .with_partitions(partitions)
        })
        .collect();
    out
}

/// One partition's batches as one buffer (the protocol's record set):
/// shared as it is when it is one chunk, joined otherwise.
fn join(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut joined = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for chunk in many {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    }
}
