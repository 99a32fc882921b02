//! Metadata: this broker, the cluster id, and each topic's partitions with
//! this broker as their leader — creating topics on first use when the
//! broker allows it.

use super::codes;
use crate::broker;
use crate::meta::{Snapshot, TopicMeta, validate_topic_name};
use crate::shard::Shard;
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

pub async fn handle(shard: &Rc<Shard>, version: i16, request: MetadataRequest) -> MetadataResponse {
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
                && let Err(e) = broker::auto_create(shard, name).await
            {
                tracing::warn!(topic = %name, error = %e, "auto-creating a topic failed");
            }
        }
    }
    let snapshot = shard.snapshot();
    let topics = if all {
        snapshot
            .topics
            .values()
            .map(|t| topic(shard, version, ops, t))
            .collect()
    } else {
        wanted
            .iter()
            .map(|w| missing_or_found(shard, version, ops, &snapshot, w))
            .collect()
    };
    let mut response = MetadataResponse::default();
    response.brokers = brokers(shard);
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(snapshot.cluster_id.clone()));
    }
    response.controller_id = BrokerId(shard.config.node_id);
    response.topics = topics;
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS_ALL;
    }
    response
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

/// This broker, as clients must reach it.
fn brokers(shard: &Shard) -> Vec<MetadataResponseBroker> {
    let (host, port) = shard
        .kafka_advertised
        .clone()
        .unwrap_or_else(|| (shard.host.clone(), 0));
    vec![
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(shard.config.node_id))
            .with_host(StrBytes::from_string(host))
            .with_port(port as i32),
    ]
}

fn topic(shard: &Shard, version: i16, ops: bool, meta: &Arc<TopicMeta>) -> MetadataResponseTopic {
    let node = BrokerId(shard.config.node_id);
    let partitions = (0..meta.partitions)
        .map(|p| {
            // Leader epoch -1: clients skip offset validation by epoch,
            // which needs OffsetForLeaderEpoch (comes with replication).
            MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(node)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
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
