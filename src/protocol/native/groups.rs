//! Consumer groups over the native protocol: the same coordinators, groups,
//! epochs and assignors as Kafka's consumer protocol (KIP-848), so native
//! and Kafka members may share a group. Topics travel by name here and by
//! id inside the group; this file maps between the two.

use super::decode::GroupHeartbeat;
use super::handle::{ResponseFrame, error_response, finish};
use super::wire;
use crate::error::{BrokerError, ErrorKind};
use crate::group::consumer::{HeartbeatArgs, TopicUuid};
use crate::group::{self, CommitArgs, CommitItem, GroupCall, GroupReply};
use crate::meta::Snapshot;
use crate::shard::Shard;
use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, Vector, WIPOffset};
use std::rc::Rc;

/// A coordinator answer of the wrong kind: a bug, reported as one.
fn unexpected_reply(corr: u64) -> ResponseFrame {
    error_response(
        corr,
        &BrokerError::new(ErrorKind::UnknownServerError, "unexpected group reply"),
    )
}

fn unknown_topic(name: &str) -> BrokerError {
    BrokerError::new(ErrorKind::UnknownTopic, format!("no topic {name:?}"))
}

fn id_of(snapshot: &Snapshot, name: &str) -> Option<TopicUuid> {
    snapshot.topic(name).map(|t| t.uuid)
}

fn name_of(snapshot: &Snapshot, id: &TopicUuid) -> String {
    snapshot
        .topics
        .values()
        .find(|t| t.uuid == *id)
        .map(|t| t.name.to_string())
        .unwrap_or_default()
}

fn partitions_vector<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    snapshot: &Snapshot,
    list: &[(TopicUuid, Vec<i32>)],
) -> WIPOffset<Vector<'a, ForwardsUOffset<wire::GroupTopicPartitions<'a>>>> {
    let items: Vec<_> = list
        .iter()
        .map(|(id, ps)| {
            let topic = fbb.create_string(&name_of(snapshot, id));
            let ps: Vec<u32> = ps.iter().map(|&p| p as u32).collect();
            let partitions = fbb.create_vector(&ps);
            wire::GroupTopicPartitions::create(
                fbb,
                &wire::GroupTopicPartitionsArgs {
                    topic: Some(topic),
                    partitions: Some(partitions),
                },
            )
        })
        .collect();
    fbb.create_vector(&items)
}

pub async fn heartbeat(shard: &Rc<Shard>, corr: u64, h: GroupHeartbeat) -> ResponseFrame {
    let snapshot = shard.snapshot();
    // Owned partitions of a topic deleted meanwhile are simply not owned.
    let owned = h.owned.map(|list| {
        list.into_iter()
            .filter_map(|(name, ps)| {
                id_of(&snapshot, &name).map(|id| (id, ps.into_iter().map(|p| p as i32).collect()))
            })
            .collect()
    });
    let args = HeartbeatArgs {
        member_id: h.member_id,
        member_epoch: h.member_epoch,
        instance_id: h.instance_id,
        rack_id: None,
        rebalance_timeout_ms: h.rebalance_timeout_ms,
        subscribed_topic_names: h.topics,
        subscribed_topic_regex: h.topic_regex,
        server_assignor: h.assignor,
        owned,
        client_id: "corelog-native".into(),
        client_host: String::new(),
        broker_assigns_member_id: true,
    };
    match group::call(shard, h.group, GroupCall::ConsumerHeartbeat(args)).await {
        GroupReply::ConsumerHeartbeat(Ok(r)) => {
            let mut fbb = FlatBufferBuilder::new();
            let member_id = fbb.create_string(&r.member_id);
            let assignment = r
                .assignment
                .as_ref()
                .map(|a| partitions_vector(&mut fbb, &snapshot, a));
            let body = wire::GroupHeartbeatResponse::create(
                &mut fbb,
                &wire::GroupHeartbeatResponseArgs {
                    member_id: Some(member_id),
                    member_epoch: r.member_epoch,
                    heartbeat_interval_ms: r.heartbeat_interval_ms,
                    assignment,
                },
            );
            finish(
                fbb,
                corr,
                None,
                wire::Response::GroupHeartbeatResponse,
                Some(body.as_union_value()),
            )
        }
        GroupReply::ConsumerHeartbeat(Err(e)) => error_response(corr, &e),
        _ => unexpected_reply(corr),
    }
}

/// Per-partition outcomes of a commit or fetch.
struct Row {
    topic: String,
    partition: u32,
    offset: i64,
    metadata: String,
    error: Option<BrokerError>,
}

fn offsets_frame(corr: u64, rows: Vec<Row>, commit: bool) -> ResponseFrame {
    let mut fbb = FlatBufferBuilder::new();
    let items: Vec<_> = rows
        .iter()
        .map(|r| {
            let topic = fbb.create_string(&r.topic);
            let metadata = fbb.create_string(&r.metadata);
            let message = r.error.as_ref().map(|e| fbb.create_string(&e.message));
            wire::GroupOffset::create(
                &mut fbb,
                &wire::GroupOffsetArgs {
                    topic: Some(topic),
                    partition: r.partition,
                    offset: r.offset,
                    metadata: Some(metadata),
                    error: r
                        .error
                        .as_ref()
                        .map_or(wire::ErrorCode::NONE, |e| super::error_code(e.kind)),
                    error_message: message,
                },
            )
        })
        .collect();
    let offsets = fbb.create_vector(&items);
    if commit {
        let body = wire::OffsetCommitResponse::create(
            &mut fbb,
            &wire::OffsetCommitResponseArgs {
                offsets: Some(offsets),
            },
        );
        finish(
            fbb,
            corr,
            None,
            wire::Response::OffsetCommitResponse,
            Some(body.as_union_value()),
        )
    } else {
        let body = wire::OffsetFetchResponse::create(
            &mut fbb,
            &wire::OffsetFetchResponseArgs {
                offsets: Some(offsets),
            },
        );
        finish(
            fbb,
            corr,
            None,
            wire::Response::OffsetFetchResponse,
            Some(body.as_union_value()),
        )
    }
}

pub async fn commit(
    shard: &Rc<Shard>,
    corr: u64,
    group: String,
    member_id: String,
    member_epoch: i32,
    offsets: Vec<(String, u32, i64, Option<String>)>,
) -> ResponseFrame {
    let items: Vec<CommitItem> = offsets
        .iter()
        .map(|(topic, partition, offset, metadata)| CommitItem {
            topic: topic.clone(),
            partition: *partition as i32,
            offset: *offset,
            leader_epoch: -1,
            metadata: metadata.clone(),
        })
        .collect();
    let args = CommitArgs {
        generation: if member_id.is_empty() {
            -1
        } else {
            member_epoch
        },
        member_id,
        instance_id: None,
        items,
    };
    match group::call(shard, group, GroupCall::Commit(args)).await {
        GroupReply::Commit(Ok(results)) => {
            let rows = offsets
                .into_iter()
                .zip(results)
                .map(|((topic, partition, offset, metadata), r)| Row {
                    topic,
                    partition,
                    offset,
                    metadata: metadata.unwrap_or_default(),
                    error: r.err(),
                })
                .collect();
            offsets_frame(corr, rows, true)
        }
        GroupReply::Commit(Err(e)) => error_response(corr, &e),
        _ => unexpected_reply(corr),
    }
}

pub async fn fetch(
    shard: &Rc<Shard>,
    corr: u64,
    group: String,
    member: Option<(String, i32)>,
    partitions: Option<Vec<(String, Vec<u32>)>>,
) -> ResponseFrame {
    let snapshot = shard.snapshot();
    let mut unknown = Vec::new();
    let wanted = partitions.map(|list| {
        let mut out = Vec::new();
        for (topic, ps) in list {
            if snapshot.topic(&topic).is_none() {
                unknown.extend(ps.iter().map(|p| (topic.clone(), *p)));
                continue;
            }
            out.extend(ps.into_iter().map(|p| (topic.clone(), p as i32)));
        }
        out
    });
    let call = GroupCall::FetchOffsets {
        partitions: wanted,
        member,
    };
    match group::call(shard, group, call).await {
        GroupReply::FetchOffsets(Ok(list)) => {
            let mut rows: Vec<Row> = list
                .into_iter()
                .map(|(topic, partition, committed)| Row {
                    topic,
                    partition: partition as u32,
                    offset: committed.as_ref().map_or(-1, |c| c.offset),
                    metadata: committed.map(|c| c.metadata).unwrap_or_default(),
                    error: None,
                })
                .collect();
            rows.extend(unknown.into_iter().map(|(topic, partition)| Row {
                error: Some(unknown_topic(&topic)),
                topic,
                partition,
                offset: -1,
                metadata: String::new(),
            }));
            offsets_frame(corr, rows, false)
        }
        GroupReply::FetchOffsets(Err(e)) => error_response(corr, &e),
        _ => unexpected_reply(corr),
    }
}
