//! Broker configuration: defaults, the optional TOML file, validation with
//! messages that say what to change.
//!
//! Precedence: command-line flags over the file over the defaults below.

use crate::constants::{
    CONNECTIONS_MAX_DEFAULT, CORES_MAX, DISK_FREE_MIN_BYTES_DEFAULT, DISK_FREE_MIN_PERCENT_DEFAULT,
    FRAME_BYTES_MAX, FRAME_TIMEOUT_MS_DEFAULT, IDLE_TIMEOUT_MS_DEFAULT,
    INFLIGHT_PER_CONNECTION_DEFAULT, LOG_CLEANER_BYTES_PER_SEC_DEFAULT,
    LOG_CLEANER_INTERVAL_MS_DEFAULT, LOG_CLEANER_MAP_BYTES_DEFAULT, NODE_ID_MAX,
    REQUEST_MEMORY_BYTES_DEFAULT, RETENTION_CHECK_MS_DEFAULT,
};
use crate::constants::{
    GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT, GROUP_CONSUMER_SESSION_TIMEOUT_MS_DEFAULT,
};
use crate::meta::TopicConfig;
use crate::security::tls::{ClientAuth, TlsFiles};
use crate::security::{SaslMechanism, ScramMechanism, SecurityProtocol};
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
    /// Connections at once; lowered at start if it would take more than
    /// its share of the open-file limit (see `shard::FdBudget`).
    pub max_connections: usize,
    /// Sealed-segment files each shard keeps open at most (its open-file
    /// cache); `None`: sized from the file-descriptor budget.
    pub open_segment_files_per_shard: Option<usize>,
    pub max_inflight_per_connection: usize,
    pub idle_timeout: Duration,
    /// How long a frame may take once its first byte arrived.
    pub frame_timeout: Duration,
    pub max_frame_bytes: usize,
    /// Bytes of requests in flight for the whole broker (split over
    /// shards, each share at least one largest frame).
    pub request_memory_bytes: usize,
    pub retention_check_interval: Duration,
    /// How often each shard's log cleaner compacts its `compact` logs.
    pub log_cleaner_interval: Duration,
    /// Bytes per second a cleaner pass may read and write (0: no limit).
    pub log_cleaner_bytes_per_sec: u64,
    /// Memory for a cleaner pass's key map.
    pub log_cleaner_map_bytes: usize,
    /// Where the Kafka protocol listener binds (every shard accepts there
    /// with SO_REUSEPORT); `None`: no Kafka listener.
    pub kafka_listen: Option<SocketAddr>,
    /// The HTTP port (metrics, admin API, console); `None`: none. Served by
    /// whoever starts the broker (`corelog serve`), not by the shards.
    pub http_listen: Option<SocketAddr>,
    /// What Kafka clients are told to connect to (`host:port`); default: the
    /// bound Kafka address.
    pub kafka_advertise: Option<(String, u16)>,
    /// The shard-aware Kafka mode: every shard is advertised to Kafka
    /// clients as a broker of its own, on a Kafka port of its own, leading
    /// the partitions it owns, so clients send each partition's requests to
    /// its core (the shared Kafka port keeps working for any partition).
    pub kafka_shard_brokers: bool,
    /// Each shard's own Kafka port in the shard-aware mode; `None`: the
    /// ports after the Kafka port (or ephemeral ports when it is 0).
    pub kafka_shard_ports: Option<Vec<u16>>,
    /// Create a topic with the broker's defaults when a Kafka client's
    /// metadata request names one that does not exist (Kafka's
    /// `auto.create.topics.enable`; off by default, as in Redpanda).
    pub auto_create_topics: bool,
    /// Measure where produce requests spend their time (see
    /// [`crate::trace`]) and log the breakdown every second.
    pub trace_latency: bool,
    /// Partitions of an auto-created topic (Kafka's `num.partitions`).
    pub auto_create_partitions: u32,
    /// This broker's node id, as Kafka clients see it (0 to
    /// [`NODE_ID_MAX`]; shard-brokers get ids above that range, see
    /// [`crate::meta::shard_broker_id`]).
    pub node_id: i32,
    /// Produce requests are refused with a retriable DISK_FULL error while
    /// the data directory's file system has less free space than this
    /// (`--disk-free-min-bytes`; 0 turns the check off). `None`: the
    /// smaller of 1 GiB and 5% of the file system's size.
    pub disk_free_min_bytes: Option<u64>,
    /// The heartbeat interval consumer-protocol members are told to keep.
    pub group_consumer_heartbeat_interval: Duration,
    /// How long a consumer-protocol member may go without a heartbeat.
    pub group_consumer_session_timeout: Duration,
    /// The security protocol of the Kafka listener at `kafka_listen`.
    pub kafka_security_protocol: SecurityProtocol,
    /// Kafka listeners after the first (`--kafka-listen` repeated as
    /// `PROTOCOL://HOST:PORT`), e.g. an SSL listener beside a plaintext one.
    pub kafka_more_listeners: Vec<KafkaListener>,
    /// The native listener (shared port and shard ports): TLS or not.
    pub native_security: ListenerSecurity,
    /// The HTTP listener: TLS or not.
    pub http_security: ListenerSecurity,
    /// Certificate and key of every TLS listener without its own.
    pub tls: Option<TlsFiles>,
    /// The native listener's own TLS files (config file `[tls.native]`).
    pub tls_native: Option<TlsFiles>,
    /// The Kafka listeners' own TLS files (`[tls.kafka]`).
    pub tls_kafka: Option<TlsFiles>,
    /// The HTTP listener's own TLS files (`[tls.http]`).
    pub tls_http: Option<TlsFiles>,
    /// The SASL mechanisms SASL listeners offer (PLAIN only over TLS).
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// Whether ACLs decide what principals may do (`--authorizer acl`);
    /// with `none` everything is allowed and the ACL APIs answer
    /// SECURITY_DISABLED, as Kafka's do without an authorizer.
    pub authorizer: AuthorizerKind,
    /// Principals (`User:NAME`) allowed everything whatever the ACLs say
    /// (Kafka's `super.users`).
    pub super_users: Vec<String>,
    /// A resource no ACL names is open to everyone (Kafka's
    /// `allow.everyone.if.no.acl.found`); off by default.
    pub allow_everyone_if_no_acl_found: bool,
    /// A user given SCRAM credentials at start if it has none
    /// (`--bootstrap-user`), so a new cluster with SASL has someone to log
    /// in as.
    pub bootstrap_user: Option<BootstrapUser>,
    /// The controller quorum (`--controllers`): with voters, this broker is
    /// node `node_id` of a cluster whose metadata is replicated by Raft;
    /// empty, a one-broker cluster with its own metadata file.
    pub controllers: Vec<crate::cluster::Voter>,
    /// Where this broker's controller accepts the other controllers.
    pub controller_listen: Option<SocketAddr>,
    /// The host (and shared port) native clients and other brokers are
    /// told to use (`--advertise HOST[:PORT]`); default: the bound address.
    pub advertise: Option<(String, Option<u16>)>,
    /// Applied Raft entries between two metadata snapshots.
    pub raft_snapshot_entries: u64,
}

/// The environment variable `--bootstrap-user`'s password comes from (not
/// a flag: command lines are visible to every user of the machine).
pub const BOOTSTRAP_PASSWORD_ENV: &str = "CORELOG_BOOTSTRAP_PASSWORD";

/// A user the broker gives SCRAM-SHA-256 and SCRAM-SHA-512 credentials at
/// start, unless it has some already.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapUser {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for BootstrapUser {
    // The password stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Which authorizer a broker runs (Kafka's `authorizer.class.name`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthorizerKind {
    /// No ACLs: every request is allowed; the ACL APIs are disabled.
    #[default]
    None,
    /// ACLs stored in the metadata file, with Kafka's semantics.
    Acl,
}

impl AuthorizerKind {
    pub fn name(self) -> &'static str {
        match self {
            AuthorizerKind::None => "none",
            AuthorizerKind::Acl => "acl",
        }
    }
}

impl std::str::FromStr for AuthorizerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(AuthorizerKind::None),
            "acl" => Ok(AuthorizerKind::Acl),
            _ => Err(format!("{s:?} is not an authorizer: none or acl")),
        }
    }
}

/// Parses super users: principals separated by `;` (not commas: a
/// certificate's principal, `User:CN=a,O=b`, has them), blanks around them
/// ignored.
pub fn parse_super_users(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// TLS on a listener that is not Kafka's (whose protocol says it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ListenerSecurity {
    #[default]
    None,
    Tls,
}

impl ListenerSecurity {
    pub fn parse(text: &str) -> Result<ListenerSecurity, String> {
        match text.to_ascii_lowercase().as_str() {
            "none" | "plaintext" => Ok(ListenerSecurity::None),
            "tls" | "ssl" => Ok(ListenerSecurity::Tls),
            _ => Err(format!("{text:?} is not a listener security (tls or none)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ListenerSecurity::None => "none",
            ListenerSecurity::Tls => "tls",
        }
    }
}

/// One Kafka listener: where it binds, what it speaks, what clients are
/// told to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaListener {
    pub protocol: SecurityProtocol,
    pub listen: SocketAddr,
    /// `host:port` clients are told; default: the bound address.
    pub advertise: Option<(String, u16)>,
}

/// Which listener a TLS configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsListener {
    Native,
    Kafka,
    Http,
}

impl BrokerConfig {
    /// The settings as `(name, value)` pairs, for the HTTP API and console.
    pub fn describe(&self) -> Vec<(String, String)> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        let ms = |d: Duration| d.as_millis().to_string();
        let mut out = vec![
            ("data_dir", self.data_dir.display().to_string()),
            ("listen", self.listen.to_string()),
            ("cores", self.cores.to_string()),
            ("pin", self.pin.to_string()),
            (
                "kafka_listen",
                opt(self.kafka_listen.map(|a| a.to_string())),
            ),
            ("http_listen", opt(self.http_listen.map(|a| a.to_string()))),
            (
                "kafka_advertise",
                opt(self
                    .kafka_advertise
                    .as_ref()
                    .map(|(h, p)| format!("{h}:{p}"))),
            ),
            ("kafka_shard_brokers", self.kafka_shard_brokers.to_string()),
            ("auto_create_topics", self.auto_create_topics.to_string()),
            ("max_connections", self.max_connections.to_string()),
            (
                "max_inflight_per_connection",
                self.max_inflight_per_connection.to_string(),
            ),
            ("idle_timeout_ms", ms(self.idle_timeout)),
            ("frame_timeout_ms", ms(self.frame_timeout)),
            ("max_frame_bytes", self.max_frame_bytes.to_string()),
            (
                "request_memory_bytes",
                self.request_memory_bytes.to_string(),
            ),
            (
                "retention_check_interval_ms",
                ms(self.retention_check_interval),
            ),
            ("log_cleaner_interval_ms", ms(self.log_cleaner_interval)),
            (
                "disk_free_min_bytes",
                opt(self.disk_free_min_bytes.map(|v| v.to_string())),
            ),
            ("trace_latency", self.trace_latency.to_string()),
            ("node_id", self.node_id.to_string()),
            (
                "advertise",
                opt(self.advertise.as_ref().map(|(h, p)| match p {
                    Some(p) => format!("{h}:{p}"),
                    None => h.clone(),
                })),
            ),
            (
                "controllers",
                if self.clustered() {
                    self.controllers
                        .iter()
                        .map(|v| format!("{}@{}", v.id, v.addr))
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    "none".to_string()
                },
            ),
            (
                "controller_listen",
                opt(self.controller_listen.map(|a| a.to_string())),
            ),
            ("authorizer", self.authorizer.name().to_string()),
            (
                "super_users",
                if self.super_users.is_empty() {
                    "none".to_string()
                } else {
                    self.super_users.join(";")
                },
            ),
            (
                "allow_everyone_if_no_acl_found",
                self.allow_everyone_if_no_acl_found.to_string(),
            ),
            (
                "bootstrap_user",
                opt(self.bootstrap_user.as_ref().map(|u| u.name.clone())),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<Vec<_>>();
        if let Ok(serde_json::Value::Object(defaults)) = serde_json::to_value(&self.topic_defaults)
        {
            for (k, v) in defaults {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => "none".into(),
                    other => other.to_string(),
                };
                out.push((format!("topic_defaults.{k}"), v));
            }
        }
        out
    }

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
            open_segment_files_per_shard: None,
            max_inflight_per_connection: INFLIGHT_PER_CONNECTION_DEFAULT,
            idle_timeout: Duration::from_millis(IDLE_TIMEOUT_MS_DEFAULT),
            frame_timeout: Duration::from_millis(FRAME_TIMEOUT_MS_DEFAULT),
            max_frame_bytes: FRAME_BYTES_MAX,
            request_memory_bytes: REQUEST_MEMORY_BYTES_DEFAULT,
            retention_check_interval: Duration::from_millis(RETENTION_CHECK_MS_DEFAULT),
            log_cleaner_interval: Duration::from_millis(LOG_CLEANER_INTERVAL_MS_DEFAULT),
            log_cleaner_bytes_per_sec: LOG_CLEANER_BYTES_PER_SEC_DEFAULT,
            log_cleaner_map_bytes: LOG_CLEANER_MAP_BYTES_DEFAULT,
            kafka_listen: None,
            http_listen: None,
            kafka_advertise: None,
            kafka_shard_brokers: false,
            kafka_shard_ports: None,
            auto_create_topics: false,
            trace_latency: false,
            auto_create_partitions: 1,
            node_id: 0,
            disk_free_min_bytes: None,
            group_consumer_heartbeat_interval: Duration::from_millis(
                GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT,
            ),
            group_consumer_session_timeout: Duration::from_millis(
                GROUP_CONSUMER_SESSION_TIMEOUT_MS_DEFAULT,
            ),
            kafka_security_protocol: SecurityProtocol::Plaintext,
            kafka_more_listeners: Vec::new(),
            native_security: ListenerSecurity::None,
            http_security: ListenerSecurity::None,
            tls: None,
            tls_native: None,
            tls_kafka: None,
            tls_http: None,
            sasl_mechanisms: vec![
                SaslMechanism::Scram(ScramMechanism::Sha256),
                SaslMechanism::Scram(ScramMechanism::Sha512),
            ],
            authorizer: AuthorizerKind::None,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            bootstrap_user: None,
            controllers: Vec::new(),
            controller_listen: None,
            advertise: None,
            raft_snapshot_entries: crate::constants::RAFT_SNAPSHOT_ENTRIES,
        }
    }

    /// Whether this broker is part of a Raft-replicated cluster.
    pub fn clustered(&self) -> bool {
        !self.controllers.is_empty()
    }

    fn validate_cluster(&self) -> Result<(), String> {
        if !self.clustered() {
            if self.controller_listen.is_some() {
                return Err("--controller-listen needs --controllers (the quorum's voters)".into());
            }
            return Ok(());
        }
        let id = self.node_id as u64;
        if !self.controllers.iter().any(|v| v.id == id) {
            return Err(format!(
                "--node-id {} is not among the --controllers ({}); every broker of a cluster is a controller voter for now",
                self.node_id,
                self.controllers
                    .iter()
                    .map(|v| v.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.controller_listen.is_none() {
            return Err("a cluster broker needs --controller-listen HOST:PORT (where the other controllers reach it)".into());
        }
        if self.kafka_shard_brokers {
            return Err("--kafka-shard-brokers is not supported in a cluster yet".into());
        }
        if self.bootstrap_user.is_some() {
            return Err("--bootstrap-user is not supported in a cluster yet: create users with `corelog user create` once the cluster is up".into());
        }
        if self.raft_snapshot_entries == 0 {
            return Err("--raft-snapshot-entries must be at least 1".into());
        }
        Ok(())
    }

    /// Every Kafka listener, the one at `kafka_listen` first.
    pub fn kafka_listeners(&self) -> Vec<KafkaListener> {
        let Some(listen) = self.kafka_listen else {
            return Vec::new();
        };
        let mut all = vec![KafkaListener {
            protocol: self.kafka_security_protocol,
            listen,
            advertise: self.kafka_advertise.clone(),
        }];
        all.extend(self.kafka_more_listeners.iter().cloned());
        all
    }

    /// The TLS files `listener` uses: its own, else the common ones.
    pub fn tls_for(&self, listener: TlsListener) -> Option<&TlsFiles> {
        let own = match listener {
            TlsListener::Native => &self.tls_native,
            TlsListener::Kafka => &self.tls_kafka,
            TlsListener::Http => &self.tls_http,
        };
        own.as_ref().or(self.tls.as_ref())
    }

    /// Adds a Kafka listener from `--kafka-listen` (`HOST:PORT`, which
    /// speaks `kafka_security_protocol`, or `PROTOCOL://HOST:PORT`): the
    /// first sets `kafka_listen`, later ones are added after it.
    pub fn add_kafka_listen(&mut self, text: &str, first: bool) -> Result<(), String> {
        let (protocol, addr) = match text.split_once("://") {
            Some((p, rest)) => (Some(SecurityProtocol::parse(p)?), rest),
            None => (None, text),
        };
        let listen = parse_listen(addr)?;
        if first {
            self.kafka_listen = listen;
            self.kafka_more_listeners.clear();
            if let Some(p) = protocol {
                self.kafka_security_protocol = p;
            }
            return Ok(());
        }
        let Some(listen) = listen else {
            return Err(format!(
                "{text:?}: only the first Kafka listener may be none"
            ));
        };
        let Some(protocol) = protocol else {
            return Err(format!(
                "{text:?}: a second Kafka listener needs its protocol (PROTOCOL://HOST:PORT, e.g. SSL://0.0.0.0:9093)"
            ));
        };
        self.kafka_more_listeners.push(KafkaListener {
            protocol,
            listen,
            advertise: None,
        });
        Ok(())
    }

    /// Sets an advertised address from `--kafka-advertise` (`HOST:PORT` for
    /// the first listener, `PROTOCOL://HOST:PORT` for the listener of that
    /// protocol).
    pub fn set_kafka_advertise(&mut self, text: &str) -> Result<(), String> {
        let Some((p, rest)) = text.split_once("://") else {
            self.kafka_advertise = Some(parse_advertise(text)?);
            return Ok(());
        };
        let protocol = SecurityProtocol::parse(p)?;
        let advertise = parse_advertise(rest)?;
        if self.kafka_listen.is_some() && self.kafka_security_protocol == protocol {
            self.kafka_advertise = Some(advertise);
            return Ok(());
        }
        match self
            .kafka_more_listeners
            .iter_mut()
            .find(|l| l.protocol == protocol)
        {
            Some(l) => {
                l.advertise = Some(advertise);
                Ok(())
            }
            None => Err(format!(
                "{text:?}: no {protocol} Kafka listener to advertise (add --kafka-listen {protocol}://HOST:PORT)"
            )),
        }
    }

    /// The free-space watermark for a file system of `total_bytes` (see
    /// [`BrokerConfig::disk_free_min_bytes`]).
    pub fn disk_free_min(&self, total_bytes: u64) -> u64 {
        self.disk_free_min_bytes.unwrap_or_else(|| {
            DISK_FREE_MIN_BYTES_DEFAULT.min(total_bytes / 100 * DISK_FREE_MIN_PERCENT_DEFAULT)
        })
    }

    /// Bytes of request memory each shard has: its share of
    /// `request_memory_bytes`, at least one largest frame (so any frame the
    /// broker accepts can be read).
    pub fn request_memory_per_shard(&self) -> usize {
        (self.request_memory_bytes / self.cores.max(1))
            .max(self.max_frame_bytes + crate::protocol::FRAME_HEADER_BYTES)
    }

    /// Checks every value and explains the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.cores == 0 || self.cores > CORES_MAX {
            return Err(format!(
                "cores must be between 1 and {CORES_MAX}, got {}",
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
        let (beat, session) = (
            self.group_consumer_heartbeat_interval.as_millis(),
            self.group_consumer_session_timeout.as_millis(),
        );
        if beat == 0 || beat > i32::MAX as u128 || session <= beat {
            return Err(format!(
                "the consumer group heartbeat interval ({beat} ms) must be at least 1 ms and below the session timeout ({session} ms)"
            ));
        }
        if self.request_memory_bytes < 1 << 20 {
            return Err(format!(
                "request memory must be at least 1 MiB (1048576 bytes), got {}; each shard's share is raised to one largest frame anyway",
                self.request_memory_bytes
            ));
        }
        if self.open_segment_files_per_shard == Some(0) {
            return Err("open segment files per shard must be at least 1".into());
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
        if !(0..=NODE_ID_MAX).contains(&self.node_id) {
            return Err(format!(
                "node id must be between 0 and {NODE_ID_MAX} (larger ids are the shard-brokers'), got {}",
                self.node_id
            ));
        }
        self.validate_kafka_shard_brokers()?;
        self.validate_cluster()?;
        for user in &self.super_users {
            if user.strip_prefix("User:").is_none_or(str::is_empty) {
                return Err(format!(
                    "super user {user:?} is not a principal: write User:NAME (several separated by ';')"
                ));
            }
        }
        self.validate_security()?;
        if let Some(user) = &self.bootstrap_user {
            if user.name.is_empty() {
                return Err("the bootstrap user's name is empty".into());
            }
            if user.password.is_empty() {
                return Err(format!(
                    "the bootstrap user {:?} has an empty password; set {BOOTSTRAP_PASSWORD_ENV}",
                    user.name
                ));
            }
        }
        self.topic_defaults
            .validate()
            .map_err(|e| format!("topic defaults: {e}"))
    }

    /// The shard-aware Kafka mode needs a Kafka listener, and its ports go
    /// one per core.
    fn validate_kafka_shard_brokers(&self) -> Result<(), String> {
        if self.kafka_shard_brokers && self.kafka_listen.is_none() {
            return Err(
                "Kafka shard-brokers need a Kafka listener; remove --kafka-listen none or turn off --kafka-shard-brokers"
                    .into(),
            );
        }
        match &self.kafka_shard_ports {
            Some(_) if !self.kafka_shard_brokers => Err(
                "Kafka shard ports are set but the shard-aware Kafka mode is off; add --kafka-shard-brokers"
                    .into(),
            ),
            Some(ports) if ports.len() != self.cores => Err(format!(
                "{} Kafka shard ports given for {} cores; give one per core",
                ports.len(),
                self.cores
            )),
            _ => Ok(()),
        }
    }

    /// Kafka listeners have distinct protocols and addresses; every TLS
    /// listener has a certificate and key.
    fn validate_security(&self) -> Result<(), String> {
        let listeners = self.kafka_listeners();
        for (i, a) in listeners.iter().enumerate() {
            for b in &listeners[i + 1..] {
                if a.protocol == b.protocol {
                    return Err(format!(
                        "two Kafka listeners speak {}; give each protocol one listener",
                        a.protocol
                    ));
                }
                if a.listen == b.listen && a.listen.port() != 0 {
                    return Err(format!(
                        "Kafka listeners {} and {} both bind {}",
                        a.protocol, b.protocol, a.listen
                    ));
                }
            }
            if a.protocol.tls() && self.tls_for(TlsListener::Kafka).is_none() {
                return Err(format!(
                    "the {} Kafka listener needs a certificate and key: add --tls-cert FILE --tls-key FILE",
                    a.protocol
                ));
            }
        }
        if listeners
            .iter()
            .any(|l| l.protocol == SecurityProtocol::SaslPlaintext)
            && self.sasl_mechanisms == [SaslMechanism::Plain]
        {
            return Err(
                "a SASL_PLAINTEXT listener would offer no mechanism: PLAIN is offered only over TLS (SASL_SSL); enable SCRAM-SHA-256 or SCRAM-SHA-512"
                    .into(),
            );
        }
        if self.kafka_shard_brokers && listeners.len() > 1 {
            return Err(
                "the shard-aware Kafka mode (--kafka-shard-brokers) supports one Kafka listener"
                    .into(),
            );
        }
        if self.native_security == ListenerSecurity::Tls
            && self.tls_for(TlsListener::Native).is_none()
        {
            return Err(
                "--native-security tls needs a certificate and key: add --tls-cert FILE --tls-key FILE".into(),
            );
        }
        if self.http_security == ListenerSecurity::Tls && self.tls_for(TlsListener::Http).is_none()
        {
            return Err(
                "--http-security tls needs a certificate and key: add --tls-cert FILE --tls-key FILE".into(),
            );
        }
        Ok(())
    }

    /// The port shard `index` binds for its own Kafka listener in the
    /// shard-aware mode, given the bound Kafka port: the configured one,
    /// else the `index + 1`-th port after the Kafka port, else (Kafka
    /// listening on port 0) 0, an ephemeral port.
    pub fn kafka_shard_port(&self, index: usize, kafka_port: u16) -> Result<u16, String> {
        if let Some(ports) = &self.kafka_shard_ports {
            return ports
                .get(index)
                .copied()
                .ok_or_else(|| format!("no Kafka shard port for shard {index}"));
        }
        if self.kafka_listen.is_some_and(|l| l.port() == 0) {
            return Ok(0);
        }
        u16::try_from(index + 1)
            .ok()
            .and_then(|step| kafka_port.checked_add(step))
            .ok_or_else(|| {
                format!(
                    "Kafka shard port {index} after {kafka_port} overflows; set --kafka-shard-ports"
                )
            })
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
        if let Some(v) = file.open_segment_files_per_shard {
            self.open_segment_files_per_shard = Some(v);
        }
        if let Some(v) = file.max_inflight_per_connection {
            self.max_inflight_per_connection = v;
        }
        if let Some(v) = file.idle_timeout_ms {
            self.idle_timeout = Duration::from_millis(v);
        }
        if let Some(v) = file.group_consumer_heartbeat_interval_ms {
            self.group_consumer_heartbeat_interval = Duration::from_millis(v);
        }
        if let Some(v) = file.group_consumer_session_timeout_ms {
            self.group_consumer_session_timeout = Duration::from_millis(v);
        }
        if let Some(v) = file.request_memory_bytes {
            self.request_memory_bytes = v;
        }
        if let Some(v) = file.frame_timeout_ms {
            self.frame_timeout = Duration::from_millis(v);
        }
        if let Some(v) = file.max_frame_bytes {
            self.max_frame_bytes = v;
        }
        if let Some(v) = file.retention_check_interval_ms {
            self.retention_check_interval = Duration::from_millis(v);
        }
        if let Some(v) = file.log_cleaner_interval_ms {
            self.log_cleaner_interval = Duration::from_millis(v);
        }
        if let Some(v) = file.log_cleaner_bytes_per_sec {
            self.log_cleaner_bytes_per_sec = v;
        }
        if let Some(v) = file.log_cleaner_map_bytes {
            self.log_cleaner_map_bytes = v;
        }
        if let Some(v) = file.kafka_security_protocol {
            self.kafka_security_protocol = SecurityProtocol::parse(&v)
                .map_err(|e| format!("{}: kafka_security_protocol: {e}", path.display()))?;
        }
        if let Some(v) = file.kafka_listen {
            for (i, text) in v.into_vec().iter().enumerate() {
                self.add_kafka_listen(text, i == 0)
                    .map_err(|e| format!("{}: kafka_listen: {e}", path.display()))?;
            }
        }
        if let Some(v) = file.sasl_enabled_mechanisms {
            self.sasl_mechanisms = parse_sasl_mechanisms(&v.into_vec().join(","))
                .map_err(|e| format!("{}: sasl_enabled_mechanisms: {e}", path.display()))?;
        }
        if let Some(v) = file.native_security {
            self.native_security = ListenerSecurity::parse(&v)
                .map_err(|e| format!("{}: native_security: {e}", path.display()))?;
        }
        if let Some(v) = file.http_security {
            self.http_security = ListenerSecurity::parse(&v)
                .map_err(|e| format!("{}: http_security: {e}", path.display()))?;
        }
        if let Some(tls) = file.tls {
            let at = |what: &str, e: String| format!("{}: {what}: {e}", path.display());
            let common = FileTls {
                cert: tls.cert.clone(),
                key: tls.key.clone(),
                client_ca: tls.client_ca.clone(),
                client_auth: tls.client_auth.clone(),
            };
            let (native, kafka, http) = (tls.native.clone(), tls.kafka.clone(), tls.http.clone());
            if let Some(f) = common.into_files().map_err(|e| at("tls", e))? {
                self.tls = Some(f);
            }
            if let Some(f) = native
                .map(FileTls::into_files)
                .transpose()
                .map_err(|e| at("tls.native", e))?
                .flatten()
            {
                self.tls_native = Some(f);
            }
            if let Some(f) = kafka
                .map(FileTls::into_files)
                .transpose()
                .map_err(|e| at("tls.kafka", e))?
                .flatten()
            {
                self.tls_kafka = Some(f);
            }
            if let Some(f) = http
                .map(FileTls::into_files)
                .transpose()
                .map_err(|e| at("tls.http", e))?
                .flatten()
            {
                self.tls_http = Some(f);
            }
        }
        if let Some(v) = file.http_listen {
            self.http_listen =
                parse_listen(&v).map_err(|e| format!("{}: http_listen: {e}", path.display()))?;
        }
        if let Some(v) = file.kafka_advertise {
            for text in v.into_vec() {
                self.set_kafka_advertise(&text)
                    .map_err(|e| format!("{}: kafka_advertise: {e}", path.display()))?;
            }
        }
        if let Some(v) = file.kafka_shard_brokers {
            self.kafka_shard_brokers = v;
        }
        if let Some(v) = file.kafka_shard_ports {
            self.kafka_shard_ports = Some(v);
        }
        if let Some(v) = file.auto_create_topics {
            self.auto_create_topics = v;
        }
        if let Some(v) = file.trace_latency {
            self.trace_latency = v;
        }
        if let Some(v) = file.auto_create_partitions {
            self.auto_create_partitions = v;
        }
        if let Some(v) = file.node_id {
            self.node_id = v;
        }
        if let Some(v) = &file.controllers {
            self.controllers = crate::cluster::parse_controllers(v)
                .map_err(|e| format!("{}: controllers: {e}", path.display()))?;
        }
        if let Some(v) = &file.controller_listen {
            self.controller_listen = Some(
                v.parse()
                    .map_err(|e| format!("{}: controller_listen {v:?}: {e}", path.display()))?,
            );
        }
        if let Some(v) = &file.advertise {
            self.advertise = Some(
                parse_native_advertise(v)
                    .map_err(|e| format!("{}: advertise: {e}", path.display()))?,
            );
        }
        if let Some(v) = file.raft_snapshot_entries {
            self.raft_snapshot_entries = v;
        }
        if let Some(v) = file.disk_free_min_bytes {
            self.disk_free_min_bytes = Some(v);
        }
        if let Some(v) = file.authorizer {
            self.authorizer = v
                .parse()
                .map_err(|e| format!("{}: authorizer: {e}", path.display()))?;
        }
        if let Some(v) = file.super_users {
            self.super_users = v;
        }
        if let Some(v) = file.allow_everyone_if_no_acl_found {
            self.allow_everyone_if_no_acl_found = v;
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
    open_segment_files_per_shard: Option<usize>,
    max_inflight_per_connection: Option<usize>,
    idle_timeout_ms: Option<u64>,
    frame_timeout_ms: Option<u64>,
    request_memory_bytes: Option<usize>,
    group_consumer_heartbeat_interval_ms: Option<u64>,
    group_consumer_session_timeout_ms: Option<u64>,
    max_frame_bytes: Option<usize>,
    retention_check_interval_ms: Option<u64>,
    log_cleaner_interval_ms: Option<u64>,
    log_cleaner_bytes_per_sec: Option<u64>,
    log_cleaner_map_bytes: Option<usize>,
    kafka_listen: Option<OneOrMany>,
    kafka_security_protocol: Option<String>,
    sasl_enabled_mechanisms: Option<OneOrMany>,
    native_security: Option<String>,
    http_security: Option<String>,
    tls: Option<FileTlsTable>,
    http_listen: Option<String>,
    kafka_advertise: Option<OneOrMany>,
    kafka_shard_brokers: Option<bool>,
    kafka_shard_ports: Option<Vec<u16>>,
    auto_create_topics: Option<bool>,
    auto_create_partitions: Option<u32>,
    trace_latency: Option<bool>,
    node_id: Option<i32>,
    controllers: Option<String>,
    controller_listen: Option<String>,
    raft_snapshot_entries: Option<u64>,
    advertise: Option<String>,
    disk_free_min_bytes: Option<u64>,
    authorizer: Option<String>,
    super_users: Option<Vec<String>>,
    allow_everyone_if_no_acl_found: Option<bool>,
}

/// A key that takes one string or an array of them.
#[derive(serde::Deserialize, Debug)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `[tls]` and its per-listener tables `[tls.native]`, `[tls.kafka]`,
/// `[tls.http]`.
#[derive(serde::Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
struct FileTlsTable {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    client_auth: Option<String>,
    native: Option<FileTls>,
    kafka: Option<FileTls>,
    http: Option<FileTls>,
}

#[derive(serde::Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    client_auth: Option<String>,
}

impl FileTls {
    fn into_files(self) -> Result<Option<TlsFiles>, String> {
        let client_auth = match &self.client_auth {
            Some(v) => parse_client_auth(v)?,
            None if self.client_ca.is_some() => ClientAuth::Required,
            None => ClientAuth::None,
        };
        match (self.cert, self.key) {
            (None, None) if self.client_ca.is_none() => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert,
                key,
                client_ca: self.client_ca,
                client_auth,
            })),
            _ => Err("give both cert and key".into()),
        }
    }
}

/// A comma-separated list of SASL mechanisms (at least one).
pub fn parse_sasl_mechanisms(text: &str) -> Result<Vec<SaslMechanism>, String> {
    let mut all = Vec::new();
    for name in text.split(',').filter(|n| !n.trim().is_empty()) {
        let m = SaslMechanism::parse(name)?;
        if !all.contains(&m) {
            all.push(m);
        }
    }
    if all.is_empty() {
        return Err("no SASL mechanism given".into());
    }
    Ok(all)
}

/// `none`, `requested` or `required` (client certificates).
pub fn parse_client_auth(text: &str) -> Result<ClientAuth, String> {
    match text.to_ascii_lowercase().as_str() {
        "none" => Ok(ClientAuth::None),
        "requested" => Ok(ClientAuth::Requested),
        "required" => Ok(ClientAuth::Required),
        _ => Err(format!(
            "{text:?} is not a client authentication mode (none, requested or required)"
        )),
    }
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
/// Parses `--advertise`: `HOST` (the bound port) or `HOST:PORT` (an IPv6
/// address in brackets).
pub fn parse_native_advertise(text: &str) -> Result<(String, Option<u16>), String> {
    if text.contains(':') && !(text.starts_with('[') && text.ends_with(']')) {
        let (host, port) = parse_advertise(text)?;
        return Ok((host, Some(port)));
    }
    let host = text.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    Ok((host.to_string(), None))
}

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

/// Connections shard `shard` of `shards` accepts for any request: its share
/// of `max_connections` (the shares add up to it exactly).
pub fn connection_share(max_connections: usize, shard: usize, shards: usize) -> u32 {
    let shards = shards.max(1);
    let base = max_connections / shards;
    let extra = usize::from(shard < max_connections % shards);
    (base + extra) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsyncPolicy;

    #[test]
    fn cluster_settings_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corelog.toml");
        std::fs::write(
            &path,
            r#"
node_id = 2
controllers = "1@10.0.0.1:9500,2@10.0.0.2:9500,3@10.0.0.3:9500"
controller_listen = "0.0.0.0:9500"
advertise = "broker-2.example"
raft_snapshot_entries = 64
"#,
        )
        .unwrap();
        let mut config = BrokerConfig::new(dir.path());
        config.apply_file(&path).unwrap();
        assert!(config.clustered());
        assert_eq!(config.controllers[1].addr, "10.0.0.2:9500");
        assert_eq!(config.advertise, Some(("broker-2.example".into(), None)));
        assert_eq!(config.raft_snapshot_entries, 64);
        config.validate().unwrap();
        // Not a voter, no controller listener, shard-aware Kafka: refused.
        let mut c = config.clone();
        c.node_id = 4;
        assert!(c.validate().unwrap_err().contains("not among"));
        let mut c = config.clone();
        c.controller_listen = None;
        assert!(c.validate().unwrap_err().contains("--controller-listen"));
        let mut c = config.clone();
        c.kafka_shard_brokers = true;
        assert!(c.validate().is_err());
        // A one-broker setup with a controller listener is a mistake.
        let mut c = BrokerConfig::new(dir.path());
        c.controller_listen = Some("127.0.0.1:9500".parse().unwrap());
        assert!(c.validate().is_err());
        assert_eq!(
            parse_native_advertise("[::1]:9400").unwrap(),
            ("::1".to_string(), Some(9400))
        );
        assert_eq!(
            parse_native_advertise("10.1.2.3").unwrap(),
            ("10.1.2.3".to_string(), None)
        );
        assert!(parse_native_advertise("host:0").is_err());
    }

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
disk_free_min_bytes = 123456789
log_cleaner_interval_ms = 250
log_cleaner_bytes_per_sec = 1000000
log_cleaner_map_bytes = 65536
[topic_defaults]
fsync = "interval:50"
retention_ms = 3600000
cleanup_policy = "compact,delete"
delete_retention_ms = 1000
"#,
        )
        .unwrap();
        let mut config = BrokerConfig::new("/tmp/x");
        config.apply_file(&path).unwrap();
        assert_eq!(config.listen.port(), 9500);
        assert_eq!(config.cores, 2);
        assert_eq!(config.idle_timeout, Duration::from_millis(1000));
        assert_eq!(config.disk_free_min_bytes, Some(123_456_789));
        assert_eq!(config.disk_free_min(1 << 40), 123_456_789);
        // The default: 5% of a small file system, 1 GiB of a large one.
        let default = BrokerConfig::new("/tmp/x");
        assert_eq!(default.disk_free_min(100 << 20), 5 << 20);
        assert_eq!(default.disk_free_min(1 << 40), 1 << 30);
        assert_eq!(
            config.topic_defaults.fsync,
            FsyncPolicy::Interval(Duration::from_millis(50))
        );
        assert_eq!(config.topic_defaults.retention_ms, Some(3_600_000));
        assert_eq!(config.log_cleaner_interval, Duration::from_millis(250));
        assert_eq!(config.log_cleaner_bytes_per_sec, 1_000_000);
        assert_eq!(config.log_cleaner_map_bytes, 65536);
        let log = config.topic_defaults.log_config();
        assert!(log.compact && log.cleanup_delete);
        assert_eq!(log.delete_retention_ms, 1000);
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
    fn the_authorizer_and_super_users_come_from_the_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corelog.toml");
        std::fs::write(
            &path,
            "authorizer = \"acl\"\nsuper_users = [\"User:admin\", \"User:CN=ops,O=corp\"]\nallow_everyone_if_no_acl_found = true\n",
        )
        .unwrap();
        let mut config = BrokerConfig::new("/tmp/x");
        assert_eq!(config.authorizer, AuthorizerKind::None);
        config.apply_file(&path).unwrap();
        assert_eq!(config.authorizer, AuthorizerKind::Acl);
        assert_eq!(config.super_users, vec!["User:admin", "User:CN=ops,O=corp"]);
        assert!(config.allow_everyone_if_no_acl_found);
        config.validate().unwrap();
        let described: std::collections::HashMap<_, _> = config.describe().into_iter().collect();
        assert_eq!(described["authorizer"], "acl");
        assert_eq!(described["super_users"], "User:admin;User:CN=ops,O=corp");
        assert_eq!(described["allow_everyone_if_no_acl_found"], "true");

        assert_eq!(
            parse_super_users(" User:a ;User:CN=b,O=c;; "),
            vec!["User:a", "User:CN=b,O=c"]
        );
        config.super_users = vec!["admin".into()];
        assert!(config.validate().unwrap_err().contains("User:NAME"));
        std::fs::write(&path, "authorizer = \"ldap\"\n").unwrap();
        let err = BrokerConfig::new("/tmp/x").apply_file(&path).unwrap_err();
        assert!(err.contains("none or acl"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let mut config = BrokerConfig::new("/tmp/x");
        config.cores = 2;
        config.shard_ports = Some(vec![1]);
        assert!(config.validate().unwrap_err().contains("one per core"));

        let mut config = BrokerConfig::new("/tmp/x");
        config.node_id = NODE_ID_MAX + 1;
        assert!(config.validate().unwrap_err().contains("shard-brokers'"));
    }

    #[test]
    fn kafka_shard_ports_default_to_the_ports_after_the_kafka_port() {
        let mut config = BrokerConfig::new("/tmp/x");
        config.cores = 3;
        config.kafka_shard_brokers = true;
        config.kafka_listen = Some("127.0.0.1:9092".parse().unwrap());
        let ports: Vec<u16> = (0..3)
            .map(|i| config.kafka_shard_port(i, 9092).unwrap())
            .collect();
        assert_eq!(ports, vec![9093, 9094, 9095]);
        assert!(
            config.kafka_shard_port(1, u16::MAX - 1).is_err(),
            "overflow"
        );

        // Kafka on an ephemeral port: ephemeral shard ports too.
        config.kafka_listen = Some("127.0.0.1:0".parse().unwrap());
        assert_eq!(config.kafka_shard_port(2, 40000).unwrap(), 0);

        // Given ports win.
        config.kafka_shard_ports = Some(vec![7001, 7003, 7002]);
        assert_eq!(config.kafka_shard_port(1, 40000).unwrap(), 7003);
        assert!(config.kafka_shard_port(3, 40000).is_err());
    }

    #[test]
    fn the_shard_aware_kafka_mode_comes_from_the_file_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corelog.toml");
        std::fs::write(
            &path,
            "cores = 2\nkafka_listen = \"127.0.0.1:0\"\nkafka_shard_brokers = true\nkafka_shard_ports = [9501, 9502]\n",
        )
        .unwrap();
        let mut config = BrokerConfig::new("/tmp/x");
        config.apply_file(&path).unwrap();
        assert!(config.kafka_shard_brokers);
        assert_eq!(config.kafka_shard_ports, Some(vec![9501, 9502]));
        config.validate().unwrap();

        config.kafka_shard_ports = Some(vec![9501]);
        assert!(config.validate().unwrap_err().contains("one per core"));
        config.kafka_shard_ports = None;
        config.kafka_listen = None;
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("need a Kafka listener")
        );
        let mut config = BrokerConfig::new("/tmp/x");
        config.cores = 1;
        config.kafka_listen = Some("127.0.0.1:0".parse().unwrap());
        config.kafka_shard_ports = Some(vec![9501]);
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("add --kafka-shard-brokers")
        );
    }
}
