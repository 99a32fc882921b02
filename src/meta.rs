//! Topic metadata: names, configurations, the partition → shard placement,
//! and the durable metadata file.
//!
//! Metadata has one writer, shard 0 (the controller). It applies a change to
//! a copy of the current [`Snapshot`], writes the result to disk
//! (`<data>/.corelog-metadata`, written to a temporary file, synced, renamed,
//! directory synced) and only then broadcasts the new snapshot. Every shard
//! swaps its snapshot in whole (`Arc`), so a shard never sees half a change.

use crate::constants::{PARTITIONS_PER_TOPIC_MAX, TOPIC_NAME_BYTES_MAX};
use crate::protocol::wire;
use crate::storage::{FsyncPolicy, LogConfig};
use crate::types::{ShardId, TopicId};
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

impl TopicConfig {
    /// This configuration with the values a request sets (`-1` / `DEFAULT`
    /// keep ours). Validated.
    pub fn overlay(&self, wire: Option<wire::TopicConfig<'_>>) -> Result<TopicConfig, String> {
        let mut c = self.clone();
        if let Some(w) = wire {
            let opt = |v: i64, what: &str| -> Result<Option<u64>, String> {
                match v {
                    -1 => Ok(None),
                    v if v < -1 => Err(format!("{what} {v} is negative")),
                    v => Ok(Some(v as u64)),
                }
            };
            if let Some(v) = opt(w.retention_ms(), "retention ms")? {
                c.retention_ms = Some(v);
            }
            if let Some(v) = opt(w.retention_bytes(), "retention bytes")? {
                c.retention_bytes = Some(v);
            }
            if let Some(v) = opt(w.segment_bytes(), "segment bytes")? {
                c.segment_bytes = v;
            }
            if let Some(v) = opt(w.segment_ms(), "segment ms")? {
                c.segment_ms = v;
            }
            if let Some(v) = opt(w.max_batch_bytes(), "max batch bytes")? {
                c.max_batch_bytes = v as usize;
            }
            c.fsync = match w.fsync() {
                wire::FsyncPolicy::DEFAULT => c.fsync,
                wire::FsyncPolicy::NEVER => FsyncPolicy::Never,
                wire::FsyncPolicy::ALWAYS => FsyncPolicy::Always,
                wire::FsyncPolicy::INTERVAL => {
                    if w.fsync_interval_ms() == 0 {
                        return Err("fsync interval must be at least 1 ms".into());
                    }
                    FsyncPolicy::Interval(Duration::from_millis(w.fsync_interval_ms() as u64))
                }
                other => return Err(format!("unknown fsync policy {}", other.0)),
            };
        }
        c.log_config().validate()?;
        Ok(c)
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

    /// Writes this configuration as a wire table.
    pub fn to_wire<'a>(
        &self,
        fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
    ) -> flatbuffers::WIPOffset<wire::TopicConfig<'a>> {
        let (fsync, interval) = match self.fsync {
            FsyncPolicy::Never => (wire::FsyncPolicy::NEVER, 0),
            FsyncPolicy::Always => (wire::FsyncPolicy::ALWAYS, 0),
            FsyncPolicy::Interval(d) => (
                wire::FsyncPolicy::INTERVAL,
                d.as_millis().min(u32::MAX as u128) as u32,
            ),
        };
        let opt = |v: Option<u64>| v.map_or(-1, |v| v.min(i64::MAX as u64) as i64);
        wire::TopicConfig::create(
            fbb,
            &wire::TopicConfigArgs {
                retention_ms: opt(self.retention_ms),
                retention_bytes: opt(self.retention_bytes),
                segment_bytes: self.segment_bytes as i64,
                segment_ms: self.segment_ms as i64,
                fsync,
                fsync_interval_ms: interval,
                max_batch_bytes: self.max_batch_bytes as i64,
            },
        )
    }
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: TopicId,
    pub name: Arc<str>,
    pub partitions: u32,
    pub config: TopicConfig,
}

/// An immutable view of all topics, swapped in whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Increases with every change.
    pub version: u64,
    pub next_topic_id: u32,
    pub topics: BTreeMap<Arc<str>, Arc<TopicMeta>>,
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
        });
        let mut next = self.clone();
        next.version += 1;
        next.next_topic_id += 1;
        next.topics.insert(meta.name.clone(), meta.clone());
        Ok((next, meta))
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
                let config = t.config.to_wire(&mut fbb);
                wire::TopicRecord::create(
                    &mut fbb,
                    &wire::TopicRecordArgs {
                        name: Some(name),
                        topic_id: t.id.0,
                        partitions: t.partitions,
                        config: Some(config),
                    },
                )
            })
            .collect();
        let topics = fbb.create_vector(&topics);
        let file = wire::MetadataFile::create(
            &mut fbb,
            &wire::MetadataFileArgs {
                version: self.version,
                next_topic_id: self.next_topic_id,
                topics: Some(topics),
            },
        );
        fbb.finish(file, Some(METADATA_FILE_IDENTIFIER));
        fbb.finished_data().to_vec()
    }

    /// Decodes (and verifies) a metadata file.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
        if !flatbuffers::buffer_has_identifier(bytes, METADATA_FILE_IDENTIFIER, false) {
            return Err("not a corelog metadata file (identifier missing)".into());
        }
        let file = flatbuffers::root::<wire::MetadataFile>(bytes)
            .map_err(|e| format!("metadata file fails verification: {e}"))?;
        let mut snapshot = Snapshot {
            version: file.version(),
            next_topic_id: file.next_topic_id(),
            topics: BTreeMap::new(),
        };
        for t in file.topics().iter().flatten() {
            let name = t.name().ok_or("topic record without a name")?;
            let config = TopicConfig::default()
                .overlay(t.config())
                .map_err(|e| format!("topic {name}: {e}"))?;
            let meta = TopicMeta {
                id: TopicId(t.topic_id()),
                name: Arc::from(name),
                partitions: t.partitions(),
                config,
            };
            snapshot.topics.insert(meta.name.clone(), Arc::new(meta));
        }
        Ok(snapshot)
    }

    /// Loads the metadata file of `data_dir`; an empty snapshot if none.
    pub fn load(data_dir: &Path) -> Result<Snapshot, String> {
        let path = data_dir.join(METADATA_FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => Snapshot::decode(&bytes).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Snapshot::default()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
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

/// Four-byte identifier at the start of the metadata file.
const METADATA_FILE_IDENTIFIER: &str = "CLMD";

/// Why a metadata change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaError {
    InvalidName(String),
    Exists(String),
    Unknown(String),
    InvalidPartitions(u32),
    InvalidConfig(String),
}

impl MetaError {
    pub fn code(&self) -> wire::ErrorCode {
        match self {
            MetaError::InvalidName(_) => wire::ErrorCode::INVALID_TOPIC_NAME,
            MetaError::Exists(_) => wire::ErrorCode::TOPIC_ALREADY_EXISTS,
            MetaError::Unknown(_) => wire::ErrorCode::UNKNOWN_TOPIC,
            MetaError::InvalidPartitions(_) => wire::ErrorCode::INVALID_PARTITION_COUNT,
            MetaError::InvalidConfig(_) => wire::ErrorCode::INVALID_CONFIG,
        }
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
        assert_eq!(Snapshot::load(dir.path()).unwrap(), Snapshot::default());
        let (s, _) = Snapshot::default()
            .with_topic("t", 2, TopicConfig::default())
            .unwrap();
        s.save(dir.path()).unwrap();
        assert_eq!(Snapshot::load(dir.path()).unwrap(), s);
        assert!(
            !dir.path()
                .join(format!("{METADATA_FILE_NAME}.tmp"))
                .exists()
        );
    }
}
