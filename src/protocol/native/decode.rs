//! Turns a verified request frame into an owned [`Request`], so the frame's
//! borrow ends before any `.await`. Data-path requests become the broker
//! core's domain requests; produce record data is split out of the frame
//! buffer as `BytesMut` pieces that share its allocation: no copy.

use super::parse_request;
use crate::broker::{
    FetchPartition, FetchRequest, FetchTopic, ListOffsetsTopic, ProduceRequest, ProduceTopic,
};
use crate::error::{BrokerError, ErrorKind};
use crate::meta::{ConfigChange, ConfigOp, TopicOverrides};
use crate::protocol::wire;
use crate::types::FsyncPolicy;
use crate::types::{Acks, OffsetSpec, Timestamp};
use bytes::BytesMut;
use std::time::Duration;

pub enum Request {
    Handshake {
        version: u16,
        client_id: String,
    },
    Metadata {
        topics: Option<Vec<String>>,
    },
    CreateTopic {
        name: String,
        partitions: u32,
        /// What the request sets, or why its configuration is invalid.
        overrides: Result<TopicOverrides, String>,
        replication: u32,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        total: u32,
    },
    ListTopics,
    DescribeTopic {
        name: String,
    },
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(Vec<ListOffsetsTopic>),
    Stats,
    DescribeConfigs {
        topic: String,
        /// Kafka names to describe; empty: all.
        names: Vec<String>,
    },
    AlterConfigs {
        topic: String,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    },
    GroupHeartbeat(GroupHeartbeat),
    OffsetCommit {
        group: String,
        member_id: String,
        member_epoch: i32,
        /// Topic, partition, offset, metadata.
        offsets: Vec<(String, u32, i64, Option<String>)>,
    },
    OffsetFetch {
        group: String,
        member: Option<(String, i32)>,
        /// `None`: every partition the group committed.
        partitions: Option<Vec<(String, Vec<u32>)>>,
    },
    /// A union member this broker does not know.
    Unknown(u8),
}

impl Request {
    /// The API's name, for metrics.
    pub fn api_name(&self) -> &'static str {
        match self {
            Request::Handshake { .. } => "Handshake",
            Request::Metadata { .. } => "Metadata",
            Request::CreateTopic { .. } => "CreateTopic",
            Request::DeleteTopic { .. } => "DeleteTopic",
            Request::CreatePartitions { .. } => "CreatePartitions",
            Request::ListTopics => "ListTopics",
            Request::DescribeTopic { .. } => "DescribeTopic",
            Request::Produce(_) => "Produce",
            Request::Fetch(_) => "Fetch",
            Request::ListOffsets(_) => "ListOffsets",
            Request::Stats => "Stats",
            Request::DescribeConfigs { .. } => "DescribeConfigs",
            Request::AlterConfigs { .. } => "AlterConfigs",
            Request::GroupHeartbeat(_) => "GroupHeartbeat",
            Request::OffsetCommit { .. } => "OffsetCommit",
            Request::OffsetFetch { .. } => "OffsetFetch",
            Request::Unknown(_) => "Unknown",
        }
    }
}

/// A consumer-group heartbeat, with topics by name (the broker maps them to
/// topic ids).
pub struct GroupHeartbeat {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topics: Option<Vec<String>>,
    pub topic_regex: Option<String>,
    pub assignor: Option<String>,
    pub owned: Option<Vec<(String, Vec<u32>)>>,
}

fn topic_partitions(
    list: flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<wire::GroupTopicPartitions<'_>>>,
) -> Result<Vec<(String, Vec<u32>)>, BrokerError> {
    list.iter()
        .map(|tp| {
            Ok((
                required(tp.topic(), "topic name")?.to_string(),
                tp.partitions()
                    .map(|ps| ps.iter().collect())
                    .unwrap_or_default(),
            ))
        })
        .collect()
}

impl Request {
    /// Produce, fetch and group membership: what a connection kept for
    /// administration may not send.
    pub fn moves_data(&self) -> bool {
        matches!(
            self,
            Request::Produce(_) | Request::Fetch(_) | Request::GroupHeartbeat(_)
        )
    }
}

fn invalid(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorKind::InvalidRequest, message)
}

fn required<'a>(name: Option<&'a str>, what: &str) -> Result<&'a str, BrokerError> {
    name.ok_or_else(|| invalid(format!("{what} is missing")))
}

/// Verifies `frame` and decodes it. On failure returns the correlation id
/// (0 if the frame did not verify) and the error to answer with.
pub fn decode(frame: BytesMut) -> Result<(u64, Request), (u64, BrokerError)> {
    let envelope = parse_request(&frame)
        .map_err(|e| (0, invalid(format!("frame is not a valid request: {e}"))))?;
    let corr = envelope.correlation_id();
    let fail = |e: BrokerError| (corr, e);
    use wire::Request as R;
    let request = match envelope.request_type() {
        R::Handshake => {
            let h = envelope
                .request_as_handshake()
                .ok_or_else(|| fail(invalid("handshake body missing")))?;
            Request::Handshake {
                version: h.protocol_version(),
                client_id: h.client_id().unwrap_or("").to_string(),
            }
        }
        R::MetadataRequest => {
            let m = envelope
                .request_as_metadata_request()
                .ok_or_else(|| fail(invalid("metadata body missing")))?;
            let topics = m
                .topics()
                .map(|t| t.iter().map(str::to_string).collect::<Vec<_>>())
                .filter(|t| !t.is_empty());
            Request::Metadata { topics }
        }
        R::CreateTopicRequest => {
            let c = envelope
                .request_as_create_topic_request()
                .ok_or_else(|| fail(invalid("create body missing")))?;
            Request::CreateTopic {
                name: required(c.name(), "topic name").map_err(fail)?.to_string(),
                partitions: c.partitions(),
                overrides: overrides(c.config()),
                replication: c.replication_factor().max(1),
            }
        }
        R::DeleteTopicRequest => {
            let d = envelope
                .request_as_delete_topic_request()
                .ok_or_else(|| fail(invalid("delete body missing")))?;
            Request::DeleteTopic {
                name: required(d.name(), "topic name").map_err(fail)?.to_string(),
            }
        }
        R::ListTopicsRequest => Request::ListTopics,
        R::DescribeTopicRequest => {
            let d = envelope
                .request_as_describe_topic_request()
                .ok_or_else(|| fail(invalid("describe body missing")))?;
            Request::DescribeTopic {
                name: required(d.name(), "topic name").map_err(fail)?.to_string(),
            }
        }
        R::ProduceRequest => {
            let p = envelope
                .request_as_produce_request()
                .ok_or_else(|| fail(invalid("produce body missing")))?;
            let acks = Acks::from_wire(p.acks() as i16).ok_or_else(|| {
                fail(BrokerError::new(
                    ErrorKind::InvalidArgument,
                    format!("acks must be 0, 1 or -1 (all), got {}", p.acks()),
                ))
            })?;
            let timeout = Duration::from_millis(p.timeout_ms() as u64);
            // Where each partition's records sit in the frame.
            let base = frame.as_ptr() as usize;
            let mut names = Vec::new();
            let mut spans: Vec<(usize, usize, usize, u32)> = Vec::new(); // (start, len, topic, partition)
            for (t, topic) in p.topics().iter().flatten().enumerate() {
                names.push((
                    required(topic.topic(), "produce topic name")
                        .map_err(fail)?
                        .to_string(),
                    Vec::new(),
                ));
                for part in topic.partitions().iter().flatten() {
                    let (start, len) = match part.records() {
                        Some(records) => (records.bytes().as_ptr() as usize - base, records.len()),
                        None => (0, 0),
                    };
                    spans.push((start, len, t, part.partition()));
                }
            }

            let mut topics: Vec<ProduceTopic> = names
                .into_iter()
                .map(|(name, partitions)| ProduceTopic { name, partitions })
                .collect();
            // Carve the frame into disjoint pieces, without copying.
            let ranges: Vec<(usize, usize)> = spans.iter().map(|&(s, l, _, _)| (s, l)).collect();
            let mut pieces: Vec<Option<BytesMut>> = crate::protocol::carve(frame, &ranges)
                .map_err(|e| fail(invalid(e)))?
                .into_iter()
                .map(Some)
                .collect();
            for (i, (_, _, t, partition)) in spans.iter().enumerate() {
                topics[*t]
                    .partitions
                    .push((*partition, pieces[i].take().expect("every span was carved")));
            }
            Request::Produce(ProduceRequest {
                acks,
                timeout,
                topics,
            })
        }
        R::FetchRequest => {
            let f = envelope
                .request_as_fetch_request()
                .ok_or_else(|| fail(invalid("fetch body missing")))?;
            let mut topics = Vec::new();
            for topic in f.topics().iter().flatten() {
                let partitions = topic
                    .partitions()
                    .iter()
                    .flatten()
                    .map(|p| FetchPartition {
                        partition: p.partition(),
                        offset: p.offset(),
                        max_bytes: p.max_bytes(),
                        current_leader_epoch: p.current_leader_epoch(),
                        last_fetched_epoch: p.last_fetched_epoch(),
                    })
                    .collect();
                topics.push(FetchTopic {
                    name: required(topic.topic(), "fetch topic name")
                        .map_err(fail)?
                        .to_string(),
                    partitions,
                });
            }
            Request::Fetch(FetchRequest {
                max_wait: Duration::from_millis(f.max_wait_ms() as u64),
                min_bytes: f.min_bytes(),
                max_bytes: f.max_bytes(),
                topics,
                replica: u32::try_from(f.replica_id()).ok(),
            })
        }
        R::ListOffsetsRequest => {
            let l = envelope
                .request_as_list_offsets_request()
                .ok_or_else(|| fail(invalid("list offsets body missing")))?;
            let mut topics = Vec::new();
            for topic in l.topics().iter().flatten() {
                let partitions = topic
                    .partitions()
                    .iter()
                    .flatten()
                    .map(|p| Ok((p.partition(), offset_spec(p.spec(), p.timestamp())?)))
                    .collect::<Result<Vec<_>, BrokerError>>()
                    .map_err(fail)?;
                topics.push(ListOffsetsTopic {
                    name: required(topic.topic(), "list offsets topic name")
                        .map_err(fail)?
                        .to_string(),
                    partitions,
                });
            }
            Request::ListOffsets(topics)
        }
        R::StatsRequest => Request::Stats,
        R::CreatePartitionsRequest => {
            let c = envelope
                .request_as_create_partitions_request()
                .ok_or_else(|| fail(invalid("create partitions body missing")))?;
            Request::CreatePartitions {
                name: required(c.name(), "topic name").map_err(fail)?.to_string(),
                total: c.total(),
            }
        }
        R::DescribeConfigsRequest => {
            let d = envelope
                .request_as_describe_configs_request()
                .ok_or_else(|| fail(invalid("describe configs body missing")))?;
            Request::DescribeConfigs {
                topic: required(d.topic(), "topic name").map_err(fail)?.to_string(),
                names: d
                    .names()
                    .map(|n| n.iter().map(str::to_string).collect())
                    .unwrap_or_default(),
            }
        }
        R::AlterConfigsRequest => {
            let a = envelope
                .request_as_alter_configs_request()
                .ok_or_else(|| fail(invalid("alter configs body missing")))?;
            let mut changes = Vec::new();
            for c in a.changes().iter().flatten() {
                let name = required(c.name(), "config name").map_err(fail)?;
                let op = match c.operation() {
                    wire::ConfigOperation::SET => ConfigOp::Set(c.value().map(str::to_string)),
                    wire::ConfigOperation::DELETE => ConfigOp::Delete,
                    other => {
                        return Err(fail(BrokerError::new(
                            ErrorKind::InvalidArgument,
                            format!("config operation {} on {name} is unknown", other.0),
                        )));
                    }
                };
                changes.push(ConfigChange {
                    name: name.to_string(),
                    op,
                });
            }
            Request::AlterConfigs {
                topic: required(a.topic(), "topic name").map_err(fail)?.to_string(),
                changes,
                validate_only: a.validate_only(),
            }
        }
        R::GroupHeartbeatRequest => {
            let h = envelope
                .request_as_group_heartbeat_request()
                .ok_or_else(|| fail(invalid("group heartbeat body missing")))?;
            Request::GroupHeartbeat(GroupHeartbeat {
                group: required(h.group(), "group").map_err(fail)?.to_string(),
                member_id: h.member_id().unwrap_or("").to_string(),
                member_epoch: h.member_epoch(),
                instance_id: h
                    .instance_id()
                    .filter(|i| !i.is_empty())
                    .map(str::to_string),
                rebalance_timeout_ms: h.rebalance_timeout_ms(),
                topics: h.topics().map(|ts| ts.iter().map(str::to_string).collect()),
                topic_regex: h.topic_regex().map(str::to_string),
                assignor: h.assignor().map(str::to_string),
                owned: h.owned().map(topic_partitions).transpose().map_err(fail)?,
            })
        }
        R::OffsetCommitRequest => {
            let c = envelope
                .request_as_offset_commit_request()
                .ok_or_else(|| fail(invalid("offset commit body missing")))?;
            let mut offsets = Vec::new();
            for o in c.offsets().iter().flatten() {
                offsets.push((
                    required(o.topic(), "topic name").map_err(fail)?.to_string(),
                    o.partition(),
                    o.offset(),
                    o.metadata().map(str::to_string),
                ));
            }
            Request::OffsetCommit {
                group: required(c.group(), "group").map_err(fail)?.to_string(),
                member_id: c.member_id().unwrap_or("").to_string(),
                member_epoch: c.member_epoch(),
                offsets,
            }
        }
        R::OffsetFetchRequest => {
            let f = envelope
                .request_as_offset_fetch_request()
                .ok_or_else(|| fail(invalid("offset fetch body missing")))?;
            Request::OffsetFetch {
                group: required(f.group(), "group").map_err(fail)?.to_string(),
                member: f
                    .member_id()
                    .filter(|m| !m.is_empty())
                    .map(|m| (m.to_string(), f.member_epoch())),
                partitions: f
                    .partitions()
                    .map(topic_partitions)
                    .transpose()
                    .map_err(fail)?,
            }
        }
        other => Request::Unknown(other.0),
    };
    Ok((corr, request))
}

fn offset_spec(spec: wire::OffsetSpec, timestamp: i64) -> Result<OffsetSpec, BrokerError> {
    match spec {
        wire::OffsetSpec::EARLIEST => Ok(OffsetSpec::Earliest),
        wire::OffsetSpec::LATEST => Ok(OffsetSpec::Latest),
        wire::OffsetSpec::TIMESTAMP => Ok(OffsetSpec::Timestamp(Timestamp(timestamp))),
        wire::OffsetSpec::MAX_TIMESTAMP => Ok(OffsetSpec::MaxTimestamp),
        other => Err(BrokerError::new(
            ErrorKind::InvalidArgument,
            format!("unknown offset spec {}", other.0),
        )),
    }
}

/// What a create request's wire configuration sets (`-1` / `DEFAULT`
/// leave the broker's default).
fn overrides(config: Option<wire::TopicConfig<'_>>) -> Result<TopicOverrides, String> {
    let mut o = TopicOverrides::default();
    let Some(w) = config else { return Ok(o) };
    let opt = |v: i64, what: &str| -> Result<Option<u64>, String> {
        match v {
            -1 => Ok(None),
            v if v < -1 => Err(format!("{what} {v} is negative")),
            v => Ok(Some(v as u64)),
        }
    };
    if let Some(v) = opt(w.retention_ms(), "retention ms")? {
        o.retention_ms = Some(Some(v));
    }
    if let Some(v) = opt(w.retention_bytes(), "retention bytes")? {
        o.retention_bytes = Some(Some(v));
    }
    o.segment_bytes = opt(w.segment_bytes(), "segment bytes")?;
    o.min_insync_replicas = (w.min_insync_replicas() > 0).then_some(w.min_insync_replicas());
    o.segment_ms = opt(w.segment_ms(), "segment ms")?;
    o.max_batch_bytes = opt(w.max_batch_bytes(), "max batch bytes")?.map(|v| v as usize);
    o.fsync = match w.fsync() {
        wire::FsyncPolicy::DEFAULT => None,
        wire::FsyncPolicy::NEVER => Some(FsyncPolicy::Never),
        wire::FsyncPolicy::ALWAYS => Some(FsyncPolicy::Always),
        wire::FsyncPolicy::INTERVAL => {
            if w.fsync_interval_ms() == 0 {
                return Err("fsync interval must be at least 1 ms".into());
            }
            Some(FsyncPolicy::Interval(Duration::from_millis(
                w.fsync_interval_ms() as u64,
            )))
        }
        other => return Err(format!("unknown fsync policy {}", other.0)),
    };
    Ok(o)
}
