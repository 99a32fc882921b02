//! Topic metadata: names, configurations, the partition → shard placement,
//! the Kafka node ids of shard-brokers ([`shard_broker_id`]), and the durable
//! metadata file.
//!
//! Metadata has one writer, shard 0 (the controller). It applies a change to
//! a copy of the current [`Snapshot`], writes the result to disk
//! (`<data>/.corelog-metadata`, written to a temporary file, synced, renamed,
//! directory synced) and only then broadcasts the new snapshot. Every shard
//! swaps its snapshot in whole (`Arc`), so a shard never sees half a change.
//!
//! A full disk: a failed save removes its temporary file and leaves the old
//! metadata file as it was. So that a change can still be saved on a full
//! disk — deleting a topic is how an operator frees space — the data
//! directory keeps [`METADATA_RESERVE_BYTES`] allocated in
//! `.corelog-reserve` ([`ensure_reserve`]); a save that fails for lack of
//! space gives the reserve up and tries once more, and the reserve is taken
//! again after a later save when space allows.

use crate::constants::{METADATA_RESERVE_BYTES, PARTITIONS_PER_TOPIC_MAX, TOPIC_NAME_BYTES_MAX};
use crate::error::{BrokerError, ErrorKind};
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes, unused_imports, dead_code)]
mod metadata_generated;
mod brokers;
mod node_ids;
mod replicas;
mod security;
mod settings;

pub use brokers::BrokerMeta;
pub use node_ids::shard_broker_id;
pub use replicas::PartitionReplicas;
pub use security::{SecurityState, UserResult};

pub use settings::{
    CleanupPolicy, ConfigChange, ConfigEntry, ConfigOp, ConfigSource, FLUSH_NEVER, SETTINGS,
    Setting, SettingInfo, SettingType, TopicConfig, TopicOverrides, flush_settings,
};

use crate::storage::FsyncPolicy;
use crate::types::{ShardId, TimestampType, TopicId};
use metadata_generated::corelog::metadata as file;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File name of the metadata file inside the data directory.
pub const METADATA_FILE_NAME: &str = ".corelog-metadata";

/// File name of the space kept for metadata saves on a full disk.
pub const RESERVE_FILE_NAME: &str = ".corelog-reserve";

/// Makes sure the data directory holds the metadata reserve: a file of
/// [`METADATA_RESERVE_BYTES`] with its blocks allocated, given up by a
/// metadata save that finds the disk full. Returns whether it had to be
/// (re)created. On a full disk the attempt fails and leaves no partial
/// file. Blocking.
pub fn ensure_reserve(data_dir: &Path) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join(RESERVE_FILE_NAME);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= METADATA_RESERVE_BYTES) {
        return Ok(false);
    }
    let file = std::fs::File::create(&path)?;
    // SAFETY: posix_fallocate on a file descriptor we own.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, METADATA_RESERVE_BYTES as i64) };
    let result = if rc == 0 {
        file.sync_all()
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    };
    drop(file);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(true)
}

/// Whether an I/O error says the file system is out of space.
fn is_no_space(e: &std::io::Error) -> bool {
    crate::storage::io::is_no_space(e)
}

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

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: TopicId,
    pub name: Arc<str>,
    pub partitions: u32,
    /// The effective configuration: `overrides` over the broker's topic
    /// defaults.
    pub config: TopicConfig,
    /// What is set on the topic itself.
    pub overrides: TopicOverrides,
    /// The topic's UUID (Kafka's topic id): random, never reused, stable
    /// for the topic's life.
    pub uuid: [u8; 16],
    /// In a cluster, the broker (node id) each partition is on — its
    /// leader, when it has several replicas — by partition; empty for one
    /// broker (every partition is on it).
    pub nodes: Arc<[u32]>,
    /// In a cluster, each partition's replicas, in-sync replicas and
    /// leader epoch, by partition; empty when the topic has one replica
    /// per partition (the one in `nodes`, epoch 0).
    pub replicas: Arc<[PartitionReplicas]>,
}

impl TopicMeta {
    /// The broker partition `p` is on, in a cluster.
    pub fn node_of(&self, p: u32) -> Option<u32> {
        self.nodes.get(p as usize).copied()
    }
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
    /// The broker's topic defaults, which every setting a topic does not
    /// set follows. Not stored in the metadata file: they come from the
    /// broker's configuration at each start.
    pub topic_defaults: TopicConfig,
    /// SCRAM credentials and ACLs (shared: most changes leave them as
    /// they are).
    pub security: Arc<SecurityState>,
    /// The brokers of a cluster, by node id (empty for one broker).
    pub brokers: BTreeMap<u32, BrokerMeta>,
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

    /// A new snapshot with `name` added, setting `overrides` itself.
    pub fn with_topic(
        &self,
        name: &str,
        partitions: u32,
        overrides: TopicOverrides,
    ) -> Result<(Snapshot, Arc<TopicMeta>), MetaError> {
        self.with_replicated_topic(name, partitions, overrides, 1)
    }

    /// [`Snapshot::with_topic`] with `replication_factor` replicas of each
    /// partition on distinct active brokers (more than one needs a
    /// cluster with that many).
    pub fn with_replicated_topic(
        &self,
        name: &str,
        partitions: u32,
        overrides: TopicOverrides,
        replication_factor: u32,
    ) -> Result<(Snapshot, Arc<TopicMeta>), MetaError> {
        validate_topic_name(name).map_err(MetaError::InvalidName)?;
        if self.topics.contains_key(name) {
            return Err(MetaError::Exists(name.to_string()));
        }
        if partitions == 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(MetaError::InvalidPartitions(partitions));
        }
        let config = self
            .topic_defaults
            .with_overrides(&overrides)
            .map_err(MetaError::InvalidConfig)?;
        let meta = Arc::new(TopicMeta {
            id: TopicId(self.next_topic_id),
            name: Arc::from(name),
            partitions,
            config,
            overrides,
            uuid: random_uuid(),
            nodes: self.place(None, partitions).into(),
            replicas: Arc::from([]),
        });
        let meta = match replication_factor {
            1 => meta,
            rf => {
                let (nodes, replicas) = self.place_replicas(None, partitions, rf)?;
                Arc::new(TopicMeta {
                    nodes: nodes.into(),
                    replicas: replicas.into(),
                    ..(*meta).clone()
                })
            }
        };
        let mut next = self.clone();
        next.version += 1;
        next.next_topic_id += 1;
        next.topics.insert(meta.name.clone(), meta.clone());
        Ok((next, meta))
    }

    /// Places a topic's partitions up to `total` on the cluster's brokers,
    /// keeping where an existing topic's (`had`) are: each new one on the
    /// active (unfenced) broker with the fewest partitions so far, ties to
    /// the lowest node id. Empty when no broker is registered (one broker:
    /// every partition is on it), and for an existing topic that was not
    /// placed (its partitions are on every broker that had it).
    fn place(&self, had: Option<&[u32]>, total: u32) -> Vec<u32> {
        let active: Vec<u32> = self
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.node_id)
            .collect();
        let have = had.unwrap_or(&[]);
        if active.is_empty() || (had.is_some() && have.is_empty()) {
            return have.to_vec();
        }
        // Partitions per active broker (a growing topic's own included:
        // it is in `topics` already).
        let mut load: BTreeMap<u32, usize> = active.iter().map(|&n| (n, 0)).collect();
        for t in self.topics.values() {
            for n in t.nodes.iter() {
                if let Some(c) = load.get_mut(n) {
                    *c += 1;
                }
            }
        }
        let mut nodes = have.to_vec();
        while (nodes.len() as u32) < total {
            let (&node, count) = load
                .iter_mut()
                .min_by_key(|(n, c)| (**c, **n))
                .expect("at least one active broker");
            *count += 1;
            nodes.push(node);
        }
        nodes
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
        let meta = if current.replicas.is_empty() {
            Arc::new(TopicMeta {
                partitions: total,
                nodes: self.place(Some(&current.nodes), total).into(),
                ..(**current).clone()
            })
        } else {
            let (nodes, replicas) = self.place_replicas(
                Some((&current.nodes, &current.replicas)),
                total,
                current.replication_factor(),
            )?;
            Arc::new(TopicMeta {
                partitions: total,
                nodes: nodes.into(),
                replicas: replicas.into(),
                ..(**current).clone()
            })
        };
        let mut next = self.clone();
        next.version += 1;
        next.topics.insert(meta.name.clone(), meta.clone());
        Ok((next, meta))
    }

    /// A new snapshot in which `name`'s settings have `changes` applied
    /// (Kafka's names and operations), all or nothing; `None` when the
    /// changes leave the topic as it is.
    pub fn with_config_changes(
        &self,
        name: &str,
        changes: &[ConfigChange],
    ) -> Result<Option<(Snapshot, Arc<TopicMeta>)>, MetaError> {
        let current = self
            .topics
            .get(name)
            .ok_or_else(|| MetaError::Unknown(name.to_string()))?;
        let overrides = current
            .overrides
            .apply(changes, &self.topic_defaults)
            .map_err(MetaError::InvalidConfig)?;
        let config = self
            .topic_defaults
            .with_overrides(&overrides)
            .map_err(MetaError::InvalidConfig)?;
        if overrides == current.overrides {
            return Ok(None);
        }
        let meta = Arc::new(TopicMeta {
            config,
            overrides,
            ..(**current).clone()
        });
        let mut next = self.clone();
        next.version += 1;
        next.topics.insert(meta.name.clone(), meta.clone());
        Ok(Some((next, meta)))
    }

    /// Every setting of a topic, with its source.
    pub fn config_entries(&self, topic: &TopicMeta) -> Vec<ConfigEntry> {
        topic.config.entries(&topic.overrides, &self.topic_defaults)
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
                let set: Vec<_> = overridden_fields(&t.overrides)
                    .into_iter()
                    .map(|f| fbb.create_string(f))
                    .collect();
                let set = fbb.create_vector(&set);
                let partition_nodes = (!t.nodes.is_empty()).then(|| fbb.create_vector(&t.nodes));
                let partition_replicas = replicas::encode(&t.replicas, &mut fbb);
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
                        topic_settings: Some(set),
                        partition_nodes,
                        partition_replicas,
                    },
                )
            })
            .collect();
        let topics = fbb.create_vector(&topics);
        let cluster_id = fbb.create_string(&self.cluster_id);
        let (scram_credentials, acls) = security::encode(&self.security, &mut fbb);
        let brokers = brokers::encode(self, &mut fbb);
        let root = file::MetadataFile::create(
            &mut fbb,
            &file::MetadataFileArgs {
                version: self.version,
                next_topic_id: self.next_topic_id,
                topics: Some(topics),
                cluster_id: Some(cluster_id),
                next_producer_id: self.next_producer_id,
                scram_credentials,
                acls,
                brokers,
            },
        );
        fbb.finish(root, Some(METADATA_FILE_IDENTIFIER));
        fbb.finished_data().to_vec()
    }

    /// Decodes (and verifies) a metadata file, with corelog's built-in
    /// topic defaults (see [`Snapshot::decode_with`]).
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
        Snapshot::decode_with(bytes, &TopicConfig::default()).map(|(s, _)| s)
    }

    /// Decodes (and verifies) a metadata file; each topic's settings are
    /// those it sets itself over the broker's `defaults`. Values a file
    /// written by an older version lacks (topic UUIDs, the cluster id) are
    /// left unset (all-zero UUID, empty id): [`Snapshot::load`] assigns
    /// them. Also returns whether a topic lacked the list of the settings
    /// it sets (files written before that list existed): its stored values
    /// that differ from `defaults` then count as set on the topic, and the
    /// file should be saved so that stays so.
    pub fn decode_with(bytes: &[u8], defaults: &TopicConfig) -> Result<(Snapshot, bool), String> {
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
            topic_defaults: defaults.clone(),
            security: Arc::new(security::decode(&root)?),
            brokers: brokers::decode(&root),
        };
        let mut migrated = false;
        for t in root.topics().iter().flatten() {
            let name = t.name().ok_or("topic record without a name")?;
            let stored =
                config_from_file(t.config(), defaults).map_err(|e| format!("topic {name}: {e}"))?;
            let overrides = match t.topic_settings() {
                Some(set) => overrides_named(&stored, set.iter())
                    .map_err(|e| format!("topic {name}: {e}"))?,
                None => {
                    migrated = true;
                    overrides_differing(&stored, defaults)
                }
            };
            let config = defaults.with_overrides(&overrides).map_err(|e| {
                format!("topic {name}: its settings do not fit the broker's topic defaults: {e}")
            })?;
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
                overrides,
                uuid,
                nodes: t
                    .partition_nodes()
                    .map(|n| n.iter().collect::<Vec<u32>>())
                    .unwrap_or_default()
                    .into(),
                replicas: replicas::decode(&t).into(),
            };
            replicas::check(&meta)?;
            snapshot.topics.insert(meta.name.clone(), Arc::new(meta));
        }
        Ok((snapshot, migrated))
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
    /// is none), with the broker's topic `defaults`. What an older version
    /// did not write — topic UUIDs, the cluster id, which settings a topic
    /// sets itself — is filled in and the file is saved at once, so it
    /// never changes afterwards. Blocking: run at start-up or off the
    /// executor.
    pub fn load(data_dir: &Path, defaults: &TopicConfig) -> Result<Snapshot, String> {
        let path = data_dir.join(METADATA_FILE_NAME);
        let (mut snapshot, migrated) = match std::fs::read(&path) {
            Ok(bytes) => {
                make_private(&path);
                Snapshot::decode_with(&bytes, defaults)
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                Snapshot {
                    topic_defaults: defaults.clone(),
                    ..Snapshot::default()
                },
                false,
            ),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        if snapshot.assign_missing_ids() || migrated {
            snapshot
                .save(data_dir)
                .map_err(|e| format!("saving {}: {e}", path.display()))?;
            tracing::info!(cluster_id = %snapshot.cluster_id, file = %path.display(), "metadata file written with what an older version left out (cluster id, topic UUIDs, the settings each topic sets)");
        }
        Ok(snapshot)
    }

    /// Writes the metadata file durably: temporary file, fsync, rename,
    /// fsync of the directory. On failure the temporary file is removed and
    /// the old metadata file is untouched; on a full disk the metadata
    /// reserve is given up for one more try (see the module docs).
    /// Blocking: run it off the executor.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        save_bytes(data_dir, &self.encode(), &mut |f, bytes| f.write_all(bytes))
    }
}

/// [`Snapshot::save`] with the write of the temporary file's contents
/// handed in (a test injects a failing one).
fn save_bytes(
    data_dir: &Path,
    bytes: &[u8],
    write: &mut dyn FnMut(&mut std::fs::File, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    match write_metadata_file(data_dir, bytes, write) {
        Err(e) if is_no_space(&e) => {
            let reserve = data_dir.join(RESERVE_FILE_NAME);
            match std::fs::remove_file(&reserve) {
                Ok(()) => {
                    tracing::warn!(file = %reserve.display(), "the disk is full: gave up the metadata reserve to save the metadata; it is taken again once space allows");
                    write_metadata_file(data_dir, bytes, write)
                }
                Err(_) => Err(e),
            }
        }
        other => other,
    }
}

fn write_metadata_file(
    data_dir: &Path,
    bytes: &[u8],
    write: &mut dyn FnMut(&mut std::fs::File, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let path = data_dir.join(METADATA_FILE_NAME);
    let tmp: PathBuf = data_dir.join(format!("{METADATA_FILE_NAME}.tmp"));
    let written = (|| {
        let mut f = create_private(&tmp)?;
        write(&mut f, bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        // No stray temporary file: the next save starts clean, and a full
        // disk gets its blocks back.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(data_dir)?.sync_all()
}

/// Permissions of the metadata file (and its temporary file): it holds
/// SCRAM keys, which let whoever reads them log in as their user (a stored
/// key and a server key are all a server needs to accept a client).
pub const METADATA_FILE_MODE: u32 = 0o600;

/// Creates (or truncates) `path` readable and writable by its owner only,
/// whatever mode a leftover file had.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(METADATA_FILE_MODE)
        .open(path)?;
    // The mode above applies only to a file it creates.
    f.set_permissions(std::fs::Permissions::from_mode(METADATA_FILE_MODE))?;
    Ok(f)
}

/// Takes group and other access away from a metadata file an older
/// version wrote (it was created with the umask's mode). Logged, not
/// fatal: a read-only file system still starts.
fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.permissions().mode() & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(METADATA_FILE_MODE)) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "metadata file made readable by its owner only (mode 0600): it holds SCRAM credentials")
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "could not make the metadata file readable by its owner only (mode 0600)")
        }
    }
}

/// A topic configuration as the metadata file stores it (every value set,
/// the effective one).
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
            timestamp_type: match c.timestamp_type {
                TimestampType::CreateTime => file::TimestampType::CREATE_TIME,
                TimestampType::LogAppendTime => file::TimestampType::LOG_APPEND_TIME,
            },
            min_insync_replicas: c.min_insync_replicas.min(i32::MAX as u32) as i32,
            cleanup_policy: match c.cleanup_policy {
                CleanupPolicy::Delete => 1,
                CleanupPolicy::Compact => 2,
                CleanupPolicy::CompactDelete => 3,
            },
            delete_retention_ms: c.delete_retention_ms.min(i64::MAX as u64) as i64,
            min_compaction_lag_ms: c.min_compaction_lag_ms.min(i64::MAX as u64) as i64,
        },
    )
}

/// A stored topic configuration (-1: no limit for retention; absent or
/// DEFAULT: `defaults`' value for the rest), validated.
fn config_from_file(
    f: Option<file::TopicConfig<'_>>,
    defaults: &TopicConfig,
) -> Result<TopicConfig, String> {
    let mut c = defaults.clone();
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
    c.timestamp_type = match f.timestamp_type() {
        file::TimestampType::DEFAULT => c.timestamp_type,
        file::TimestampType::CREATE_TIME => TimestampType::CreateTime,
        file::TimestampType::LOG_APPEND_TIME => TimestampType::LogAppendTime,
        other => return Err(format!("unknown timestamp type {}", other.0)),
    };
    match f.min_insync_replicas() {
        -1 => {}
        n if n >= 1 => c.min_insync_replicas = n as u32,
        n => return Err(format!("min insync replicas {n} is below 1")),
    }
    c.cleanup_policy = match f.cleanup_policy() {
        0 => c.cleanup_policy,
        1 => CleanupPolicy::Delete,
        2 => CleanupPolicy::Compact,
        3 => CleanupPolicy::CompactDelete,
        other => return Err(format!("unknown cleanup policy {other}")),
    };
    if let Some(v) = opt(f.delete_retention_ms(), "delete retention ms")? {
        c.delete_retention_ms = v;
    }
    if let Some(v) = opt(f.min_compaction_lag_ms(), "min compaction lag ms")? {
        c.min_compaction_lag_ms = v;
    }
    c.validate()?;
    Ok(c)
}

/// The TopicConfig field names a topic sets itself, as the metadata file
/// lists them.
fn overridden_fields(o: &TopicOverrides) -> Vec<&'static str> {
    [
        ("retention_ms", o.retention_ms.is_some()),
        ("retention_bytes", o.retention_bytes.is_some()),
        ("segment_bytes", o.segment_bytes.is_some()),
        ("segment_ms", o.segment_ms.is_some()),
        ("fsync", o.fsync.is_some()),
        ("max_batch_bytes", o.max_batch_bytes.is_some()),
        ("timestamp_type", o.timestamp_type.is_some()),
        ("min_insync_replicas", o.min_insync_replicas.is_some()),
        ("cleanup_policy", o.cleanup_policy.is_some()),
        ("delete_retention_ms", o.delete_retention_ms.is_some()),
        ("min_compaction_lag_ms", o.min_compaction_lag_ms.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// The overrides a file lists, with their stored values. A name this
/// version does not know (written by a newer one) is an error: its value
/// would be silently lost at the next save.
fn overrides_named<'a>(
    stored: &TopicConfig,
    names: impl Iterator<Item = &'a str>,
) -> Result<TopicOverrides, String> {
    let mut o = TopicOverrides::default();
    for name in names {
        match name {
            "retention_ms" => o.retention_ms = Some(stored.retention_ms),
            "retention_bytes" => o.retention_bytes = Some(stored.retention_bytes),
            "segment_bytes" => o.segment_bytes = Some(stored.segment_bytes),
            "segment_ms" => o.segment_ms = Some(stored.segment_ms),
            "fsync" => o.fsync = Some(stored.fsync),
            "max_batch_bytes" => o.max_batch_bytes = Some(stored.max_batch_bytes),
            "timestamp_type" => o.timestamp_type = Some(stored.timestamp_type),
            "min_insync_replicas" => o.min_insync_replicas = Some(stored.min_insync_replicas),
            "cleanup_policy" => o.cleanup_policy = Some(stored.cleanup_policy),
            "delete_retention_ms" => o.delete_retention_ms = Some(stored.delete_retention_ms),
            "min_compaction_lag_ms" => o.min_compaction_lag_ms = Some(stored.min_compaction_lag_ms),
            other => {
                return Err(format!(
                    "the topic sets {other:?}, a setting this version does not know"
                ));
            }
        }
    }
    Ok(o)
}

/// For a file written before topics listed their own settings: every
/// stored value that differs from the broker's `defaults` counts as set on
/// the topic, so the topic's effective configuration stays what it was.
fn overrides_differing(stored: &TopicConfig, defaults: &TopicConfig) -> TopicOverrides {
    let differs = |a, b| a != b;
    TopicOverrides {
        retention_ms: differs(stored.retention_ms, defaults.retention_ms)
            .then_some(stored.retention_ms),
        retention_bytes: differs(stored.retention_bytes, defaults.retention_bytes)
            .then_some(stored.retention_bytes),
        segment_bytes: (stored.segment_bytes != defaults.segment_bytes)
            .then_some(stored.segment_bytes),
        segment_ms: (stored.segment_ms != defaults.segment_ms).then_some(stored.segment_ms),
        fsync: (stored.fsync != defaults.fsync).then_some(stored.fsync),
        max_batch_bytes: (stored.max_batch_bytes != defaults.max_batch_bytes)
            .then_some(stored.max_batch_bytes),
        timestamp_type: (stored.timestamp_type != defaults.timestamp_type)
            .then_some(stored.timestamp_type),
        min_insync_replicas: (stored.min_insync_replicas != defaults.min_insync_replicas)
            .then_some(stored.min_insync_replicas),
        cleanup_policy: (stored.cleanup_policy != defaults.cleanup_policy)
            .then_some(stored.cleanup_policy),
        delete_retention_ms: (stored.delete_retention_ms != defaults.delete_retention_ms)
            .then_some(stored.delete_retention_ms),
        min_compaction_lag_ms: (stored.min_compaction_lag_ms != defaults.min_compaction_lag_ms)
            .then_some(stored.min_compaction_lag_ms),
    }
}

/// Four-byte identifier at the start of the metadata file.
const METADATA_FILE_IDENTIFIER: &str = "CLMD";

/// Why a metadata change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaError {
    /// More replicas than active brokers, or zero.
    InvalidReplicationFactor {
        asked: u32,
        brokers: usize,
    },
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
            MetaError::InvalidReplicationFactor { .. } => ErrorKind::InvalidReplicationFactor,
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
            MetaError::InvalidReplicationFactor { asked, brokers } => write!(
                f,
                "replication factor {asked} needs as many active brokers; the cluster has {brokers}"
            ),
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
        let overrides = TopicOverrides {
            retention_ms: Some(Some(1000)),
            fsync: Some(FsyncPolicy::Interval(Duration::from_millis(7))),
            timestamp_type: Some(TimestampType::LogAppendTime),
            min_insync_replicas: Some(2),
            cleanup_policy: Some(CleanupPolicy::CompactDelete),
            delete_retention_ms: Some(5000),
            min_compaction_lag_ms: Some(250),
            ..TopicOverrides::default()
        };
        let none = TopicOverrides::default();
        let (s1, t1) = Snapshot::default()
            .with_topic("a", 3, overrides.clone())
            .unwrap();
        assert_eq!(t1.config.timestamp_type, TimestampType::LogAppendTime);
        let (s2, _) = s1.with_topic("b", 1, none.clone()).unwrap();
        let (s3, removed) = s2.without_topic("a").unwrap();
        assert_eq!(removed, t1);
        let (s4, t3) = s3.with_topic("a", 5, overrides).unwrap();
        assert_ne!(t3.id, t1.id, "topic ids are never reused");
        assert_eq!(Snapshot::decode(&s4.encode()).unwrap(), s4);
        let decoded = Snapshot::decode(&s4.encode()).unwrap();
        let a = decoded.topic("a").unwrap();
        assert_eq!(a.config.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(a.config.delete_retention_ms, 5000);
        assert_eq!(a.config.min_compaction_lag_ms, 250);
        assert_eq!(decoded.topic("b").unwrap().overrides.cleanup_policy, None);
        assert_eq!(s4.version, 4);
        assert!(matches!(
            s4.with_topic("b", 1, none.clone()),
            Err(MetaError::Exists(_))
        ));
        assert!(matches!(
            s4.with_topic("c", 0, none),
            Err(MetaError::InvalidPartitions(0))
        ));
        assert!(Snapshot::decode(b"garbage!").is_err());
    }

    #[test]
    fn settings_not_set_on_a_topic_follow_the_broker_defaults() {
        let defaults = TopicConfig {
            retention_ms: Some(60_000),
            ..TopicConfig::default()
        };
        let base = Snapshot {
            topic_defaults: defaults.clone(),
            ..Snapshot::default()
        };
        let own = TopicOverrides {
            segment_bytes: Some(1 << 20),
            ..TopicOverrides::default()
        };
        let (s, _) = base.with_topic("t", 1, own).unwrap();
        let bytes = s.encode();
        // Read back under other defaults: the topic's own value stays, the
        // rest follows.
        let later = TopicConfig {
            retention_ms: Some(120_000),
            segment_bytes: 2 << 20,
            ..TopicConfig::default()
        };
        let (read, migrated) = Snapshot::decode_with(&bytes, &later).unwrap();
        assert!(!migrated);
        let t = read.topic("t").unwrap();
        assert_eq!(t.config.segment_bytes, 1 << 20);
        assert_eq!(t.config.retention_ms, Some(120_000));
    }

    #[test]
    fn config_changes_apply_all_or_nothing() {
        let (s, _) = Snapshot::default()
            .with_topic("t", 1, TopicOverrides::default())
            .unwrap();
        let (s2, t) = s
            .with_config_changes(
                "t",
                &[
                    ConfigChange::set("retention.ms", "5000"),
                    ConfigChange::set("message.timestamp.type", "LogAppendTime"),
                ],
            )
            .unwrap()
            .expect("a change");
        assert_eq!(t.config.retention_ms, Some(5000));
        assert_eq!(t.config.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(s2.version, s.version + 1);
        let entries = s2.config_entries(&t);
        let retention = entries
            .iter()
            .find(|e| e.info.name == "retention.ms")
            .unwrap();
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("5000", ConfigSource::Topic)
        );
        // A bad value anywhere refuses the whole request.
        let err = s2
            .with_config_changes(
                "t",
                &[
                    ConfigChange::set("retention.ms", "1"),
                    ConfigChange::set("segment.bytes", "10"),
                ],
            )
            .unwrap_err();
        assert!(matches!(err, MetaError::InvalidConfig(_)), "{err}");
        // Setting what is already set changes nothing.
        assert!(
            s2.with_config_changes("t", &[ConfigChange::set("retention.ms", "5000")])
                .unwrap()
                .is_none()
        );
        // Deleting returns to the default.
        let (_, t) = s2
            .with_config_changes("t", &[ConfigChange::delete("retention.ms")])
            .unwrap()
            .unwrap();
        assert_eq!(t.config.retention_ms, None);
        assert!(!t.overrides.sets(Setting::RetentionMs));
        assert!(matches!(
            s2.with_config_changes("nope", &[]),
            Err(MetaError::Unknown(_))
        ));
    }

    #[test]
    fn metadata_file_is_written_durably_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = TopicConfig::default();
        // A new data directory gets a cluster id at once, saved.
        let first = Snapshot::load(dir.path(), &defaults).unwrap();
        assert!(first.topics.is_empty());
        assert_eq!(first.cluster_id.len(), 22);
        assert_eq!(Snapshot::load(dir.path(), &defaults).unwrap(), first);
        let (s, t) = first.with_topic("t", 2, TopicOverrides::default()).unwrap();
        assert_ne!(t.uuid, [0; 16]);
        s.save(dir.path()).unwrap();
        assert_eq!(Snapshot::load(dir.path(), &defaults).unwrap(), s);
        assert!(
            !dir.path()
                .join(format!("{METADATA_FILE_NAME}.tmp"))
                .exists()
        );
    }

    #[test]
    fn a_metadata_save_that_fails_leaves_no_temporary_file_and_the_old_metadata_intact() {
        // Regression: a save on a full disk failed with "No space left on
        // device" and left an empty `.corelog-metadata.tmp` behind.
        let dir = tempfile::tempdir().unwrap();
        let defaults = TopicConfig::default();
        let old = Snapshot::load(dir.path(), &defaults).unwrap();
        let (old, _) = old
            .with_topic("kept", 1, TopicOverrides::default())
            .unwrap();
        old.save(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join(METADATA_FILE_NAME)).unwrap();
        let (new, _) = old.without_topic("kept").unwrap();
        let tmp = dir.path().join(format!("{METADATA_FILE_NAME}.tmp"));
        let no_space = || std::io::Error::from_raw_os_error(libc::ENOSPC);

        // Half the file written, then the disk is full; no reserve to give up.
        let mut half = |f: &mut std::fs::File, bytes: &[u8]| {
            use std::io::Write;
            f.write_all(&bytes[..bytes.len() / 2])?;
            Err(no_space())
        };
        let err = save_bytes(dir.path(), &new.encode(), &mut half).unwrap_err();
        assert!(is_no_space(&err), "{err}");
        assert!(!tmp.exists(), "a failed save leaves no temporary file");
        assert_eq!(
            std::fs::read(dir.path().join(METADATA_FILE_NAME)).unwrap(),
            before
        );
        assert_eq!(Snapshot::load(dir.path(), &defaults).unwrap(), old);

        // Any other failure: the same.
        let mut broken = |_: &mut std::fs::File, _: &[u8]| Err(std::io::Error::other("EIO"));
        save_bytes(dir.path(), &new.encode(), &mut broken).unwrap_err();
        assert!(!tmp.exists());
        assert_eq!(Snapshot::load(dir.path(), &defaults).unwrap(), old);

        // With the reserve in place, a full disk gives it up and the save
        // goes through on the second try.
        assert!(ensure_reserve(dir.path()).unwrap());
        assert!(!ensure_reserve(dir.path()).unwrap(), "taken once");
        let reserve = dir.path().join(RESERVE_FILE_NAME);
        assert_eq!(
            std::fs::metadata(&reserve).unwrap().len(),
            METADATA_RESERVE_BYTES
        );
        let mut tries = 0;
        let mut full_while_reserved = |f: &mut std::fs::File, bytes: &[u8]| {
            use std::io::Write;
            tries += 1;
            if reserve.exists() {
                return Err(no_space());
            }
            f.write_all(bytes)
        };
        save_bytes(dir.path(), &new.encode(), &mut full_while_reserved).unwrap();
        assert_eq!(tries, 2);
        assert!(!reserve.exists(), "the reserve was given up");
        assert!(!tmp.exists());
        assert_eq!(Snapshot::load(dir.path(), &defaults).unwrap(), new);
    }

    fn credential(
        user: &str,
        mechanism: crate::security::ScramMechanism,
    ) -> crate::security::ScramCredential {
        let len = match mechanism {
            crate::security::ScramMechanism::Sha256 => 32,
            crate::security::ScramMechanism::Sha512 => 64,
        };
        crate::security::ScramCredential {
            user: user.to_string(),
            mechanism,
            iterations: 4096,
            salt: b"salt-of-".iter().chain(user.as_bytes()).copied().collect(),
            stored_key: vec![1; len],
            server_key: vec![2; len],
        }
    }

    fn acl(
        resource_type: crate::security::ResourceType,
        name: &str,
        pattern: crate::security::PatternType,
        operation: crate::security::Operation,
        permission: crate::security::Permission,
    ) -> crate::security::AclBinding {
        crate::security::AclBinding {
            resource_type,
            resource_name: name.to_string(),
            pattern,
            principal: "User:alice".to_string(),
            host: "*".to_string(),
            operation,
            permission,
        }
    }

    /// A snapshot with a topic, credentials of two users and every kind of
    /// ACL value.
    fn secured_snapshot() -> Snapshot {
        use crate::security::{Operation, PatternType, Permission, ResourceType, ScramMechanism};
        let (s, _) = Snapshot::default()
            .with_topic("t", 1, TopicOverrides::default())
            .unwrap();
        let mut security = SecurityState::default();
        for (user, mechanism) in [
            ("alice", ScramMechanism::Sha256),
            ("alice", ScramMechanism::Sha512),
            ("bob", ScramMechanism::Sha512),
        ] {
            security
                .credentials
                .insert((user.to_string(), mechanism), credential(user, mechanism));
        }
        let operations = Operation::ALL.iter().copied();
        for (i, operation) in operations.enumerate() {
            let resource_type = ResourceType::ALL[i % ResourceType::ALL.len()];
            let name = match resource_type {
                ResourceType::Cluster => crate::security::CLUSTER_RESOURCE_NAME.to_string(),
                _ => format!("name-{i}"),
            };
            let pattern = PatternType::ALL[i % 2];
            let permission = Permission::ALL[i % 2];
            security
                .acls
                .insert(acl(resource_type, &name, pattern, operation, permission));
        }
        Snapshot {
            cluster_id: "cluster".into(),
            security: Arc::new(security),
            ..s
        }
    }

    #[test]
    fn credentials_and_acls_round_trip_through_the_metadata_file() {
        let s = secured_snapshot();
        assert_eq!(s.security.credentials.len(), 3);
        assert_eq!(s.security.acls.len(), 11);
        let decoded = Snapshot::decode(&s.encode()).unwrap();
        assert_eq!(decoded, s);
        // Keys come back byte for byte (equality of credentials covers them,
        // but Debug hides them, so say so).
        let key = ("bob".to_string(), crate::security::ScramMechanism::Sha512);
        assert_eq!(decoded.security.credentials[&key].server_key, vec![2; 64]);
        assert!(decoded.security.has_user("alice"));
        assert_eq!(decoded.security.user_credentials("alice").count(), 2);
        assert!(!decoded.security.has_user("carol"));
        // A file without them (every older version's) reads as none.
        let plain = Snapshot {
            security: Arc::default(),
            ..s.clone()
        };
        let decoded = Snapshot::decode(&plain.encode()).unwrap();
        assert!(decoded.security.credentials.is_empty() && decoded.security.acls.is_empty());
    }

    #[test]
    fn the_metadata_file_and_its_temporary_file_are_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METADATA_FILE_NAME);
        let tmp = dir.path().join(format!("{METADATA_FILE_NAME}.tmp"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // An older version's file, world-readable, is tightened at load.
        std::fs::write(&path, Snapshot::default().encode()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = Snapshot::load(dir.path(), &TopicConfig::default()).unwrap();
        assert_eq!(mode(&path), 0o600);
        // A leftover temporary file with a loose mode is not reused as is.
        std::fs::write(&tmp, b"left over").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        let mut seen = None;
        let mut check = |f: &mut std::fs::File, bytes: &[u8]| {
            use std::io::Write;
            seen = Some(f.metadata()?.permissions().mode() & 0o777);
            f.write_all(bytes)
        };
        let secured = Snapshot {
            security: secured_snapshot().security,
            ..loaded
        };
        save_bytes(dir.path(), &secured.encode(), &mut check).unwrap();
        assert_eq!(seen, Some(0o600));
        assert_eq!(mode(&path), 0o600);
        std::fs::remove_file(&path).unwrap();
        secured.save(dir.path()).unwrap();
        assert_eq!(mode(&path), 0o600, "a new file too");
        assert_eq!(
            Snapshot::load(dir.path(), &TopicConfig::default()).unwrap(),
            secured
        );
    }

    #[test]
    fn a_security_record_this_version_cannot_read_is_a_startup_error_naming_the_file() {
        // Written as a newer version would: an operation code unknown here.
        let write = |mechanism: u8, operation: u8| {
            let mut fbb = flatbuffers::FlatBufferBuilder::new();
            let user = fbb.create_string("alice");
            let salt = fbb.create_vector(&[1u8; 16]);
            let key = fbb.create_vector(&[1u8; 32]);
            let credential = file::ScramCredentialRecord::create(
                &mut fbb,
                &file::ScramCredentialRecordArgs {
                    user: Some(user),
                    mechanism,
                    iterations: 4096,
                    salt: Some(salt),
                    stored_key: Some(key),
                    server_key: Some(key),
                },
            );
            let credentials = fbb.create_vector(&[credential]);
            let name = fbb.create_string("t");
            let principal = fbb.create_string("User:alice");
            let host = fbb.create_string("*");
            let acl = file::AclRecord::create(
                &mut fbb,
                &file::AclRecordArgs {
                    resource_type: 2,
                    resource_name: Some(name),
                    pattern_type: 3,
                    principal: Some(principal),
                    host: Some(host),
                    operation,
                    permission: 3,
                },
            );
            let acls = fbb.create_vector(&[acl]);
            let cluster_id = fbb.create_string("cluster");
            let root = file::MetadataFile::create(
                &mut fbb,
                &file::MetadataFileArgs {
                    cluster_id: Some(cluster_id),
                    scram_credentials: Some(credentials),
                    acls: Some(acls),
                    ..Default::default()
                },
            );
            fbb.finish(root, Some(METADATA_FILE_IDENTIFIER));
            fbb.finished_data().to_vec()
        };
        let read = |bytes: Vec<u8>| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(METADATA_FILE_NAME), bytes).unwrap();
            Snapshot::load(dir.path(), &TopicConfig::default())
        };
        let good = read(write(1, 3)).unwrap();
        assert_eq!(good.security.credentials.len(), 1);
        assert_eq!(good.security.acls.len(), 1);
        let err = read(write(1, 99)).unwrap_err();
        assert!(
            err.contains(METADATA_FILE_NAME) && err.contains("unknown operation code 99"),
            "{err}"
        );
        let err = read(write(3, 3)).unwrap_err();
        assert!(
            err.contains(METADATA_FILE_NAME)
                && err.contains("\"alice\"")
                && err.contains("unknown mechanism code 3"),
            "{err}"
        );
        // A SHA-512 credential with SHA-256-sized keys.
        let err = read(write(2, 3)).unwrap_err();
        assert!(err.contains("is not 64 bytes"), "{err}");
    }

    #[test]
    fn a_metadata_file_from_0_1_0_gets_ids_once_and_keeps_them() {
        // Written by 0.1.0 (tests/fixtures/README.md): no topic UUIDs, no
        // cluster id, no list of the settings each topic sets.
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/data-v0.1.0")
            .join(METADATA_FILE_NAME);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&fixture, dir.path().join(METADATA_FILE_NAME)).unwrap();
        let (old, migrated) =
            Snapshot::decode_with(&std::fs::read(&fixture).unwrap(), &TopicConfig::default())
                .unwrap();
        assert!(migrated);
        assert_eq!(old.topics.len(), 2);
        assert!(old.cluster_id.is_empty());
        let loaded = Snapshot::load(dir.path(), &TopicConfig::default()).unwrap();
        assert_eq!(loaded.cluster_id.len(), 22);
        for (name, topic) in &loaded.topics {
            let before = &old.topics[name];
            assert_eq!((topic.id, topic.partitions), (before.id, before.partitions));
            assert_eq!(topic.config, before.config);
            assert_ne!(topic.uuid, [0; 16]);
        }
        assert_eq!(
            Snapshot::load(dir.path(), &TopicConfig::default()).unwrap(),
            loaded,
            "ids assigned once are saved and never change"
        );
        // What the topics set is pinned at that first start: other broker
        // defaults later do not change their stored values.
        let other = TopicConfig {
            segment_ms: 1234,
            ..TopicConfig::default()
        };
        let again = Snapshot::load(dir.path(), &other).unwrap();
        for (name, topic) in &again.topics {
            let before = &loaded.topics[name];
            assert_eq!(topic.overrides, before.overrides, "{name}");
            if !topic.overrides.sets(Setting::SegmentMs) {
                assert_eq!(topic.config.segment_ms, 1234);
            }
        }
    }
}
