//! Topic administration: create, delete, add partitions, describe, topic
//! settings (described with their sources, changed), and the auto-creation
//! Kafka clients may ask for.
//!
//! Every change goes through the controller shard (shard 0), which persists
//! the new metadata and has every shard apply it before answering.

use crate::error::{BrokerError, ErrorKind};
use crate::meta::{ConfigChange, ConfigEntry, TopicMeta, TopicOverrides};
use crate::shard::{PartitionState, Shard};
use std::rc::Rc;
use std::sync::Arc;

/// Creates a topic that sets `overrides` itself (every other setting
/// follows the broker's topic defaults).
pub async fn create_topic(
    shard: &Rc<Shard>,
    name: String,
    partitions: u32,
    overrides: TopicOverrides,
    replication: u32,
) -> Result<Arc<TopicMeta>, BrokerError> {
    refuse_internal(&name, "created")?;
    shard
        .create_topic(name, partitions, overrides, replication)
        .await
}

/// Internal topics are the broker's: clients may read them but not create,
/// delete, grow, write or reconfigure them.
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

/// Checks that `name` could be created with `partitions` and `overrides`
/// (Kafka's `validate_only`), changing nothing; returns the topic as it
/// would be.
pub fn validate_new_topic(
    shard: &Shard,
    name: &str,
    partitions: u32,
    overrides: TopicOverrides,
    replication: u32,
) -> Result<Arc<TopicMeta>, BrokerError> {
    refuse_internal(name, "created")?;
    let snapshot = shard.snapshot();
    let meta = snapshot
        .with_replicated_topic(name, partitions, overrides, replication)
        .map(|(_, meta)| meta)
        .map_err(BrokerError::from)?;
    shard.check_partition_budget(&snapshot, partitions, &format!("topic {name:?}"))?;
    Ok(meta)
}

/// Every setting of a topic, with its source (default, broker, topic).
pub fn describe_configs(shard: &Shard, name: &str) -> Result<Vec<ConfigEntry>, BrokerError> {
    let snapshot = shard.snapshot();
    let meta = snapshot
        .topic(name)
        .ok_or_else(|| BrokerError::unknown_topic(name))?;
    Ok(snapshot.config_entries(meta))
}

/// Changes a topic's settings (Kafka's names and operations), all or
/// nothing: persisted, then applied to every running partition (retention,
/// segment size and age, the largest batch, the fsync policy and the
/// timestamp type take effect without a restart). With `validate_only`
/// nothing changes. Returns the topic's settings as they are (or would
/// be) afterwards. An invalid change is `INVALID_CONFIG` with the reason.
pub async fn alter_configs(
    shard: &Rc<Shard>,
    name: String,
    changes: Vec<ConfigChange>,
    validate_only: bool,
) -> Result<Vec<ConfigEntry>, BrokerError> {
    // The offsets topic's settings keep group offsets durable and whole.
    refuse_internal(&name, "reconfigured")?;
    if validate_only {
        let snapshot = shard.snapshot();
        return match snapshot
            .with_config_changes(&name, &changes)
            .map_err(BrokerError::from)?
        {
            Some((next, meta)) => Ok(next.config_entries(&meta)),
            None => describe_configs(shard, &name),
        };
    }
    let meta = shard.alter_configs(name, changes).await?;
    Ok(shard.snapshot().config_entries(&meta))
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
    let partitions = shard.config.auto_create_partitions;
    match shard
        .create_topic(name.to_string(), partitions, TopicOverrides::default(), 1)
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
