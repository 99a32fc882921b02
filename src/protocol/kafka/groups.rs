//! The classic consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups,
//! DescribeGroups, DeleteGroups and OffsetDelete, mapped onto
//! [`crate::group`].

use super::codes;
use crate::error::BrokerError;
use crate::group::{self, CommitArgs, CommitItem, GroupCall, GroupReply, JoinArgs, SyncArgs};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn code(e: &BrokerError) -> i16 {
    codes::code(e.kind)
}

/// The coordinator of each key: this broker, whose shards route group
/// requests to the owning core — or, in the shard-aware mode, the shard
/// that coordinates the group, so group requests make no hop either.
pub async fn find_coordinator(
    shard: &Rc<Shard>,
    caller: &super::Caller,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        request.coordinator_keys
    } else {
        vec![request.key]
    };
    let here = shard
        .kafka_advertised(caller.listener)
        .unwrap_or_else(|| (shard.host.clone(), 0));
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let mut c = Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_host(s(""))
            .with_port(-1);
        if request.key_type != 0 {
            c.error_code = codes::COORDINATOR_NOT_AVAILABLE;
            c.error_message = Some(s("transactions are not supported by this broker"));
        } else {
            locate(shard, caller, &key, &here, &mut c).await;
        }
        coordinators.push(c);
    }
    let mut out = FindCoordinatorResponse::default();
    if version >= 4 {
        out.coordinators = coordinators;
    } else {
        let c = coordinators.pop().unwrap_or_default();
        out.error_code = c.error_code;
        out.error_message = if version >= 1 { c.error_message } else { None };
        out.node_id = c.node_id;
        out.host = c.host;
        out.port = c.port;
    }
    out
}

/// Fills in where group `key`'s coordinator is: another broker of the
/// cluster, this broker (at `here`), or in the shard-aware mode the shard
/// of this broker that coordinates it.
async fn locate(
    shard: &Rc<Shard>,
    caller: &super::Caller,
    key: &str,
    here: &(String, u16),
    c: &mut Coordinator,
) {
    // An error here (a bad group id, no offsets topic) is reported by
    // `coordinator_shard` below.
    if let Ok(Some(node)) = group::coordinator_elsewhere(shard, key).await {
        let fenced = shard.snapshot().is_fenced(node);
        match shard
            .kafka_address_of(node, caller.listener)
            .filter(|_| !fenced)
        {
            Some((host, port)) => {
                c.node_id = BrokerId(node as i32);
                c.host = s(&host);
                c.port = port as i32;
            }
            None => {
                c.error_code = codes::COORDINATOR_NOT_AVAILABLE;
                c.error_message = Some(s(
                    "the group's coordinator broker is fenced or has no listener of this kind",
                ));
            }
        }
        return;
    }
    match group::coordinator_shard(shard, key).await {
        Ok(owner) if shard.config.kafka_shard_brokers => {
            c.node_id = BrokerId(crate::meta::shard_broker_id(shard.config.node_id, owner));
            c.host = s(&here.0);
            c.port = shard.kafka_shard_ports[owner.0 as usize] as i32;
        }
        Ok(_) => {
            c.node_id = BrokerId(shard.config.node_id);
            c.host = s(&here.0);
            c.port = here.1 as i32;
        }
        Err(e) => {
            c.error_code = code(&e);
            c.error_message = Some(s(&e.message));
        }
    }
}

pub async fn join_group(
    shard: &Rc<Shard>,
    version: i16,
    request: JoinGroupRequest,
    client_id: String,
    client_host: String,
) -> JoinGroupResponse {
    let args = JoinArgs {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id,
        client_host,
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member: version >= 4,
    };
    let group = request.group_id.0.to_string();
    let reply = group::call(shard, group, GroupCall::Join(args)).await;
    let mut out = JoinGroupResponse::default()
        .with_generation_id(-1)
        .with_leader(s(""))
        .with_member_id(s(""));
    match reply {
        GroupReply::Join(Ok(r)) => {
            out.generation_id = r.generation;
            out.protocol_type = r.protocol_type.as_deref().map(s);
            out.protocol_name = r.protocol.as_deref().map(s).or_else(|| {
                // Before v7 the name is not nullable.
                (version < 7).then(|| s(""))
            });
            out.leader = s(&r.leader);
            out.skip_assignment = r.skip_assignment && version >= 9;
            out.member_id = s(&r.member_id);
            out.members = r
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(&id))
                        .with_group_instance_id(if version >= 5 {
                            instance.as_deref().map(s)
                        } else {
                            None
                        })
                        .with_metadata(metadata)
                })
                .collect();
        }
        GroupReply::Join(Err((e, member_id))) => {
            out.error_code = code(&e);
            out.member_id = s(&member_id);
            if version < 7 {
                out.protocol_name = Some(s(""));
            }
        }
        _ => out.error_code = codes::UNKNOWN_SERVER_ERROR,
    }
    out
}

pub async fn sync_group(
    shard: &Rc<Shard>,
    version: i16,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let args = SyncArgs {
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol: request.protocol_name.map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let reply = group::call(shard, request.group_id.0.to_string(), GroupCall::Sync(args)).await;
    let mut out = SyncGroupResponse::default();
    match reply {
        GroupReply::Sync(Ok(r)) => {
            if version >= 5 {
                out.protocol_type = r.protocol_type.as_deref().map(s);
                out.protocol_name = r.protocol.as_deref().map(s);
            }
            out.assignment = r.assignment;
        }
        GroupReply::Sync(Err(e)) => {
            out.error_code = code(&e);
            out.assignment = Bytes::new();
        }
        _ => out.error_code = codes::UNKNOWN_SERVER_ERROR,
    }
    out
}

pub async fn heartbeat(shard: &Rc<Shard>, request: HeartbeatRequest) -> HeartbeatResponse {
    let call = GroupCall::Heartbeat {
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
    };
    let mut out = HeartbeatResponse::default();
    match group::call(shard, request.group_id.0.to_string(), call).await {
        GroupReply::Heartbeat(Ok(())) => {}
        GroupReply::Heartbeat(Err(e)) => out.error_code = code(&e),
        _ => out.error_code = codes::UNKNOWN_SERVER_ERROR,
    }
    out
}

pub async fn leave_group(
    shard: &Rc<Shard>,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let reply = group::call(
        shard,
        request.group_id.0.to_string(),
        GroupCall::Leave(members.clone()),
    )
    .await;
    let mut out = LeaveGroupResponse::default();
    let results = match reply {
        GroupReply::Leave(r) => r,
        _ => {
            out.error_code = codes::UNKNOWN_SERVER_ERROR;
            return out;
        }
    };
    if version >= 3 {
        out.members = members
            .into_iter()
            .zip(&results)
            .map(|((id, instance), r)| {
                MemberResponse::default()
                    .with_member_id(s(&id))
                    .with_group_instance_id(instance.as_deref().map(s))
                    .with_error_code(r.as_ref().err().map_or(codes::NONE, code))
            })
            .collect();
    } else if let Some(Err(e)) = results.first() {
        out.error_code = code(e);
    }
    out
}

pub async fn offset_commit(
    shard: &Rc<Shard>,
    version: i16,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let mut items = Vec::new();
    for t in &request.topics {
        for p in &t.partitions {
            items.push(CommitItem {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let n = count(&request);
    let args = CommitArgs {
        generation: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        items,
    };
    let reply = group::call(
        shard,
        request.group_id.0.to_string(),
        GroupCall::Commit(args),
    )
    .await;
    let results: Vec<i16> = match reply {
        GroupReply::Commit(Ok(r)) => r
            .iter()
            .map(|r| r.as_ref().err().map_or(codes::NONE, code))
            .collect(),
        GroupReply::Commit(Err(e)) => vec![code(&e); n],
        _ => vec![codes::UNKNOWN_SERVER_ERROR; n],
    };
    let mut it = results.into_iter();
    let mut out = OffsetCommitResponse::default();
    out.topics = request
        .topics
        .into_iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(it.next().unwrap_or(codes::UNKNOWN_SERVER_ERROR))
                        })
                        .collect(),
                )
        })
        .collect();
    out
}

fn count(request: &OffsetCommitRequest) -> usize {
    request.topics.iter().map(|t| t.partitions.len()).sum()
}

/// A committed offset as OffsetFetch answers it (-1 when none).
struct Fetched {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

/// The partitions asked for, or all (`None`).
fn wanted(topics: Option<Vec<(TopicName, Vec<i32>)>>) -> Option<Vec<(String, i32)>> {
    topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|(name, partitions)| {
                let name = name.0.to_string();
                partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    })
}

/// One group's committed offsets, by topic in the order first seen.
async fn fetch_one(
    shard: &Rc<Shard>,
    group: String,
    wanted: Option<Vec<(String, i32)>>,
    member: Option<(String, i32)>,
) -> Result<Vec<(String, Vec<Fetched>)>, i16> {
    let call = GroupCall::FetchOffsets {
        partitions: wanted,
        member,
    };
    let list = match group::call(shard, group, call).await {
        GroupReply::FetchOffsets(Ok(list)) => list,
        GroupReply::FetchOffsets(Err(e)) => return Err(code(&e)),
        _ => return Err(codes::UNKNOWN_SERVER_ERROR),
    };
    let mut topics: Vec<(String, Vec<Fetched>)> = Vec::new();
    for (topic, partition, committed) in list {
        let f = match committed {
            Some(c) => Fetched {
                partition,
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata,
            },
            None => Fetched {
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
            },
        };
        match topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, partitions)) => partitions.push(f),
            None => topics.push((topic, vec![f])),
        }
    }
    Ok(topics)
}

pub async fn offset_fetch(
    shard: &Rc<Shard>,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut out = OffsetFetchResponse::default();
    if version >= 8 {
        for g in request.groups {
            let asked = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let mut entry = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            // v9: a consumer-protocol member names itself and its epoch.
            let member = g
                .member_id
                .as_ref()
                .filter(|id| !id.is_empty())
                .map(|id| (id.to_string(), g.member_epoch));
            match fetch_one(shard, g.group_id.0.to_string(), wanted(asked), member).await {
                Ok(topics) => {
                    entry.topics = topics
                        .into_iter()
                        .map(|(t, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(s(&t)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|f| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(f.partition)
                                                .with_committed_offset(f.offset)
                                                .with_committed_leader_epoch(f.leader_epoch)
                                                .with_metadata(Some(s(&f.metadata)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
                Err(error) => entry.error_code = error,
            }
            out.groups.push(entry);
        }
        return out;
    }
    let asked = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    match fetch_one(shard, request.group_id.0.to_string(), wanted(asked), None).await {
        Ok(topics) => {
            out.topics = topics
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(&t)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|f| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(f.partition)
                                        .with_committed_offset(f.offset)
                                        .with_committed_leader_epoch(if version >= 5 {
                                            f.leader_epoch
                                        } else {
                                            -1
                                        })
                                        .with_metadata(Some(s(&f.metadata)))
                                })
                                .collect(),
                        )
                })
                .collect();
        }
        Err(error) => {
            if version >= 2 {
                out.error_code = error;
            }
        }
    }
    out
}

pub async fn list_groups(
    shard: &Rc<Shard>,
    version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|x| x.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|x| x.to_lowercase())
        .collect();
    let mut out = ListGroupsResponse::default();
    out.groups = group::list(shard)
        .await
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(s(&g.group)))
                .with_protocol_type(s(&g.protocol_type));
            if version >= 4 {
                l.group_state = s(g.state.name());
            }
            if version >= 5 {
                l.group_type = s(g.group_type);
            }
            l
        })
        .collect();
    out
}

pub async fn describe_groups(
    shard: &Rc<Shard>,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut out = DescribeGroupsResponse::default();
    for id in request.groups {
        let mut d = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_group_state(s(""))
            .with_protocol_type(s(""))
            .with_protocol_data(s(""))
            .with_authorized_operations(i32::MIN);
        match group::call(shard, id.0.to_string(), GroupCall::Describe).await {
            GroupReply::Describe(Ok(g)) => {
                d.group_state = s(g.state.name());
                d.protocol_type = s(&g.protocol_type);
                d.protocol_data = s(&g.protocol);
                d.members = g
                    .members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(s(&m.member_id))
                            .with_group_instance_id(if version >= 4 {
                                m.instance_id.as_deref().map(s)
                            } else {
                                None
                            })
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment)
                    })
                    .collect();
            }
            GroupReply::Describe(Err(e)) => {
                d.error_code = code(&e);
                if version >= 6 {
                    d.error_message = Some(s(&e.message));
                }
            }
            _ => d.error_code = codes::UNKNOWN_SERVER_ERROR,
        }
        out.groups.push(d);
    }
    out
}

pub async fn delete_groups(
    shard: &Rc<Shard>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut out = DeleteGroupsResponse::default();
    for id in request.groups_names {
        let error = match group::call(shard, id.0.to_string(), GroupCall::Delete).await {
            GroupReply::Delete(Ok(())) => codes::NONE,
            GroupReply::Delete(Err(e)) => code(&e),
            _ => codes::UNKNOWN_SERVER_ERROR,
        };
        out.results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error),
        );
    }
    out
}

pub async fn offset_delete(
    shard: &Rc<Shard>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let mut out = OffsetDeleteResponse::default();
    let reply = group::call(
        shard,
        request.group_id.0.to_string(),
        GroupCall::DeleteOffsets(partitions),
    )
    .await;
    let mut results = match reply {
        GroupReply::DeleteOffsets(Ok(r)) => r
            .into_iter()
            .map(|r| r.err().map_or(codes::NONE, |e| code(&e)))
            .collect::<Vec<_>>()
            .into_iter(),
        GroupReply::DeleteOffsets(Err(e)) => {
            out.error_code = code(&e);
            return out;
        }
        _ => {
            out.error_code = codes::UNKNOWN_SERVER_ERROR;
            return out;
        }
    };
    out.topics = request
        .topics
        .into_iter()
        .map(|t| {
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(results.next().unwrap_or(codes::NONE))
                        })
                        .collect(),
                )
        })
        .collect();
    out
}
