//! `corelog group`: list, describe, delete consumer groups and reset their
//! offsets. Groups are served on the Kafka listener, so these commands
//! speak Kafka (one blocking connection, the requests Kafka's own
//! `kafka-consumer-groups` tool sends) to `--kafka-broker`.

use crate::cli::out::outln;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub command: GroupCommand,
    /// The broker's Kafka listener.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    pub kafka_broker: SocketAddr,
}

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// Every group: name, protocol type, state.
    List,
    /// A group's state, members and their partitions, and per partition the
    /// committed offset, the log end offset and the lag.
    Describe { group: String },
    /// Delete a group with no members and its committed offsets.
    Delete { group: String },
    /// Move a group's committed offsets for a topic (the group must have no
    /// members). Without --execute, prints the plan only.
    ResetOffsets(ResetArgs),
}

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    pub group: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    #[arg(long, group = "to")]
    pub to_latest: bool,
    #[arg(long, group = "to")]
    pub to_offset: Option<i64>,
    /// RFC 3339 / ISO 8601 time, e.g. 2026-11-28T10:00:00Z: the first
    /// offset at or after it.
    #[arg(long, group = "to")]
    pub to_datetime: Option<String>,
    /// Move each committed offset by N (negative: back).
    #[arg(long, group = "to", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Commit the new offsets (default: print the plan only).
    #[arg(long)]
    pub execute: bool,
}

/// One blocking Kafka connection (also `corelog user` and `corelog acl`'s).
pub(super) struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    pub(super) fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connecting to the Kafka listener {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            correlation: 0,
        })
    }

    pub(super) fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, String> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("corelog-cli")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .and_then(|()| body.encode(&mut buf, version))
            .map_err(|e| format!("encoding {api:?}: {e}"))?;
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("sending {api:?}: {e}"))?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| format!("reading the {api:?} answer: {e}"))?;
        let n = i32::from_be_bytes(len);
        if !(4..=64 << 20).contains(&n) {
            return Err(format!("{api:?} answer of {n} bytes"));
        }
        let mut answer = vec![0u8; n as usize];
        self.stream
            .read_exact(&mut answer)
            .map_err(|e| format!("reading the {api:?} answer: {e}"))?;
        let mut bytes = Bytes::from(answer);
        ResponseHeader::decode(&mut bytes, api.response_header_version(version))
            .and_then(|_| Resp::decode(&mut bytes, version))
            .map_err(|e| format!("decoding the {api:?} answer: {e}"))
    }
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn check(code: i16, what: &str) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let name = kafka_protocol::error::ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error {code}"));
    Err(format!("{what}: {name} ({code})"))
}

pub fn run(args: GroupArgs) -> Result<(), String> {
    let mut conn = Conn::open(args.kafka_broker)?;
    match args.command {
        GroupCommand::List => list(&mut conn),
        GroupCommand::Describe { group } => describe(&mut conn, &group),
        GroupCommand::Delete { group } => {
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]);
            let response: DeleteGroupsResponse = conn.call(ApiKey::DeleteGroups, 2, &request)?;
            let code = response.results.first().map_or(-1, |r| r.error_code);
            check(code, &format!("deleting group {group:?}"))?;
            outln!("deleted group {group}");
            Ok(())
        }
        GroupCommand::ResetOffsets(reset) => reset_offsets(&mut conn, reset),
    }
}

fn list(conn: &mut Conn) -> Result<(), String> {
    let response: ListGroupsResponse =
        conn.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default())?;
    check(response.error_code, "listing groups")?;
    outln!("{:<40} {:<10} STATE", "GROUP", "PROTOCOL");
    let mut groups = response.groups;
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    for g in groups {
        outln!(
            "{:<40} {:<10} {}",
            g.group_id.0.as_str(),
            g.protocol_type.as_str(),
            g.group_state.as_str()
        );
    }
    Ok(())
}

/// The partitions in a ConsumerProtocolAssignment, by topic.
fn assigned_partitions(assignment: &Bytes) -> Vec<(String, Vec<i32>)> {
    let mut b = assignment.clone();
    let mut out = Vec::new();
    if b.remaining() < 6 {
        return out;
    }
    b.advance(2);
    let topics = b.get_i32();
    for _ in 0..topics.clamp(0, 100_000) {
        if b.remaining() < 2 {
            break;
        }
        let n = b.get_i16().max(0) as usize;
        if b.remaining() < n + 4 {
            break;
        }
        let name = String::from_utf8_lossy(&b.copy_to_bytes(n)).into_owned();
        let count = b.get_i32().clamp(0, 1_000_000) as usize;
        let mut parts = Vec::new();
        for _ in 0..count {
            if b.remaining() < 4 {
                break;
            }
            parts.push(b.get_i32());
        }
        out.push((name, parts));
    }
    out
}

/// Log end offsets (or offsets at a time) of partitions.
fn list_offsets(
    conn: &mut Conn,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>, String> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(
                            ps.iter()
                                .map(|&p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 5, &request)?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!("offsets of {}/{}", t.name.0.as_str(), p.partition_index),
            )?;
            out.insert((t.name.0.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}

fn committed(conn: &mut Conn, group: &str) -> Result<BTreeMap<(String, i32), i64>, String> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(None);
    let response: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &request)?;
    check(response.error_code, &format!("offsets of group {group:?}"))?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

fn describe_group(
    conn: &mut Conn,
    group: &str,
) -> Result<describe_groups_response::DescribedGroup, String> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let response: DescribeGroupsResponse = conn.call(ApiKey::DescribeGroups, 5, &request)?;
    let g = response
        .groups
        .into_iter()
        .next()
        .ok_or("the broker described no group")?;
    check(g.error_code, &format!("describing group {group:?}"))?;
    Ok(g)
}

/// A consumer-protocol (KIP-848) group, or `None` for a classic one.
fn describe_consumer_group(
    conn: &mut Conn,
    group: &str,
) -> Result<Option<consumer_group_describe_response::DescribedGroup>, String> {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    let response: ConsumerGroupDescribeResponse =
        conn.call(ApiKey::ConsumerGroupDescribe, 0, &request)?;
    let g = response
        .groups
        .into_iter()
        .next()
        .ok_or("the broker described no group")?;
    // GROUP_ID_NOT_FOUND: no such group, or a classic one.
    if g.error_code == 69 {
        return Ok(None);
    }
    check(g.error_code, &format!("describing group {group:?}"))?;
    Ok(Some(g))
}

fn describe(conn: &mut Conn, group: &str) -> Result<(), String> {
    if let Some(g) = describe_consumer_group(conn, group)? {
        outln!(
            "group {group}: state {}, protocol consumer (KIP-848), assignor {}, group epoch {}, assignment epoch {}, {} member(s)",
            g.group_state.as_str(),
            g.assignor_name.as_str(),
            g.group_epoch,
            g.assignment_epoch,
            g.members.len()
        );
        let text = |a: &consumer_group_describe_response::Assignment| {
            let parts: Vec<String> = a
                .topic_partitions
                .iter()
                .map(|tp| format!("{}{:?}", tp.topic_name.0.as_str(), tp.partitions))
                .collect();
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(" ")
            }
        };
        let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
        for m in &g.members {
            let subscribed: Vec<&str> = m
                .subscribed_topic_names
                .iter()
                .map(|t| t.0.as_str())
                .collect();
            outln!(
                "  member {} epoch {} client {} host {}{}: subscribed {:?}{}; assigned {}; target {}",
                m.member_id.as_str(),
                m.member_epoch,
                m.client_id.as_str(),
                m.client_host.as_str(),
                m.instance_id
                    .as_ref()
                    .map(|i| format!(" instance {}", i.as_str()))
                    .unwrap_or_default(),
                subscribed,
                m.subscribed_topic_regex
                    .as_ref()
                    .map(|r| format!(" regex {:?}", r.as_str()))
                    .unwrap_or_default(),
                text(&m.assignment),
                text(&m.target_assignment),
            );
            for tp in &m.assignment.topic_partitions {
                for p in &tp.partitions {
                    owner.insert((tp.topic_name.0.to_string(), *p), m.member_id.to_string());
                }
            }
        }
        return lag_table(conn, group, owner);
    }
    let g = describe_group(conn, group)?;
    if g.group_state.as_str() == "Dead" {
        return Err(format!("group {group:?} does not exist"));
    }
    outln!(
        "group {group}: state {}, protocol {} {}, {} member(s)",
        g.group_state.as_str(),
        g.protocol_type.as_str(),
        g.protocol_data.as_str(),
        g.members.len()
    );
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &g.members {
        let parts = assigned_partitions(&m.member_assignment);
        let text: Vec<String> = parts.iter().map(|(t, ps)| format!("{t}{ps:?}")).collect();
        outln!(
            "  member {} client {} host {}{}: {}",
            m.member_id.as_str(),
            m.client_id.as_str(),
            m.client_host.as_str(),
            m.group_instance_id
                .as_ref()
                .map(|i| format!(" instance {}", i.as_str()))
                .unwrap_or_default(),
            if text.is_empty() {
                "no partitions".to_string()
            } else {
                text.join(" ")
            }
        );
        for (t, ps) in parts {
            for p in ps {
                owner.insert((t.clone(), p), m.member_id.to_string());
            }
        }
    }
    lag_table(conn, group, owner)
}

/// Each partition the group committed or owns: committed offset, log end,
/// lag and owner.
fn lag_table(
    conn: &mut Conn,
    group: &str,
    owner: BTreeMap<(String, i32), String>,
) -> Result<(), String> {
    let committed = committed(conn, group)?;
    let mut partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
    for k in owner.keys() {
        if !committed.contains_key(k) {
            partitions.push(k.clone());
        }
    }
    partitions.sort();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        list_offsets(conn, &partitions, -1)?
    };
    outln!(
        "{:<30} {:>9} {:>14} {:>14} {:>10}  MEMBER",
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "LOG-END",
        "LAG"
    );
    for key in &partitions {
        let end = ends.get(key).copied();
        let done = committed.get(key).copied();
        let lag = match (done, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            (None, Some(e)) => e.to_string(),
            _ => "-".into(),
        };
        outln!(
            "{:<30} {:>9} {:>14} {:>14} {:>10}  {}",
            key.0,
            key.1,
            done.map_or("-".into(), |c| c.to_string()),
            end.map_or("-".into(), |e| e.to_string()),
            lag,
            owner.get(key).map_or("-", |m| m.as_str())
        );
    }
    Ok(())
}

fn reset_offsets(conn: &mut Conn, args: ResetArgs) -> Result<(), String> {
    let g = describe_group(conn, &args.group)?;
    if !g.members.is_empty() {
        return Err(format!(
            "group {:?} has {} active member(s) (state {}); stop them before resetting its offsets",
            args.group,
            g.members.len(),
            g.group_state.as_str()
        ));
    }
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default()
            .with_name(Some(TopicName(s(&args.topic)))),
    ]));
    let response: MetadataResponse = conn.call(ApiKey::Metadata, 9, &metadata)?;
    let topic = response
        .topics
        .first()
        .ok_or("the broker answered no topic")?;
    check(topic.error_code, &format!("topic {:?}", args.topic))?;
    let partitions: Vec<(String, i32)> = topic
        .partitions
        .iter()
        .map(|p| (args.topic.clone(), p.partition_index))
        .collect();
    let earliest = list_offsets(conn, &partitions, -2)?;
    let latest = list_offsets(conn, &partitions, -1)?;
    let current = committed(conn, &args.group)?;
    let at_time = match &args.to_datetime {
        Some(text) => {
            let t = humantime::parse_rfc3339_weak(text)
                .map_err(|e| format!("--to-datetime {text:?}: {e}"))?;
            let ms = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| "--to-datetime is before 1970")?
                .as_millis() as i64;
            Some(list_offsets(conn, &partitions, ms)?)
        }
        None => None,
    };
    let mut plan = Vec::new();
    for key in &partitions {
        let (lo, hi) = (earliest[key], latest[key]);
        let target = if args.to_earliest {
            lo
        } else if args.to_latest {
            hi
        } else if let Some(o) = args.to_offset {
            o
        } else if let Some(times) = &at_time {
            // No record at or after the time: the end.
            times.get(key).copied().filter(|&o| o >= 0).unwrap_or(hi)
        } else if let Some(n) = args.shift_by {
            current.get(key).copied().unwrap_or(lo) + n
        } else {
            return Err(
                "say where to: --to-earliest, --to-latest, --to-offset, --to-datetime or --shift-by"
                    .into(),
            );
        };
        plan.push((key.1, current.get(key).copied(), target.clamp(lo, hi)));
    }
    outln!(
        "{:<30} {:>9} {:>14} {:>14}",
        "TOPIC",
        "PARTITION",
        "CURRENT",
        "NEW"
    );
    for (p, cur, new) in &plan {
        outln!(
            "{:<30} {:>9} {:>14} {:>14}",
            args.topic,
            p,
            cur.map_or("-".into(), |c| c.to_string()),
            new
        );
    }
    if !args.execute {
        outln!("(plan only: add --execute to commit these offsets)");
        return Ok(());
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&args.group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(&args.topic)))
                .with_partitions(
                    plan.iter()
                        .map(|&(p, _, new)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(new)
                        })
                        .collect(),
                ),
        ]);
    let response: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 7, &request)?;
    for t in response.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!("committing {}/{}", args.topic, p.partition_index),
            )?;
        }
    }
    outln!(
        "committed {} offset(s) for group {}",
        plan.len(),
        args.group
    );
    Ok(())
}

/// What `corelog consume TOPIC --group G` needs.
pub struct GroupConsume {
    pub kafka_broker: SocketAddr,
    pub topic: String,
    pub group: String,
    /// Where a partition without a committed offset starts.
    pub from_beginning: bool,
    pub max_messages: Option<u64>,
    pub format: String,
}

const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Kafka's codes that send a member back to JoinGroup.
const REJOIN: [i16; 3] = [22, 25, 27];

/// ConsumerProtocolSubscription v0 for one topic.
fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.freeze()
}

/// ConsumerProtocolAssignment v0 of `partitions` of one topic.
fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for p in partitions {
        b.extend_from_slice(&p.to_be_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.freeze()
}

/// The range assignor: members sorted by id, each gets a contiguous run.
fn range_assign(members: &[String], partitions: i32) -> Vec<(String, Vec<i32>)> {
    let mut ids = members.to_vec();
    ids.sort();
    let n = ids.len() as i32;
    let (per, extra) = (partitions / n, partitions % n);
    let mut next = 0;
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let count = per + i32::from((i as i32) < extra);
            let run: Vec<i32> = (next..next + count).collect();
            next += count;
            (id, run)
        })
        .collect()
}

struct Member {
    id: String,
    generation: i32,
    partitions: Vec<i32>,
}

fn join_and_sync(
    conn: &mut Conn,
    args: &GroupConsume,
    member_id: &mut String,
) -> Result<Member, String> {
    for _ in 0..100 {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&args.group)))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(s(member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(subscription(&args.topic)),
            ]);
        let joined: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 5, &request)?;
        match joined.error_code {
            0 => {}
            79 => {
                *member_id = joined.member_id.to_string();
                continue;
            }
            25 => {
                member_id.clear();
                continue;
            }
            27 => continue,
            code => check(code, &format!("joining group {:?}", args.group))?,
        }
        *member_id = joined.member_id.to_string();
        let mut assignments = Vec::new();
        if joined.leader == joined.member_id {
            let ids: Vec<String> = joined
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            let count = partition_count(conn, &args.topic)?;
            assignments = range_assign(&ids, count)
                .into_iter()
                .map(|(id, parts)| {
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(&id))
                        .with_assignment(assignment(&args.topic, &parts))
                })
                .collect();
        }
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&args.group)))
            .with_generation_id(joined.generation_id)
            .with_member_id(s(member_id))
            .with_assignments(assignments);
        let synced: SyncGroupResponse = conn.call(ApiKey::SyncGroup, 3, &request)?;
        if REJOIN.contains(&synced.error_code) {
            continue;
        }
        check(
            synced.error_code,
            &format!("syncing group {:?}", args.group),
        )?;
        let partitions = assigned_partitions(&synced.assignment)
            .into_iter()
            .filter(|(t, _)| *t == args.topic)
            .flat_map(|(_, ps)| ps)
            .collect();
        return Ok(Member {
            id: member_id.clone(),
            generation: joined.generation_id,
            partitions,
        });
    }
    Err(format!(
        "group {:?} kept rebalancing; gave up after 100 tries",
        args.group
    ))
}

fn partition_count(conn: &mut Conn, topic: &str) -> Result<i32, String> {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
    ]));
    let response: MetadataResponse = conn.call(ApiKey::Metadata, 9, &request)?;
    let t = response
        .topics
        .first()
        .ok_or("the broker answered no topic")?;
    check(t.error_code, &format!("topic {topic:?}"))?;
    Ok(t.partitions.len() as i32)
}

/// Commits `positions`; `Ok(false)` when the group moved on (rejoin).
fn commit(
    conn: &mut Conn,
    args: &GroupConsume,
    m: &Member,
    positions: &BTreeMap<i32, i64>,
) -> Result<bool, String> {
    if positions.is_empty() {
        return Ok(true);
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&args.group)))
        .with_generation_id_or_member_epoch(m.generation)
        .with_member_id(s(&m.id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(&args.topic)))
                .with_partitions(
                    positions
                        .iter()
                        .map(|(&p, &o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                        })
                        .collect(),
                ),
        ]);
    let response: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 7, &request)?;
    for t in response.topics {
        for p in t.partitions {
            if REJOIN.contains(&p.error_code) {
                return Ok(false);
            }
            check(
                p.error_code,
                &format!("committing {}/{}", args.topic, p.partition_index),
            )?;
        }
    }
    Ok(true)
}

/// Reads `args.topic` as a member of `args.group` until SIGINT/SIGTERM or
/// `--max-messages`, committing after each batch it printed, then leaves
/// the group.
pub fn consume(args: GroupConsume) -> Result<(), String> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let stopping = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let mut conn = Conn::open(args.kafka_broker)?;
    let mut member_id = String::new();
    let topic_name: std::sync::Arc<str> = std::sync::Arc::from(args.topic.as_str());
    let mut out = crate::cli::out::Stdout::new();
    let mut count = 0u64;
    'rejoin: while !stopping() {
        let m = join_and_sync(&mut conn, &args, &mut member_id)?;
        eprintln!(
            "% group {} generation {}: member {} assigned {}{:?}",
            args.group, m.generation, m.id, args.topic, m.partitions
        );
        // Positions: the committed offsets, else the start or the end.
        let committed = committed(&mut conn, &args.group)?;
        let keys: Vec<(String, i32)> = m
            .partitions
            .iter()
            .map(|&p| (args.topic.clone(), p))
            .collect();
        let fallback = if keys.is_empty() {
            BTreeMap::new()
        } else {
            list_offsets(&mut conn, &keys, if args.from_beginning { -2 } else { -1 })?
        };
        let mut positions: BTreeMap<i32, i64> = keys
            .iter()
            .map(|k| {
                (
                    k.1,
                    committed.get(k).or(fallback.get(k)).copied().unwrap_or(0),
                )
            })
            .collect();
        let mut beat = std::time::Instant::now();
        loop {
            if stopping() || args.max_messages.is_some_and(|max| count >= max) {
                commit(&mut conn, &args, &m, &positions)?;
                return leave(&mut conn, &args, &m);
            }
            // Stdout's reader has gone (`| head -1`): leave at once, so the
            // other members take the partitions over without waiting for
            // the session to time out. What was printed since the last
            // commit is not committed: it may not have been read.
            if crate::cli::out::reader_gone() {
                return leave(&mut conn, &args, &m);
            }
            if beat.elapsed() >= HEARTBEAT_EVERY {
                beat = std::time::Instant::now();
                let request = HeartbeatRequest::default()
                    .with_group_id(GroupId(s(&args.group)))
                    .with_generation_id(m.generation)
                    .with_member_id(s(&m.id));
                let response: HeartbeatResponse = conn.call(ApiKey::Heartbeat, 3, &request)?;
                if REJOIN.contains(&response.error_code) {
                    // Commit what was printed, then rejoin.
                    let _ = commit(&mut conn, &args, &m, &positions);
                    continue 'rejoin;
                }
                check(response.error_code, "heartbeat")?;
            }
            if positions.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let printed = fetch_and_print(
                &mut conn,
                &args,
                &topic_name,
                &mut positions,
                &mut count,
                &mut out,
            );
            let _ = out.flush();
            if let Some(e) = out.error() {
                let _ = leave(&mut conn, &args, &m);
                crate::cli::out::fail(e);
            }
            if printed? > 0 && !commit(&mut conn, &args, &m, &positions)? {
                continue 'rejoin;
            }
        }
    }
    Ok(())
}

/// Leaves the group (LeaveGroup for member `m`).
fn leave(conn: &mut Conn, args: &GroupConsume, m: &Member) -> Result<(), String> {
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(&args.group)))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s(&m.id)),
        ]);
    let _: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, 3, &request)?;
    Ok(())
}

fn fetch_and_print(
    conn: &mut Conn,
    args: &GroupConsume,
    topic: &std::sync::Arc<str>,
    positions: &mut BTreeMap<i32, i64>,
    count: &mut u64,
    out: &mut impl Write,
) -> Result<u64, String> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(8 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(s(&args.topic)))
                .with_partitions(
                    positions
                        .iter()
                        .map(|(&p, &o)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(o)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        ]);
    let response: FetchResponse = conn.call(ApiKey::Fetch, 11, &request)?;
    let mut printed = 0;
    for t in response.responses {
        for p in t.partitions {
            check(
                p.error_code,
                &format!("fetching {}/{}", args.topic, p.partition_index),
            )?;
            let Some(mut records) = p.records else {
                continue;
            };
            let position = positions.entry(p.partition_index).or_insert(0);
            while let Some(framing) = crate::record::read_framing(&records) {
                let len = framing.total_bytes as usize;
                if len > records.len() {
                    break;
                }
                let bytes = records.split_to(len);
                let batch = crate::record::RecordBatch::parse(bytes, usize::MAX)
                    .map_err(|e| format!("a batch of {}/{}: {e}", args.topic, p.partition_index))?;
                for r in batch.records() {
                    let offset = batch.base_offset().0 as i64 + r.offset_delta as i64;
                    if offset < *position {
                        continue;
                    }
                    if args.max_messages.is_some_and(|max| *count >= max) {
                        return Ok(printed);
                    }
                    let record = crate::client::ConsumerRecord {
                        topic: topic.clone(),
                        partition: p.partition_index as u32,
                        offset: offset as u64,
                        timestamp: batch.base_timestamp().0 + r.timestamp_delta,
                        key: r.key.map(Bytes::copy_from_slice),
                        value: r.value.map(Bytes::copy_from_slice),
                        headers: Vec::new(),
                    };
                    super::client_cmds::render(&args.format, &record, out)
                        .map_err(|e| e.to_string())?;
                    *position = offset + 1;
                    *count += 1;
                    printed += 1;
                }
            }
        }
    }
    Ok(printed)
}
