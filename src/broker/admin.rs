//! Topic administration: create, delete, add partitions, describe, and the
//! auto-creation Kafka clients may ask for.
//!
//! Every change goes through the controller shard (shard 0), which persists
//! the new metadata and has every shard apply it before answering.

use crate::error::{BrokerError, ErrorKind};
use crate::meta::{TopicConfig, TopicMeta};
use crate::shard::{PartitionState, Shard};
use std::rc::Rc;
use std::sync::Arc;

/// Creates a topic with `config` (the broker's defaults with the request's
/// settings applied by the adapter, already validated).
pub async fn create_topic(
    shard: &Rc<Shard>,
    name: String,
    partitions: u32,
    config: TopicConfig,
) -> Result<Arc<TopicMeta>, BrokerError> {
    refuse_internal(&name, "created")?;
    shard.create_topic(name, partitions, config).await
}

/// Internal topics are the broker's: clients may read them but not create,
/// delete, grow or write them.
pub fn refuse_internal(name: &str, what: &str) -> Result<(), BrokerError> {
    if crate::group::is_internal(name) {
        return Err(internal_topic(name, what));
    }
    Ok(())
}

pub fn internal_topic(name: &str, what: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::InternalTopic,
        format!("{name:?} is an internal topic and cannot be {what} by clients"),
    )
}

/// Checks that `name` could be created with `partitions` and `config`
/// (Kafka's `validate_only`), changing nothing.
pub fn validate_new_topic(
    shard: &Shard,
    name: &str,
    partitions: u32,
    config: TopicConfig,
) -> Result<(), BrokerError> {
    refuse_internal(name, "created")?;
    shard
        .snapshot()
        .with_topic(name, partitions, config)
        .map(|_| ())
        .map_err(BrokerError::from)
}

/// Checks that `name` could get `total` partitions, changing nothing.
pub fn validate_new_partitions(shard: &Shard, name: &str, total: u32) -> Result<(), BrokerError> {
    refuse_internal(name, "changed")?;
    shard
        .snapshot()
        .with_partitions(name, total)
        .map(|_| ())
        .map_err(BrokerError::from)
}

/// Deletes a topic and its data.
pub async fn delete_topic(shard: &Rc<Shard>, name: String) -> Result<(), BrokerError> {
    refuse_internal(&name, "deleted")?;
    shard.delete_topic(name).await
}

/// Raises a topic's partition count to `total`; existing partitions keep
/// their data and their shard.
pub async fn create_partitions(
    shard: &Rc<Shard>,
    name: String,
    total: u32,
) -> Result<Arc<TopicMeta>, BrokerError> {
    refuse_internal(&name, "changed")?;
    shard.create_partitions(name, total).await
}

/// A topic's metadata and the state of each partition.
pub struct TopicDescription {
    pub meta: Arc<TopicMeta>,
    pub partitions: Vec<PartitionState>,
}

pub async fn describe_topic(
    shard: &Rc<Shard>,
    name: &str,
) -> Result<TopicDescription, BrokerError> {
    let meta = shard
        .snapshot()
        .topic(name)
        .cloned()
        .ok_or_else(|| BrokerError::unknown_topic(name))?;
    let partitions = shard.describe(meta.id, meta.partitions).await;
    Ok(TopicDescription { meta, partitions })
}

/// Creates `name` with the broker's defaults if it does not exist and the
/// broker allows clients to create topics by naming them (Kafka's
/// `auto.create.topics.enable`, off by default as in Redpanda). Another
/// request creating it meanwhile is not an error.
pub async fn auto_create(shard: &Rc<Shard>, name: &str) -> Result<(), BrokerError> {
    if shard.snapshot().topic(name).is_some() {
        return Ok(());
    }
    if !shard.config.auto_create_topics {
        return Err(BrokerError::unknown_topic(name));
    }
    let config = shard.config.topic_defaults.clone();
    let partitions = shard.config.auto_create_partitions;
    match shard
        .create_topic(name.to_string(), partitions, config)
        .await
    {
        Ok(meta) => {
            tracing::info!(
                topic = name,
                partitions = meta.partitions,
                "created topic on first use (auto-create)"
            );
            Ok(())
        }
        Err(e) if e.kind == ErrorKind::TopicAlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// An idempotent producer's id and epoch: a new id at epoch 0, or — for a
/// producer that asks with the id and epoch it has (Kafka's KIP-360, after
/// a sequence error) — the same id at the next epoch, which fences its
/// older self. A new id once the epoch would overflow.
pub async fn init_producer_id(
    shard: &Rc<Shard>,
    current: Option<(i64, i16)>,
) -> Result<(i64, i16), BrokerError> {
    match current {
        Some((id, epoch)) if id >= 0 && (0..i16::MAX).contains(&epoch) => Ok((id, epoch + 1)),
        _ => Ok((shard.allocate_producer_id().await?, 0)),
    }
}
