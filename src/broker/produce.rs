//! Produce: resolve each topic and partition, append through the owning
//! shards, and answer within the request's timeout.

use super::{Appended, PartitionResult, ProduceRequest, ProduceResponse, TopicResult};
use crate::error::{BrokerError, ErrorKind};
use crate::shard::{ProduceItem, Shard, Turn};
use std::rc::Rc;

/// Appends every partition's records, wherever the partition lives, and
/// reports per partition where they went. `turn` keeps a connection's
/// requests in order (see [`Shard::produce`]). What completion means follows
/// `request.acks` and each topic's fsync policy (see
/// [`PartitionLog::append`](crate::storage::PartitionLog::append)).
/// Partitions still unanswered at the timeout get `RequestTimedOut`; their
/// appends still complete or fail as a whole in the background.
pub async fn produce(
    shard: &Rc<Shard>,
    request: ProduceRequest,
    turn: Option<Turn>,
) -> ProduceResponse {
    let snapshot = shard.snapshot();
    let timeout = request.timeout;
    let mut response: ProduceResponse = Vec::with_capacity(request.topics.len());
    // slots[item.idx] = (topic, position) of the partition in `response`.
    let mut slots = Vec::new();
    let mut items = Vec::new();
    for topic in request.topics {
        let meta = snapshot.topic(&topic.name).cloned();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (partition, data) in topic.partitions {
            let result = match &meta {
                None => Err(BrokerError::unknown_topic(&topic.name)),
                Some(_) if crate::group::is_internal(&topic.name) => {
                    Err(super::admin::internal_topic(&topic.name, "written"))
                }
                Some(m) if partition >= m.partitions => Err(BrokerError::unknown_partition(
                    &topic.name,
                    partition,
                    m.partitions,
                )),
                Some(_) if data.is_empty() => Err(BrokerError::new(
                    ErrorKind::EmptyProduce,
                    format!("no records for partition {partition}"),
                )),
                Some(m) => {
                    items.push(ProduceItem {
                        idx: slots.len(),
                        topic: m.id,
                        partition,
                        data,
                    });
                    slots.push((response.len(), partitions.len()));
                    Err(BrokerError::new(
                        ErrorKind::RequestTimedOut,
                        format!("not appended within {} ms", timeout.as_millis()),
                    ))
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
    let work = shard.produce(items, request.acks, turn);
    let timer = glommio::timer::sleep(timeout.max(std::time::Duration::from_millis(1)));
    futures::pin_mut!(work, timer);
    if let futures::future::Either::Left((outcomes, _)) = futures::future::select(work, timer).await
    {
        for o in outcomes {
            let (t, p) = slots[o.idx];
            response[t].partitions[p].result = o.result.map(|info| Appended {
                base_offset: info.base_offset,
                log_start_offset: info.log_start_offset,
                log_append_time: info.log_append_time,
            });
        }
    }
    response
}
