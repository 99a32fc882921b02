//! The consumer-protocol (KIP-848) group APIs: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, mapped onto [`crate::group::consumer`].

use super::codes;
use crate::group::consumer::{HeartbeatArgs, TopicUuid};
use crate::group::{self, GroupCall, GroupReply};
use crate::shard::Shard;
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_response as heartbeat;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn uuid(id: &TopicUuid) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id)
}

pub async fn heartbeat(
    shard: &Rc<Shard>,
    version: i16,
    request: ConsumerGroupHeartbeatRequest,
    client_id: String,
    client_host: String,
) -> ConsumerGroupHeartbeatResponse {
    let args = HeartbeatArgs {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|x| x.to_string()),
        rack_id: request.rack_id.map(|x| x.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|x| x.to_string()),
        server_assignor: request.server_assignor.map(|x| x.to_string()),
        owned: request.topic_partitions.map(|tps| {
            tps.into_iter()
                .map(|tp| (*tp.topic_id.as_bytes(), tp.partitions))
                .collect()
        }),
        client_id,
        client_host,
        broker_assigns_member_id: version == 0,
    };
    let group = request.group_id.0.to_string();
    let mut out = ConsumerGroupHeartbeatResponse::default();
    match group::call(shard, group, GroupCall::ConsumerHeartbeat(args)).await {
        GroupReply::ConsumerHeartbeat(Ok(r)) => {
            out.member_id = Some(s(&r.member_id));
            out.member_epoch = r.member_epoch;
            out.heartbeat_interval_ms = r.heartbeat_interval_ms;
            out.assignment = r.assignment.map(|a| {
                heartbeat::Assignment::default().with_topic_partitions(
                    a.iter()
                        .map(|(t, ps)| {
                            heartbeat::TopicPartitions::default()
                                .with_topic_id(uuid(t))
                                .with_partitions(ps.clone())
                        })
                        .collect(),
                )
            });
        }
        GroupReply::ConsumerHeartbeat(Err(e)) => {
            out.error_code = codes::code(e.kind);
            out.error_message = Some(s(&e.message));
        }
        _ => out.error_code = codes::UNKNOWN_SERVER_ERROR,
    }
    out
}

pub async fn describe(
    shard: &Rc<Shard>,
    version: i16,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut out = ConsumerGroupDescribeResponse::default();
    for id in request.group_ids {
        let mut d = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(i32::MIN);
        match group::call(shard, id.0.to_string(), GroupCall::ConsumerDescribe).await {
            GroupReply::ConsumerDescribe(Ok(g)) => {
                let snapshot = shard.snapshot();
                let assignment = |a: &[(TopicUuid, Vec<i32>)]| {
                    describe::Assignment::default().with_topic_partitions(
                        a.iter()
                            .map(|(t, ps)| {
                                let name = snapshot
                                    .topics
                                    .values()
                                    .find(|m| m.uuid == *t)
                                    .map(|m| m.name.to_string())
                                    .unwrap_or_default();
                                describe::TopicPartitions::default()
                                    .with_topic_id(uuid(t))
                                    .with_topic_name(TopicName(s(&name)))
                                    .with_partitions(ps.clone())
                            })
                            .collect(),
                    )
                };
                d.group_state = s(g.state.name());
                d.group_epoch = g.group_epoch;
                d.assignment_epoch = g.assignment_epoch;
                d.assignor_name = s(g.assignor);
                d.members = g
                    .members
                    .iter()
                    .map(|m| {
                        let mut member = describe::Member::default()
                            .with_member_id(s(&m.member_id))
                            .with_instance_id(m.instance_id.as_deref().map(s))
                            .with_rack_id(m.rack_id.as_deref().map(s))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|n| TopicName(s(n)))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(m.subscribed_topic_regex.as_deref().map(s))
                            .with_assignment(assignment(&m.assignment))
                            .with_target_assignment(assignment(&m.target_assignment));
                        if version >= 1 {
                            // KIP-1099: 1 is a consumer-protocol member.
                            member.member_type = 1;
                        }
                        member
                    })
                    .collect();
            }
            GroupReply::ConsumerDescribe(Err(e)) => {
                d.error_code = codes::code(e.kind);
                d.error_message = Some(s(&e.message));
                d.group_state = s("Dead");
            }
            _ => d.error_code = codes::UNKNOWN_SERVER_ERROR,
        }
        out.groups.push(d);
    }
    out
}
