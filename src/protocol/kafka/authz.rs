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
        return run(request, After::Nothing);
    }
    match request {
        r @ (RequestKind::CreateTopics(_)
        | RequestKind::DeleteTopics(_)
        | RequestKind::CreatePartitions(_)
        | RequestKind::ListOffsets(_)) => topics(shard, caller, r),
        RequestKind::InitProducerId(r) => init_producer_id(shard, caller, r),
        r @ (RequestKind::FindCoordinator(_)
        | RequestKind::JoinGroup(_)
        | RequestKind::SyncGroup(_)
        | RequestKind::Heartbeat(_)
        | RequestKind::LeaveGroup(_)
        | RequestKind::OffsetCommit(_)
        | RequestKind::OffsetFetch(_)
        | RequestKind::ListGroups(_)
        | RequestKind::DescribeGroups(_)
        | RequestKind::DeleteGroups(_)
        | RequestKind::OffsetDelete(_)
        | RequestKind::ConsumerGroupHeartbeat(_)
        | RequestKind::ConsumerGroupDescribe(_)) => groups(shard, caller, r),
        r @ (RequestKind::DescribeConfigs(_) | RequestKind::IncrementalAlterConfigs(_)) => {
            configs(shard, caller, r)
        }
        r @ (RequestKind::CreateAcls(_)
        | RequestKind::DeleteAcls(_)
        | RequestKind::DescribeAcls(_)
        | RequestKind::AlterUserScramCredentials(_)
        | RequestKind::DescribeUserScramCredentials(_)) => security_admin(shard, caller, r),
        other => run(other, After::Nothing),
    }
}

fn run(request: RequestKind, after: After) -> Checked {
    Checked::Run(Box::new(request), after)
}

/// Keeps in `items`, in order, those `allowed` says yes to and returns the
/// others, in order: the request runs for the first, and [`finish`]
/// answers the second with the authorization error.
fn split_allowed<T>(items: &mut Vec<T>, allowed: impl FnMut(&T) -> bool) -> Vec<T> {
    let (ok, denied) = std::mem::take(items).into_iter().partition(allowed);
    *items = ok;
    denied
}

/// Topic administration and ListOffsets, per topic. (Produce, Fetch and
/// Metadata check their topics in their own handlers.)
fn topics(shard: &Shard, caller: &Caller, request: RequestKind) -> Checked {
    use Operation::{Alter, Create, Delete, Describe};
    match request {
        RequestKind::CreateTopics(mut r) => {
            // CREATE on the cluster covers every topic.
            let cluster = caller.may_quietly(
                shard,
                Create,
                ResourceType::Cluster,
                crate::security::CLUSTER_RESOURCE_NAME,
            );
            let denied = split_allowed(&mut r.topics, |t| {
                cluster || topic(caller, shard, Create, &t.name.0)
            });
            let denied = denied.into_iter().map(|t| t.name).collect();
            run(RequestKind::CreateTopics(r), After::CreateTopics(denied))
        }
        RequestKind::DeleteTopics(mut r) => {
            let mut denied =
                split_allowed(&mut r.topic_names, |n| topic(caller, shard, Delete, &n.0));
            // Topics named by id: the name is what ACLs match. An unknown
            // id is left to the handler, which answers it as unknown.
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
            let denied = split_allowed(&mut r.topics, |t| topic(caller, shard, Alter, &t.name.0));
            let denied = denied.into_iter().map(|t| t.name).collect();
            run(
                RequestKind::CreatePartitions(r),
                After::CreatePartitions(denied),
            )
        }
        RequestKind::ListOffsets(mut r) => {
            let denied =
                split_allowed(&mut r.topics, |t| topic(caller, shard, Describe, &t.name.0));
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
        other => run(other, After::Nothing),
    }
}

/// Idempotence needs IDEMPOTENT_WRITE on the cluster, or WRITE on some
/// topic (KIP-679). The topic side is asked first, quietly, so that the
/// cluster is asked once and only a caller with neither is counted and
/// logged as refused.
fn init_producer_id(shard: &Shard, caller: &Caller, r: InitProducerIdRequest) -> Checked {
    let ok = shard.authorize_any(
        &caller.principal,
        &caller.ip,
        Operation::Write,
        ResourceType::Topic,
    ) || caller.may_cluster(shard, Operation::IdempotentWrite);
    if ok {
        return run(RequestKind::InitProducerId(r), After::Nothing);
    }
    Checked::Deny(Answer::InitProducerId(
        InitProducerIdResponse::default()
            .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    ))
}

/// The group APIs. A request about one group runs whole or is refused
/// whole (the guarded arms: a request that passes its guard runs as it
/// came); one about several groups runs for the allowed ones.
fn groups(shard: &Shard, caller: &Caller, request: RequestKind) -> Checked {
    use Operation::{Delete, Describe, Read};
    let may = |op, name: &str| group(caller, shard, op, name);
    const DENIED: i16 = codes::GROUP_AUTHORIZATION_FAILED;
    let deny = Checked::Deny;
    match request {
        RequestKind::FindCoordinator(r) => find_coordinator(shard, caller, r),
        RequestKind::JoinGroup(r) if !may(Read, &r.group_id.0) => deny(Answer::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(DENIED)
                .with_generation_id(-1)
                .with_member_id(r.member_id),
        )),
        RequestKind::SyncGroup(r) if !may(Read, &r.group_id.0) => deny(Answer::SyncGroup(
            SyncGroupResponse::default().with_error_code(DENIED),
        )),
        RequestKind::Heartbeat(r) if !may(Read, &r.group_id.0) => deny(Answer::Heartbeat(
            HeartbeatResponse::default().with_error_code(DENIED),
        )),
        RequestKind::LeaveGroup(r) if !may(Read, &r.group_id.0) => deny(Answer::LeaveGroup(
            LeaveGroupResponse::default().with_error_code(DENIED),
        )),
        RequestKind::OffsetDelete(r) if !may(Delete, &r.group_id.0) => deny(Answer::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(DENIED),
        )),
        RequestKind::ConsumerGroupHeartbeat(r) if !may(Read, &r.group_id.0) => {
            deny(Answer::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(DENIED)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "not authorized to read the group",
                    ))),
            ))
        }
        RequestKind::OffsetCommit(r) => offset_commit(shard, caller, r),
        RequestKind::OffsetFetch(r) if !offset_fetch_groups(&r).all(|g| may(Describe, g)) => {
            let mut out = OffsetFetchResponse::default();
            if r.groups.is_empty() {
                out.error_code = DENIED;
            } else {
                out.groups = r
                    .groups
                    .iter()
                    .map(|g| {
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(DENIED)
                    })
                    .collect();
            }
            deny(Answer::OffsetFetch(out))
        }
        RequestKind::ConsumerGroupDescribe(r)
            if !r.group_ids.iter().all(|g| may(Describe, &g.0)) =>
        {
            let groups = r
                .group_ids
                .iter()
                .map(|g| {
                    consumer_group_describe_response::DescribedGroup::default()
                        .with_group_id(g.clone())
                        .with_error_code(DENIED)
                })
                .collect();
            deny(Answer::ConsumerGroupDescribe(
                ConsumerGroupDescribeResponse::default().with_groups(groups),
            ))
        }
        RequestKind::ListGroups(r) => {
            // DESCRIBE on the cluster shows every group; without it the
            // listing is filtered afterwards.
            let all = caller.may_quietly(
                shard,
                Describe,
                ResourceType::Cluster,
                crate::security::CLUSTER_RESOURCE_NAME,
            );
            let after = if all {
                After::Nothing
            } else {
                After::ListGroups
            };
            run(RequestKind::ListGroups(r), after)
        }
        RequestKind::DescribeGroups(mut r) => {
            let denied = split_allowed(&mut r.groups, |g| may(Describe, &g.0));
            run(
                RequestKind::DescribeGroups(r),
                After::DescribeGroups(denied),
            )
        }
        RequestKind::DeleteGroups(mut r) => {
            let denied = split_allowed(&mut r.groups_names, |g| may(Delete, &g.0));
            run(RequestKind::DeleteGroups(r), After::DeleteGroups(denied))
        }
        // A one-group request whose guard passed.
        other => run(other, After::Nothing),
    }
}

/// Only group keys (key type 0) are checked: DESCRIBE on the group. A
/// batch of keys (v4+) is answered per key.
fn find_coordinator(shard: &Shard, caller: &Caller, mut r: FindCoordinatorRequest) -> Checked {
    if r.key_type != 0 {
        return run(RequestKind::FindCoordinator(r), After::Nothing);
    }
    let may = |key: &str| group(caller, shard, Operation::Describe, key);
    if r.coordinator_keys.is_empty() {
        if may(&r.key) {
            return run(RequestKind::FindCoordinator(r), After::Nothing);
        }
        return Checked::Deny(Answer::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                .with_node_id(BrokerId(-1))
                .with_port(-1),
        ));
    }
    let denied = split_allowed(&mut r.coordinator_keys, |k| may(k));
    run(
        RequestKind::FindCoordinator(r),
        After::FindCoordinator(denied),
    )
}

/// READ on the group, then READ on each topic. Without the group nothing
/// is committed and every partition gets the group's error; with it, the
/// denied topics get the topic's.
fn offset_commit(shard: &Shard, caller: &Caller, mut r: OffsetCommitRequest) -> Checked {
    let group_ok = group(caller, shard, Operation::Read, &r.group_id.0);
    let mut denied = Vec::new();
    let mut ok = Vec::new();
    for t in std::mem::take(&mut r.topics) {
        if group_ok && topic(caller, shard, Operation::Read, &t.name.0) {
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

/// The groups an OffsetFetch asks about: its batch (v8+), or its one group.
fn offset_fetch_groups(r: &OffsetFetchRequest) -> impl Iterator<Item = &str> {
    let one = r.groups.is_empty().then_some(r.group_id.0.as_str());
    one.into_iter()
        .chain(r.groups.iter().map(|g| g.group_id.0.as_str()))
}

/// DescribeConfigs and IncrementalAlterConfigs, per resource.
fn configs(shard: &Shard, caller: &Caller, request: RequestKind) -> Checked {
    match request {
        RequestKind::DescribeConfigs(mut r) => {
            let denied = split_configs(
                shard,
                caller,
                Operation::DescribeConfigs,
                &mut r.resources,
                |res| (res.resource_type, &res.resource_name),
            );
            run(
                RequestKind::DescribeConfigs(r),
                After::DescribeConfigs(denied),
            )
        }
        RequestKind::IncrementalAlterConfigs(mut r) => {
            let denied = split_configs(
                shard,
                caller,
                Operation::AlterConfigs,
                &mut r.resources,
                |res| (res.resource_type, &res.resource_name),
            );
            run(
                RequestKind::IncrementalAlterConfigs(r),
                After::AlterConfigs(denied),
            )
        }
        other => run(other, After::Nothing),
    }
}

/// Takes the config resources `caller` may not do `op` on out of
/// `resources` and returns their (type, name): DescribeConfigs and
/// IncrementalAlterConfigs differ only in their resource type and the
/// operation.
fn split_configs<R>(
    shard: &Shard,
    caller: &Caller,
    op: Operation,
    resources: &mut Vec<R>,
    id: impl Fn(&R) -> (i8, &StrBytes),
) -> Vec<(i8, StrBytes)> {
    let denied = split_allowed(resources, |res| {
        let (rtype, name) = id(res);
        config_allowed(shard, caller, rtype, name, op)
    });
    denied
        .iter()
        .map(|res| {
            let (rtype, name) = id(res);
            (rtype, name.clone())
        })
        .collect()
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

/// Security administration: ALTER on the cluster to change ACLs or SCRAM
/// credentials, DESCRIBE to read them. A request that passes its guard runs
/// as it came.
fn security_admin(shard: &Shard, caller: &Caller, request: RequestKind) -> Checked {
    use Operation::{Alter, Describe};
    const DENIED: i16 = codes::CLUSTER_AUTHORIZATION_FAILED;
    let deny = Checked::Deny;
    match request {
        RequestKind::CreateAcls(r) if !caller.may_cluster(shard, Alter) => {
            let results = r
                .creations
                .iter()
                .map(|_| {
                    create_acls_response::AclCreationResult::default()
                        .with_error_code(DENIED)
                        .with_error_message(denied_message("alter the cluster's ACLs"))
                })
                .collect();
            deny(Answer::CreateAcls(
                CreateAclsResponse::default().with_results(results),
            ))
        }
        RequestKind::DeleteAcls(r) if !caller.may_cluster(shard, Alter) => {
            let results = r
                .filters
                .iter()
                .map(|_| {
                    delete_acls_response::DeleteAclsFilterResult::default()
                        .with_error_code(DENIED)
                        .with_error_message(denied_message("alter the cluster's ACLs"))
                })
                .collect();
            deny(Answer::DeleteAcls(
                DeleteAclsResponse::default().with_filter_results(results),
            ))
        }
        RequestKind::DescribeAcls(_) if !caller.may_cluster(shard, Describe) => {
            deny(Answer::DescribeAcls(
                DescribeAclsResponse::default()
                    .with_error_code(DENIED)
                    .with_error_message(denied_message("describe the cluster's ACLs")),
            ))
        }
        RequestKind::AlterUserScramCredentials(r) if !caller.may_cluster(shard, Alter) => {
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
                    .with_error_code(DENIED)
                    .with_error_message(denied_message("alter SCRAM credentials"))
                })
                .collect();
            deny(Answer::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(results),
            ))
        }
        RequestKind::DescribeUserScramCredentials(_) if !caller.may_cluster(shard, Describe) => {
            deny(Answer::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(DENIED)
                    .with_error_message(denied_message("describe SCRAM credentials")),
            ))
        }
        // Allowed: its guard passed.
        other => run(other, After::Nothing),
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
            r.topics.extend(names.into_iter().map(create_topic_denied))
        }
        (Answer::DeleteTopics(r), After::DeleteTopics(names)) => r
            .responses
            .extend(names.into_iter().map(delete_topic_denied)),
        (Answer::CreatePartitions(r), After::CreatePartitions(names)) => r
            .results
            .extend(names.into_iter().map(create_partitions_denied)),
        (Answer::ListOffsets(r), After::ListOffsets(denied)) => {
            r.topics.extend(denied.into_iter().map(list_offsets_denied))
        }
        (Answer::FindCoordinator(r), After::FindCoordinator(keys)) => r
            .coordinators
            .extend(keys.into_iter().map(coordinator_denied)),
        (Answer::OffsetCommit(r), After::OffsetCommit(denied)) => {
            r.topics
                .extend(offset_commit_denied(denied, codes::TOPIC_AUTHORIZATION_FAILED).topics);
        }
        (Answer::DescribeGroups(r), After::DescribeGroups(groups)) => r
            .groups
            .extend(groups.into_iter().map(describe_group_denied)),
        (Answer::DeleteGroups(r), After::DeleteGroups(groups)) => r
            .results
            .extend(groups.into_iter().map(delete_group_denied)),
        (Answer::ListGroups(r), After::ListGroups) => r.groups.retain(|g| {
            caller.may_quietly(
                shard,
                Operation::Describe,
                ResourceType::Group,
                &g.group_id.0,
            )
        }),
        (Answer::DescribeConfigs(r), After::DescribeConfigs(denied)) => r
            .results
            .extend(denied.into_iter().map(describe_configs_denied)),
        (Answer::IncrementalAlterConfigs(r), After::AlterConfigs(denied)) => r
            .responses
            .extend(denied.into_iter().map(alter_configs_denied)),
        (_, _) => {}
    }
}

fn create_topic_denied(n: TopicName) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_error_message(denied_message(&format!("create topic {:?}", n.0.as_str())))
        .with_name(n)
        .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

fn delete_topic_denied(n: TopicName) -> DeletableTopicResult {
    DeletableTopicResult::default()
        .with_name(Some(n))
        .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
}

fn create_partitions_denied(n: TopicName) -> CreatePartitionsTopicResult {
    CreatePartitionsTopicResult::default()
        .with_name(n)
        .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
}

fn list_offsets_denied((name, partitions): (TopicName, Vec<i32>)) -> ListOffsetsTopicResponse {
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
}

fn coordinator_denied(key: StrBytes) -> Coordinator {
    Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(-1))
        .with_port(-1)
        .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
}

fn describe_group_denied(g: GroupId) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(g)
        .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
        .with_authorized_operations(i32::MIN)
}

fn delete_group_denied(g: GroupId) -> DeletableGroupResult {
    DeletableGroupResult::default()
        .with_group_id(g)
        .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
}

fn describe_configs_denied((rtype, name): (i8, StrBytes)) -> DescribeConfigsResult {
    DescribeConfigsResult::default()
        .with_error_code(config_denied_code(rtype))
        .with_error_message(denied_message("describe configs"))
        .with_resource_type(rtype)
        .with_resource_name(name)
}

fn alter_configs_denied((rtype, name): (i8, StrBytes)) -> AlterConfigsResourceResponse {
    AlterConfigsResourceResponse::default()
        .with_error_code(config_denied_code(rtype))
        .with_error_message(denied_message("alter configs"))
        .with_resource_type(rtype)
        .with_resource_name(name)
}

fn config_denied_code(rtype: i8) -> i16 {
    if rtype == BROKER_RESOURCE {
        codes::CLUSTER_AUTHORIZATION_FAILED
    } else {
        codes::TOPIC_AUTHORIZATION_FAILED
    }
}
