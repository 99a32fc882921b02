//! One handler per request kind: resolve names against the metadata
//! snapshot, route partitions to their shards, and build the response
//! flatbuffer (finished size-prefixed: a complete frame).

use super::request::Request;
use crate::constants::FETCH_WAIT_MS_MAX;
use crate::protocol::{PROTOCOL_VERSION, error_name, wire};
use crate::shard::{ApiError, FetchItem, OffsetAnswer, OffsetQuery, ProduceItem, Shard};

/// Per topic: name, topic-level error, and per partition a pair of numbers
/// (base and start offsets, or offset and timestamp) or an error.
type TopicAnswers = Vec<(String, ErrorCode, Vec<(u32, OffsetAnswer)>)>;
use crate::types::Offset;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use wire::ErrorCode;

/// A response ready to write: a size-prefixed flatbuffer.
pub struct ResponseFrame {
    buf: Vec<u8>,
    head: usize,
}

impl ResponseFrame {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.head..]
    }
}

thread_local! {
    /// Scratch space to join a partition's record chunks before they are
    /// copied into a response.
    static JOIN_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn finish(
    mut fbb: FlatBufferBuilder<'static>,
    corr: u64,
    error: Option<&ApiError>,
    kind: wire::Response,
    body: Option<WIPOffset<UnionWIPOffset>>,
) -> ResponseFrame {
    let message = error.map(|e| fbb.create_string(&e.message));
    let envelope = wire::ResponseEnvelope::create(
        &mut fbb,
        &wire::ResponseEnvelopeArgs {
            correlation_id: corr,
            error: error.map_or(ErrorCode::NONE, |e| e.code),
            error_message: message,
            response_type: kind,
            response: body,
        },
    );
    fbb.finish_size_prefixed(envelope, None);
    let (buf, head) = fbb.collapse();
    ResponseFrame { buf, head }
}

/// A response that carries only an error.
pub fn error_response(corr: u64, error: &ApiError) -> ResponseFrame {
    finish(
        FlatBufferBuilder::new(),
        corr,
        Some(error),
        wire::Response::NONE,
        None,
    )
}

fn code_of<T>(r: &Result<T, ApiError>) -> ErrorCode {
    r.as_ref().err().map_or(ErrorCode::NONE, |e| e.code)
}

/// Serves one request; `None` for requests that get no response
/// (produce with acks 0).
pub async fn handle(shard: &Rc<Shard>, corr: u64, request: Request) -> Option<ResponseFrame> {
    let kind = request.kind();
    let response = match request {
        Request::Handshake { version, client_id } => handshake(shard, corr, version, &client_id),
        Request::Metadata { topics } => metadata(shard, corr, topics),
        Request::CreateTopic {
            name,
            partitions,
            config,
        } => create_topic(shard, corr, name, partitions, config).await,
        Request::DeleteTopic { name } => match shard.delete_topic(name).await {
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
            Err(e) => error_response(corr, &e),
        },
        Request::ListTopics => list_topics(shard, corr),
        Request::DescribeTopic { name } => describe_topic(shard, corr, &name).await,
        Request::Produce {
            acks,
            timeout_ms,
            topics,
        } => return produce(shard, corr, acks, timeout_ms, topics).await,
        Request::Fetch {
            max_wait_ms,
            min_bytes,
            max_bytes,
            topics,
        } => fetch(shard, corr, max_wait_ms, min_bytes, max_bytes, topics).await,
        Request::ListOffsets { topics } => list_offsets(shard, corr, topics).await,
        Request::Stats => stats(shard, corr).await,
        Request::Unknown(k) => error_response(
            corr,
            &ApiError::new(
                ErrorCode::UNKNOWN_REQUEST_KIND,
                format!(
                    "request kind {k} is unknown to this broker (protocol version {PROTOCOL_VERSION})"
                ),
            ),
        ),
    };
    let _ = kind;
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
        ApiError::new(ErrorCode::UNSUPPORTED_VERSION, format!("client {client_id:?} speaks protocol {version}; this broker speaks {PROTOCOL_VERSION}"))
    });
    finish(
        fbb,
        corr,
        error.as_ref(),
        wire::Response::HandshakeResponse,
        Some(body.as_union_value()),
    )
}

fn metadata(shard: &Shard, corr: u64, names: Option<Vec<String>>) -> ResponseFrame {
    let snapshot = shard.snapshot();
    let mut fbb = FlatBufferBuilder::new();
    let wanted: Vec<String> =
        names.unwrap_or_else(|| snapshot.topics.keys().map(|k| k.to_string()).collect());
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
                    error: ErrorCode::UNKNOWN_TOPIC,
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
            shared_port: shard.shared_port,
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

async fn create_topic(
    shard: &Rc<Shard>,
    corr: u64,
    name: String,
    partitions: u32,
    config: Result<crate::meta::TopicConfig, String>,
) -> ResponseFrame {
    let config = match config {
        Ok(c) => c,
        Err(e) => return error_response(corr, &ApiError::new(ErrorCode::INVALID_CONFIG, e)),
    };
    match shard.create_topic(name, partitions, config).await {
        Ok(meta) => {
            let mut fbb = FlatBufferBuilder::new();
            let config = meta.config.to_wire(&mut fbb);
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
        Err(e) => error_response(corr, &e),
    }
}

fn list_topics(shard: &Shard, corr: u64) -> ResponseFrame {
    let snapshot = shard.snapshot();
    let mut fbb = FlatBufferBuilder::new();
    let topics: Vec<_> = snapshot
        .topics
        .values()
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

fn unknown_topic(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UNKNOWN_TOPIC,
        format!("topic {name:?} does not exist"),
    )
}

async fn describe_topic(shard: &Rc<Shard>, corr: u64, name: &str) -> ResponseFrame {
    let Some(meta) = shard.snapshot().topic(name).cloned() else {
        return error_response(corr, &unknown_topic(name));
    };
    let states = shard.describe(meta.id, meta.partitions).await;
    let mut fbb = FlatBufferBuilder::new();
    let parts: Vec<_> = states
        .iter()
        .map(|s| {
            wire::PartitionDescription::create(
                &mut fbb,
                &wire::PartitionDescriptionArgs {
                    partition: s.partition,
                    shard: s.shard.0,
                    error: s.error.as_ref().map_or(ErrorCode::NONE, |e| e.code),
                    start_offset: s.start.0 as i64,
                    end_offset: s.end.0 as i64,
                    high_watermark: s.high_watermark.0 as i64,
                    size_bytes: s.bytes,
                    segments: s.segments,
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let fb_name = fbb.create_string(name);
    let config = meta.config.to_wire(&mut fbb);
    let body = wire::DescribeTopicResponse::create(
        &mut fbb,
        &wire::DescribeTopicResponseArgs {
            name: Some(fb_name),
            topic_id: meta.id.0,
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

async fn produce(
    shard: &Rc<Shard>,
    corr: u64,
    acks: i8,
    timeout_ms: u32,
    topics: Vec<super::request::ProduceTopic>,
) -> Option<ResponseFrame> {
    if !matches!(acks, -1..=1) {
        let e = ApiError::new(
            ErrorCode::INVALID_ARGUMENT,
            format!("acks must be 0, 1 or -1 (all), got {acks}"),
        );
        return Some(error_response(corr, &e));
    }
    let snapshot = shard.snapshot();
    // results[topic][partition] = (partition, result)
    let mut results: TopicAnswers = Vec::with_capacity(topics.len());
    let mut slots = Vec::new(); // idx -> (topic, position)
    let mut items = Vec::new();
    for (t, topic) in topics.into_iter().enumerate() {
        let meta = snapshot.topic(&topic.name).cloned();
        let topic_error = if meta.is_none() {
            ErrorCode::UNKNOWN_TOPIC
        } else {
            ErrorCode::NONE
        };
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for (partition, data) in topic.partitions {
            let pending = Err(ApiError::new(
                ErrorCode::REQUEST_TIMED_OUT,
                format!("not appended within {timeout_ms} ms"),
            ));
            let result = match &meta {
                None => Err(unknown_topic(&topic.name)),
                Some(m) if partition >= m.partitions => Err(ApiError::new(
                    ErrorCode::UNKNOWN_PARTITION,
                    format!(
                        "topic {:?} has partitions 0..{}, not {partition}",
                        topic.name, m.partitions
                    ),
                )),
                Some(_) if data.is_empty() => Err(ApiError::new(
                    ErrorCode::EMPTY_PRODUCE,
                    format!("no records for partition {partition}"),
                )),
                Some(m) => {
                    items.push(ProduceItem {
                        idx: slots.len(),
                        topic: m.id,
                        partition,
                        data,
                    });
                    slots.push((t, parts.len()));
                    pending
                }
            };
            parts.push((partition, result));
        }
        results.push((topic.name, topic_error, parts));
    }
    let work = shard.produce(items, acks);
    let timer = glommio::timer::sleep(Duration::from_millis(timeout_ms.max(1) as u64));
    futures::pin_mut!(work, timer);
    if let futures::future::Either::Left((outcomes, _)) = futures::future::select(work, timer).await
    {
        for o in outcomes {
            let (t, p) = slots[o.idx];
            results[t].2[p].1 = o
                .result
                .map(|info| (info.base_offset.0 as i64, info.log_start_offset.0 as i64));
        }
    }
    if acks == 0 {
        return None;
    }
    let mut fbb = FlatBufferBuilder::new();
    let mut topic_offsets = Vec::with_capacity(results.len());
    for (name, topic_error, parts) in &results {
        let parts: Vec<_> = parts
            .iter()
            .map(|(partition, result)| {
                let message = result.as_ref().err().map(|e| fbb.create_string(&e.message));
                let (base, start) = result.as_ref().map_or((-1, -1), |r| *r);
                wire::ProducePartitionResult::create(
                    &mut fbb,
                    &wire::ProducePartitionResultArgs {
                        partition: *partition,
                        error: code_of(result),
                        error_message: message,
                        base_offset: base,
                        log_start_offset: start,
                    },
                )
            })
            .collect();
        let parts = fbb.create_vector(&parts);
        let name = fbb.create_string(name);
        topic_offsets.push(wire::ProduceTopicResult::create(
            &mut fbb,
            &wire::ProduceTopicResultArgs {
                topic: Some(name),
                error: *topic_error,
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
    Some(finish(
        fbb,
        corr,
        None,
        wire::Response::ProduceResponse,
        Some(body.as_union_value()),
    ))
}

/// One partition's slot in a fetch response.
struct FetchSlot {
    partition: u32,
    result: Result<crate::shard::FetchData, (ApiError, Option<(Offset, Offset)>)>,
}

async fn fetch(
    shard: &Rc<Shard>,
    corr: u64,
    max_wait_ms: u32,
    min_bytes: u32,
    max_bytes: u32,
    topics: Vec<super::request::FetchTopic>,
) -> ResponseFrame {
    let snapshot = shard.snapshot();
    let deadline =
        Instant::now() + Duration::from_millis((max_wait_ms as u64).min(FETCH_WAIT_MS_MAX));
    let mut layout: Vec<(String, ErrorCode, Vec<FetchSlot>)> = Vec::with_capacity(topics.len());
    let mut slots = Vec::new();
    let mut items = Vec::new();
    for (t, topic) in topics.into_iter().enumerate() {
        let meta = snapshot.topic(&topic.name).cloned();
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for (partition, offset, part_max) in topic.partitions {
            let error = match &meta {
                None => Some(unknown_topic(&topic.name)),
                Some(m) if partition >= m.partitions => Some(ApiError::new(
                    ErrorCode::UNKNOWN_PARTITION,
                    format!(
                        "topic {:?} has partitions 0..{}, not {partition}",
                        topic.name, m.partitions
                    ),
                )),
                Some(_) if offset < 0 => Some(ApiError::new(
                    ErrorCode::OFFSET_OUT_OF_RANGE,
                    format!("offset {offset} is negative"),
                )),
                Some(m) => {
                    items.push(FetchItem {
                        idx: slots.len(),
                        topic: m.id,
                        partition,
                        offset: Offset(offset as u64),
                        max_bytes: part_max.max(1) as usize,
                    });
                    slots.push((t, parts.len()));
                    None
                }
            };
            let result = match error {
                Some(e) => Err((e, None)),
                None => Ok(crate::shard::FetchData::default()),
            };
            parts.push(FetchSlot { partition, result });
        }
        let topic_error = if meta.is_none() {
            ErrorCode::UNKNOWN_TOPIC
        } else {
            ErrorCode::NONE
        };
        layout.push((topic.name, topic_error, parts));
    }
    // Read; if less than min_bytes arrived, wait for any partition's high
    // watermark to move past what this round saw, then read again.
    // Bounded by the deadline: each wait ends at it at the latest.
    let mut outcomes;
    loop {
        outcomes = shard.fetch(items.clone()).await;
        let mut total = 0usize;
        let mut failed = false;
        for o in &outcomes {
            match &o.result {
                Ok(data) => total += data.bytes,
                Err(_) => failed = true,
            }
        }
        if total >= min_bytes as usize
            || failed
            || items.is_empty()
            || Instant::now() >= deadline
            || shard.shutdown.is_raised()
        {
            break;
        }
        let waits: Vec<FetchItem> = outcomes
            .iter()
            .map(|o| {
                let item = &items[o.idx];
                let seen = o
                    .result
                    .as_ref()
                    .ok()
                    .map_or(item.offset, |d| d.high_watermark.max(item.offset));
                FetchItem {
                    offset: seen,
                    ..item.clone()
                }
            })
            .collect();
        shard.wait_for_data(waits, deadline).await;
    }
    for o in outcomes {
        let (t, p) = slots[o.idx];
        layout[t].2[p].result = o.result;
    }
    // The response's max_bytes: the first partition with data always gets
    // its batches (so a consumer never stalls); later ones only if they fit.
    let mut budget_used = 0usize;
    for (_, _, parts) in layout.iter_mut() {
        for slot in parts.iter_mut() {
            if let Ok(data) = &mut slot.result
                && data.bytes > 0
            {
                if budget_used > 0 && budget_used + data.bytes > max_bytes as usize {
                    data.chunks.clear();
                    data.bytes = 0;
                } else {
                    budget_used += data.bytes;
                }
            }
        }
    }
    let mut fbb = FlatBufferBuilder::with_capacity(budget_used + 1024);
    let mut topic_results = Vec::with_capacity(layout.len());
    for (name, topic_error, parts) in &layout {
        let parts: Vec<_> = parts
            .iter()
            .map(|slot| {
                let (error, message, hw, start, records) = match &slot.result {
                    Ok(data) => {
                        let records = match data.chunks.len() {
                            0 => None,
                            1 => Some(fbb.create_vector(&data.chunks[0][..])),
                            _ => Some(JOIN_SCRATCH.with(|scratch| {
                                let mut scratch = scratch.borrow_mut();
                                scratch.clear();
                                for chunk in &data.chunks {
                                    scratch.extend_from_slice(chunk);
                                }
                                fbb.create_vector(&scratch[..])
                            })),
                        };
                        (
                            ErrorCode::NONE,
                            None,
                            data.high_watermark.0 as i64,
                            data.log_start.0 as i64,
                            records,
                        )
                    }
                    Err((e, range)) => {
                        let message = Some(fbb.create_string(&e.message));
                        let (start, end) =
                            range.map_or((-1, -1), |(s, e)| (s.0 as i64, e.0 as i64));
                        (e.code, message, end, start, None)
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
                    },
                )
            })
            .collect();
        let parts = fbb.create_vector(&parts);
        let name = fbb.create_string(name);
        topic_results.push(wire::FetchTopicResult::create(
            &mut fbb,
            &wire::FetchTopicResultArgs {
                topic: Some(name),
                error: *topic_error,
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
    finish(
        fbb,
        corr,
        None,
        wire::Response::FetchResponse,
        Some(body.as_union_value()),
    )
}

async fn list_offsets(
    shard: &Rc<Shard>,
    corr: u64,
    topics: Vec<super::request::OffsetsTopic>,
) -> ResponseFrame {
    let snapshot = shard.snapshot();
    let mut layout: TopicAnswers = Vec::new();
    let mut slots = Vec::new();
    let mut queries = Vec::new();
    for (t, topic) in topics.into_iter().enumerate() {
        let meta = snapshot.topic(&topic.name).cloned();
        let mut parts = Vec::new();
        for (partition, spec, timestamp) in topic.partitions {
            let result = match &meta {
                None => Err(unknown_topic(&topic.name)),
                Some(m) if partition >= m.partitions => Err(ApiError::new(
                    ErrorCode::UNKNOWN_PARTITION,
                    format!(
                        "topic {:?} has partitions 0..{}, not {partition}",
                        topic.name, m.partitions
                    ),
                )),
                Some(m) => {
                    queries.push(OffsetQuery {
                        idx: slots.len(),
                        topic: m.id,
                        partition,
                        spec,
                        timestamp,
                    });
                    slots.push((t, parts.len()));
                    Ok((-1, -1))
                }
            };
            parts.push((partition, result));
        }
        let topic_error = if meta.is_none() {
            ErrorCode::UNKNOWN_TOPIC
        } else {
            ErrorCode::NONE
        };
        layout.push((topic.name, topic_error, parts));
    }
    for (idx, result) in shard.list_offsets(queries).await {
        let (t, p) = slots[idx];
        layout[t].2[p].1 = result;
    }
    let mut fbb = FlatBufferBuilder::new();
    let mut topic_results = Vec::new();
    for (name, topic_error, parts) in &layout {
        let parts: Vec<_> = parts
            .iter()
            .map(|(partition, result)| {
                let message = result.as_ref().err().map(|e| fbb.create_string(&e.message));
                let (offset, timestamp) = result.as_ref().map_or((-1, -1), |r| *r);
                wire::ListOffsetsPartitionResult::create(
                    &mut fbb,
                    &wire::ListOffsetsPartitionResultArgs {
                        partition: *partition,
                        error: code_of(result),
                        error_message: message,
                        offset,
                        timestamp,
                    },
                )
            })
            .collect();
        let parts = fbb.create_vector(&parts);
        let name = fbb.create_string(name);
        topic_results.push(wire::ListOffsetsTopicResult::create(
            &mut fbb,
            &wire::ListOffsetsTopicResultArgs {
                topic: Some(name),
                error: *topic_error,
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
                },
            )
        })
        .collect();
    let shards = fbb.create_vector(&shards);
    let body = wire::StatsResponse::create(
        &mut fbb,
        &wire::StatsResponseArgs {
            shards: Some(shards),
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

/// Text for logs: `UNKNOWN_TOPIC: topic "x" does not exist`.
pub fn describe_error(e: &ApiError) -> String {
    format!("{}: {}", error_name(e.code), e.message)
}
