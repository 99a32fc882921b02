//! Topic administration and cluster metadata.

use super::{CONNECT_TIMEOUT, ClientError, Connection, Result};
use crate::protocol::wire;
use crate::types::FsyncPolicy;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Topic settings for `create_topic`; `None` takes the broker's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicSettings {
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: Option<u64>,
    pub segment_ms: Option<u64>,
    pub fsync: Option<FsyncPolicy>,
    pub max_batch_bytes: Option<u64>,
    /// Kafka's `min.insync.replicas`.
    pub min_insync_replicas: Option<u32>,
}

impl TopicSettings {
    fn to_wire<'a>(
        &self,
        fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
    ) -> flatbuffers::WIPOffset<wire::TopicConfig<'a>> {
        let opt = |v: Option<u64>| v.map_or(-1, |v| v.min(i64::MAX as u64) as i64);
        let (fsync, interval) = match self.fsync {
            None => (wire::FsyncPolicy::DEFAULT, 0),
            Some(FsyncPolicy::Never) => (wire::FsyncPolicy::NEVER, 0),
            Some(FsyncPolicy::Always) => (wire::FsyncPolicy::ALWAYS, 0),
            Some(FsyncPolicy::Interval(d)) => (
                wire::FsyncPolicy::INTERVAL,
                d.as_millis().min(u32::MAX as u128) as u32,
            ),
        };
        wire::TopicConfig::create(
            fbb,
            &wire::TopicConfigArgs {
                retention_ms: opt(self.retention_ms),
                retention_bytes: opt(self.retention_bytes),
                segment_bytes: opt(self.segment_bytes),
                segment_ms: opt(self.segment_ms),
                fsync,
                fsync_interval_ms: interval,
                max_batch_bytes: opt(self.max_batch_bytes),
                min_insync_replicas: self.min_insync_replicas.unwrap_or(0),
            },
        )
    }

    fn from_wire(c: Option<wire::TopicConfig<'_>>) -> TopicSettings {
        let Some(c) = c else {
            return TopicSettings::default();
        };
        let opt = |v: i64| (v >= 0).then_some(v as u64);
        TopicSettings {
            retention_ms: opt(c.retention_ms()),
            retention_bytes: opt(c.retention_bytes()),
            segment_bytes: opt(c.segment_bytes()),
            segment_ms: opt(c.segment_ms()),
            fsync: match c.fsync() {
                wire::FsyncPolicy::NEVER => Some(FsyncPolicy::Never),
                wire::FsyncPolicy::ALWAYS => Some(FsyncPolicy::Always),
                wire::FsyncPolicy::INTERVAL => Some(FsyncPolicy::Interval(Duration::from_millis(
                    c.fsync_interval_ms() as u64,
                ))),
                _ => None,
            },
            max_batch_bytes: opt(c.max_batch_bytes()),
            min_insync_replicas: (c.min_insync_replicas() > 0).then_some(c.min_insync_replicas()),
        }
    }
}

/// Where a topic setting's value comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// corelog's built-in default.
    Default,
    /// The broker's configuration (its topic defaults).
    Broker,
    /// Set on the topic itself.
    Topic,
    /// A source newer than this client.
    Other(u8),
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::Default => f.write_str("default"),
            ConfigSource::Broker => f.write_str("broker"),
            ConfigSource::Topic => f.write_str("topic"),
            ConfigSource::Other(n) => write!(f, "source-{n}"),
        }
    }
}

/// One topic setting, by its Kafka name (`retention.ms`, `flush.ms`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSetting {
    pub name: String,
    /// The effective value, as Kafka tools show it.
    pub value: String,
    pub source: ConfigSource,
}

/// A change to one topic setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigUpdate {
    /// Give the topic its own value.
    Set { name: String, value: String },
    /// Return the setting to the broker's default.
    Delete { name: String },
}

fn settings_from_wire<'a>(
    entries: Option<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<wire::ConfigEntry<'a>>>>,
) -> Vec<ConfigSetting> {
    entries
        .iter()
        .flatten()
        .map(|e| ConfigSetting {
            name: e.name().unwrap_or("").to_string(),
            value: e.value().unwrap_or("").to_string(),
            source: match e.source() {
                wire::ConfigSource::DEFAULT => ConfigSource::Default,
                wire::ConfigSource::BROKER => ConfigSource::Broker,
                wire::ConfigSource::TOPIC => ConfigSource::Topic,
                other => ConfigSource::Other(other.0),
            },
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSummary {
    pub name: String,
    pub topic_id: u32,
    pub partitions: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDescription {
    pub partition: u32,
    pub shard: u32,
    pub error: wire::ErrorCode,
    pub start_offset: u64,
    pub end_offset: u64,
    pub high_watermark: u64,
    pub size_bytes: u64,
    pub segments: u32,
    /// The leader's node id, if known.
    pub leader: Option<u32>,
    pub replicas: Vec<u32>,
    pub isr: Vec<u32>,
    pub leader_epoch: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub topic_id: u32,
    pub config: TopicSettings,
    pub partitions: Vec<PartitionDescription>,
}

/// Where a topic's partitions live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: u32,
    /// For each partition: (owning shard, that shard's port).
    pub partitions: Vec<(u32, u16)>,
}

/// The broker's layout as metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub host: IpAddr,
    pub shared_port: u16,
    /// Each shard's own port, by shard.
    pub shard_ports: Vec<u16>,
    pub topics: BTreeMap<String, TopicInfo>,
    pub version: u64,
}

impl ClusterMetadata {
    pub fn shared_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.shared_port)
    }

    /// The address to send a partition's requests to.
    pub fn partition_addr(
        &self,
        topic: &TopicInfo,
        partition: u32,
        routing: super::Routing,
    ) -> SocketAddr {
        match routing {
            super::Routing::Shared => self.shared_addr(),
            super::Routing::Direct => {
                SocketAddr::new(self.host, topic.partitions[partition as usize].1)
            }
        }
    }
}

/// One shard's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub shard: u32,
    pub port: u16,
    pub connections: u32,
    pub requests: u64,
    pub cross_core_hops: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub partitions: u32,
    pub errors: u64,
    /// CPU time of the shard's thread (user + system), microseconds; 0 from
    /// a broker that does not tell.
    pub cpu_us: u64,
    /// Bytes of batches fetches read from segment files (disk).
    pub disk_read_bytes: u64,
    /// Bytes of batches fetches read from tail caches (memory).
    pub cache_read_bytes: u64,
}

/// A broker's answer to a stats request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerStats {
    pub shards: Vec<ShardStats>,
    /// CPU time of the whole broker process since it started, microseconds
    /// (0 from a broker that does not tell).
    pub process_cpu_user_us: u64,
    pub process_cpu_system_us: u64,
}

impl BrokerStats {
    /// The broker process's CPU time, user + system, in seconds.
    pub fn process_cpu_seconds(&self) -> f64 {
        (self.process_cpu_user_us + self.process_cpu_system_us) as f64 / 1e6
    }

    /// CPU time of the shard threads alone, user + system, in seconds.
    pub fn shard_cpu_seconds(&self) -> f64 {
        self.shards.iter().map(|s| s.cpu_us).sum::<u64>() as f64 / 1e6
    }
}

/// Topic administration over one connection.
pub struct Admin {
    conn: Rc<Connection>,
}

impl Admin {
    pub async fn connect(addr: SocketAddr) -> Result<Admin> {
        Ok(Admin {
            conn: Connection::connect(addr, CONNECT_TIMEOUT).await?,
        })
    }

    pub fn connection(&self) -> &Rc<Connection> {
        &self.conn
    }

    /// Creates a topic; returns its id and effective settings.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        settings: &TopicSettings,
    ) -> Result<(u32, TopicSettings)> {
        self.create_replicated_topic(name, partitions, 1, settings)
            .await
    }

    /// Creates a topic with `replication_factor` replicas of each
    /// partition (a cluster with that many active brokers).
    pub async fn create_replicated_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        settings: &TopicSettings,
    ) -> Result<(u32, TopicSettings)> {
        let response = self
            .conn
            .call_timeout(ADMIN_TIMEOUT, 512, |fbb| {
                let name = fbb.create_string(name);
                let config = settings.to_wire(fbb);
                let body = wire::CreateTopicRequest::create(
                    fbb,
                    &wire::CreateTopicRequestArgs {
                        name: Some(name),
                        partitions,
                        config: Some(config),
                        replication_factor,
                    },
                );
                (wire::Request::CreateTopicRequest, body.as_union_value())
            })
            .await?;
        let body = response
            .check()?
            .envelope()
            .response_as_create_topic_response()
            .ok_or_else(|| ClientError::Protocol("create response without a body".into()))?;
        Ok((body.topic_id(), TopicSettings::from_wire(body.config())))
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let response = self
            .conn
            .call_timeout(ADMIN_TIMEOUT, 256, |fbb| {
                let name = fbb.create_string(name);
                let body = wire::DeleteTopicRequest::create(
                    fbb,
                    &wire::DeleteTopicRequestArgs { name: Some(name) },
                );
                (wire::Request::DeleteTopicRequest, body.as_union_value())
            })
            .await?;
        response.check()?;
        Ok(())
    }

    /// Raises a topic's partition count to `total`; returns the new count.
    /// Existing partitions keep their data (and their keys' partition: a
    /// key-hash partitioner maps keys anew over the larger count).
    pub async fn create_partitions(&self, name: &str, total: u32) -> Result<u32> {
        let response = self
            .conn
            .call_timeout(ADMIN_TIMEOUT, 256, |fbb| {
                let name = fbb.create_string(name);
                let body = wire::CreatePartitionsRequest::create(
                    fbb,
                    &wire::CreatePartitionsRequestArgs {
                        name: Some(name),
                        total,
                    },
                );
                (
                    wire::Request::CreatePartitionsRequest,
                    body.as_union_value(),
                )
            })
            .await?;
        let body = response
            .check()?
            .envelope()
            .response_as_create_partitions_response()
            .ok_or_else(|| {
                ClientError::Protocol("create partitions response without a body".into())
            })?;
        Ok(body.partitions())
    }

    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        let response = self
            .conn
            .call_timeout(ADMIN_TIMEOUT, 64, |fbb| {
                let body = wire::ListTopicsRequest::create(fbb, &wire::ListTopicsRequestArgs {});
                (wire::Request::ListTopicsRequest, body.as_union_value())
            })
            .await?;
        let body = response
            .check()?
            .envelope()
            .response_as_list_topics_response()
            .ok_or_else(|| ClientError::Protocol("list response without a body".into()))?;
        Ok(body
            .topics()
            .iter()
            .flatten()
            .map(|t| TopicSummary {
                name: t.name().unwrap_or("").to_string(),
                topic_id: t.topic_id(),
                partitions: t.partitions(),
            })
            .collect())
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let response = self
            .conn
            .call_timeout(ADMIN_TIMEOUT, 256, |fbb| {
                let name = fbb.create_string(name);
                let body = wire::DescribeTopicRequest::create(
                    fbb,
                    &wire::DescribeTopicRequestArgs { name: Some(name) },
                );
                (wire::Request::DescribeTopicRequest, body.as_union_value())
            })
            .await?;
        let body = response
            .check()?
            .envelope()
            .response_as_describe_topic_response()
            .ok_or_else(|| ClientError::Protocol("describe response without a body".into()))?;
        Ok(TopicDescription {
            name: body.name().unwrap_or("").to_string(),
            topic_id: body.topic_id(),
            config: TopicSettings::from_wire(body.config()),
            partitions: body
                .partitions()
                .iter()
                .flatten()
                .map(|p| PartitionDescription {
                    partition: p.partition(),
                    shard: p.shard(),
                    error: p.error(),
                    start_offset: p.start_offset().max(0) as u64,
                    end_offset: p.end_offset().max(0) as u64,
                    high_watermark: p.high_watermark().max(0) as u64,
                    size_bytes: p.size_bytes(),
                    segments: p.segments(),
                    leader: u32::try_from(p.leader()).ok(),
                    replicas: p.replicas().map(|v| v.iter().collect()).unwrap_or_default(),
                    isr: p.isr().map(|v| v.iter().collect()).unwrap_or_default(),
                    leader_epoch: u32::try_from(p.leader_epoch()).ok(),
                })
                .collect(),
        })
    }

    /// A topic's settings (those named, or all when `names` is empty),
    /// each with its value and source.
    pub async fn describe_configs(
        &self,
        topic: &str,
        names: &[&str],
    ) -> Result<Vec<ConfigSetting>> {
        let response = self
            .conn
            .call_timeout(ADMIN_TIMEOUT, 256, |fbb| {
                let topic = fbb.create_string(topic);
                let names: Vec<_> = names.iter().map(|n| fbb.create_string(n)).collect();
                let names = fbb.create_vector(&names);
                let body = wire::DescribeConfigsRequest::create(
                    fbb,
                    &wire::DescribeConfigsRequestArgs {
                        topic: Some(topic),
                        names: Some(names),
                    },
                );
                (wire::Request::DescribeConfigsRequest, body.as_union_value())
            })
            .await?;
        let body = response
            .check()?
            .envelope()
            .response_as_describe_configs_response()
            .ok_or_else(|| {
                ClientError::Protocol("describe configs response without a body".into())
            })?;
        Ok(settings_from_wire(body.configs()))
    }

    /// Changes a topic's settings, all or nothing (an invalid value is
    /// `INVALID_CONFIG`, with the reason, and changes nothing); they apply
    /// to the running partitions at once and survive restarts. With
    /// `validate_only` nothing changes. Returns every setting as it is (or
    /// would be) afterwards.
    pub async fn alter_configs(
        &self,
        topic: &str,
        updates: &[ConfigUpdate],
        validate_only: bool,
    ) -> Result<Vec<ConfigSetting>> {
        let response = self
            .conn
            .call_timeout(ADMIN_TIMEOUT, 512, |fbb| {
                let topic = fbb.create_string(topic);
                let changes: Vec<_> = updates
                    .iter()
                    .map(|u| {
                        let (name, operation, value) = match u {
                            ConfigUpdate::Set { name, value } => {
                                (name, wire::ConfigOperation::SET, Some(value))
                            }
                            ConfigUpdate::Delete { name } => {
                                (name, wire::ConfigOperation::DELETE, None)
                            }
                        };
                        let name = fbb.create_string(name);
                        let value = value.map(|v| fbb.create_string(v));
                        wire::ConfigChange::create(
                            fbb,
                            &wire::ConfigChangeArgs {
                                name: Some(name),
                                operation,
                                value,
                            },
                        )
                    })
                    .collect();
                let changes = fbb.create_vector(&changes);
                let body = wire::AlterConfigsRequest::create(
                    fbb,
                    &wire::AlterConfigsRequestArgs {
                        topic: Some(topic),
                        changes: Some(changes),
                        validate_only,
                    },
                );
                (wire::Request::AlterConfigsRequest, body.as_union_value())
            })
            .await?;
        let body = response
            .check()?
            .envelope()
            .response_as_alter_configs_response()
            .ok_or_else(|| ClientError::Protocol("alter configs response without a body".into()))?;
        Ok(settings_from_wire(body.configs()))
    }

    /// Metadata for `topics` (all when empty). Unknown topics are left out;
    /// use [`Admin::describe_topic`] for an error per name.
    pub async fn metadata(&self, topics: &[&str]) -> Result<ClusterMetadata> {
        fetch_metadata(&self.conn, topics).await
    }

    /// Every shard's counters and the broker process's CPU time.
    pub async fn stats(&self) -> Result<BrokerStats> {
        let response = self
            .conn
            .call_timeout(ADMIN_TIMEOUT, 64, |fbb| {
                let body = wire::StatsRequest::create(fbb, &wire::StatsRequestArgs {});
                (wire::Request::StatsRequest, body.as_union_value())
            })
            .await?;
        let body = response
            .check()?
            .envelope()
            .response_as_stats_response()
            .ok_or_else(|| ClientError::Protocol("stats response without a body".into()))?;
        let shards = body
            .shards()
            .iter()
            .flatten()
            .map(|s| ShardStats {
                shard: s.shard(),
                port: s.port(),
                connections: s.connections(),
                requests: s.requests(),
                cross_core_hops: s.cross_core_hops(),
                bytes_in: s.bytes_in(),
                bytes_out: s.bytes_out(),
                partitions: s.partitions(),
                errors: s.errors(),
                cpu_us: s.cpu_us(),
                disk_read_bytes: s.disk_read_bytes(),
                cache_read_bytes: s.cache_read_bytes(),
            })
            .collect();
        Ok(BrokerStats {
            shards,
            process_cpu_user_us: body.process_cpu_user_us(),
            process_cpu_system_us: body.process_cpu_system_us(),
        })
    }
}

/// Asks a broker for metadata over `conn`.
pub(crate) async fn fetch_metadata(conn: &Connection, topics: &[&str]) -> Result<ClusterMetadata> {
    if conn.wire() == super::Wire::Kafka {
        return super::kafka::metadata(conn, topics, ADMIN_TIMEOUT).await;
    }
    let response = conn
        .call_timeout(ADMIN_TIMEOUT, 256, |fbb| {
            let names: Vec<_> = topics.iter().map(|t| fbb.create_string(t)).collect();
            let names = fbb.create_vector(&names);
            let body = wire::MetadataRequest::create(
                fbb,
                &wire::MetadataRequestArgs {
                    topics: Some(names),
                },
            );
            (wire::Request::MetadataRequest, body.as_union_value())
        })
        .await?;
    let body = response
        .check()?
        .envelope()
        .response_as_metadata_response()
        .ok_or_else(|| ClientError::Protocol("metadata response without a body".into()))?;
    let host: IpAddr = body
        .host()
        .unwrap_or("127.0.0.1")
        .parse()
        .map_err(|e| ClientError::Protocol(format!("metadata host {:?}: {e}", body.host())))?;
    let host = if host.is_unspecified() {
        conn.addr().ip()
    } else {
        host
    };
    let mut shard_ports: Vec<(u32, u16)> = body
        .shards()
        .iter()
        .flatten()
        .map(|s| (s.shard(), s.port()))
        .collect();
    shard_ports.sort();
    let mut out = ClusterMetadata {
        host,
        shared_port: body.shared_port(),
        shard_ports: shard_ports.into_iter().map(|(_, p)| p).collect(),
        topics: BTreeMap::new(),
        version: body.metadata_version(),
    };
    for t in body.topics().iter().flatten() {
        if t.error() != wire::ErrorCode::NONE {
            continue;
        }
        let mut partitions: Vec<(u32, u32, u16)> = t
            .partitions()
            .iter()
            .flatten()
            .map(|p| (p.partition(), p.shard(), p.port()))
            .collect();
        partitions.sort();
        out.topics.insert(
            t.name().unwrap_or("").to_string(),
            TopicInfo {
                id: t.topic_id(),
                partitions: partitions.into_iter().map(|(_, s, p)| (s, p)).collect(),
            },
        );
    }
    Ok(out)
}
