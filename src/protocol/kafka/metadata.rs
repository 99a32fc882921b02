//! Metadata: this broker, the cluster id, and each topic's partitions with
//! this broker as their leader — creating topics on first use when the
//! broker allows it.
//!
//! In the shard-aware Kafka mode (`--kafka-shard-brokers`) the answer lists
//! one broker per shard instead — node id [`shard_broker_id`], the
//! advertised host, that shard's own Kafka port — and each partition's
//! leader, replica and in-sync replica is the shard-broker that owns it, so
//! clients send every partition's requests straight to its core. Shard 0's
//! broker is the controller (it is the one that changes metadata).

use super::codes;
use crate::broker;
use crate::meta::{Snapshot, TopicMeta, shard_broker_id, validate_topic_name};
use crate::security::{CLUSTER_RESOURCE_NAME, Operation, ResourceType};
use crate::shard::{ListenerId, Shard};
use crate::types::ShardId;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use std::sync::Arc;
use uuid::Uuid;

/// Every topic operation Kafka defines (READ 3, WRITE 4, CREATE 5,
/// DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11):
/// all are allowed, since this broker has no ACLs yet.
const TOPIC_OPERATIONS_ALL: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Cluster operations (CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12).
const CLUSTER_OPERATIONS_ALL: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub fn to_uuid(bytes: [u8; 16]) -> Uuid {
    Uuid::from_bytes(bytes)
}

pub async fn handle(
    shard: &Rc<Shard>,
    caller: &super::Caller,
    version: i16,
    request: MetadataRequest,
) -> MetadataResponse {
    // v0 asks for every topic with an empty list; v1+ with a null one.
    let all = request.topics.is_none()
        || (version == 0 && request.topics.as_ref().is_some_and(Vec::is_empty));
    // Before v4 a metadata request always allowed auto-creation.
    let may_create = version < 4 || request.allow_auto_topic_creation;
    let ops = version >= 8 && request.include_topic_authorized_operations;
    let wanted: Vec<Wanted> = request
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| match t.name {
            Some(name) => Wanted::Name(name.0.to_string()),
            None => Wanted::Id(t.topic_id),
        })
        .collect();
    if may_create && shard.config.auto_create_topics {
        for w in &wanted {
            if let Wanted::Name(name) = w
                && validate_topic_name(name).is_ok()
                && snapshot_lacks(shard, name)
                && (caller.may_quietly(
                    shard,
                    Operation::Create,
                    ResourceType::Cluster,
                    CLUSTER_RESOURCE_NAME,
                ) || caller.may(shard, Operation::Create, ResourceType::Topic, name))
                && let Err(e) = broker::auto_create(shard, name).await
            {
                tracing::warn!(topic = %name, error = %e, "auto-creating a topic failed");
            }
        }
    }
    let snapshot = shard.snapshot();
    let topics = if all {
        // Only the topics the caller may describe are listed.
        snapshot
            .topics
            .values()
            .filter(|t| {
                caller.may_quietly(shard, Operation::Describe, ResourceType::Topic, &t.name)
            })
            .map(|t| topic(shard, version, ops, t))
            .collect()
    } else {
        wanted
            .iter()
            .map(|w| {
                let mut t = missing_or_found(shard, version, ops, &snapshot, w);
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                if !name.is_empty()
                    && !caller.may(shard, Operation::Describe, ResourceType::Topic, &name)
                {
                    // Kafka says no more than that: not whether it exists.
                    let mut denied = MetadataResponseTopic::default();
                    denied.error_code = codes::TOPIC_AUTHORIZATION_FAILED;
                    denied.name = t.name.take();
                    denied.topic_authorized_operations = i32::MIN;
                    t = denied;
                }
                t
            })
            .collect()
    };
    let mut response = MetadataResponse::default();
    response.brokers = brokers(shard, caller.listener);
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(snapshot.cluster_id.clone()));
    }
    response.controller_id = controller(shard);
    response.topics = topics;
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS_ALL;
    }
    response
}

/// The topic does not exist yet (auto-creation is considered).
fn snapshot_lacks(shard: &Shard, name: &str) -> bool {
    shard.snapshot().topic(name).is_none()
}

enum Wanted {
    Name(String),
    Id(Uuid),
}

fn missing_or_found(
    shard: &Shard,
    version: i16,
    ops: bool,
    snapshot: &Snapshot,
    wanted: &Wanted,
) -> MetadataResponseTopic {
    let found = match wanted {
        Wanted::Name(name) => snapshot.topic(name),
        Wanted::Id(id) => snapshot.topics.values().find(|t| t.uuid == *id.as_bytes()),
    };
    if let Some(meta) = found {
        return topic(shard, version, ops, meta);
    }
    let mut missing = MetadataResponseTopic::default();
    match wanted {
        Wanted::Name(name) => {
            missing.error_code = if validate_topic_name(name).is_ok() {
                codes::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                codes::INVALID_TOPIC_EXCEPTION
            };
            missing.name = Some(TopicName(StrBytes::from_string(name.clone())));
        }
        Wanted::Id(id) => {
            missing.error_code = codes::UNKNOWN_TOPIC_ID;
            missing.topic_id = *id;
        }
    }
    missing
}

/// Whether every shard is advertised as a broker of its own.
fn shard_brokers(shard: &Shard) -> bool {
    shard.config.kafka_shard_brokers
}

/// This broker — or, in the shard-aware mode, each shard — as clients must
/// reach it.
fn brokers(shard: &Shard, listener: ListenerId) -> Vec<MetadataResponseBroker> {
    let (host, port) = shard
        .kafka_advertised(listener)
        .unwrap_or_else(|| (shard.host.clone(), 0));
    let broker = |id: i32, port: u16| {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(host.clone()))
            .with_port(port as i32)
    };
    let snapshot = shard.snapshot();
    if !snapshot.brokers.is_empty() {
        // A cluster: every active broker, at its listener of this
        // listener's security protocol (this one always).
        let me = shard.config.node_id as u32;
        let mut out = vec![broker(shard.config.node_id, port)];
        for b in snapshot.brokers.values() {
            if b.node_id == me || b.fenced {
                continue;
            }
            if let Some((host, port)) = shard.kafka_address_of(b.node_id, listener) {
                out.push(
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.node_id as i32))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port as i32),
                );
            }
        }
        return out;
    }
    if !shard_brokers(shard) {
        return vec![broker(shard.config.node_id, port)];
    }
    shard
        .kafka_shard_ports
        .iter()
        .enumerate()
        .map(|(s, &port)| {
            broker(
                shard_broker_id(shard.config.node_id, ShardId(s as u32)),
                port,
            )
        })
        .collect()
}

/// The broker clients send metadata changes to: this one, or shard 0's.
fn controller(shard: &Shard) -> BrokerId {
    if shard_brokers(shard) {
        BrokerId(shard_broker_id(shard.config.node_id, ShardId(0)))
    } else {
        BrokerId(shard.config.node_id)
    }
}

/// Whether `id` names this broker as clients see it: its node id, or in the
/// shard-aware mode also any of its shards' ids (replica assignments in
/// CreateTopics and CreatePartitions may name either; placement still
/// decides which shard owns a partition).
pub(super) fn is_this_broker(shard: &Shard, id: i32) -> bool {
    id == shard.config.node_id
        || (shard_brokers(shard)
            && (0..shard.count).any(|s| shard_broker_id(shard.config.node_id, ShardId(s)) == id))
}

/// The broker leading a partition: this one, the shard that owns it, or
/// in a cluster the broker it is on.
fn leader(shard: &Shard, meta: &TopicMeta, partition: u32) -> BrokerId {
    if let Some(node) = meta.node_of(partition) {
        return BrokerId(node as i32);
    }
    if shard_brokers(shard) {
        let owner = shard.owner(meta.id, partition);
        BrokerId(shard_broker_id(shard.config.node_id, owner))
    } else {
        BrokerId(shard.config.node_id)
    }
}

fn topic(shard: &Shard, version: i16, ops: bool, meta: &Arc<TopicMeta>) -> MetadataResponseTopic {
    let snapshot = shard.snapshot();
    let partitions = (0..meta.partitions)
        .map(|p| {
            let node = leader(shard, meta, p);
            // A partition on a fenced broker has no leader for now.
            let fenced = meta.node_of(p).is_some_and(|n| snapshot.is_fenced(n));
            // Replicated partitions have real leader epochs (clients then
            // validate their positions with OffsetForLeaderEpoch after a
            // leader change); -1 for the others: nothing to validate.
            let epoch = meta.replicas.get(p as usize).map_or(-1, |r| r.epoch as i32);
            let (replicas, isr) = match meta.replicas.get(p as usize) {
                Some(r) => (
                    r.replicas.iter().map(|n| BrokerId(*n as i32)).collect(),
                    r.isr
                        .iter()
                        .filter(|n| !snapshot.is_fenced(**n))
                        .map(|n| BrokerId(*n as i32))
                        .collect(),
                ),
                None => (vec![node], if fenced { vec![] } else { vec![node] }),
            };
            MetadataResponsePartition::default()
                .with_error_code(if fenced {
                    codes::LEADER_NOT_AVAILABLE
                } else {
                    0
                })
                .with_partition_index(p as i32)
                .with_leader_id(if fenced { BrokerId(-1) } else { node })
                .with_leader_epoch(epoch)
                .with_replica_nodes(replicas)
                .with_isr_nodes(isr)
        })
        .collect();
    let mut t = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            meta.name.to_string(),
        ))))
        .with_partitions(partitions);
    if version >= 10 {
        t.topic_id = to_uuid(meta.uuid);
    }
    if ops {
        t.topic_authorized_operations = TOPIC_OPERATIONS_ALL;
    }
    t
}
