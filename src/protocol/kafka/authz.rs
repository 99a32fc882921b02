//! ACLs on the Kafka listener: what each API needs (Kafka's own checks),
//! applied before the request runs. A request about several resources
//! runs for the allowed ones; the denied ones get the authorization error
//! in the answer and nothing of theirs is read or changed. Produce, Fetch
//! and Metadata check their topics in their own handlers.

use super::{Answer, Caller, codes};
use crate::security::{Operation, ResourceType};
use crate::shard::Shard;
use kafka_protocol::messages::{
    BrokerId, GroupId, ProducerId, RequestKind, TopicName,
    create_partitions_response::CreatePartitionsTopicResult,
    create_topics_response::CreatableTopicResult,
    delete_groups_response::DeletableGroupResult,
    delete_topics_response::DeletableTopicResult,
    describe_configs_response::DescribeConfigsResult,
    describe_groups_response::DescribedGroup,
    find_coordinator_response::Coordinator,
    incremental_alter_configs_response::AlterConfigsResourceResponse,
    list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
    *,
};
use kafka_protocol::protocol::StrBytes;

/// What to add to the answer for what was denied.
#[derive(Default)]
pub(super) enum After {
    #[default]
    Nothing,
    CreateTopics(Vec<TopicName>),
    DeleteTopics(Vec<TopicName>),
    CreatePartitions(Vec<TopicName>),
    ListOffsets(Vec<(TopicName, Vec<i32>)>),
    FindCoordinator(Vec<StrBytes>),
    OffsetCommit(Vec<(TopicName, Vec<i32>)>),
    DescribeGroups(Vec<GroupId>),
    DeleteGroups(Vec<GroupId>),
    ListGroups,
    DescribeConfigs(Vec<(i8, StrBytes)>),
    AlterConfigs(Vec<(i8, StrBytes)>),
}

/// The request to run (with denied parts taken out) and what to add
/// after, or the answer to send instead.
pub(super) enum Checked {
    Run(Box<RequestKind>, After),
    Deny(Answer),
}

const BROKER_RESOURCE: i8 = 4;
const TOPIC_RESOURCE: i8 = 2;

fn topic(caller: &Caller, shard: &Shard, op: Operation, name: &str) -> bool {
    caller.may(shard, op, ResourceType::Topic, name)
}

fn group(caller: &Caller, shard: &Shard, op: Operation, name: &str) -> bool {
    caller.may(shard, op, ResourceType::Group, name)
}

/// Checks `request` for `caller`.
pub(super) fn check(shard: &Shard, caller: &Caller, request: RequestKind) -> Checked {
    if !shard.authorizer_enabled() {
        return Checked::Run(Box::new(request), After::Nothing);
    }
    use Operation::*;
    let run = |r: RequestKind, after| Checked::Run(Box::new(r), after);
    match request {
        RequestKind::CreateTopics(mut r) => {
            // CREATE on the cluster covers every topic.
            let cluster = caller.may_quietly(
                shard,
                Create,
                ResourceType::Cluster,
                crate::security::CLUSTER_RESOURCE_NAME,
            );
            let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.topics)
                .into_iter()
                .partition(|t| cluster || topic(caller, shard, Create, &t.name.0));
            r.topics = ok;
            let denied = denied.into_iter().map(|t| t.name).collect();
            run(RequestKind::CreateTopics(r), After::CreateTopics(denied))
        }
        RequestKind::DeleteTopics(mut r) => {
            let mut denied = Vec::new();
            r.topic_names.retain(|n| {
                let ok = topic(caller, shard, Delete, &n.0);
                if !ok {
                    denied.push(n.clone());
                }
                ok
            });
            let snapshot = shard.snapshot();
            r.topics.retain(|t| {
                let name = match &t.name {
                    Some(n) => n.0.to_string(),
                    None => snapshot
                        .topics
                        .values()
                        .find(|m| m.uuid == *t.topic_id.as_bytes())
                        .map(|m| m.name.to_string())
                        .unwrap_or_default(),
                };
                let ok = name.is_empty() || topic(caller, shard, Delete, &name);
                if !ok {
                    denied.push(TopicName(StrBytes::from_string(name)));
                }
                ok
            });
            run(RequestKind::DeleteTopics(r), After::DeleteTopics(denied))
        }
        RequestKind::CreatePartitions(mut r) => {
            let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.topics)
                .into_iter()
                .partition(|t| topic(caller, shard, Alter, &t.name.0));
            r.topics = ok;
            let denied = denied.into_iter().map(|t| t.name).collect();
            run(
                RequestKind::CreatePartitions(r),
                After::CreatePartitions(denied),
            )
        }
        RequestKind::ListOffsets(mut r) => {
            let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.topics)
                .into_iter()
                .partition(|t| topic(caller, shard, Describe, &t.name.0));
            r.topics = ok;
            let denied = denied
                .into_iter()
                .map(|t| {
                    (
                        t.name,
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    )
                })
                .collect();
            run(RequestKind::ListOffsets(r), After::ListOffsets(denied))
        }
        RequestKind::InitProducerId(r) => {
            // Idempotence needs IDEMPOTENT_WRITE on the cluster, or WRITE on
            // some topic (KIP-679).
            let ok =
                caller.may_quietly(
                    shard,
                    IdempotentWrite,
                    ResourceType::Cluster,
                    crate::security::CLUSTER_RESOURCE_NAME,
                ) || shard.authorize_any(&caller.principal, &caller.ip, Write, ResourceType::Topic)
                    || caller.may_cluster(shard, IdempotentWrite);
            if ok {
                run(RequestKind::InitProducerId(r), After::Nothing)
            } else {
                Checked::Deny(Answer::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ))
            }
        }
        RequestKind::FindCoordinator(mut r) => {
            if r.key_type != 0 {
                return run(RequestKind::FindCoordinator(r), After::Nothing);
            }
            if r.coordinator_keys.is_empty() {
                if group(caller, shard, Describe, &r.key) {
                    return run(RequestKind::FindCoordinator(r), After::Nothing);
                }
                return Checked::Deny(Answer::FindCoordinator(
                    FindCoordinatorResponse::default()
                        .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                ));
            }
            let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.coordinator_keys)
                .into_iter()
                .partition(|k| group(caller, shard, Describe, k));
            r.coordinator_keys = ok;
            run(
                RequestKind::FindCoordinator(r),
                After::FindCoordinator(denied),
            )
        }
        RequestKind::JoinGroup(r) => {
            if group(caller, shard, Read, &r.group_id.0) {
                return run(RequestKind::JoinGroup(r), After::Nothing);
            }
            Checked::Deny(Answer::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                    .with_generation_id(-1)
                    .with_member_id(r.member_id),
            ))
        }
        RequestKind::SyncGroup(r) => {
            if group(caller, shard, Read, &r.group_id.0) {
                return run(RequestKind::SyncGroup(r), After::Nothing);
            }
            Checked::Deny(Answer::SyncGroup(
                SyncGroupResponse::default().with_error_code(codes::GROUP_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::Heartbeat(r) => {
            if group(caller, shard, Read, &r.group_id.0) {
                return run(RequestKind::Heartbeat(r), After::Nothing);
            }
            Checked::Deny(Answer::Heartbeat(
                HeartbeatResponse::default().with_error_code(codes::GROUP_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::LeaveGroup(r) => {
            if group(caller, shard, Read, &r.group_id.0) {
                return run(RequestKind::LeaveGroup(r), After::Nothing);
            }
            Checked::Deny(Answer::LeaveGroup(
                LeaveGroupResponse::default().with_error_code(codes::GROUP_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::OffsetCommit(mut r) => {
            let group_ok = group(caller, shard, Read, &r.group_id.0);
            let mut denied = Vec::new();
            let mut ok = Vec::new();
            for t in std::mem::take(&mut r.topics) {
                if group_ok && topic(caller, shard, Read, &t.name.0) {
                    ok.push(t);
                } else {
                    denied.push((
                        t.name.clone(),
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    ));
                }
            }
            if !group_ok {
                return Checked::Deny(Answer::OffsetCommit(offset_commit_denied(
                    denied,
                    codes::GROUP_AUTHORIZATION_FAILED,
                )));
            }
            r.topics = ok;
            run(RequestKind::OffsetCommit(r), After::OffsetCommit(denied))
        }
        RequestKind::OffsetFetch(r) => {
            let groups: Vec<&str> = if r.groups.is_empty() {
                vec![&r.group_id.0]
            } else {
                r.groups.iter().map(|g| g.group_id.0.as_str()).collect()
            };
            if groups.iter().all(|g| group(caller, shard, Describe, g)) {
                return run(RequestKind::OffsetFetch(r), After::Nothing);
            }
            let mut out = OffsetFetchResponse::default();
            if r.groups.is_empty() {
                out.error_code = codes::GROUP_AUTHORIZATION_FAILED;
            } else {
                out.groups = r
                    .groups
                    .iter()
                    .map(|g| {
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                    })
                    .collect();
            }
            Checked::Deny(Answer::OffsetFetch(out))
        }
        RequestKind::ListGroups(r) => {
            if caller.may_quietly(
                shard,
                Describe,
                ResourceType::Cluster,
                crate::security::CLUSTER_RESOURCE_NAME,
            ) {
                run(RequestKind::ListGroups(r), After::Nothing)
            } else {
                run(RequestKind::ListGroups(r), After::ListGroups)
            }
        }
        RequestKind::DescribeGroups(mut r) => {
            let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups)
                .into_iter()
                .partition(|g| group(caller, shard, Describe, &g.0));
            r.groups = ok;
            run(
                RequestKind::DescribeGroups(r),
                After::DescribeGroups(denied),
            )
        }
        RequestKind::DeleteGroups(mut r) => {
            let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups_names)
                .into_iter()
                .partition(|g| group(caller, shard, Delete, &g.0));
            r.groups_names = ok;
            run(RequestKind::DeleteGroups(r), After::DeleteGroups(denied))
        }
        RequestKind::OffsetDelete(r) => {
            if group(caller, shard, Delete, &r.group_id.0) {
                return run(RequestKind::OffsetDelete(r), After::Nothing);
            }
            Checked::Deny(Answer::OffsetDelete(
                OffsetDeleteResponse::default().with_error_code(codes::GROUP_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            if group(caller, shard, Read, &r.group_id.0) {
                return run(RequestKind::ConsumerGroupHeartbeat(r), After::Nothing);
            }
            Checked::Deny(Answer::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "not authorized to read the group",
                    ))),
            ))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            if r.group_ids
                .iter()
                .all(|g| group(caller, shard, Describe, &g.0))
            {
                return run(RequestKind::ConsumerGroupDescribe(r), After::Nothing);
            }
            let groups = r
                .group_ids
                .iter()
                .map(|g| {
                    consumer_group_describe_response::DescribedGroup::default()
                        .with_group_id(g.clone())
                        .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                })
                .collect();
            Checked::Deny(Answer::ConsumerGroupDescribe(
                ConsumerGroupDescribeResponse::default().with_groups(groups),
            ))
        }
        RequestKind::DescribeConfigs(mut r) => {
            let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.resources)
                .into_iter()
                .partition(|res| {
                    config_allowed(
                        shard,
                        caller,
                        res.resource_type,
                        &res.resource_name,
                        DescribeConfigs,
                    )
                });
            r.resources = ok;
            let denied = denied
                .into_iter()
                .map(|res| (res.resource_type, res.resource_name))
                .collect();
            run(
                RequestKind::DescribeConfigs(r),
                After::DescribeConfigs(denied),
            )
        }
        RequestKind::IncrementalAlterConfigs(mut r) => {
            let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.resources)
                .into_iter()
                .partition(|res| {
                    config_allowed(
                        shard,
                        caller,
                        res.resource_type,
                        &res.resource_name,
                        AlterConfigs,
                    )
                });
            r.resources = ok;
            let denied = denied
                .into_iter()
                .map(|res| (res.resource_type, res.resource_name))
                .collect();
            run(
                RequestKind::IncrementalAlterConfigs(r),
                After::AlterConfigs(denied),
            )
        }
        // Security administration: ALTER or DESCRIBE on the cluster.
        RequestKind::CreateAcls(r) => {
            if caller.may_cluster(shard, Alter) {
                return run(RequestKind::CreateAcls(r), After::Nothing);
            }
            let results = r
                .creations
                .iter()
                .map(|_| {
                    create_acls_response::AclCreationResult::default()
                        .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                        .with_error_message(denied_message("alter the cluster's ACLs"))
                })
                .collect();
            Checked::Deny(Answer::CreateAcls(
                CreateAclsResponse::default().with_results(results),
            ))
        }
        RequestKind::DeleteAcls(r) => {
            if caller.may_cluster(shard, Alter) {
                return run(RequestKind::DeleteAcls(r), After::Nothing);
            }
            let results = r
                .filters
                .iter()
                .map(|_| {
                    delete_acls_response::DeleteAclsFilterResult::default()
                        .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                        .with_error_message(denied_message("alter the cluster's ACLs"))
                })
                .collect();
            Checked::Deny(Answer::DeleteAcls(
                DeleteAclsResponse::default().with_filter_results(results),
            ))
        }
        RequestKind::DescribeAcls(r) => {
            if caller.may_cluster(shard, Describe) {
                return run(RequestKind::DescribeAcls(r), After::Nothing);
            }
            Checked::Deny(Answer::DescribeAcls(
                DescribeAclsResponse::default()
                    .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                    .with_error_message(denied_message("describe the cluster's ACLs")),
            ))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            if caller.may_cluster(shard, Alter) {
                return run(RequestKind::AlterUserScramCredentials(r), After::Nothing);
            }
            let mut users: Vec<StrBytes> = r.deletions.iter().map(|d| d.name.clone()).collect();
            users.extend(r.upsertions.iter().map(|u| u.name.clone()));
            users.sort();
            users.dedup();
            let results = users
                .into_iter()
                .map(|user| {
                    alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default(
                    )
                    .with_user(user)
                    .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                    .with_error_message(denied_message("alter SCRAM credentials"))
                })
                .collect();
            Checked::Deny(Answer::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(results),
            ))
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            if caller.may_cluster(shard, Describe) {
                return run(RequestKind::DescribeUserScramCredentials(r), After::Nothing);
            }
            Checked::Deny(Answer::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                    .with_error_message(denied_message("describe SCRAM credentials")),
            ))
        }
        other => run(other, After::Nothing),
    }
}

/// Configs of a topic need the operation on the topic; of the broker, on
/// the cluster.
fn config_allowed(shard: &Shard, caller: &Caller, rtype: i8, name: &str, op: Operation) -> bool {
    match rtype {
        TOPIC_RESOURCE => topic(caller, shard, op, name),
        BROKER_RESOURCE => caller.may_cluster(shard, op),
        _ => true,
    }
}

fn offset_commit_denied(denied: Vec<(TopicName, Vec<i32>)>, code: i16) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        denied
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn denied_message(what: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(format!("not authorized: {what}")))
}

/// Adds the denied parts to the answer of the allowed ones.
pub(super) fn finish(shard: &Shard, caller: &Caller, answer: &mut Answer, after: After) {
    match (answer, after) {
        (_, After::Nothing) => {}
        (Answer::CreateTopics(r), After::CreateTopics(names)) => {
            r.topics.extend(names.into_iter().map(|n| {
                CreatableTopicResult::default()
                    .with_error_message(denied_message(&format!("create topic {:?}", n.0.as_str())))
                    .with_name(n)
                    .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            }))
        }
        (Answer::DeleteTopics(r), After::DeleteTopics(names)) => {
            r.responses.extend(names.into_iter().map(|n| {
                DeletableTopicResult::default()
                    .with_name(Some(n))
                    .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
            }))
        }
        (Answer::CreatePartitions(r), After::CreatePartitions(names)) => {
            r.results.extend(names.into_iter().map(|n| {
                CreatePartitionsTopicResult::default()
                    .with_name(n)
                    .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
            }))
        }
        (Answer::ListOffsets(r), After::ListOffsets(denied)) => {
            r.topics
                .extend(denied.into_iter().map(|(name, partitions)| {
                    ListOffsetsTopicResponse::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p)
                                        .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                                        .with_offset(-1)
                                        .with_timestamp(-1)
                                })
                                .collect(),
                        )
                }))
        }
        (Answer::FindCoordinator(r), After::FindCoordinator(keys)) => {
            r.coordinators.extend(keys.into_iter().map(|k| {
                Coordinator::default()
                    .with_key(k)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
            }))
        }
        (Answer::OffsetCommit(r), After::OffsetCommit(denied)) => {
            r.topics
                .extend(offset_commit_denied(denied, codes::TOPIC_AUTHORIZATION_FAILED).topics);
        }
        (Answer::DescribeGroups(r), After::DescribeGroups(groups)) => {
            r.groups.extend(groups.into_iter().map(|g| {
                DescribedGroup::default()
                    .with_group_id(g)
                    .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                    .with_authorized_operations(i32::MIN)
            }))
        }
        (Answer::DeleteGroups(r), After::DeleteGroups(groups)) => {
            r.results.extend(groups.into_iter().map(|g| {
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
            }))
        }
        (Answer::ListGroups(r), After::ListGroups) => r.groups.retain(|g| {
            caller.may_quietly(
                shard,
                Operation::Describe,
                ResourceType::Group,
                &g.group_id.0,
            )
        }),
        (Answer::DescribeConfigs(r), After::DescribeConfigs(denied)) => {
            r.results.extend(denied.into_iter().map(|(rtype, name)| {
                DescribeConfigsResult::default()
                    .with_error_code(config_denied_code(rtype))
                    .with_error_message(denied_message("describe configs"))
                    .with_resource_type(rtype)
                    .with_resource_name(name)
            }))
        }
        (Answer::IncrementalAlterConfigs(r), After::AlterConfigs(denied)) => {
            r.responses.extend(denied.into_iter().map(|(rtype, name)| {
                AlterConfigsResourceResponse::default()
                    .with_error_code(config_denied_code(rtype))
                    .with_error_message(denied_message("alter configs"))
                    .with_resource_type(rtype)
                    .with_resource_name(name)
            }))
        }
        (_, _) => {}
    }
}

fn config_denied_code(rtype: i8) -> i16 {
    if rtype == BROKER_RESOURCE {
        codes::CLUSTER_AUTHORIZATION_FAILED
    } else {
        codes::TOPIC_AUTHORIZATION_FAILED
    }
}
