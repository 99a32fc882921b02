//! Broker configuration: defaults, the optional TOML file, validation with
//! messages that say what to change.
//!
//! Precedence: command-line flags over the file over the defaults below.

use crate::constants::{
    CONNECTIONS_MAX_DEFAULT, FRAME_BYTES_MAX, IDLE_TIMEOUT_MS_DEFAULT,
    INFLIGHT_PER_CONNECTION_DEFAULT, RETENTION_CHECK_MS_DEFAULT,
};
use crate::meta::TopicConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `corelog serve` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    /// Host and shared port (every shard listens here with SO_REUSEPORT).
    pub listen: SocketAddr,
    /// Each shard's own port; `None`: the ports after the shared one (or
    /// ephemeral ports when the shared port is 0).
    pub shard_ports: Option<Vec<u16>>,
    /// Shards (pinned executors); default: every online CPU.
    pub cores: usize,
    /// Pin shard `i` to CPU `i`.
    pub pin: bool,
    /// Configuration of new topics where a create request leaves it unset.
    pub topic_defaults: TopicConfig,
    pub max_connections: usize,
    pub max_inflight_per_connection: usize,
    pub idle_timeout: Duration,
    pub max_frame_bytes: usize,
    pub retention_check_interval: Duration,
    /// Where the Kafka protocol listener binds (every shard accepts there
    /// with SO_REUSEPORT); `None`: no Kafka listener.
    pub kafka_listen: Option<SocketAddr>,
    /// What Kafka clients are told to connect to (`host:port`); default: the
    /// bound Kafka address.
    pub kafka_advertise: Option<(String, u16)>,
    /// Create a topic with the broker's defaults when a Kafka client's
    /// metadata request names one that does not exist (Kafka's
    /// `auto.create.topics.enable`; off by default, as in Redpanda).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic (Kafka's `num.partitions`).
    pub auto_create_partitions: u32,
    /// This broker's node id, as Kafka clients see it.
    pub node_id: i32,
}

impl BrokerConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> BrokerConfig {
        BrokerConfig {
            data_dir: data_dir.into(),
            listen: "127.0.0.1:9400".parse().unwrap(),
            shard_ports: None,
            cores: online_cpus(),
            pin: true,
            topic_defaults: TopicConfig::default(),
            max_connections: CONNECTIONS_MAX_DEFAULT,
            max_inflight_per_connection: INFLIGHT_PER_CONNECTION_DEFAULT,
            idle_timeout: Duration::from_millis(IDLE_TIMEOUT_MS_DEFAULT),
            max_frame_bytes: FRAME_BYTES_MAX,
            retention_check_interval: Duration::from_millis(RETENTION_CHECK_MS_DEFAULT),
            kafka_listen: None,
            kafka_advertise: None,
            auto_create_topics: false,
            auto_create_partitions: 1,
            node_id: 0,
        }
    }

    /// Checks every value and explains the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.cores == 0 || self.cores > 256 {
            return Err(format!(
                "cores must be between 1 and 256, got {}",
                self.cores
            ));
        }
        if let Some(ports) = &self.shard_ports
            && ports.len() != self.cores
        {
            return Err(format!(
                "{} shard ports given for {} cores; give one per core",
                ports.len(),
                self.cores
            ));
        }
        if self.max_connections == 0 || self.max_inflight_per_connection == 0 {
            return Err("max connections and max in-flight requests must be at least 1".into());
        }
        if self.max_frame_bytes < 64 << 10 || self.max_frame_bytes > FRAME_BYTES_MAX {
            return Err(format!(
                "max frame bytes must be between 65536 and {FRAME_BYTES_MAX}"
            ));
        }
        if self.auto_create_partitions == 0
            || self.auto_create_partitions > crate::constants::PARTITIONS_PER_TOPIC_MAX
        {
            return Err(format!(
                "partitions of auto-created topics must be between 1 and {}, got {}",
                crate::constants::PARTITIONS_PER_TOPIC_MAX,
                self.auto_create_partitions
            ));
        }
        if self.node_id < 0 {
            return Err(format!(
                "node id must not be negative, got {}",
                self.node_id
            ));
        }
        self.topic_defaults
            .log_config()
            .validate()
            .map_err(|e| format!("topic defaults: {e}"))
    }

    /// Applies a TOML configuration file over these values.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let file: FileConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(v) = file.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = file.listen {
            self.listen = v
                .parse()
                .map_err(|e| format!("{}: listen {v:?}: {e}", path.display()))?;
        }
        if let Some(v) = file.shard_ports {
            self.shard_ports = Some(v);
        }
        if let Some(v) = file.cores {
            self.cores = v;
        }
        if let Some(v) = file.pin {
            self.pin = v;
        }
        if let Some(v) = file.topic_defaults {
            self.topic_defaults = v;
        }
        if let Some(v) = file.max_connections {
            self.max_connections = v;
        }
        if let Some(v) = file.max_inflight_per_connection {
            self.max_inflight_per_connection = v;
        }
        if let Some(v) = file.idle_timeout_ms {
            self.idle_timeout = Duration::from_millis(v);
        }
        if let Some(v) = file.max_frame_bytes {
            self.max_frame_bytes = v;
        }
        if let Some(v) = file.retention_check_interval_ms {
            self.retention_check_interval = Duration::from_millis(v);
        }
        if let Some(v) = file.kafka_listen {
            self.kafka_listen =
                parse_listen(&v).map_err(|e| format!("{}: kafka_listen: {e}", path.display()))?;
        }
        if let Some(v) = file.kafka_advertise {
            self.kafka_advertise = Some(
                parse_advertise(&v)
                    .map_err(|e| format!("{}: kafka_advertise: {e}", path.display()))?,
            );
        }
        if let Some(v) = file.auto_create_topics {
            self.auto_create_topics = v;
        }
        if let Some(v) = file.auto_create_partitions {
            self.auto_create_partitions = v;
        }
        if let Some(v) = file.node_id {
            self.node_id = v;
        }
        Ok(())
    }
}

/// The TOML file's shape: every key optional.
#[derive(serde::Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    shard_ports: Option<Vec<u16>>,
    cores: Option<usize>,
    pin: Option<bool>,
    topic_defaults: Option<TopicConfig>,
    max_connections: Option<usize>,
    max_inflight_per_connection: Option<usize>,
    idle_timeout_ms: Option<u64>,
    max_frame_bytes: Option<usize>,
    retention_check_interval_ms: Option<u64>,
    kafka_listen: Option<String>,
    kafka_advertise: Option<String>,
    auto_create_topics: Option<bool>,
    auto_create_partitions: Option<u32>,
    node_id: Option<i32>,
}

/// Parses a listener address, or `none` for no listener.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| format!("{text:?} is not HOST:PORT (an IP address and a port) or none: {e}"))
}

/// Parses an advertised `host:port` (a name or an address).
pub fn parse_advertise(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?}: {port:?} is not a port number"))?;
    if port == 0 {
        return Err(format!("{text:?}: clients cannot connect to port 0"));
    }
    Ok((host.to_string(), port))
}

/// CPUs this process may run on.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsyncPolicy;

    #[test]
    fn a_config_file_overrides_defaults_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corelog.toml");
        std::fs::write(
            &path,
            r#"
listen = "127.0.0.1:9500"
cores = 2
idle_timeout_ms = 1000
[topic_defaults]
fsync = "interval:50"
retention_ms = 3600000
"#,
        )
        .unwrap();
        let mut config = BrokerConfig::new("/tmp/x");
        config.apply_file(&path).unwrap();
        assert_eq!(config.listen.port(), 9500);
        assert_eq!(config.cores, 2);
        assert_eq!(config.idle_timeout, Duration::from_millis(1000));
        assert_eq!(
            config.topic_defaults.fsync,
            FsyncPolicy::Interval(Duration::from_millis(50))
        );
        assert_eq!(config.topic_defaults.retention_ms, Some(3_600_000));
        config.validate().unwrap();

        std::fs::write(&path, "colors = 3\n").unwrap();
        let err = BrokerConfig::new("/tmp/x").apply_file(&path).unwrap_err();
        assert!(err.contains("colors"), "{err}");
        std::fs::write(&path, "[topic_defaults]\nfsync = \"sometimes\"\n").unwrap();
        assert!(
            BrokerConfig::new("/tmp/x")
                .apply_file(&path)
                .unwrap_err()
                .contains("always, interval:MS, never")
        );
    }

    #[test]
    fn bad_values_are_explained() {
        let mut config = BrokerConfig::new("/tmp/x");
        config.cores = 2;
        config.shard_ports = Some(vec![1]);
        assert!(config.validate().unwrap_err().contains("one per core"));
    }
}
