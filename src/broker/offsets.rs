//! List offsets: the earliest, latest, by-time or max-timestamp offset of
//! each asked partition.

use super::{ListOffsetsResponse, ListOffsetsTopic, PartitionResult, TopicResult};
use crate::error::BrokerError;
use crate::shard::{OffsetQuery, Shard};
use std::rc::Rc;

/// Answers every question, wherever its partition lives, in the request's
/// order. "Latest" is the high watermark: the offset the next record a
/// consumer can read will get.
pub async fn list_offsets(shard: &Rc<Shard>, topics: Vec<ListOffsetsTopic>) -> ListOffsetsResponse {
    let snapshot = shard.snapshot();
    let mut response: ListOffsetsResponse = Vec::with_capacity(topics.len());
    let mut slots = Vec::new();
    let mut queries = Vec::new();
    for topic in topics {
        let meta = snapshot.topic(&topic.name).cloned();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (partition, spec) in topic.partitions {
            let result = match &meta {
                None => Err(BrokerError::unknown_topic(&topic.name)),
                Some(m) if partition >= m.partitions => Err(BrokerError::unknown_partition(
                    &topic.name,
                    partition,
                    m.partitions,
                )),
                Some(m) => {
                    queries.push(OffsetQuery {
                        idx: slots.len(),
                        topic: m.id,
                        partition,
                        spec,
                    });
                    slots.push((response.len(), partitions.len()));
                    Ok(None)
                }
            };
            partitions.push(PartitionResult { partition, result });
        }
        response.push(TopicResult {
            error: meta
                .is_none()
                .then(|| BrokerError::unknown_topic(&topic.name)),
            name: topic.name,
            partitions,
        });
    }
    for (idx, result) in shard.list_offsets(queries).await {
        let (t, p) = slots[idx];
        response[t].partitions[p].result = result;
    }
    response
}
