//! Topic metadata: names, configurations, the partition → shard placement,
//! the Kafka node ids of shard-brokers ([`shard_broker_id`]), and the durable
//! metadata file.
//!
//! Metadata has one writer, shard 0 (the controller). It applies a change to
//! a copy of the current [`Snapshot`], writes the result to disk
//! (`<data>/.corelog-metadata`, written to a temporary file, synced, renamed,
//! directory synced) and only then broadcasts the new snapshot. Every shard
//! swaps its snapshot in whole (`Arc`), so a shard never sees half a change.

use crate::constants::{PARTITIONS_PER_TOPIC_MAX, TOPIC_NAME_BYTES_MAX};
use crate::error::{BrokerError, ErrorKind};
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes, unused_imports, dead_code)]
mod metadata_generated;
mod node_ids;

pub use node_ids::shard_broker_id;

use crate::storage::{FsyncPolicy, LogConfig};
use crate::types::{ShardId, TopicId};
use metadata_generated::corelog::metadata as file;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File name of the metadata file inside the data directory.
pub const METADATA_FILE_NAME: &str = ".corelog-metadata";

/// The shard that owns partition `partition` of topic `topic` when the
/// broker runs `shards` shards.
///
/// A topic's partitions go round-robin over the shards, starting at a shard
/// chosen by a jump consistent hash (Lamping and Veach, 2014) of the topic
/// id: a topic with at least as many partitions as shards uses every shard
/// evenly, and different topics start on different shards. Pure: every
/// shard and every client computes the same answer without a lookup.
pub fn placement(topic: TopicId, partition: u32, shards: u32) -> ShardId {
    assert!(shards > 0, "placement over zero shards");
    let start = jump_consistent_hash(splitmix64(topic.0 as u64), shards);
    ShardId(((start as u64 + partition as u64) % shards as u64) as u32)
}

/// Scrambles a small integer into a well-spread 64-bit key.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Jump consistent hash: maps `key` to a bucket in `0..buckets`.
fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// Checks a topic name: 1 to 249 characters of `[a-zA-Z0-9._-]`, not
/// starting with a dot (dot files in the data directory are the broker's).
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "topic name must be 1 to {TOPIC_NAME_BYTES_MAX} characters, got {}",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return Err(format!("topic name {name:?} must not start with a dot"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; allowed are letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The effective configuration of a topic (every value set).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicConfig {
    /// Delete sealed segments whose newest record is older (ms); none = keep.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while a partition stays this big.
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
    pub segment_ms: u64,
    #[serde(with = "fsync_text")]
    pub fsync: FsyncPolicy,
    pub max_batch_bytes: usize,
}

mod fsync_text {
    use crate::storage::FsyncPolicy;

    pub fn serialize<S: serde::Serializer>(p: &FsyncPolicy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<FsyncPolicy, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for TopicConfig {
    fn default() -> Self {
        let log = LogConfig::default();
        TopicConfig {
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: log.segment_bytes,
            segment_ms: log.segment_ms,
            fsync: log.fsync,
            max_batch_bytes: log.batch_bytes_max,
        }
    }
}

/// Settings a request gives a new topic; what it leaves unset keeps the
/// broker's defaults. `retention_*: Some(None)` means "keep forever".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicOverrides {
    pub retention_ms: Option<Option<u64>>,
    pub retention_bytes: Option<Option<u64>>,
    pub segment_bytes: Option<u64>,
    pub segment_ms: Option<u64>,
    pub fsync: Option<FsyncPolicy>,
    pub max_batch_bytes: Option<usize>,
}

impl TopicOverrides {
    /// Sets one value by its Kafka name (what Kafka's admin clients send
    /// with CreateTopics). Unknown names and values are errors that say
    /// what is accepted.
    pub fn set_kafka(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        let value = value.ok_or_else(|| format!("{key} has no value"))?;
        let number = |what: &str| -> Result<i64, String> {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{what} must be a whole number, got {value:?}"))
        };
        let non_negative = |what: &str| -> Result<u64, String> {
            let n = number(what)?;
            u64::try_from(n).map_err(|_| format!("{what} must not be negative, got {n}"))
        };
        let forever_or = |what: &str| -> Result<Option<u64>, String> {
            match number(what)? {
                -1 => Ok(None),
                n if n < 0 => Err(format!(
                    "{what} must be -1 (forever) or at least 0, got {n}"
                )),
                n => Ok(Some(n as u64)),
            }
        };
        match key {
            "retention.ms" => self.retention_ms = Some(forever_or(key)?),
            "retention.bytes" => self.retention_bytes = Some(forever_or(key)?),
            "segment.bytes" => self.segment_bytes = Some(non_negative(key)?),
            "segment.ms" => self.segment_ms = Some(non_negative(key)?),
            "max.message.bytes" => self.max_batch_bytes = Some(non_negative(key)? as usize),
            // corelog's fsync policy, in Kafka's terms: a sync after every
            // message is `always`; a sync every N ms is `interval:N`.
            "flush.messages" => match non_negative(key)? {
                1 => self.fsync = Some(FsyncPolicy::Always),
                n if n >= i64::MAX as u64 => self.fsync = Some(FsyncPolicy::Never),
                n => {
                    return Err(format!(
                        "flush.messages {n} is not supported: 1 (sync every append, corelog's fsync always) or {} (never)",
                        i64::MAX
                    ));
                }
            },
            "flush.ms" => match non_negative(key)? {
                0 => self.fsync = Some(FsyncPolicy::Always),
                n if n >= i64::MAX as u64 => self.fsync = Some(FsyncPolicy::Never),
                n => self.fsync = Some(FsyncPolicy::Interval(Duration::from_millis(n))),
            },
            "cleanup.policy" if value == "delete" => {}
            "cleanup.policy" => {
                return Err(format!(
                    "cleanup.policy {value:?} is not supported yet; only \"delete\""
                ));
            }
            "message.timestamp.type" if value == "CreateTime" => {}
            _ => {
                return Err(format!(
                    "topic config {key:?} is not supported; supported: retention.ms, retention.bytes, segment.bytes, segment.ms, max.message.bytes, flush.messages, flush.ms, cleanup.policy=delete"
                ));
            }
        }
        Ok(())
    }
}

impl TopicConfig {
    /// This configuration with `overrides` applied, validated.
    pub fn with_overrides(&self, overrides: &TopicOverrides) -> Result<TopicConfig, String> {
        let mut c = self.clone();
        if let Some(v) = overrides.retention_ms {
            c.retention_ms = v;
        }
        if let Some(v) = overrides.retention_bytes {
            c.retention_bytes = v;
        }
        if let Some(v) = overrides.segment_bytes {
            c.segment_bytes = v;
        }
        if let Some(v) = overrides.segment_ms {
            c.segment_ms = v;
        }
        if let Some(v) = overrides.fsync {
            c.fsync = v;
        }
        if let Some(v) = overrides.max_batch_bytes {
            c.max_batch_bytes = v;
        }
        c.log_config().validate()?;
        Ok(c)
    }

    /// The configuration in Kafka's names and text values, as admin tools
    /// show it (`retention.ms` -1 is "forever"; the fsync policy appears as
    /// `flush.messages` / `flush.ms`).
    pub fn kafka_entries(&self) -> Vec<(&'static str, String)> {
        let forever = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        let (flush_messages, flush_ms) = match self.fsync {
            FsyncPolicy::Always => ("1".to_string(), "0".to_string()),
            FsyncPolicy::Interval(d) => (i64::MAX.to_string(), d.as_millis().to_string()),
            FsyncPolicy::Never => (i64::MAX.to_string(), i64::MAX.to_string()),
        };
        vec![
            ("cleanup.policy", "delete".to_string()),
            ("retention.ms", forever(self.retention_ms)),
            ("retention.bytes", forever(self.retention_bytes)),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("max.message.bytes", self.max_batch_bytes.to_string()),
            ("message.timestamp.type", "CreateTime".to_string()),
            ("flush.messages", flush_messages),
            ("flush.ms", flush_ms),
        ]
    }

    /// The storage configuration of each partition log of the topic.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            fsync: self.fsync,
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            batch_bytes_max: self.max_batch_bytes,
            ..LogConfig::default()
        }
    }
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: TopicId,
    pub name: Arc<str>,
    pub partitions: u32,
    pub config: TopicConfig,
    /// The topic's UUID (Kafka's topic id): random, never reused, stable
    /// for the topic's life.
    pub uuid: [u8; 16],
}

/// An immutable view of all topics, swapped in whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Increases with every change.
    pub version: u64,
    pub next_topic_id: u32,
    pub topics: BTreeMap<Arc<str>, Arc<TopicMeta>>,
    /// The cluster id Kafka clients see (22 characters, URL-safe base64 of
    /// a random UUID, as Kafka makes them); set at the first start and never
    /// changed.
    pub cluster_id: String,
    /// Idempotent producer ids below this were handed out; the controller
    /// reserves them in blocks, so a restart never hands one out twice.
    pub next_producer_id: i64,
}

/// A random (version 4) UUID.
pub fn random_uuid() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// A new cluster id in Kafka's format.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = random_uuid();
    let mut bits = u128::from_be_bytes(bytes);
    // 22 characters of 6 bits cover 132 bits; the top 4 are zero padding.
    let mut out = [0u8; 22];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(bits & 63) as usize];
        bits >>= 6;
    }
    String::from_utf8(out.to_vec()).expect("ASCII")
}

impl Snapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// A new snapshot with `name` added.
    pub fn with_topic(
        &self,
        name: &str,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<(Snapshot, Arc<TopicMeta>), MetaError> {
        validate_topic_name(name).map_err(MetaError::InvalidName)?;
        if self.topics.contains_key(name) {
            return Err(MetaError::Exists(name.to_string()));
        }
        if partitions == 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(MetaError::InvalidPartitions(partitions));
        }
        let meta = Arc::new(TopicMeta {
            id: TopicId(self.next_topic_id),
            name: Arc::from(name),
            partitions,
            config,
            uuid: random_uuid(),
        });
        let mut next = self.clone();
        next.version += 1;
        next.next_topic_id += 1;
        next.topics.insert(meta.name.clone(), meta.clone());
        Ok((next, meta))
    }

    /// A new snapshot in which `name` has `total` partitions (more than it
    /// has: partitions are never removed, their data is the topic's).
    pub fn with_partitions(
        &self,
        name: &str,
        total: u32,
    ) -> Result<(Snapshot, Arc<TopicMeta>), MetaError> {
        let current = self
            .topics
            .get(name)
            .ok_or_else(|| MetaError::Unknown(name.to_string()))?;
        if total <= current.partitions || total > PARTITIONS_PER_TOPIC_MAX {
            return Err(MetaError::PartitionsNotRaised {
                name: name.to_string(),
                current: current.partitions,
                asked: total,
            });
        }
        let meta = Arc::new(TopicMeta {
            partitions: total,
            ..(**current).clone()
        });
        let mut next = self.clone();
        next.version += 1;
        next.topics.insert(meta.name.clone(), meta.clone());
        Ok((next, meta))
    }

    /// A new snapshot that reserves the next `count` producer ids; returns
    /// it and the first id of the block.
    pub fn with_producer_block(&self, count: u64) -> (Snapshot, i64) {
        let first = self.next_producer_id;
        let mut next = self.clone();
        next.version += 1;
        next.next_producer_id = first.saturating_add(count.min(i64::MAX as u64) as i64);
        (next, first)
    }

    /// A new snapshot without `name`.
    pub fn without_topic(&self, name: &str) -> Result<(Snapshot, Arc<TopicMeta>), MetaError> {
        let mut next = self.clone();
        let removed = next
            .topics
            .remove(name)
            .ok_or_else(|| MetaError::Unknown(name.to_string()))?;
        next.version += 1;
        Ok((next, removed))
    }

    /// Encodes the snapshot as the metadata file's flatbuffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let topics: Vec<_> = self
            .topics
            .values()
            .map(|t| {
                let name = fbb.create_string(&t.name);
                let config = config_to_file(&t.config, &mut fbb);
                let uuid = file::Uuid::new(
                    u64::from_be_bytes(t.uuid[..8].try_into().expect("8 bytes")),
                    u64::from_be_bytes(t.uuid[8..].try_into().expect("8 bytes")),
                );
                file::TopicRecord::create(
                    &mut fbb,
                    &file::TopicRecordArgs {
                        name: Some(name),
                        topic_id: t.id.0,
                        partitions: t.partitions,
                        config: Some(config),
                        uuid: Some(&uuid),
                    },
                )
            })
            .collect();
        let topics = fbb.create_vector(&topics);
        let cluster_id = fbb.create_string(&self.cluster_id);
        let root = file::MetadataFile::create(
            &mut fbb,
            &file::MetadataFileArgs {
                version: self.version,
                next_topic_id: self.next_topic_id,
                topics: Some(topics),
                cluster_id: Some(cluster_id),
                next_producer_id: self.next_producer_id,
            },
        );
        fbb.finish(root, Some(METADATA_FILE_IDENTIFIER));
        fbb.finished_data().to_vec()
    }

    /// Decodes (and verifies) a metadata file. Values a file written by an
    /// older version lacks (topic UUIDs, the cluster id) are left unset
    /// (all-zero UUID, empty id): [`Snapshot::load`] assigns them.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
        if !flatbuffers::buffer_has_identifier(bytes, METADATA_FILE_IDENTIFIER, false) {
            return Err("not a corelog metadata file (identifier missing)".into());
        }
        let root = flatbuffers::root::<file::MetadataFile>(bytes)
            .map_err(|e| format!("metadata file fails verification: {e}"))?;
        let mut snapshot = Snapshot {
            version: root.version(),
            next_topic_id: root.next_topic_id(),
            topics: BTreeMap::new(),
            cluster_id: root.cluster_id().unwrap_or("").to_string(),
            next_producer_id: root.next_producer_id(),
        };
        for t in root.topics().iter().flatten() {
            let name = t.name().ok_or("topic record without a name")?;
            let config = config_from_file(t.config()).map_err(|e| format!("topic {name}: {e}"))?;
            let mut uuid = [0u8; 16];
            if let Some(u) = t.uuid() {
                uuid[..8].copy_from_slice(&u.hi().to_be_bytes());
                uuid[8..].copy_from_slice(&u.lo().to_be_bytes());
            }
            let meta = TopicMeta {
                id: TopicId(t.topic_id()),
                name: Arc::from(name),
                partitions: t.partitions(),
                config,
                uuid,
            };
            snapshot.topics.insert(meta.name.clone(), Arc::new(meta));
        }
        Ok(snapshot)
    }

    /// Gives topics without a UUID a new one and the snapshot a cluster id
    /// if it has none (files written before these existed); returns whether
    /// anything changed.
    fn assign_missing_ids(&mut self) -> bool {
        let mut changed = false;
        if self.cluster_id.is_empty() {
            self.cluster_id = new_cluster_id();
            changed = true;
        }
        for meta in self.topics.values_mut() {
            if meta.uuid == [0; 16] {
                Arc::make_mut(meta).uuid = random_uuid();
                changed = true;
            }
        }
        changed
    }

    /// Loads the metadata file of `data_dir` (an empty snapshot if there
    /// is none). Ids an older version did not write — topic UUIDs, the
    /// cluster id — are assigned and the file is saved at once, so they
    /// never change afterwards. Blocking: run at start-up or off the
    /// executor.
    pub fn load(data_dir: &Path) -> Result<Snapshot, String> {
        let path = data_dir.join(METADATA_FILE_NAME);
        let mut snapshot = match std::fs::read(&path) {
            Ok(bytes) => {
                Snapshot::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        if snapshot.assign_missing_ids() {
            snapshot
                .save(data_dir)
                .map_err(|e| format!("saving {}: {e}", path.display()))?;
            tracing::info!(cluster_id = %snapshot.cluster_id, file = %path.display(), "metadata file written with the cluster id and topic UUIDs");
        }
        Ok(snapshot)
    }

    /// Writes the metadata file durably: temporary file, fsync, rename,
    /// fsync of the directory. Blocking: run it off the executor.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let path = data_dir.join(METADATA_FILE_NAME);
        let tmp: PathBuf = data_dir.join(format!("{METADATA_FILE_NAME}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.encode())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    }
}

/// A topic configuration as the metadata file stores it (every value set).
fn config_to_file<'a>(
    c: &TopicConfig,
    fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
) -> flatbuffers::WIPOffset<file::TopicConfig<'a>> {
    let (fsync, interval) = match c.fsync {
        FsyncPolicy::Never => (file::FsyncPolicy::NEVER, 0),
        FsyncPolicy::Always => (file::FsyncPolicy::ALWAYS, 0),
        FsyncPolicy::Interval(d) => (
            file::FsyncPolicy::INTERVAL,
            d.as_millis().min(u32::MAX as u128) as u32,
        ),
    };
    let opt = |v: Option<u64>| v.map_or(-1, |v| v.min(i64::MAX as u64) as i64);
    file::TopicConfig::create(
        fbb,
        &file::TopicConfigArgs {
            retention_ms: opt(c.retention_ms),
            retention_bytes: opt(c.retention_bytes),
            segment_bytes: c.segment_bytes as i64,
            segment_ms: c.segment_ms as i64,
            fsync,
            fsync_interval_ms: interval,
            max_batch_bytes: c.max_batch_bytes as i64,
        },
    )
}

/// A stored topic configuration (-1: no limit for retention, the default
/// for the rest), validated.
fn config_from_file(f: Option<file::TopicConfig<'_>>) -> Result<TopicConfig, String> {
    let mut c = TopicConfig::default();
    let Some(f) = f else { return Ok(c) };
    let opt = |v: i64, what: &str| -> Result<Option<u64>, String> {
        match v {
            -1 => Ok(None),
            v if v < -1 => Err(format!("{what} {v} is negative")),
            v => Ok(Some(v as u64)),
        }
    };
    c.retention_ms = opt(f.retention_ms(), "retention ms")?;
    c.retention_bytes = opt(f.retention_bytes(), "retention bytes")?;
    if let Some(v) = opt(f.segment_bytes(), "segment bytes")? {
        c.segment_bytes = v;
    }
    if let Some(v) = opt(f.segment_ms(), "segment ms")? {
        c.segment_ms = v;
    }
    if let Some(v) = opt(f.max_batch_bytes(), "max batch bytes")? {
        c.max_batch_bytes = v as usize;
    }
    c.fsync = match f.fsync() {
        file::FsyncPolicy::DEFAULT => c.fsync,
        file::FsyncPolicy::NEVER => FsyncPolicy::Never,
        file::FsyncPolicy::ALWAYS => FsyncPolicy::Always,
        file::FsyncPolicy::INTERVAL => {
            if f.fsync_interval_ms() == 0 {
                return Err("fsync interval must be at least 1 ms".into());
            }
            FsyncPolicy::Interval(Duration::from_millis(f.fsync_interval_ms() as u64))
        }
        other => return Err(format!("unknown fsync policy {}", other.0)),
    };
    c.log_config().validate()?;
    Ok(c)
}

/// Four-byte identifier at the start of the metadata file.
const METADATA_FILE_IDENTIFIER: &str = "CLMD";

/// Why a metadata change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaError {
    InvalidName(String),
    Exists(String),
    Unknown(String),
    InvalidPartitions(u32),
    /// A partition count can only grow, up to the limit.
    PartitionsNotRaised {
        name: String,
        current: u32,
        asked: u32,
    },
    InvalidConfig(String),
}

impl From<MetaError> for BrokerError {
    fn from(e: MetaError) -> BrokerError {
        let kind = match &e {
            MetaError::InvalidName(_) => ErrorKind::InvalidTopicName,
            MetaError::Exists(_) => ErrorKind::TopicAlreadyExists,
            MetaError::Unknown(_) => ErrorKind::UnknownTopic,
            MetaError::InvalidPartitions(_) | MetaError::PartitionsNotRaised { .. } => {
                ErrorKind::InvalidPartitionCount
            }
            MetaError::InvalidConfig(_) => ErrorKind::InvalidConfig,
        };
        BrokerError::new(kind, e.to_string())
    }
}

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaError::InvalidName(why) => write!(f, "{why}"),
            MetaError::Exists(name) => write!(f, "topic {name:?} already exists"),
            MetaError::Unknown(name) => write!(f, "topic {name:?} does not exist"),
            MetaError::InvalidPartitions(n) => {
                write!(
                    f,
                    "partition count {n} is outside 1..={PARTITIONS_PER_TOPIC_MAX}"
                )
            }
            MetaError::PartitionsNotRaised {
                name,
                current,
                asked,
            } => write!(
                f,
                "topic {name:?} has {current} partitions; a new count must be larger, and at most {PARTITIONS_PER_TOPIC_MAX} (asked for {asked})"
            ),
            MetaError::InvalidConfig(why) => write!(f, "invalid topic configuration: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_spreads_a_topic_evenly_and_is_stable() {
        for shards in 1..=8u32 {
            for topic in 0..50u32 {
                let mut counts = vec![0u32; shards as usize];
                for p in 0..shards * 3 {
                    let s = placement(TopicId(topic), p, shards);
                    assert!(s.0 < shards);
                    assert_eq!(s, placement(TopicId(topic), p, shards), "pure function");
                    counts[s.0 as usize] += 1;
                }
                assert!(
                    counts.iter().all(|&c| c == 3),
                    "{shards} shards, topic {topic}: {counts:?}"
                );
            }
        }
        // Different topics start on different shards.
        let starts: std::collections::BTreeSet<u32> =
            (0..40).map(|t| placement(TopicId(t), 0, 8).0).collect();
        assert!(starts.len() >= 6, "{starts:?}");
    }

    #[test]
    fn jump_hash_matches_the_published_algorithm() {
        // Key 0 always lands in bucket 0; growing the bucket count moves a
        // key only to the new bucket.
        assert_eq!(jump_consistent_hash(0, 10), 0);
        for key in 0..1000u64 {
            let k = splitmix64(key);
            for n in 1..20 {
                let (a, b) = (jump_consistent_hash(k, n), jump_consistent_hash(k, n + 1));
                assert!(
                    a == b || b == n,
                    "key {key}: {a} -> {b} when growing to {}",
                    n + 1
                );
            }
        }
    }

    #[test]
    fn topic_names_follow_the_rules() {
        for ok in ["a", "orders", "orders.v2", "a_b-c", &"x".repeat(249)] {
            validate_topic_name(ok).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a b",
            "ü",
            &"x".repeat(250),
            "..",
            ".",
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn snapshots_round_trip_through_the_metadata_file() {
        let config = TopicConfig {
            retention_ms: Some(1000),
            fsync: FsyncPolicy::Interval(Duration::from_millis(7)),
            ..TopicConfig::default()
        };
        let (s1, t1) = Snapshot::default()
            .with_topic("a", 3, config.clone())
            .unwrap();
        let (s2, _) = s1.with_topic("b", 1, TopicConfig::default()).unwrap();
        let (s3, removed) = s2.without_topic("a").unwrap();
        assert_eq!(removed, t1);
        let (s4, t3) = s3.with_topic("a", 5, config).unwrap();
        assert_ne!(t3.id, t1.id, "topic ids are never reused");
        assert_eq!(Snapshot::decode(&s4.encode()).unwrap(), s4);
        assert_eq!(s4.version, 4);
        assert!(matches!(
            s4.with_topic("b", 1, TopicConfig::default()),
            Err(MetaError::Exists(_))
        ));
        assert!(matches!(
            s4.with_topic("c", 0, TopicConfig::default()),
            Err(MetaError::InvalidPartitions(0))
        ));
        assert!(Snapshot::decode(b"garbage!").is_err());
    }

    #[test]
    fn metadata_file_is_written_durably_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        // A new data directory gets a cluster id at once, saved.
        let first = Snapshot::load(dir.path()).unwrap();
        assert!(first.topics.is_empty());
        assert_eq!(first.cluster_id.len(), 22);
        assert_eq!(Snapshot::load(dir.path()).unwrap(), first);
        let (s, t) = first.with_topic("t", 2, TopicConfig::default()).unwrap();
        assert_ne!(t.uuid, [0; 16]);
        s.save(dir.path()).unwrap();
        assert_eq!(Snapshot::load(dir.path()).unwrap(), s);
        assert!(
            !dir.path()
                .join(format!("{METADATA_FILE_NAME}.tmp"))
                .exists()
        );
    }

    #[test]
    fn a_metadata_file_from_0_1_0_gets_ids_once_and_keeps_them() {
        // Written by 0.1.0 (tests/fixtures/README.md): no topic UUIDs, no
        // cluster id.
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/data-v0.1.0")
            .join(METADATA_FILE_NAME);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&fixture, dir.path().join(METADATA_FILE_NAME)).unwrap();
        let old = Snapshot::decode(&std::fs::read(&fixture).unwrap()).unwrap();
        assert_eq!(old.topics.len(), 2);
        assert!(old.cluster_id.is_empty());
        let loaded = Snapshot::load(dir.path()).unwrap();
        assert_eq!(loaded.cluster_id.len(), 22);
        for (name, topic) in &loaded.topics {
            let before = &old.topics[name];
            assert_eq!((topic.id, topic.partitions), (before.id, before.partitions));
            assert_eq!(topic.config, before.config);
            assert_ne!(topic.uuid, [0; 16]);
        }
        assert_eq!(
            Snapshot::load(dir.path()).unwrap(),
            loaded,
            "ids assigned once are saved and never change"
        );
    }

    #[test]
    fn kafka_topic_settings_map_onto_the_topic_config() {
        let mut o = TopicOverrides::default();
        o.set_kafka("retention.ms", Some("-1")).unwrap();
        o.set_kafka("segment.bytes", Some("1048576")).unwrap();
        o.set_kafka("flush.messages", Some("1")).unwrap();
        o.set_kafka("max.message.bytes", Some("2000000")).unwrap();
        let c = TopicConfig::default().with_overrides(&o).unwrap();
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.segment_bytes, 1 << 20);
        assert_eq!(c.fsync, FsyncPolicy::Always);
        assert_eq!(c.max_batch_bytes, 2_000_000);
        let mut o = TopicOverrides::default();
        o.set_kafka("flush.ms", Some("250")).unwrap();
        assert_eq!(
            o.fsync,
            Some(FsyncPolicy::Interval(Duration::from_millis(250)))
        );
        for (key, value) in [
            ("retention.ms", "soon"),
            ("segment.bytes", "-5"),
            ("cleanup.policy", "compact"),
            ("unclean.leader.election.enable", "true"),
        ] {
            let err = TopicOverrides::default()
                .set_kafka(key, Some(value))
                .unwrap_err();
            assert!(err.contains(key), "{err}");
        }
        // Values the log cannot take are refused when applied.
        let mut o = TopicOverrides::default();
        o.set_kafka("segment.bytes", Some("10")).unwrap();
        assert!(TopicConfig::default().with_overrides(&o).is_err());
    }
}
