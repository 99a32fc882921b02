//! Topic settings over Kafka: DescribeConfigs and IncrementalAlterConfigs.
//! Each resource is answered on its own; one bad resource does not fail
//! the others.
//!
//! Topics are described with every setting corelog has (Kafka's names),
//! each with its source: set on the topic (DYNAMIC_TOPIC_CONFIG), the
//! broker's configuration (STATIC_BROKER_CONFIG) or the built-in default
//! (DEFAULT_CONFIG). The broker resource describes the broker's topic
//! defaults by their broker-level names; it cannot be altered here.

use super::codes;
use crate::broker;
use crate::error::{BrokerError, ErrorKind};
use crate::meta::{ConfigChange, ConfigEntry, ConfigOp, ConfigSource, SettingType};
use crate::shard::Shard;
use crate::types::ShardId;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::rc::Rc;

/// Kafka's resource types used here.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` values.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// Kafka's `ConfigType` values (DescribeConfigs v3+).
fn config_type(kind: SettingType) -> i8 {
    match kind {
        SettingType::String => 2,
        SettingType::Int => 3,
        SettingType::Long => 5,
        SettingType::List => 7,
    }
}

/// Kafka's code for where a value comes from.
pub fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::Topic => SOURCE_TOPIC,
        ConfigSource::Broker => SOURCE_STATIC_BROKER,
        ConfigSource::Default => SOURCE_DEFAULT,
    }
}

/// The name a value goes by at its level: the topic's own name for a
/// topic-level value, the broker-level name otherwise.
fn name_at(entry: &ConfigEntry, source: ConfigSource) -> &'static str {
    match source {
        ConfigSource::Topic => entry.info.name,
        _ => entry.info.broker_name,
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Whether each resource is named more than once in the request (Kafka
/// refuses every copy). Linear: a request may name many resources.
fn duplicates(resources: &[(i8, String)]) -> Vec<bool> {
    let mut seen: HashMap<&(i8, String), usize> = HashMap::with_capacity(resources.len());
    for r in resources {
        *seen.entry(r).or_default() += 1;
    }
    resources.iter().map(|r| seen[r] > 1).collect()
}

fn duplicate_error() -> BrokerError {
    BrokerError::new(
        ErrorKind::InvalidRequest,
        "the resource appears more than once in the request",
    )
}

fn unsupported_resource(kind: i8) -> BrokerError {
    BrokerError::new(
        ErrorKind::InvalidRequest,
        format!(
            "resource type {kind} is not supported: this broker serves topic ({RESOURCE_TOPIC}) and broker ({RESOURCE_BROKER}) configurations"
        ),
    )
}

/// Checks that a broker resource names this broker, one of its shards in
/// the shard-aware Kafka mode, or the cluster-wide default (named "").
fn check_broker(shard: &Shard, name: &str) -> Result<(), BrokerError> {
    let id = shard.config.node_id;
    let shard_broker = |n: i32| {
        shard.config.kafka_shard_brokers
            && (0..shard.count).any(|s| crate::meta::shard_broker_id(id, ShardId(s)) == n)
    };
    let ours = name.is_empty()
        || name
            .parse::<i32>()
            .is_ok_and(|n| n == id || shard_broker(n));
    if ours {
        Ok(())
    } else {
        Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!("broker {name:?} is not this broker (node id {id})"),
        ))
    }
}

pub fn describe(
    shard: &Rc<Shard>,
    version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let asked: Vec<(i8, String)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.to_string()))
        .collect();
    let repeated = duplicates(&asked);
    let mut out = DescribeConfigsResponse::default();
    for ((resource, (kind, name)), repeated) in request.resources.iter().zip(asked).zip(repeated) {
        let found = if repeated {
            Err(duplicate_error())
        } else {
            match kind {
                RESOURCE_TOPIC => broker::describe_configs(shard, &name),
                RESOURCE_BROKER => check_broker(shard, &name)
                    .map(|()| shard.snapshot().topic_defaults.broker_entries()),
                other => Err(unsupported_resource(other)),
            }
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(kind)
            .with_resource_name(resource.resource_name.clone());
        match found {
            Ok(entries) => {
                let wanted = resource
                    .configuration_keys
                    .as_ref()
                    .filter(|k| !k.is_empty());
                let broker_level = kind == RESOURCE_BROKER;
                result.configs = entries
                    .iter()
                    .filter(|e| {
                        let name = if broker_level {
                            e.info.broker_name
                        } else {
                            e.info.name
                        };
                        wanted.is_none_or(|keys| keys.iter().any(|k| &**k == name))
                    })
                    .map(|e| {
                        entry(
                            e,
                            broker_level,
                            version,
                            request.include_synonyms,
                            request.include_documentation,
                        )
                    })
                    .collect();
            }
            Err(e) => {
                result.error_code = codes::code(e.kind);
                result.error_message = Some(StrBytes::from_string(e.message));
            }
        }
        out.results.push(result);
    }
    out
}

/// One setting as DescribeConfigs gives it.
fn entry(
    e: &ConfigEntry,
    broker_level: bool,
    version: i16,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let name = if broker_level {
        e.info.broker_name
    } else {
        e.info.name
    };
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(text(name))
        .with_value(Some(text(&e.value)))
        .with_config_source(source_code(e.source));
    if synonyms {
        r.synonyms = e
            .synonyms
            .iter()
            .map(|(source, value)| {
                DescribeConfigsSynonym::default()
                    .with_name(text(name_at(e, *source)))
                    .with_value(Some(text(value)))
                    .with_source(source_code(*source))
            })
            .collect();
    }
    if version >= 3 {
        r.config_type = config_type(e.info.kind);
        if documentation {
            r.documentation = Some(text(e.info.doc));
        }
    }
    r
}

pub async fn incremental_alter(
    shard: &Rc<Shard>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let asked: Vec<(i8, String)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.to_string()))
        .collect();
    let repeated = duplicates(&asked);
    let mut out = IncrementalAlterConfigsResponse::default();
    for ((resource, (kind, name)), repeated) in
        request.resources.into_iter().zip(asked).zip(repeated)
    {
        let outcome = async {
            if repeated {
                return Err(duplicate_error());
            }
            match kind {
                RESOURCE_TOPIC => {}
                RESOURCE_BROKER => {
                    check_broker(shard, &name)?;
                    return Err(BrokerError::new(
                        ErrorKind::InvalidRequest,
                        "broker settings cannot be changed at run time: set [topic_defaults] in the broker's configuration file, or change the topic's own settings",
                    ));
                }
                other => return Err(unsupported_resource(other)),
            }
            let changes = resource
                .configs
                .into_iter()
                .map(|c| {
                    let value = c.value.map(|v| v.to_string());
                    let op = match c.config_operation {
                        0 => ConfigOp::Set(value),
                        1 => ConfigOp::Delete,
                        2 => ConfigOp::Append(value),
                        3 => ConfigOp::Subtract(value),
                        other => {
                            return Err(BrokerError::new(
                                ErrorKind::InvalidRequest,
                                format!(
                                    "config operation {other} on {} is unknown (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)",
                                    &*c.name
                                ),
                            ));
                        }
                    };
                    Ok(ConfigChange {
                        name: c.name.to_string(),
                        op,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            broker::alter_configs(shard, name.clone(), changes, request.validate_only)
                .await
                .map(|_| ())
        }
        .await;
        let mut result = AlterConfigsResourceResponse::default()
            .with_resource_type(kind)
            .with_resource_name(resource.resource_name);
        if let Err(e) = outcome {
            result.error_code = codes::code(e.kind);
            result.error_message = Some(StrBytes::from_string(e.message));
        }
        out.responses.push(result);
    }
    out
}
