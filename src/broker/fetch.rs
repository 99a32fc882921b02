//! Fetch: read every asked partition, wait (bounded) for `min_bytes`, and
//! fit the answer into the response's byte budget.

use super::{FetchFailure, FetchRequest, FetchResponse, PartitionResult, TopicResult};
use crate::constants::FETCH_WAIT_MS_MAX;
use crate::error::{BrokerError, ErrorKind};
use crate::shard::{FetchData, FetchItem, FetchOutcome, Shard};
use crate::types::Offset;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Reads every partition the request names, in the request's order.
///
/// If fewer than `min_bytes` are readable, waits until a partition's high
/// watermark moves past what was read or `max_wait` passes (at most
/// [`FETCH_WAIT_MS_MAX`]), then reads again. A failure on any partition
/// answers at once. The first partition with data always gets its batches,
/// later ones only while the total stays within `max_bytes`, so a consumer
/// never stalls on a batch larger than its budget.
pub async fn fetch(shard: &Rc<Shard>, request: FetchRequest) -> FetchResponse {
    let deadline = Instant::now()
        + request
            .max_wait
            .min(Duration::from_millis(FETCH_WAIT_MS_MAX));
    let (mut response, slots, items) = resolve(shard, request.topics, request.replica);
    let outcomes = read_until_enough(shard, &items, request.min_bytes as usize, deadline).await;
    for o in outcomes {
        let (t, p) = slots[o.idx];
        response[t].partitions[p].result = o
            .result
            .map_err(|(error, range)| FetchFailure { error, range });
    }
    apply_budget(&mut response, request.max_bytes as usize);
    response
}

type Slots = Vec<(usize, usize)>;

/// Checks names and numbers against the metadata; returns the response
/// skeleton, where each item's answer goes, and the reads to do.
fn resolve(
    shard: &Shard,
    topics: Vec<super::FetchTopic>,
    replica: Option<u32>,
) -> (FetchResponse, Slots, Vec<FetchItem>) {
    let snapshot = shard.snapshot();
    let mut response: FetchResponse = Vec::with_capacity(topics.len());
    let mut slots = Vec::new();
    let mut items = Vec::new();
    for topic in topics {
        let meta = snapshot.topic(&topic.name).cloned();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let error = match &meta {
                None => Some(BrokerError::unknown_topic(&topic.name)),
                Some(m) if p.partition >= m.partitions => Some(BrokerError::unknown_partition(
                    &topic.name,
                    p.partition,
                    m.partitions,
                )),
                Some(_) if p.offset < 0 => Some(BrokerError::new(
                    ErrorKind::OffsetOutOfRange,
                    format!("offset {} is negative", p.offset),
                )),
                Some(m) => {
                    items.push(FetchItem {
                        idx: slots.len(),
                        topic: m.id,
                        partition: p.partition,
                        offset: Offset(p.offset as u64),
                        max_bytes: p.max_bytes.max(1) as usize,
                        replica,
                        current_leader_epoch: p.current_leader_epoch,
                        last_fetched_epoch: p.last_fetched_epoch,
                    });
                    slots.push((response.len(), partitions.len()));
                    None
                }
            };
            partitions.push(PartitionResult {
                partition: p.partition,
                result: match error {
                    Some(error) => Err(FetchFailure { error, range: None }),
                    None => Ok(FetchData::default()),
                },
            });
        }
        response.push(TopicResult {
            error: meta
                .is_none()
                .then(|| BrokerError::unknown_topic(&topic.name)),
            name: topic.name,
            partitions,
        });
    }
    (response, slots, items)
}

/// Reads; while less than `min_bytes` arrived, waits for any partition's
/// high watermark to move past what this round saw, then reads again.
/// Bounded by the deadline: each wait ends at it at the latest.
async fn read_until_enough(
    shard: &Rc<Shard>,
    items: &[FetchItem],
    min_bytes: usize,
    deadline: Instant,
) -> Vec<FetchOutcome> {
    loop {
        let outcomes = shard.fetch(items.to_vec()).await;
        let mut total = 0usize;
        let mut failed = false;
        for o in &outcomes {
            match &o.result {
                Ok(data) => total += data.bytes,
                Err(_) => failed = true,
            }
        }
        if total >= min_bytes
            || failed
            || items.is_empty()
            || Instant::now() >= deadline
            || shard.shutdown.is_raised()
        {
            return outcomes;
        }
        let waits: Vec<FetchItem> = outcomes
            .iter()
            .map(|o| {
                let item = &items[o.idx];
                // A follower waits for the log end to pass its offset; a
                // consumer for the high watermark to pass what it saw.
                let seen = match item.replica {
                    Some(_) => item.offset,
                    None => o
                        .result
                        .as_ref()
                        .ok()
                        .map_or(item.offset, |d| d.high_watermark.max(item.offset)),
                };
                FetchItem {
                    offset: seen,
                    ..item.clone()
                }
            })
            .collect();
        shard.wait_for_data(waits, deadline).await;
    }
}

/// The response's byte budget: the first partition with data always keeps
/// its batches; later ones only if they fit.
fn apply_budget(response: &mut FetchResponse, max_bytes: usize) {
    let mut used = 0usize;
    for topic in response.iter_mut() {
        for slot in topic.partitions.iter_mut() {
            if let Ok(data) = &mut slot.result
                && data.bytes > 0
            {
                if used > 0 && used + data.bytes > max_bytes {
                    data.chunks.clear();
                    data.bytes = 0;
                } else {
                    used += data.bytes;
                }
            }
        }
    }
}
