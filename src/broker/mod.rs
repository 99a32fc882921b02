//! The broker core: what a request means, independent of the protocol it
//! arrived in.
//!
//! Both wire protocols are thin adapters over this module
//! (`protocol::native` for corelog's flatbuffers protocol,
//! `protocol::kafka` for Kafka's): an adapter decodes its frame into one of
//! the domain requests below, calls the matching function here, and encodes
//! the domain response in its own format, mapping each [`ErrorKind`] to its
//! own code. Everything a request needs beyond decoding lives here: resolving
//! topic names against the metadata snapshot, partition range checks, acks
//! and timeouts of a produce, the long poll and byte budget of a fetch,
//! list-offsets specs, topic administration.
//!
//! Runs on the shard that received the request; partitions owned by other
//! shards are reached through [`Shard`]'s cross-core operations. Nothing
//! here knows a wire type or a wire code.
//!
//! [`ErrorKind`]: crate::error::ErrorKind

mod admin;
mod fetch;
mod offsets;
mod produce;

pub use admin::{
    TopicDescription, alter_configs, auto_create, create_partitions, create_topic, delete_topic,
    describe_configs, describe_topic, init_producer_id, validate_new_partitions,
    validate_new_topic,
};
pub use fetch::fetch;
pub use offsets::list_offsets;
pub use produce::produce;

use crate::error::BrokerError;
use crate::shard::{FetchData, Shard};
use crate::types::{Acks, Offset, OffsetSpec, Timestamp};
use bytes::BytesMut;
use std::rc::Rc;
use std::time::Duration;

/// One partition's outcome in a response.
#[derive(Debug)]
pub struct PartitionResult<T, E = BrokerError> {
    pub partition: u32,
    pub result: Result<T, E>,
}

/// One topic's outcomes in a response, in the order the request named its
/// partitions. `error` is set when the topic itself is unknown (every
/// partition then carries the same error).
#[derive(Debug)]
pub struct TopicResult<T, E = BrokerError> {
    pub name: String,
    pub error: Option<BrokerError>,
    pub partitions: Vec<PartitionResult<T, E>>,
}

/// A topic the caller may not touch: every partition it named carries
/// TOPIC_AUTHORIZATION_FAILED, and nothing is read or written.
pub fn denied_topic<T, E: From<BrokerError>>(
    name: &str,
    partitions: impl Iterator<Item = u32>,
) -> TopicResult<T, E> {
    let error = || {
        BrokerError::new(
            crate::error::ErrorKind::TopicAuthorizationFailed,
            format!("not authorized to access topic {name:?}"),
        )
    };
    TopicResult {
        name: name.to_string(),
        error: Some(error()),
        partitions: partitions
            .map(|partition| PartitionResult {
                partition,
                result: Err(E::from(error())),
            })
            .collect(),
    }
}

/// Puts the results of the allowed topics and of the denied ones back in
/// request order (`allowed[i]`: whether the request's `i`-th topic was
/// allowed).
pub fn merge_denied<T, E>(
    allowed: &[bool],
    served: Vec<TopicResult<T, E>>,
    denied: Vec<TopicResult<T, E>>,
) -> Vec<TopicResult<T, E>> {
    let (mut served, mut denied) = (served.into_iter(), denied.into_iter());
    allowed
        .iter()
        .filter_map(|&ok| if ok { served.next() } else { denied.next() })
        .collect()
}

/// [`produce`] of the topics `allowed` says yes to; the others are
/// answered TOPIC_AUTHORIZATION_FAILED and nothing of theirs is written.
/// (With the authorizer off, call [`produce`]: no allocation.)
pub async fn produce_allowed(
    shard: &Rc<Shard>,
    mut request: ProduceRequest,
    turn: Option<crate::order::Turn>,
    allowed: impl Fn(&str) -> bool,
) -> ProduceResponse {
    let topics = std::mem::take(&mut request.topics);
    serve_allowed(topics, allowed, |topics| {
        request.topics = topics;
        produce(shard, request, turn)
    })
    .await
}

/// [`fetch`] of the topics `allowed` says yes to; the others are answered
/// TOPIC_AUTHORIZATION_FAILED and nothing of theirs is read.
pub async fn fetch_allowed(
    shard: &Rc<Shard>,
    mut request: FetchRequest,
    allowed: impl Fn(&str) -> bool,
) -> FetchResponse {
    let topics = std::mem::take(&mut request.topics);
    serve_allowed(topics, allowed, |topics| {
        request.topics = topics;
        fetch(shard, request)
    })
    .await
}

/// A topic of a request, as [`serve_allowed`] sees it.
trait RequestTopic {
    fn name(&self) -> &str;
    fn partitions(&self) -> impl Iterator<Item = u32>;
}

impl RequestTopic for ProduceTopic {
    fn name(&self) -> &str {
        &self.name
    }
    fn partitions(&self) -> impl Iterator<Item = u32> {
        self.partitions.iter().map(|(p, _)| *p)
    }
}

impl RequestTopic for FetchTopic {
    fn name(&self) -> &str {
        &self.name
    }
    fn partitions(&self) -> impl Iterator<Item = u32> {
        self.partitions.iter().map(|p| p.partition)
    }
}

/// `serve` of the `topics` that `allowed` says yes to, the others answered
/// with [`denied_topic`], all in request order: what [`produce_allowed`]
/// and [`fetch_allowed`] share. `serve` is not called when every topic is
/// denied.
async fn serve_allowed<Topic: RequestTopic, T, E, F>(
    topics: Vec<Topic>,
    allowed: impl Fn(&str) -> bool,
    serve: impl FnOnce(Vec<Topic>) -> F,
) -> Vec<TopicResult<T, E>>
where
    E: From<BrokerError>,
    F: std::future::Future<Output = Vec<TopicResult<T, E>>>,
{
    let mask: Vec<bool> = topics.iter().map(|t| allowed(t.name())).collect();
    let (served, denied): (Vec<_>, Vec<_>) =
        topics.into_iter().zip(&mask).partition(|(_, ok)| **ok);
    let served: Vec<Topic> = served.into_iter().map(|(t, _)| t).collect();
    let denied = denied
        .into_iter()
        .map(|(t, _)| denied_topic(t.name(), t.partitions()))
        .collect();
    let served = if served.is_empty() {
        Vec::new()
    } else {
        serve(served).await
    };
    merge_denied(&mask, served, denied)
}

/// Records for the partitions of one topic: each partition's bytes are one
/// or more concatenated v2 batches, carved from the request frame without a
/// copy.
#[derive(Debug)]
pub struct ProduceTopic {
    pub name: String,
    pub partitions: Vec<(u32, BytesMut)>,
}

#[derive(Debug)]
pub struct ProduceRequest {
    pub acks: Acks,
    pub timeout: Duration,
    pub topics: Vec<ProduceTopic>,
}

/// Where a partition's appended records went.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: Offset,
    pub log_start_offset: Offset,
    /// The time stamped into the batches under `LogAppendTime` (`None`
    /// under `CreateTime`).
    pub log_append_time: Option<Timestamp>,
}

/// Per topic and partition: where the records went, or why not. Empty
/// under `acks=0` (no answer is sent).
pub type ProduceResponse = Vec<TopicResult<Appended>>;

/// Counts each partition's error in `response` for metrics, as answers of
/// `api`.
pub fn count_produce_errors(
    shard: &crate::shard::Shard,
    api: crate::metrics::ApiLabel,
    response: &ProduceResponse,
) {
    for topic in response {
        for p in &topic.partitions {
            if let Err(e) = &p.result {
                shard.metrics.error(api, e.kind);
            }
        }
    }
}

/// [`count_produce_errors`] for a fetch.
pub fn count_fetch_errors(
    shard: &crate::shard::Shard,
    api: crate::metrics::ApiLabel,
    response: &FetchResponse,
) {
    for topic in response {
        for p in &topic.partitions {
            if let Err(f) = &p.result {
                shard.metrics.error(api, f.error.kind);
            }
        }
    }
}

/// One partition to read: from `offset`, at most `max_bytes` (but always
/// one whole batch if any is readable).
#[derive(Clone, Debug)]
pub struct FetchPartition {
    pub partition: u32,
    pub offset: i64,
    pub max_bytes: u32,
    /// The leader epoch the fetcher believes current (-1: not checked):
    /// an older one is FENCED_LEADER_EPOCH, a newer one
    /// UNKNOWN_LEADER_EPOCH.
    pub current_leader_epoch: i32,
    /// A follower's last batch's epoch (-1: none), to detect divergence.
    pub last_fetched_epoch: i32,
}

#[derive(Clone, Debug)]
pub struct FetchTopic {
    pub name: String,
    pub partitions: Vec<FetchPartition>,
}

#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// Longest to wait for `min_bytes` (capped by the broker).
    pub max_wait: Duration,
    pub min_bytes: u32,
    /// Budget of the whole response; the first partition with data always
    /// gets its batches.
    pub max_bytes: u32,
    pub topics: Vec<FetchTopic>,
    /// A follower broker (its node id) replicating the partitions; `None`
    /// for consumers.
    pub replica: Option<u32>,
}

/// A partition read that failed: why, and the partition's valid range
/// (log start, high watermark) when it is known.
#[derive(Clone, Debug)]
pub struct FetchFailure {
    pub error: BrokerError,
    pub range: Option<(Offset, Offset)>,
}

pub type FetchResponse = Vec<TopicResult<FetchData, FetchFailure>>;

impl From<BrokerError> for FetchFailure {
    fn from(error: BrokerError) -> FetchFailure {
        FetchFailure { error, range: None }
    }
}

#[derive(Clone, Debug)]
pub struct ListOffsetsTopic {
    pub name: String,
    pub partitions: Vec<(u32, OffsetSpec)>,
}

/// What a list-offsets question found: the offset (and the record's
/// timestamp for time-based specs), or nothing (no record matches).
pub type OffsetFound = Option<(Offset, Option<Timestamp>)>;

pub type ListOffsetsResponse = Vec<TopicResult<OffsetFound>>;
