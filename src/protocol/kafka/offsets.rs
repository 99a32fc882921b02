//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+) or the
//! first record at or after a timestamp.

use super::codes;
use crate::broker::{self, ListOffsetsTopic};
use crate::shard::Shard;
use crate::types::{OffsetSpec, Timestamp};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::rc::Rc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // Specs a version does not define are refused per partition.
    let mut refused = Vec::new();
    let topics: Vec<ListOffsetsTopic> = request
        .topics
        .iter()
        .map(|t| ListOffsetsTopic {
            name: t.name.0.to_string(),
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let spec = match p.timestamp {
                        LATEST => OffsetSpec::Latest,
                        EARLIEST => OffsetSpec::Earliest,
                        MAX_TIMESTAMP if version >= 7 => OffsetSpec::MaxTimestamp,
                        ts if ts >= 0 => OffsetSpec::Timestamp(Timestamp(ts)),
                        _ => {
                            refused.push((t.name.0.to_string(), p.partition_index));
                            OffsetSpec::Latest
                        }
                    };
                    (u32::try_from(p.partition_index).unwrap_or(u32::MAX), spec)
                })
                .collect(),
        })
        .collect();
    let response = broker::list_offsets(shard, topics).await;
    let mut out = ListOffsetsResponse::default();
    out.topics = request
        .topics
        .into_iter()
        .zip(response)
        .map(|(asked, answered)| {
            let partitions = answered
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition as i32)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if refused
                        .iter()
                        .any(|(t, i)| *t == answered.name && *i == p.partition as i32)
                    {
                        r.error_code = codes::INVALID_REQUEST;
                        return r;
                    }
                    match &p.result {
                        Ok(Some((offset, ts))) => {
                            r.offset = offset.0 as i64;
                            r.timestamp = ts.map_or(-1, |t| t.0);
                        }
                        Ok(None) => {}
                        Err(e) => r.error_code = codes::code(e.kind),
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(asked.name)
                .with_partitions(partitions)
        })
        .collect();
    out
}
