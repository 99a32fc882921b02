//! Runs a decoded native request against the broker core and builds the
//! response flatbuffer (finished size-prefixed: a complete frame).

use super::decode::Request;
use super::{PROTOCOL_VERSION, error_code};
use crate::broker::{self, FetchResponse, ListOffsetsResponse, ProduceResponse};
use crate::error::{BrokerError, ErrorKind};
use crate::meta::{ConfigEntry, ConfigSource};
use crate::protocol::{Outgoing, wire};
use crate::security::{CLUSTER_RESOURCE_NAME, Operation, ResourceType};
use crate::shard::{Shard, Turn};
use crate::types::Acks;
use crate::types::FsyncPolicy;
use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use std::cell::RefCell;
use std::rc::Rc;
use wire::ErrorCode;

/// A response ready to write: a size-prefixed flatbuffer, possibly with
/// holes the size of record data that is written from its own buffers
/// (see [`records_vector`]).
pub struct ResponseFrame {
    buf: Vec<u8>,
    head: usize,
    /// Record data that belongs in holes of `buf`: each hole's distance
    /// from the end of `buf` to its first byte, and the chunks that fill it
    /// (in order).
    holes: Vec<(usize, Vec<Bytes>)>,
}

impl ResponseFrame {
    /// The frame as `Bytes`, without a copy of the flatbuffer (the record
    /// data of holes, if any, is copied in).
    pub fn into_bytes(mut self) -> Bytes {
        let len = self.buf.len();
        for (from_end, chunks) in std::mem::take(&mut self.holes) {
            let mut at = len - from_end;
            for chunk in chunks {
                self.buf[at..at + chunk.len()].copy_from_slice(&chunk);
                at += chunk.len();
            }
        }
        Bytes::from(self.buf).slice(self.head..)
    }

    /// The frame as pieces to write in order: the flatbuffer around its
    /// holes, and the record chunks themselves in the holes' places. Record
    /// data is not copied.
    pub fn into_outgoing(mut self) -> Outgoing {
        if self.holes.is_empty() {
            return Outgoing::One(self.into_bytes());
        }
        let len = self.buf.len();
        let mut holes = std::mem::take(&mut self.holes);
        holes.sort_by_key(|(from_end, _)| std::cmp::Reverse(*from_end));
        let buf = Bytes::from(self.buf);
        let mut parts = Vec::with_capacity(holes.len() * 3 + 1);
        let mut at = self.head;
        for (from_end, chunks) in holes {
            let start = len - from_end;
            parts.push(buf.slice(at..start));
            at = start;
            for chunk in chunks {
                at += chunk.len();
                parts.push(chunk);
            }
        }
        parts.push(buf.slice(at..));
        parts.retain(|p| !p.is_empty());
        Outgoing::Parts(parts)
    }
}

thread_local! {
    /// Scratch space to join a partition's record chunks before they are
    /// copied into a response.
    static JOIN_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A byte of a flatbuffer vector that the builder leaves as it is: a
/// vector of these reserves room for bytes written from elsewhere.
#[derive(Clone, Copy)]
struct Hole;

impl flatbuffers::Push for Hole {
    type Output = u8;

    #[inline]
    unsafe fn push(&self, _dst: &mut [u8], _written_len: usize) {}
}

pub(super) fn finish(
    mut fbb: FlatBufferBuilder<'static>,
    corr: u64,
    error: Option<&BrokerError>,
    kind: wire::Response,
    body: Option<WIPOffset<UnionWIPOffset>>,
) -> ResponseFrame {
    let message = error.map(|e| fbb.create_string(&e.message));
    let envelope = wire::ResponseEnvelope::create(
        &mut fbb,
        &wire::ResponseEnvelopeArgs {
            correlation_id: corr,
            error: error.map_or(ErrorCode::NONE, |e| error_code(e.kind)),
            error_message: message,
            response_type: kind,
            response: body,
        },
    );
    fbb.finish_size_prefixed(envelope, None);
    let (buf, head) = fbb.collapse();
    ResponseFrame {
        buf,
        head,
        holes: Vec::new(),
    }
}

/// A response that carries only an error.
/// [`error_response`], counted in the shard's metrics as an error of `api`.
fn refused(shard: &Shard, api: &'static str, corr: u64, error: &BrokerError) -> ResponseFrame {
    shard.metrics.error(("native", api), error.kind);
    error_response(corr, error)
}

pub fn error_response(corr: u64, error: &BrokerError) -> ResponseFrame {
    finish(
        FlatBufferBuilder::new(),
        corr,
        Some(error),
        wire::Response::NONE,
        None,
    )
}

fn code_of<T>(r: &Result<T, BrokerError>) -> ErrorCode {
    r.as_ref()
        .err()
        .map_or(ErrorCode::NONE, |e| error_code(e.kind))
}

fn topic_code(error: &Option<BrokerError>) -> ErrorCode {
    error
        .as_ref()
        .map_or(ErrorCode::NONE, |e| error_code(e.kind))
}

/// Who sends a connection's requests, for the authorizer.
#[derive(Debug, Default)]
pub struct Access {
    pub principal: crate::security::Principal,
    pub ip: String,
}

impl Access {
    fn may(&self, shard: &Shard, op: Operation, rtype: ResourceType, name: &str) -> bool {
        shard.authorize("native", &self.principal, &self.ip, op, rtype, name)
    }

    fn topic(&self, shard: &Shard, op: Operation, name: &str) -> bool {
        self.may(shard, op, ResourceType::Topic, name)
    }

    fn group(&self, shard: &Shard, op: Operation, name: &str) -> bool {
        self.may(shard, op, ResourceType::Group, name)
    }

    fn cluster(&self, shard: &Shard, op: Operation) -> bool {
        self.may(shard, op, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }
}

/// What the ACLs refuse of a request as a whole (Produce and Fetch are
/// checked per topic, listings filtered): the error to answer.
fn refusal(shard: &Shard, access: &Access, request: &Request) -> Option<BrokerError> {
    use Operation::*;
    let topic_denied = |what: &str, name: &str| {
        BrokerError::new(
            ErrorKind::TopicAuthorizationFailed,
            format!("{} may not {what} topic {name:?}", access.principal),
        )
    };
    let group_denied = |what: &str, name: &str| {
        BrokerError::new(
            ErrorKind::GroupAuthorizationFailed,
            format!("{} may not {what} group {name:?}", access.principal),
        )
    };
    match request {
        Request::Metadata {
            topics: Some(names),
        } => names
            .iter()
            .find(|n| !access.topic(shard, Describe, n))
            .map(|n| topic_denied("describe", n)),
        Request::DescribeTopic { name } => {
            (!access.topic(shard, Describe, name)).then(|| topic_denied("describe", name))
        }
        Request::CreateTopic { name, .. } => (!shard.authorize_quietly(
            &access.principal,
            &access.ip,
            Create,
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
        ) && !access.topic(shard, Create, name))
        .then(|| topic_denied("create", name)),
        Request::DeleteTopic { name } => {
            (!access.topic(shard, Delete, name)).then(|| topic_denied("delete", name))
        }
        Request::CreatePartitions { name, .. } => {
            (!access.topic(shard, Alter, name)).then(|| topic_denied("alter", name))
        }
        Request::ListOffsets(topics) => topics
            .iter()
            .find(|t| !access.topic(shard, Describe, &t.name))
            .map(|t| topic_denied("describe", &t.name)),
        Request::Stats => (!access.cluster(shard, Describe)).then(|| {
            BrokerError::new(
                ErrorKind::ClusterAuthorizationFailed,
                format!("{} may not describe the cluster", access.principal),
            )
        }),
        Request::DescribeConfigs { topic, .. } => (!access.topic(shard, DescribeConfigs, topic))
            .then(|| topic_denied("describe the configs of", topic)),
        Request::AlterConfigs { topic, .. } => (!access.topic(shard, AlterConfigs, topic))
            .then(|| topic_denied("alter the configs of", topic)),
        Request::GroupHeartbeat(h) => {
            (!access.group(shard, Read, &h.group)).then(|| group_denied("read", &h.group))
        }
        Request::OffsetCommit { group, offsets, .. } => {
            if !access.group(shard, Read, group) {
                return Some(group_denied("read", group));
            }
            offsets
                .iter()
                .find(|(t, ..)| !access.topic(shard, Read, t))
                .map(|(t, ..)| topic_denied("read", t))
        }
        Request::OffsetFetch { group, .. } => {
            (!access.group(shard, Describe, group)).then(|| group_denied("describe", group))
        }
        _ => None,
    }
}

/// Serves one request; `None` for requests that get no response
/// (produce with acks 0).
pub async fn handle(
    shard: &Rc<Shard>,
    access: &Access,
    corr: u64,
    request: Request,
    turn: Option<Turn>,
) -> Option<ResponseFrame> {
    let api = request.api_name();
    let checked = shard.authorizer_enabled();
    if checked && let Some(error) = refusal(shard, access, &request) {
        return Some(refused(shard, api, corr, &error));
    }
    let response = match request {
        Request::Handshake { version, client_id } => handshake(shard, corr, version, &client_id),
        Request::Metadata { topics } => metadata(shard, access, corr, topics),
        Request::CreateTopic {
            name,
            partitions,
            overrides,
            replication,
        } => create_topic(shard, corr, name, partitions, overrides, replication).await,
        Request::DeleteTopic { name } => match broker::delete_topic(shard, name).await {
            Ok(()) => {
                let mut fbb = FlatBufferBuilder::new();
                let body =
                    wire::DeleteTopicResponse::create(&mut fbb, &wire::DeleteTopicResponseArgs {});
                finish(
                    fbb,
                    corr,
                    None,
                    wire::Response::DeleteTopicResponse,
                    Some(body.as_union_value()),
                )
            }
            Err(e) => refused(shard, api, corr, &e),
        },
        Request::CreatePartitions { name, total } => {
            match broker::create_partitions(shard, name, total).await {
                Ok(meta) => {
                    let mut fbb = FlatBufferBuilder::new();
                    let body = wire::CreatePartitionsResponse::create(
                        &mut fbb,
                        &wire::CreatePartitionsResponseArgs {
                            partitions: meta.partitions,
                        },
                    );
                    finish(
                        fbb,
                        corr,
                        None,
                        wire::Response::CreatePartitionsResponse,
                        Some(body.as_union_value()),
                    )
                }
                Err(e) => refused(shard, api, corr, &e),
            }
        }
        Request::ListTopics => list_topics(shard, access, corr),
        Request::DescribeTopic { name } => describe_topic(shard, corr, &name).await,
        Request::Produce(request) => {
            let acks = request.acks;
            let response = if checked {
                broker::produce_allowed(shard, request, turn, |name| {
                    access.topic(shard, Operation::Write, name)
                })
                .await
            } else {
                broker::produce(shard, request, turn).await
            };
            broker::count_produce_errors(shard, ("native", "Produce"), &response);
            if acks == Acks::None {
                return None;
            }
            produce_response(corr, &response)
        }
        Request::Fetch(request) => {
            let response = if checked {
                broker::fetch_allowed(shard, request, |name| {
                    access.topic(shard, Operation::Read, name)
                })
                .await
            } else {
                broker::fetch(shard, request).await
            };
            broker::count_fetch_errors(shard, ("native", "Fetch"), &response);
            fetch_response(corr, &response)
        }
        Request::ListOffsets(topics) => {
            list_offsets_response(corr, &broker::list_offsets(shard, topics).await)
        }
        Request::Stats => stats(shard, corr).await,
        Request::DescribeConfigs { topic, names } => {
            match broker::describe_configs(shard, &topic) {
                Ok(entries) => {
                    let mut fbb = FlatBufferBuilder::new();
                    let wanted: Vec<&ConfigEntry> = entries
                        .iter()
                        .filter(|e| names.is_empty() || names.iter().any(|n| n == e.info.name))
                        .collect();
                    let configs = config_entries(&mut fbb, wanted);
                    let topic = fbb.create_string(&topic);
                    let body = wire::DescribeConfigsResponse::create(
                        &mut fbb,
                        &wire::DescribeConfigsResponseArgs {
                            topic: Some(topic),
                            configs: Some(configs),
                        },
                    );
                    finish(
                        fbb,
                        corr,
                        None,
                        wire::Response::DescribeConfigsResponse,
                        Some(body.as_union_value()),
                    )
                }
                Err(e) => refused(shard, api, corr, &e),
            }
        }
        Request::AlterConfigs {
            topic,
            changes,
            validate_only,
        } => match broker::alter_configs(shard, topic, changes, validate_only).await {
            Ok(entries) => {
                let mut fbb = FlatBufferBuilder::new();
                let configs = config_entries(&mut fbb, entries.iter().collect());
                let body = wire::AlterConfigsResponse::create(
                    &mut fbb,
                    &wire::AlterConfigsResponseArgs {
                        configs: Some(configs),
                    },
                );
                finish(
                    fbb,
                    corr,
                    None,
                    wire::Response::AlterConfigsResponse,
                    Some(body.as_union_value()),
                )
            }
            Err(e) => refused(shard, api, corr, &e),
        },
        Request::GroupHeartbeat(h) => super::groups::heartbeat(shard, corr, h).await,
        Request::OffsetCommit {
            group,
            member_id,
            member_epoch,
            offsets,
        } => super::groups::commit(shard, corr, group, member_id, member_epoch, offsets).await,
        Request::OffsetFetch {
            group,
            member,
            partitions,
        } => super::groups::fetch(shard, corr, group, member, partitions).await,
        Request::Unknown(k) => error_response(
            corr,
            &BrokerError::new(
                ErrorKind::UnknownRequestKind,
                format!(
                    "request kind {k} is unknown to this broker (protocol version {PROTOCOL_VERSION})"
                ),
            ),
        ),
    };
    Some(response)
}

fn handshake(shard: &Shard, corr: u64, version: u16, client_id: &str) -> ResponseFrame {
    let mut fbb = FlatBufferBuilder::new();
    let broker_version = fbb.create_string(env!("CARGO_PKG_VERSION"));
    let body = wire::HandshakeResponse::create(
        &mut fbb,
        &wire::HandshakeResponseArgs {
            protocol_version: PROTOCOL_VERSION,
            broker_version: Some(broker_version),
            shard_count: shard.count,
            shard: shard.id.0,
        },
    );
    let error = (version != PROTOCOL_VERSION).then(|| {
        BrokerError::new(ErrorKind::UnsupportedVersion, format!("client {client_id:?} speaks protocol {version}; this broker speaks {PROTOCOL_VERSION}"))
    });
    finish(
        fbb,
        corr,
        error.as_ref(),
        wire::Response::HandshakeResponse,
        Some(body.as_union_value()),
    )
}

fn metadata(
    shard: &Shard,
    access: &Access,
    corr: u64,
    names: Option<Vec<String>>,
) -> ResponseFrame {
    let snapshot = shard.snapshot();
    let mut fbb = FlatBufferBuilder::new();
    // Every topic the principal may describe (named ones were checked).
    let wanted: Vec<String> = names.unwrap_or_else(|| {
        snapshot
            .topics
            .keys()
            .filter(|k| describable(shard, access, k))
            .map(|k| k.to_string())
            .collect()
    });
    let mut topics = Vec::with_capacity(wanted.len());
    for name in &wanted {
        let fb_name = fbb.create_string(name);
        let topic = match snapshot.topic(name) {
            Some(meta) => {
                let parts: Vec<_> = (0..meta.partitions)
                    .map(|p| {
                        let owner = shard.owner(meta.id, p);
                        wire::PartitionMetadata::create(
                            &mut fbb,
                            &wire::PartitionMetadataArgs {
                                partition: p,
                                shard: owner.0,
                                port: shard.ports[owner.0 as usize],
                            },
                        )
                    })
                    .collect();
                let parts = fbb.create_vector(&parts);
                wire::TopicMetadata::create(
                    &mut fbb,
                    &wire::TopicMetadataArgs {
                        name: Some(fb_name),
                        error: ErrorCode::NONE,
                        topic_id: meta.id.0,
                        partitions: Some(parts),
                    },
                )
            }
            None => wire::TopicMetadata::create(
                &mut fbb,
                &wire::TopicMetadataArgs {
                    name: Some(fb_name),
                    error: error_code(ErrorKind::UnknownTopic),
                    topic_id: 0,
                    partitions: None,
                },
            ),
        };
        topics.push(topic);
    }
    let topics = fbb.create_vector(&topics);
    let shards: Vec<_> = shard
        .ports
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            wire::ShardEndpoint::create(
                &mut fbb,
                &wire::ShardEndpointArgs {
                    shard: i as u32,
                    port,
                },
            )
        })
        .collect();
    let shards = fbb.create_vector(&shards);
    let host = fbb.create_string(&shard.host);
    let body = wire::MetadataResponse::create(
        &mut fbb,
        &wire::MetadataResponseArgs {
            host: Some(host),
            shared_port: shard.advertised_port,
            shards: Some(shards),
            topics: Some(topics),
            metadata_version: snapshot.version,
        },
    );
    finish(
        fbb,
        corr,
        None,
        wire::Response::MetadataResponse,
        Some(body.as_union_value()),
    )
}

/// Settings with their sources, as a wire vector.
fn config_entries<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    entries: Vec<&ConfigEntry>,
) -> WIPOffset<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<wire::ConfigEntry<'a>>>> {
    let entries: Vec<_> = entries
        .into_iter()
        .map(|e| {
            let name = fbb.create_string(e.info.name);
            let value = fbb.create_string(&e.value);
            wire::ConfigEntry::create(
                fbb,
                &wire::ConfigEntryArgs {
                    name: Some(name),
                    value: Some(value),
                    source: match e.source {
                        ConfigSource::Default => wire::ConfigSource::DEFAULT,
                        ConfigSource::Broker => wire::ConfigSource::BROKER,
                        ConfigSource::Topic => wire::ConfigSource::TOPIC,
                    },
                },
            )
        })
        .collect();
    fbb.create_vector(&entries)
}

async fn create_topic(
    shard: &Rc<Shard>,
    corr: u64,
    name: String,
    partitions: u32,
    overrides: Result<crate::meta::TopicOverrides, String>,
    replication: u32,
) -> ResponseFrame {
    let overrides = match overrides {
        Ok(o) => o,
        Err(e) => {
            return refused(
                shard,
                "CreateTopic",
                corr,
                &BrokerError::new(ErrorKind::InvalidConfig, e),
            );
        }
    };
    match broker::create_topic(shard, name, partitions, overrides, replication).await {
        Ok(meta) => {
            let mut fbb = FlatBufferBuilder::new();
            let config = config_to_wire(&meta.config, &mut fbb);
            let body = wire::CreateTopicResponse::create(
                &mut fbb,
                &wire::CreateTopicResponseArgs {
                    topic_id: meta.id.0,
                    config: Some(config),
                },
            );
            finish(
                fbb,
                corr,
                None,
                wire::Response::CreateTopicResponse,
                Some(body.as_union_value()),
            )
        }
        Err(e) => refused(shard, "CreateTopic", corr, &e),
    }
}

/// A topic configuration as a wire table (every value the effective one).
fn config_to_wire<'a>(
    c: &crate::meta::TopicConfig,
    fbb: &mut FlatBufferBuilder<'a>,
) -> WIPOffset<wire::TopicConfig<'a>> {
    let (fsync, interval) = match c.fsync {
        FsyncPolicy::Never => (wire::FsyncPolicy::NEVER, 0),
        FsyncPolicy::Always => (wire::FsyncPolicy::ALWAYS, 0),
        FsyncPolicy::Interval(d) => (
            wire::FsyncPolicy::INTERVAL,
            d.as_millis().min(u32::MAX as u128) as u32,
        ),
    };
    let opt = |v: Option<u64>| v.map_or(-1, |v| v.min(i64::MAX as u64) as i64);
    wire::TopicConfig::create(
        fbb,
        &wire::TopicConfigArgs {
            retention_ms: opt(c.retention_ms),
            retention_bytes: opt(c.retention_bytes),
            segment_bytes: c.segment_bytes as i64,
            segment_ms: c.segment_ms as i64,
            fsync,
            fsync_interval_ms: interval,
            max_batch_bytes: c.max_batch_bytes as i64,
            min_insync_replicas: c.min_insync_replicas,
        },
    )
}

/// Whether a listing shows the topic to the principal.
fn describable(shard: &Shard, access: &Access, name: &str) -> bool {
    shard.authorize_quietly(
        &access.principal,
        &access.ip,
        Operation::Describe,
        ResourceType::Topic,
        name,
    )
}

fn list_topics(shard: &Shard, access: &Access, corr: u64) -> ResponseFrame {
    let snapshot = shard.snapshot();
    let mut fbb = FlatBufferBuilder::new();
    let topics: Vec<_> = snapshot
        .topics
        .values()
        .filter(|t| describable(shard, access, &t.name))
        .map(|t| {
            let name = fbb.create_string(&t.name);
            wire::TopicSummary::create(
                &mut fbb,
                &wire::TopicSummaryArgs {
                    name: Some(name),
                    topic_id: t.id.0,
                    partitions: t.partitions,
                },
            )
        })
        .collect();
    let topics = fbb.create_vector(&topics);
    let body = wire::ListTopicsResponse::create(
        &mut fbb,
        &wire::ListTopicsResponseArgs {
            topics: Some(topics),
        },
    );
    finish(
        fbb,
        corr,
        None,
        wire::Response::ListTopicsResponse,
        Some(body.as_union_value()),
    )
}

async fn describe_topic(shard: &Rc<Shard>, corr: u64, name: &str) -> ResponseFrame {
    let described = match broker::describe_topic(shard, name).await {
        Ok(d) => d,
        Err(e) => return refused(shard, "DescribeTopic", corr, &e),
    };
    let mut fbb = FlatBufferBuilder::new();
    let meta = described.meta.clone();
    let parts: Vec<_> = described
        .partitions
        .iter()
        .map(|s| {
            let state = meta.partition_replicas(s.partition);
            let (replicas, isr) = match &state {
                Some(r) => (
                    Some(fbb.create_vector(&r.replicas)),
                    Some(fbb.create_vector(&r.isr)),
                ),
                None => (None, None),
            };
            let leader = meta
                .node_of(s.partition)
                .map_or(shard.config.node_id, |n| n as i32);
            wire::PartitionDescription::create(
                &mut fbb,
                &wire::PartitionDescriptionArgs {
                    partition: s.partition,
                    shard: s.shard.0,
                    error: topic_code(&s.error),
                    start_offset: s.start.0 as i64,
                    end_offset: s.end.0 as i64,
                    high_watermark: s.high_watermark.0 as i64,
                    size_bytes: s.bytes,
                    segments: s.segments,
                    leader,
                    replicas,
                    isr,
                    leader_epoch: meta.leader_epoch(s.partition) as i32,
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let fb_name = fbb.create_string(name);
    let config = config_to_wire(&described.meta.config, &mut fbb);
    let body = wire::DescribeTopicResponse::create(
        &mut fbb,
        &wire::DescribeTopicResponseArgs {
            name: Some(fb_name),
            topic_id: described.meta.id.0,
            config: Some(config),
            partitions: Some(parts),
        },
    );
    finish(
        fbb,
        corr,
        None,
        wire::Response::DescribeTopicResponse,
        Some(body.as_union_value()),
    )
}

fn produce_response(corr: u64, response: &ProduceResponse) -> ResponseFrame {
    let mut fbb = FlatBufferBuilder::new();
    let mut topic_offsets = Vec::with_capacity(response.len());
    for topic in response {
        let parts: Vec<_> = topic
            .partitions
            .iter()
            .map(|p| {
                let message = p
                    .result
                    .as_ref()
                    .err()
                    .map(|e| fbb.create_string(&e.message));
                let (base, start, append_time) = p.result.as_ref().map_or((-1, -1, -1), |a| {
                    (
                        a.base_offset.0 as i64,
                        a.log_start_offset.0 as i64,
                        a.log_append_time.map_or(-1, |t| t.0),
                    )
                });
                wire::ProducePartitionResult::create(
                    &mut fbb,
                    &wire::ProducePartitionResultArgs {
                        partition: p.partition,
                        error: code_of(&p.result),
                        error_message: message,
                        base_offset: base,
                        log_start_offset: start,
                        log_append_time: append_time,
                    },
                )
            })
            .collect();
        let parts = fbb.create_vector(&parts);
        let name = fbb.create_string(&topic.name);
        topic_offsets.push(wire::ProduceTopicResult::create(
            &mut fbb,
            &wire::ProduceTopicResultArgs {
                topic: Some(name),
                error: topic_code(&topic.error),
                partitions: Some(parts),
            },
        ));
    }
    let topics = fbb.create_vector(&topic_offsets);
    let body = wire::ProduceResponse::create(
        &mut fbb,
        &wire::ProduceResponseArgs {
            topics: Some(topics),
        },
    );
    finish(
        fbb,
        corr,
        None,
        wire::Response::ProduceResponse,
        Some(body.as_union_value()),
    )
}

/// The bytes of a partition's fetched batches as one vector. Small ones
/// are copied in (a chunk as it is, several joined through a reused
/// scratch buffer); from [`SPLICE_BYTES_MIN`] on, the vector is a hole
/// that the chunks fill when the frame is written (`holes`), so record
/// data goes to the socket from the buffers the read produced.
fn records_vector<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    chunks: &[Bytes],
    holes: &mut Vec<(usize, Vec<Bytes>)>,
) -> Option<WIPOffset<flatbuffers::Vector<'a, u8>>> {
    let bytes: usize = chunks.iter().map(Bytes::len).sum();
    if bytes >= SPLICE_BYTES_MIN {
        // A vector of zero-sized `Hole`s: the loop writing it is empty.
        let vector = fbb.create_vector(&vec![Hole; bytes]);
        // The vector's length field, then its bytes; offsets count from the
        // end of the buffer, which stays put as the builder grows.
        let from_end = vector.value() as usize - std::mem::size_of::<u32>();
        holes.push((from_end, chunks.to_vec()));
        return Some(vector);
    }
    match chunks.len() {
        0 => None,
        1 => Some(fbb.create_vector(&chunks[0][..])),
        _ => Some(JOIN_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            for chunk in chunks {
                scratch.extend_from_slice(chunk);
            }
            fbb.create_vector(&scratch[..])
        })),
    }
}

/// Record data smaller than this is copied into the response (a separate
/// write costs more than the copy).
const SPLICE_BYTES_MIN: usize = 64 << 10;

fn fetch_response(corr: u64, response: &FetchResponse) -> ResponseFrame {
    let bytes: usize = response
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.result.as_ref().ok())
        .map(|d| d.bytes)
        .sum();
    let mut fbb = FlatBufferBuilder::with_capacity(bytes + 1024);
    let mut holes = Vec::new();
    let mut topic_results = Vec::with_capacity(response.len());
    for topic in response {
        let parts: Vec<_> = topic
            .partitions
            .iter()
            .map(|slot| {
                let diverging = slot
                    .result
                    .as_ref()
                    .ok()
                    .and_then(|d| d.diverging)
                    .map_or((-1, -1), |(epoch, end)| (epoch, end.0 as i64));
                let (error, message, hw, start, records) = match &slot.result {
                    Ok(data) => (
                        ErrorCode::NONE,
                        None,
                        data.high_watermark.0 as i64,
                        data.log_start.0 as i64,
                        records_vector(&mut fbb, &data.chunks, &mut holes),
                    ),
                    Err(failure) => {
                        let message = Some(fbb.create_string(&failure.error.message));
                        let (start, end) = failure
                            .range
                            .map_or((-1, -1), |(s, e)| (s.0 as i64, e.0 as i64));
                        (error_code(failure.error.kind), message, end, start, None)
                    }
                };
                wire::FetchPartitionResult::create(
                    &mut fbb,
                    &wire::FetchPartitionResultArgs {
                        partition: slot.partition,
                        error,
                        error_message: message,
                        high_watermark: hw,
                        log_start_offset: start,
                        records,
                        diverging_epoch: diverging.0,
                        diverging_end_offset: diverging.1,
                    },
                )
            })
            .collect();
        let parts = fbb.create_vector(&parts);
        let name = fbb.create_string(&topic.name);
        topic_results.push(wire::FetchTopicResult::create(
            &mut fbb,
            &wire::FetchTopicResultArgs {
                topic: Some(name),
                error: topic_code(&topic.error),
                partitions: Some(parts),
            },
        ));
    }
    let topics = fbb.create_vector(&topic_results);
    let body = wire::FetchResponse::create(
        &mut fbb,
        &wire::FetchResponseArgs {
            topics: Some(topics),
        },
    );
    let mut frame = finish(
        fbb,
        corr,
        None,
        wire::Response::FetchResponse,
        Some(body.as_union_value()),
    );
    frame.holes = holes;
    frame
}

fn list_offsets_response(corr: u64, response: &ListOffsetsResponse) -> ResponseFrame {
    let mut fbb = FlatBufferBuilder::new();
    let mut topic_results = Vec::new();
    for topic in response {
        let parts: Vec<_> = topic
            .partitions
            .iter()
            .map(|p| {
                let message = p
                    .result
                    .as_ref()
                    .err()
                    .map(|e| fbb.create_string(&e.message));
                let (offset, timestamp) = match &p.result {
                    Ok(Some((offset, ts))) => (offset.0 as i64, ts.map_or(-1, |t| t.0)),
                    _ => (-1, -1),
                };
                wire::ListOffsetsPartitionResult::create(
                    &mut fbb,
                    &wire::ListOffsetsPartitionResultArgs {
                        partition: p.partition,
                        error: code_of(&p.result),
                        error_message: message,
                        offset,
                        timestamp,
                    },
                )
            })
            .collect();
        let parts = fbb.create_vector(&parts);
        let name = fbb.create_string(&topic.name);
        topic_results.push(wire::ListOffsetsTopicResult::create(
            &mut fbb,
            &wire::ListOffsetsTopicResultArgs {
                topic: Some(name),
                error: topic_code(&topic.error),
                partitions: Some(parts),
            },
        ));
    }
    let topics = fbb.create_vector(&topic_results);
    let body = wire::ListOffsetsResponse::create(
        &mut fbb,
        &wire::ListOffsetsResponseArgs {
            topics: Some(topics),
        },
    );
    finish(
        fbb,
        corr,
        None,
        wire::Response::ListOffsetsResponse,
        Some(body.as_union_value()),
    )
}

async fn stats(shard: &Rc<Shard>, corr: u64) -> ResponseFrame {
    let all = shard.stats().await;
    let mut fbb = FlatBufferBuilder::new();
    let shards: Vec<_> = all
        .iter()
        .map(|s| {
            wire::ShardStats::create(
                &mut fbb,
                &wire::ShardStatsArgs {
                    shard: s.shard,
                    port: s.port,
                    connections: s.connections,
                    requests: s.requests,
                    cross_core_hops: s.hops,
                    bytes_in: s.bytes_in,
                    bytes_out: s.bytes_out,
                    partitions: s.partitions,
                    errors: s.errors,
                    cpu_us: s.cpu_us,
                    disk_read_bytes: s.disk_read_bytes,
                    cache_read_bytes: s.cache_read_bytes,
                },
            )
        })
        .collect();
    let shards = fbb.create_vector(&shards);
    let (user, system) = crate::support::process_cpu_us();
    let body = wire::StatsResponse::create(
        &mut fbb,
        &wire::StatsResponseArgs {
            shards: Some(shards),
            process_cpu_user_us: user,
            process_cpu_system_us: system,
        },
    );
    finish(
        fbb,
        corr,
        None,
        wire::Response::StatsResponse,
        Some(body.as_union_value()),
    )
}
