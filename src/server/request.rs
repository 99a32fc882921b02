//! Turns a verified request frame into an owned [`Request`], so the frame's
//! borrow ends before any `.await`. Produce record data is split out of the
//! frame buffer as `BytesMut` pieces that share its allocation: no copy.

use crate::meta::TopicConfig;
use crate::protocol::{parse_request, wire};
use crate::shard::ApiError;
use bytes::{Buf, BytesMut};
use wire::ErrorCode;

pub struct ProduceTopic {
    pub name: String,
    pub partitions: Vec<(u32, BytesMut)>,
}

pub struct FetchTopic {
    pub name: String,
    /// (partition, offset, max bytes)
    pub partitions: Vec<(u32, i64, u32)>,
}

pub struct OffsetsTopic {
    pub name: String,
    /// (partition, spec, timestamp)
    pub partitions: Vec<(u32, wire::OffsetSpec, i64)>,
}

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
        config: Result<TopicConfig, String>,
    },
    DeleteTopic {
        name: String,
    },
    ListTopics,
    DescribeTopic {
        name: String,
    },
    Produce {
        acks: i8,
        timeout_ms: u32,
        topics: Vec<ProduceTopic>,
    },
    Fetch {
        max_wait_ms: u32,
        min_bytes: u32,
        max_bytes: u32,
        topics: Vec<FetchTopic>,
    },
    ListOffsets {
        topics: Vec<OffsetsTopic>,
    },
    Stats,
    /// A union member this broker does not know.
    Unknown(u8),
}

impl Request {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Handshake { .. } => "handshake",
            Request::Metadata { .. } => "metadata",
            Request::CreateTopic { .. } => "create_topic",
            Request::DeleteTopic { .. } => "delete_topic",
            Request::ListTopics => "list_topics",
            Request::DescribeTopic { .. } => "describe_topic",
            Request::Produce { .. } => "produce",
            Request::Fetch { .. } => "fetch",
            Request::ListOffsets { .. } => "list_offsets",
            Request::Stats => "stats",
            Request::Unknown(_) => "unknown",
        }
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::INVALID_REQUEST, message)
}

fn required<'a>(name: Option<&'a str>, what: &str) -> Result<&'a str, ApiError> {
    name.ok_or_else(|| invalid(format!("{what} is missing")))
}

/// Verifies `frame` and decodes it. On failure returns the correlation id
/// (0 if the frame did not verify) and the error to answer with.
pub fn decode(frame: BytesMut, defaults: &TopicConfig) -> Result<(u64, Request), (u64, ApiError)> {
    let envelope = parse_request(&frame)
        .map_err(|e| (0, invalid(format!("frame is not a valid request: {e}"))))?;
    let corr = envelope.correlation_id();
    let fail = |e: ApiError| (corr, e);
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
                config: defaults.overlay(c.config()),
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
            let (acks, timeout_ms) = (p.acks(), p.timeout_ms());
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
            // Carve the frame into disjoint pieces in frame order.
            let mut order: Vec<usize> = (0..spans.len()).collect();
            order.sort_by_key(|&i| spans[i].0);
            let mut rest = frame;
            let mut consumed = 0usize;
            let mut pieces: Vec<Option<BytesMut>> = (0..spans.len()).map(|_| None).collect();
            for i in order {
                let (start, len, _, _) = spans[i];
                if len == 0 {
                    pieces[i] = Some(BytesMut::new());
                    continue;
                }
                if start < consumed {
                    return Err((
                        corr,
                        invalid("two partitions' record vectors overlap in the frame"),
                    ));
                }
                rest.advance(start - consumed);
                pieces[i] = Some(rest.split_to(len));
                consumed = start + len;
            }
            for (i, (_, _, t, partition)) in spans.iter().enumerate() {
                topics[*t]
                    .partitions
                    .push((*partition, pieces[i].take().expect("every span was carved")));
            }
            Request::Produce {
                acks,
                timeout_ms,
                topics,
            }
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
                    .map(|p| (p.partition(), p.offset(), p.max_bytes()))
                    .collect();
                topics.push(FetchTopic {
                    name: required(topic.topic(), "fetch topic name")
                        .map_err(fail)?
                        .to_string(),
                    partitions,
                });
            }
            Request::Fetch {
                max_wait_ms: f.max_wait_ms(),
                min_bytes: f.min_bytes(),
                max_bytes: f.max_bytes(),
                topics,
            }
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
                    .map(|p| (p.partition(), p.spec(), p.timestamp()))
                    .collect();
                topics.push(OffsetsTopic {
                    name: required(topic.topic(), "list offsets topic name")
                        .map_err(fail)?
                        .to_string(),
                    partitions,
                });
            }
            Request::ListOffsets { topics }
        }
        R::StatsRequest => Request::Stats,
        other => Request::Unknown(other.0),
    };
    Ok((corr, request))
}
