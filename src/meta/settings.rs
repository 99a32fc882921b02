//! Topic settings: a topic's effective configuration ([`TopicConfig`]),
//! what is set on the topic itself ([`TopicOverrides`]), and both in
//! Kafka's names, with the source of each value.
//!
//! A setting the topic does not set follows the broker's topic defaults
//! (`[topic_defaults]` of the broker's configuration), which start from
//! corelog's built-in defaults. So each value has one of three sources:
//! the built-in default, the broker, or the topic.
//!
//! corelog's fsync policy is one setting, shown to Kafka tools as two:
//! `always` is `flush.messages=1`, `interval:MS` is `flush.ms=MS`, `never`
//! is neither (both at Kafka's "no limit", `i64::MAX`).

use crate::constants::{BATCH_BYTES_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use crate::storage::{FsyncPolicy, LogConfig};
use crate::types::TimestampType;
use std::fmt;
use std::time::Duration;

/// Kafka's "no limit" for `flush.messages` and `flush.ms` (Java's
/// `Long.MAX_VALUE`).
pub const FLUSH_NEVER: u64 = i64::MAX as u64;

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
    #[serde(with = "text")]
    pub fsync: FsyncPolicy,
    pub max_batch_bytes: usize,
    /// Which time appended batches carry (Kafka's `message.timestamp.type`).
    #[serde(with = "text")]
    pub timestamp_type: TimestampType,
    /// Kafka's `min.insync.replicas`: stored, and used once replication
    /// exists (a single broker is its own only in-sync replica).
    pub min_insync_replicas: u32,
    /// Kafka's `cleanup.policy`: delete old segments, compact, or both.
    #[serde(with = "text")]
    pub cleanup_policy: CleanupPolicy,
    /// Kafka's `delete.retention.ms`: how long a compacted topic keeps a
    /// tombstone.
    pub delete_retention_ms: u64,
    /// Kafka's `min.compaction.lag.ms`: how long a record stays as appended
    /// before compaction may remove it.
    pub min_compaction_lag_ms: u64,
}

/// Values written as their `Display` text and read with `FromStr`.
mod text {
    pub fn serialize<S: serde::Serializer, T: std::fmt::Display>(
        v: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: serde::Deserializer<'de>,
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
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
            timestamp_type: log.timestamp_type,
            min_insync_replicas: 1,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: log.delete_retention_ms,
            min_compaction_lag_ms: log.min_compaction_lag_ms,
        }
    }
}

/// Kafka's `cleanup.policy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Retention deletes old segments.
    Delete,
    /// The cleaner keeps the latest record of each key; nothing is deleted
    /// by age or size.
    Compact,
    /// Both: compacted, and old segments deleted by retention.
    CompactDelete,
}

impl CleanupPolicy {
    pub fn deletes(self) -> bool {
        self != CleanupPolicy::Compact
    }

    pub fn compacts(self) -> bool {
        self != CleanupPolicy::Delete
    }

    /// The policies as Kafka lists them.
    fn list(self) -> Vec<String> {
        let mut list = Vec::new();
        if self.compacts() {
            list.push("compact".to_string());
        }
        if self.deletes() {
            list.push("delete".to_string());
        }
        list
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.list().join(","))
    }
}

impl std::str::FromStr for CleanupPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        cleanup_of(&cleanup_list(s)?)
    }
}

/// What is set on a topic itself; `None` follows the broker's default.
/// `retention_*: Some(None)` means "keep forever".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicOverrides {
    pub retention_ms: Option<Option<u64>>,
    pub retention_bytes: Option<Option<u64>>,
    pub segment_bytes: Option<u64>,
    pub segment_ms: Option<u64>,
    pub fsync: Option<FsyncPolicy>,
    pub max_batch_bytes: Option<usize>,
    pub timestamp_type: Option<TimestampType>,
    pub min_insync_replicas: Option<u32>,
    pub cleanup_policy: Option<CleanupPolicy>,
    pub delete_retention_ms: Option<u64>,
    pub min_compaction_lag_ms: Option<u64>,
}

/// One setting, by what it controls.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Setting {
    CleanupPolicy,
    DeleteRetentionMs,
    MinCompactionLagMs,
    RetentionMs,
    RetentionBytes,
    SegmentBytes,
    SegmentMs,
    MaxMessageBytes,
    TimestampType,
    MinInsyncReplicas,
    FlushMessages,
    FlushMs,
}

/// Kafka's type of a setting (DescribeConfigs v3+ reports it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SettingType {
    Int,
    Long,
    String,
    List,
}

/// A setting's names and description.
#[derive(Debug, PartialEq, Eq)]
pub struct SettingInfo {
    pub setting: Setting,
    /// The topic-level name (`retention.ms`).
    pub name: &'static str,
    /// The broker-level name of its default (`log.retention.ms`), as Kafka
    /// reports it among a setting's synonyms.
    pub broker_name: &'static str,
    pub kind: SettingType,
    pub doc: &'static str,
}

/// Every topic setting, in the order they are listed.
pub static SETTINGS: &[SettingInfo] = &[
    SettingInfo {
        setting: Setting::CleanupPolicy,
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        kind: SettingType::List,
        doc: "What happens to old segments: delete (by retention.ms and retention.bytes), compact (keep the latest record of each key), or compact,delete (both).",
    },
    SettingInfo {
        setting: Setting::DeleteRetentionMs,
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        kind: SettingType::Long,
        doc: "How long a compacted topic keeps a tombstone (a key with no value) after its segment's newest record (ms).",
    },
    SettingInfo {
        setting: Setting::MinCompactionLagMs,
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        kind: SettingType::Long,
        doc: "How long a record of a compacted topic stays as appended before the cleaner may remove it (ms).",
    },
    SettingInfo {
        setting: Setting::RetentionMs,
        name: "retention.ms",
        broker_name: "log.retention.ms",
        kind: SettingType::Long,
        doc: "Delete sealed segments whose newest record is older than this (ms); -1 keeps them.",
    },
    SettingInfo {
        setting: Setting::RetentionBytes,
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        kind: SettingType::Long,
        doc: "Delete the oldest sealed segments while a partition stays at least this big; -1: no limit.",
    },
    SettingInfo {
        setting: Setting::SegmentBytes,
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        kind: SettingType::Int,
        doc: "Roll the active segment before it would exceed this size.",
    },
    SettingInfo {
        setting: Setting::SegmentMs,
        name: "segment.ms",
        broker_name: "log.roll.ms",
        kind: SettingType::Long,
        doc: "Roll the active segment once it is this old (ms).",
    },
    SettingInfo {
        setting: Setting::MaxMessageBytes,
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        kind: SettingType::Int,
        doc: "The largest record batch an append takes.",
    },
    SettingInfo {
        setting: Setting::TimestampType,
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        kind: SettingType::String,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's append time.",
    },
    SettingInfo {
        setting: Setting::MinInsyncReplicas,
        name: "min.insync.replicas",
        broker_name: "min.insync.replicas",
        kind: SettingType::Int,
        doc: "Stored for when replication exists; a single broker is its only replica.",
    },
    SettingInfo {
        setting: Setting::FlushMessages,
        name: "flush.messages",
        broker_name: "log.flush.interval.messages",
        kind: SettingType::Long,
        doc: "1: fsync before acknowledging every append (corelog's fsync always); 9223372036854775807: no per-append fsync.",
    },
    SettingInfo {
        setting: Setting::FlushMs,
        name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        kind: SettingType::Long,
        doc: "fsync at most this long after an append (corelog's fsync interval:MS); 9223372036854775807: never.",
    },
];

impl Setting {
    /// The setting with this topic-level Kafka name.
    pub fn by_name(name: &str) -> Option<&'static SettingInfo> {
        SETTINGS.iter().find(|s| s.name == name)
    }

    pub fn info(self) -> &'static SettingInfo {
        SETTINGS
            .iter()
            .find(|s| s.setting == self)
            .expect("every setting is listed")
    }
}

/// Every topic-level name, for error messages.
fn supported_names() -> String {
    SETTINGS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a setting's value comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// corelog's built-in default.
    Default,
    /// The broker's configuration (its topic defaults).
    Broker,
    /// Set on the topic itself.
    Topic,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigSource::Default => "default",
            ConfigSource::Broker => "broker",
            ConfigSource::Topic => "topic",
        })
    }
}

/// One setting of a topic as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub info: &'static SettingInfo,
    /// The effective value, in Kafka's text.
    pub value: String,
    pub source: ConfigSource,
    /// Every level that has a value, most specific first: the topic's (if
    /// set), the broker's (if it differs from the built-in one), the
    /// built-in default. Kafka's DescribeConfigs synonyms.
    pub synonyms: Vec<(ConfigSource, String)>,
}

/// What a change does to one setting (Kafka's IncrementalAlterConfigs
/// operations; APPEND and SUBTRACT apply to list settings only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    Set(Option<String>),
    Delete,
    Append(Option<String>),
    Subtract(Option<String>),
}

/// A change to one setting, by its Kafka name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange {
    pub name: String,
    pub op: ConfigOp,
}

impl ConfigChange {
    pub fn set(name: &str, value: &str) -> ConfigChange {
        ConfigChange {
            name: name.to_string(),
            op: ConfigOp::Set(Some(value.to_string())),
        }
    }

    pub fn delete(name: &str) -> ConfigChange {
        ConfigChange {
            name: name.to_string(),
            op: ConfigOp::Delete,
        }
    }
}

/// The fsync policy as Kafka's (`flush.messages`, `flush.ms`).
pub fn flush_settings(policy: FsyncPolicy) -> (u64, u64) {
    match policy {
        FsyncPolicy::Always => (1, FLUSH_NEVER),
        FsyncPolicy::Interval(d) => (FLUSH_NEVER, (d.as_millis() as u64).min(FLUSH_NEVER)),
        FsyncPolicy::Never => (FLUSH_NEVER, FLUSH_NEVER),
    }
}

/// The fsync policy Kafka's (`flush.messages`, `flush.ms`) ask for: a sync
/// per message is `always` (as is `flush.ms=0`), a time limit is
/// `interval`, neither is `never`.
fn policy_of_flush(messages: u64, ms: u64) -> FsyncPolicy {
    if messages == 1 || ms == 0 {
        FsyncPolicy::Always
    } else if ms >= FLUSH_NEVER {
        FsyncPolicy::Never
    } else {
        FsyncPolicy::Interval(Duration::from_millis(ms))
    }
}

fn number(key: &str, value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{key} must be a whole number, got {value:?}"))
}

fn non_negative(key: &str, value: &str) -> Result<u64, String> {
    let n = number(key, value)?;
    u64::try_from(n).map_err(|_| format!("{key} must not be negative, got {n}"))
}

fn forever_or(key: &str, value: &str) -> Result<Option<u64>, String> {
    match number(key, value)? {
        -1 => Ok(None),
        n if n < 0 => Err(format!(
            "{key} must be -1 (no limit) or at least 0, got {n}"
        )),
        n => Ok(Some(n as u64)),
    }
}

/// `cleanup.policy` as a list of policies (Kafka writes lists with commas;
/// brackets are accepted).
fn cleanup_list(value: &str) -> Result<Vec<String>, String> {
    let inner = value.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(inner);
    let mut out: Vec<String> = Vec::new();
    for item in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "delete" | "compact" => {
                if !out.iter().any(|o| o == item) {
                    out.push(item.to_string());
                }
            }
            other => {
                return Err(format!(
                    "cleanup.policy {other:?} is not one of delete, compact"
                ));
            }
        }
    }
    Ok(out)
}

/// The cleanup policy a list asks for.
fn cleanup_of(list: &[String]) -> Result<CleanupPolicy, String> {
    let compact = list.iter().any(|p| p == "compact");
    let delete = list.iter().any(|p| p == "delete");
    match (compact, delete) {
        (true, true) => Ok(CleanupPolicy::CompactDelete),
        (true, false) => Ok(CleanupPolicy::Compact),
        (false, true) => Ok(CleanupPolicy::Delete),
        (false, false) => {
            Err("cleanup.policy must not be empty: delete, compact or compact,delete".into())
        }
    }
}

impl TopicOverrides {
    /// Whether the topic sets `setting` itself.
    pub fn sets(&self, setting: Setting) -> bool {
        match setting {
            Setting::CleanupPolicy => self.cleanup_policy.is_some(),
            Setting::DeleteRetentionMs => self.delete_retention_ms.is_some(),
            Setting::MinCompactionLagMs => self.min_compaction_lag_ms.is_some(),
            Setting::RetentionMs => self.retention_ms.is_some(),
            Setting::RetentionBytes => self.retention_bytes.is_some(),
            Setting::SegmentBytes => self.segment_bytes.is_some(),
            Setting::SegmentMs => self.segment_ms.is_some(),
            Setting::MaxMessageBytes => self.max_batch_bytes.is_some(),
            Setting::TimestampType => self.timestamp_type.is_some(),
            Setting::MinInsyncReplicas => self.min_insync_replicas.is_some(),
            Setting::FlushMessages | Setting::FlushMs => self.fsync.is_some(),
        }
    }

    /// These overrides with `changes` applied (in Kafka's names), over
    /// `defaults` (the broker's). Checks every value; whether the result
    /// fits together is checked by [`TopicConfig::with_overrides`].
    ///
    /// `flush.messages` and `flush.ms` are two views of the fsync policy:
    /// deleting either returns the topic to the broker's policy; setting
    /// them starts from the topic's current policy (the broker's, after a
    /// delete), and setting `flush.ms` alone also drops a per-message sync,
    /// so `flush.ms=MS` alone means `interval:MS`.
    pub fn apply(
        &self,
        changes: &[ConfigChange],
        defaults: &TopicConfig,
    ) -> Result<TopicOverrides, String> {
        let mut next = self.clone();
        let (mut flush_messages, mut flush_ms, mut flush_reset) = (None, None, false);
        for (i, change) in changes.iter().enumerate() {
            let key = change.name.as_str();
            let info = Setting::by_name(key).ok_or_else(|| {
                format!(
                    "topic config {key:?} is not supported; supported: {}",
                    supported_names()
                )
            })?;
            if changes[..i].iter().any(|c| c.name == change.name) {
                return Err(format!("{key} is changed more than once in one request"));
            }
            let value = match &change.op {
                ConfigOp::Delete => {
                    match info.setting {
                        Setting::FlushMessages | Setting::FlushMs => flush_reset = true,
                        other => next.clear(other),
                    }
                    continue;
                }
                ConfigOp::Set(v) => v.as_deref(),
                ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
                    if info.kind != SettingType::List {
                        return Err(format!(
                            "{key} is not a list: APPEND and SUBTRACT apply only to list settings (cleanup.policy)"
                        ));
                    }
                    v.as_deref()
                }
            };
            let value = value.ok_or_else(|| format!("{key} has no value"))?;
            match info.setting {
                Setting::CleanupPolicy => {
                    let given = cleanup_list(value)?;
                    let current = next
                        .cleanup_policy
                        .unwrap_or(defaults.cleanup_policy)
                        .list();
                    let list = match &change.op {
                        ConfigOp::Set(_) => given,
                        ConfigOp::Append(_) => {
                            let mut list = current;
                            list.extend(given);
                            list
                        }
                        _ => current.into_iter().filter(|p| !given.contains(p)).collect(),
                    };
                    next.cleanup_policy = Some(cleanup_of(&list)?);
                }
                Setting::DeleteRetentionMs => {
                    next.delete_retention_ms = Some(non_negative(key, value)?);
                }
                Setting::MinCompactionLagMs => {
                    next.min_compaction_lag_ms = Some(non_negative(key, value)?);
                }
                Setting::RetentionMs => next.retention_ms = Some(forever_or(key, value)?),
                Setting::RetentionBytes => next.retention_bytes = Some(forever_or(key, value)?),
                Setting::SegmentBytes => next.segment_bytes = Some(non_negative(key, value)?),
                Setting::SegmentMs => next.segment_ms = Some(non_negative(key, value)?),
                Setting::MaxMessageBytes => {
                    let n = non_negative(key, value)?;
                    next.max_batch_bytes = Some(usize::try_from(n).unwrap_or(usize::MAX));
                }
                Setting::TimestampType => {
                    next.timestamp_type = Some(
                        value
                            .trim()
                            .parse()
                            .map_err(|e| format!("message.timestamp.type: {e}"))?,
                    );
                }
                Setting::MinInsyncReplicas => {
                    let n = non_negative(key, value)?;
                    if n == 0 || n > i32::MAX as u64 {
                        return Err(format!("min.insync.replicas must be at least 1, got {n}"));
                    }
                    next.min_insync_replicas = Some(n as u32);
                }
                Setting::FlushMessages => {
                    let n = non_negative(key, value)?;
                    if n != 1 && n != FLUSH_NEVER {
                        return Err(format!(
                            "flush.messages {n} is not supported: 1 (fsync every append, corelog's fsync always) or {FLUSH_NEVER} (no per-append fsync)"
                        ));
                    }
                    flush_messages = Some(n);
                }
                Setting::FlushMs => flush_ms = Some(non_negative(key, value)?),
            }
        }
        if flush_reset {
            next.fsync = None;
        }
        if flush_messages.is_some() || flush_ms.is_some() {
            let (messages, ms) = flush_settings(next.fsync.unwrap_or(defaults.fsync));
            let messages = flush_messages.unwrap_or(if flush_ms.is_some() {
                FLUSH_NEVER
            } else {
                messages
            });
            next.fsync = Some(policy_of_flush(messages, flush_ms.unwrap_or(ms)));
        }
        Ok(next)
    }

    /// Stops setting `setting` on the topic (flush settings: the fsync
    /// policy).
    fn clear(&mut self, setting: Setting) {
        match setting {
            Setting::CleanupPolicy => self.cleanup_policy = None,
            Setting::DeleteRetentionMs => self.delete_retention_ms = None,
            Setting::MinCompactionLagMs => self.min_compaction_lag_ms = None,
            Setting::RetentionMs => self.retention_ms = None,
            Setting::RetentionBytes => self.retention_bytes = None,
            Setting::SegmentBytes => self.segment_bytes = None,
            Setting::SegmentMs => self.segment_ms = None,
            Setting::MaxMessageBytes => self.max_batch_bytes = None,
            Setting::TimestampType => self.timestamp_type = None,
            Setting::MinInsyncReplicas => self.min_insync_replicas = None,
            Setting::FlushMessages | Setting::FlushMs => self.fsync = None,
        }
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
        if let Some(v) = overrides.timestamp_type {
            c.timestamp_type = v;
        }
        if let Some(v) = overrides.min_insync_replicas {
            c.min_insync_replicas = v;
        }
        if let Some(v) = overrides.cleanup_policy {
            c.cleanup_policy = v;
        }
        if let Some(v) = overrides.delete_retention_ms {
            c.delete_retention_ms = v;
        }
        if let Some(v) = overrides.min_compaction_lag_ms {
            c.min_compaction_lag_ms = v;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every value and explains the first one out of bounds (in
    /// Kafka's names).
    pub fn validate(&self) -> Result<(), String> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(format!(
                "segment.bytes {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                self.segment_bytes
            ));
        }
        if self.segment_ms == 0 {
            return Err("segment.ms must be at least 1".into());
        }
        if self.max_batch_bytes == 0 || self.max_batch_bytes > BATCH_BYTES_MAX {
            return Err(format!(
                "max.message.bytes {} is outside 1..={BATCH_BYTES_MAX}",
                self.max_batch_bytes
            ));
        }
        if self.min_insync_replicas == 0 || self.min_insync_replicas > i32::MAX as u32 {
            return Err(format!(
                "min.insync.replicas must be at least 1, got {}",
                self.min_insync_replicas
            ));
        }
        self.log_config().validate()
    }

    /// `setting`'s value in Kafka's text (`retention.ms` -1 is "forever").
    pub fn kafka_value(&self, setting: Setting) -> String {
        let forever = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        match setting {
            Setting::CleanupPolicy => self.cleanup_policy.to_string(),
            Setting::DeleteRetentionMs => self.delete_retention_ms.to_string(),
            Setting::MinCompactionLagMs => self.min_compaction_lag_ms.to_string(),
            Setting::RetentionMs => forever(self.retention_ms),
            Setting::RetentionBytes => forever(self.retention_bytes),
            Setting::SegmentBytes => self.segment_bytes.to_string(),
            Setting::SegmentMs => self.segment_ms.to_string(),
            Setting::MaxMessageBytes => self.max_batch_bytes.to_string(),
            Setting::TimestampType => self.timestamp_type.to_string(),
            Setting::MinInsyncReplicas => self.min_insync_replicas.to_string(),
            Setting::FlushMessages => flush_settings(self.fsync).0.to_string(),
            Setting::FlushMs => flush_settings(self.fsync).1.to_string(),
        }
    }

    /// Every setting of a topic with this effective configuration, which
    /// sets `overrides` itself over the broker's `defaults`.
    pub fn entries(&self, overrides: &TopicOverrides, defaults: &TopicConfig) -> Vec<ConfigEntry> {
        let builtin = TopicConfig::default();
        SETTINGS
            .iter()
            .map(|info| {
                let s = info.setting;
                let (broker, default) = (defaults.kafka_value(s), builtin.kafka_value(s));
                let mut synonyms = Vec::with_capacity(3);
                if overrides.sets(s) {
                    synonyms.push((ConfigSource::Topic, self.kafka_value(s)));
                }
                if broker != default {
                    synonyms.push((ConfigSource::Broker, broker));
                }
                synonyms.push((ConfigSource::Default, default));
                ConfigEntry {
                    info,
                    value: self.kafka_value(s),
                    source: synonyms[0].0,
                    synonyms,
                }
            })
            .collect()
    }

    /// The broker's own settings of these topic defaults, by their
    /// broker-level names (what DescribeConfigs answers for the broker).
    pub fn broker_entries(&self) -> Vec<ConfigEntry> {
        self.entries(&TopicOverrides::default(), self)
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
            timestamp_type: self.timestamp_type,
            cleanup_delete: self.cleanup_policy.deletes(),
            compact: self.cleanup_policy.compacts(),
            delete_retention_ms: self.delete_retention_ms,
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            ..LogConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(base: &TopicOverrides, changes: &[ConfigChange]) -> Result<TopicOverrides, String> {
        base.apply(changes, &TopicConfig::default())
    }

    #[test]
    fn kafka_settings_map_onto_the_topic_config() {
        let o = apply(
            &TopicOverrides::default(),
            &[
                ConfigChange::set("retention.ms", "-1"),
                ConfigChange::set("segment.bytes", "1048576"),
                ConfigChange::set("flush.messages", "1"),
                ConfigChange::set("max.message.bytes", "2000000"),
                ConfigChange::set("message.timestamp.type", "LogAppendTime"),
                ConfigChange::set("min.insync.replicas", "2"),
                ConfigChange::set("cleanup.policy", "delete"),
            ],
        )
        .unwrap();
        let c = TopicConfig::default().with_overrides(&o).unwrap();
        assert_eq!(c.retention_ms, None);
        assert_eq!(o.retention_ms, Some(None), "set to forever, on the topic");
        assert_eq!(c.segment_bytes, 1 << 20);
        assert_eq!(c.fsync, FsyncPolicy::Always);
        assert_eq!(c.max_batch_bytes, 2_000_000);
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(c.log_config().timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(o.cleanup_policy, Some(CleanupPolicy::Delete));
    }

    #[test]
    fn compaction_policies_parse_append_and_reach_the_log() {
        let none = TopicOverrides::default();
        let compact = apply(&none, &[ConfigChange::set("cleanup.policy", "compact")]).unwrap();
        let c = TopicConfig::default().with_overrides(&compact).unwrap();
        assert_eq!(c.cleanup_policy, CleanupPolicy::Compact);
        assert!(c.log_config().compact && !c.log_config().cleanup_delete);
        assert_eq!(c.kafka_value(Setting::CleanupPolicy), "compact");
        let both = apply(
            &none,
            &[ConfigChange::set("cleanup.policy", "[delete, compact]")],
        )
        .unwrap();
        assert_eq!(both.cleanup_policy, Some(CleanupPolicy::CompactDelete));
        let append = ConfigChange {
            name: "cleanup.policy".into(),
            op: ConfigOp::Append(Some("compact".into())),
        };
        let appended = apply(&none, &[append]).unwrap();
        assert_eq!(appended.cleanup_policy, Some(CleanupPolicy::CompactDelete));
        let subtract = ConfigChange {
            name: "cleanup.policy".into(),
            op: ConfigOp::Subtract(Some("delete".into())),
        };
        let subtracted = apply(&appended, &[subtract]).unwrap();
        assert_eq!(subtracted.cleanup_policy, Some(CleanupPolicy::Compact));
        let dr = apply(&none, &[ConfigChange::set("delete.retention.ms", "1000")]).unwrap();
        let c = TopicConfig::default().with_overrides(&dr).unwrap();
        assert_eq!(c.log_config().delete_retention_ms, 1000);
        let lag = apply(
            &none,
            &[ConfigChange::set("min.compaction.lag.ms", "60000")],
        )
        .unwrap();
        let c = TopicConfig::default().with_overrides(&lag).unwrap();
        assert_eq!(c.log_config().min_compaction_lag_ms, 60_000);
        assert_eq!(c.kafka_value(Setting::MinCompactionLagMs), "60000");
        assert_eq!(TopicConfig::default().delete_retention_ms, 86_400_000);
        for text in ["delete", "compact", "compact,delete"] {
            assert_eq!(text.parse::<CleanupPolicy>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn the_fsync_policy_reads_and_writes_as_flush_settings() {
        let none = TopicOverrides::default();
        let set = |changes: &[ConfigChange]| apply(&none, changes).unwrap().fsync;
        assert_eq!(
            set(&[ConfigChange::set("flush.ms", "250")]),
            Some(FsyncPolicy::Interval(Duration::from_millis(250)))
        );
        assert_eq!(
            set(&[ConfigChange::set("flush.ms", "0")]),
            Some(FsyncPolicy::Always)
        );
        assert_eq!(
            set(&[
                ConfigChange::set("flush.messages", &FLUSH_NEVER.to_string()),
                ConfigChange::set("flush.ms", &FLUSH_NEVER.to_string())
            ]),
            Some(FsyncPolicy::Never)
        );
        // From always, flush.ms alone means interval; flush.messages=1
        // wins over any flush.ms.
        let always = TopicOverrides {
            fsync: Some(FsyncPolicy::Always),
            ..TopicOverrides::default()
        };
        assert_eq!(
            apply(&always, &[ConfigChange::set("flush.ms", "100")])
                .unwrap()
                .fsync,
            Some(FsyncPolicy::Interval(Duration::from_millis(100)))
        );
        assert_eq!(
            set(&[
                ConfigChange::set("flush.ms", "100"),
                ConfigChange::set("flush.messages", "1")
            ]),
            Some(FsyncPolicy::Always)
        );
        // Deleting either returns to the broker's policy.
        assert_eq!(
            apply(&always, &[ConfigChange::delete("flush.ms")])
                .unwrap()
                .fsync,
            None
        );
        // And the values read back the way they were written.
        for (policy, messages, ms) in [
            (FsyncPolicy::Always, 1, FLUSH_NEVER),
            (
                FsyncPolicy::Interval(Duration::from_millis(40)),
                FLUSH_NEVER,
                40,
            ),
            (FsyncPolicy::Never, FLUSH_NEVER, FLUSH_NEVER),
        ] {
            assert_eq!(flush_settings(policy), (messages, ms));
            assert_eq!(policy_of_flush(messages, ms), policy);
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for (key, value, reason) in [
            ("retention.ms", "soon", "whole number"),
            ("segment.bytes", "-5", "negative"),
            ("cleanup.policy", "", "must not be empty"),
            ("delete.retention.ms", "-1", "negative"),
            ("cleanup.policy", "shred", "not one of delete, compact"),
            (
                "message.timestamp.type",
                "BrokerTime",
                "CreateTime, LogAppendTime",
            ),
            ("min.insync.replicas", "0", "at least 1"),
            ("flush.messages", "10", "not supported"),
            ("unclean.leader.election.enable", "true", "not supported"),
        ] {
            let err =
                apply(&TopicOverrides::default(), &[ConfigChange::set(key, value)]).unwrap_err();
            assert!(err.contains(reason), "{key}={value}: {err}");
        }
        let twice = [
            ConfigChange::set("retention.ms", "1"),
            ConfigChange::delete("retention.ms"),
        ];
        assert!(
            apply(&TopicOverrides::default(), &twice)
                .unwrap_err()
                .contains("more than once")
        );
        let append = ConfigChange {
            name: "retention.ms".into(),
            op: ConfigOp::Append(Some("5".into())),
        };
        assert!(
            apply(&TopicOverrides::default(), &[append])
                .unwrap_err()
                .contains("not a list")
        );
        // Values the log cannot take are refused when applied.
        let o = apply(
            &TopicOverrides::default(),
            &[ConfigChange::set("segment.bytes", "10")],
        )
        .unwrap();
        assert!(TopicConfig::default().with_overrides(&o).is_err());
    }

    #[test]
    fn entries_name_each_value_source() {
        let defaults = TopicConfig {
            retention_ms: Some(3_600_000),
            ..TopicConfig::default()
        };
        let overrides = TopicOverrides {
            segment_bytes: Some(1 << 20),
            fsync: Some(FsyncPolicy::Always),
            ..TopicOverrides::default()
        };
        let config = defaults.with_overrides(&overrides).unwrap();
        let entries = config.entries(&overrides, &defaults);
        assert_eq!(entries.len(), SETTINGS.len());
        let find = |name: &str| entries.iter().find(|e| e.info.name == name).unwrap();
        assert_eq!(find("segment.bytes").source, ConfigSource::Topic);
        assert_eq!(find("segment.bytes").value, "1048576");
        assert_eq!(find("retention.ms").source, ConfigSource::Broker);
        assert_eq!(find("retention.ms").value, "3600000");
        assert_eq!(
            find("retention.ms").synonyms,
            vec![
                (ConfigSource::Broker, "3600000".to_string()),
                (ConfigSource::Default, "-1".to_string())
            ]
        );
        assert_eq!(find("segment.ms").source, ConfigSource::Default);
        assert_eq!(find("flush.messages").value, "1");
        assert_eq!(find("flush.messages").source, ConfigSource::Topic);
        assert_eq!(find("flush.ms").source, ConfigSource::Topic);
        assert_eq!(find("cleanup.policy").value, "delete");
        assert_eq!(find("message.timestamp.type").value, "CreateTime");
    }
}
