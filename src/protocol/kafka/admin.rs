//! Topic administration over Kafka: CreateTopics, DeleteTopics,
//! CreatePartitions. Each topic is answered on its own; one bad topic does
//! not fail the others.

use super::codes;
use super::configs::source_code;
use super::metadata::to_uuid;
use crate::broker;
use crate::error::{BrokerError, ErrorKind};
use crate::meta::{ConfigChange, ConfigEntry, ConfigOp, TopicOverrides};
use crate::shard::Shard;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

fn message(e: &BrokerError) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.message.clone()))
}

pub async fn create_topics(
    shard: &Rc<Shard>,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut out = CreateTopicsResponse::default();
    for topic in request.topics {
        out.topics
            .push(create_one(shard, version, topic, request.validate_only).await);
    }
    out
}

async fn create_one(
    shard: &Rc<Shard>,
    version: i16,
    topic: CreatableTopic,
    validate_only: bool,
) -> CreatableTopicResult {
    let name = topic.name.0.to_string();
    let mut result = CreatableTopicResult::default().with_name(topic.name.clone());
    let outcome = async {
        let (partitions, overrides, rf) = settings(shard, &topic)?;
        if validate_only {
            let meta = broker::validate_new_topic(shard, &name, partitions, overrides, rf)?;
            return Ok((None, partitions, rf, shard.snapshot().config_entries(&meta)));
        }
        let meta = broker::create_topic(shard, name.clone(), partitions, overrides, rf).await?;
        let entries = shard.snapshot().config_entries(&meta);
        Ok::<_, BrokerError>((Some(meta.uuid), partitions, rf, entries))
    }
    .await;
    match outcome {
        Ok((uuid, partitions, rf, entries)) => {
            if version >= 7
                && let Some(uuid) = uuid
            {
                result.topic_id = to_uuid(uuid);
            }
            if version >= 5 {
                result.num_partitions = partitions as i32;
                result.replication_factor = rf as i16;
                result.configs = Some(configs(&entries));
            }
        }
        Err(e) => {
            result.error_code = codes::code(e.kind);
            result.error_message = message(&e);
            if version >= 5 {
                result.num_partitions = -1;
                result.replication_factor = -1;
            }
        }
    }
    result
}

/// The partition count and the settings a create asks for, checked.
fn settings(
    shard: &Shard,
    topic: &CreatableTopic,
) -> Result<(u32, TopicOverrides, u32), BrokerError> {
    // -1: the broker's default (CreateTopics v4+).
    let partitions = match topic.num_partitions {
        -1 => shard.config.auto_create_partitions,
        n if n > 0 => n as u32,
        n => {
            return Err(BrokerError::new(
                ErrorKind::InvalidPartitionCount,
                format!(
                    "partition count must be at least 1 (or -1 for the broker's default), got {n}"
                ),
            ));
        }
    };
    // -1: the broker's default (1, as Kafka's default.replication.factor).
    let rf = match topic.replication_factor {
        -1 => 1,
        n if n > 0 => n as u32,
        n => {
            return Err(BrokerError::new(
                ErrorKind::InvalidReplicationFactor,
                format!("replication factor must be at least 1 (or -1 for the default), got {n}"),
            ));
        }
    };
    let node = shard.config.node_id;
    if let Some(a) = topic.assignments.iter().find(|a| {
        a.broker_ids
            .iter()
            .any(|b| !super::metadata::is_this_broker(shard, b.0))
            || a.broker_ids.len() != 1
    }) {
        return Err(BrokerError::new(
            ErrorKind::InvalidReplicationFactor,
            format!(
                "partition {} is assigned to brokers {:?}; this broker ({node}) runs alone",
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>()
            ),
        ));
    }
    let changes: Vec<ConfigChange> = topic
        .configs
        .iter()
        .map(|c| ConfigChange {
            name: c.name.to_string(),
            op: ConfigOp::Set(c.value.as_ref().map(|v| v.to_string())),
        })
        .collect();
    let overrides = TopicOverrides::default()
        .apply(&changes, &shard.snapshot().topic_defaults)
        .map_err(|e| BrokerError::new(ErrorKind::InvalidConfig, e))?;
    Ok((partitions, overrides, rf))
}

fn configs(entries: &[ConfigEntry]) -> Vec<CreatableTopicConfigs> {
    entries
        .iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(e.info.name))
                .with_value(Some(StrBytes::from_string(e.value.clone())))
                .with_config_source(source_code(e.source))
        })
        .collect()
}

pub async fn delete_topics(
    shard: &Rc<Shard>,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0–5 name topics in `topic_names`; v6+ in `topics`, by name or id.
    let snapshot = shard.snapshot();
    let asked: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut out = DeleteTopicsResponse::default();
    for (name, id) in asked {
        let name = name.or_else(|| {
            snapshot
                .topics
                .values()
                .find(|t| t.uuid == *id.as_bytes())
                .map(|t| t.name.to_string())
        });
        let mut result = DeletableTopicResult::default();
        match name {
            None => {
                result.error_code = codes::UNKNOWN_TOPIC_ID;
                result.topic_id = id;
            }
            Some(name) => {
                if version >= 6 {
                    result.topic_id = snapshot.topic(&name).map_or(id, |t| to_uuid(t.uuid));
                }
                result.name = Some(TopicName(StrBytes::from_string(name.clone())));
                if let Err(e) = broker::delete_topic(shard, name).await {
                    result.error_code = codes::code(e.kind);
                    if version >= 5 {
                        result.error_message = message(&e);
                    }
                }
            }
        }
        out.responses.push(result);
    }
    out
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut out = CreatePartitionsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let outcome = async {
            let total = u32::try_from(topic.count).map_err(|_| {
                BrokerError::new(
                    ErrorKind::InvalidPartitionCount,
                    format!("partition count {} is negative", topic.count),
                )
            })?;
            if let Some(assignments) = &topic.assignments
                && assignments.iter().any(|a| {
                    a.broker_ids
                        .iter()
                        .any(|b| !super::metadata::is_this_broker(shard, b.0))
                })
            {
                return Err(BrokerError::new(
                    ErrorKind::InvalidReplicationFactor,
                    "new partitions can only be assigned to this broker".to_string(),
                ));
            }
            if request.validate_only {
                broker::validate_new_partitions(shard, &name, total)
            } else {
                broker::create_partitions(shard, name, total)
                    .await
                    .map(|_| ())
            }
        }
        .await;
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name);
        if let Err(e) = outcome {
            result.error_code = codes::code(e.kind);
            result.error_message = message(&e);
        }
        out.results.push(result);
    }
    out
}
