//! `corelog serve`: run a broker until SIGINT or SIGTERM.

use crate::config::BrokerConfig;
use crate::types::FsyncPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Data directory, created if missing [default: ./corelog-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Host and shared port; every shard accepts here with SO_REUSEPORT
    /// [default: 127.0.0.1:9400].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Shards (pinned cores). Default: every online CPU.
    #[arg(long)]
    cores: Option<usize>,
    /// Each shard's own port, comma separated (default: the ports after the
    /// shared one, or ephemeral ports when the shared port is 0).
    #[arg(long, value_delimiter = ',')]
    shard_ports: Option<Vec<u16>>,
    /// TOML configuration file; flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Default fsync policy of new topics: always, interval:MS or never.
    #[arg(long)]
    fsync: Option<FsyncPolicy>,
    /// Default retention of new topics, in milliseconds.
    #[arg(long)]
    retention_ms: Option<u64>,
    /// Default per-partition size retention of new topics, in bytes.
    #[arg(long)]
    retention_bytes: Option<u64>,
    /// Default segment size of new topics, in bytes.
    #[arg(long)]
    segment_bytes: Option<u64>,
    /// How often retention runs, in milliseconds.
    #[arg(long)]
    retention_check_ms: Option<u64>,
    /// How often the log cleaner compacts topics with cleanup.policy
    /// compact, in milliseconds.
    #[arg(long)]
    log_cleaner_interval_ms: Option<u64>,
    /// Close connections idle this long, in milliseconds.
    #[arg(long)]
    idle_timeout_ms: Option<u64>,
    /// Close a connection whose frame has not fully arrived this long after
    /// its first byte, in milliseconds (default 30000).
    #[arg(long)]
    frame_timeout_ms: Option<u64>,
    /// Most connections at once, over all shards and listeners (each
    /// shard also keeps 4 connections for metadata, stats and admin
    /// requests only) [default: 10000, lowered to a quarter of the
    /// open-file limit left after the reserves (2 descriptors each)].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Bytes of requests being received or handled at once, for the whole
    /// broker (split over shards; each share is at least one largest
    /// frame); past it the broker stops reading from sockets until memory
    /// frees [default: 268435456].
    #[arg(long)]
    request_memory_bytes: Option<usize>,
    /// Heartbeat interval of consumer-protocol (KIP-848) group members, in
    /// milliseconds [default: 5000].
    #[arg(long)]
    group_consumer_heartbeat_interval_ms: Option<u64>,
    /// A consumer-protocol group member silent this long is removed and
    /// its partitions move, in milliseconds [default: 45000].
    #[arg(long)]
    group_consumer_session_timeout_ms: Option<u64>,
    /// Sealed-segment files each shard keeps open at most; sealed segments
    /// open their files on demand through this cache [default: 12% of the
    /// descriptors left for storage, split over the shards, 8 to 1024].
    #[arg(long)]
    open_segment_files_per_shard: Option<usize>,
    /// Do not pin shards to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// This broker's node id: the Kafka broker id clients see and, with
    /// --controllers, its id in the controller quorum (1 or more)
    /// [default: 0].
    #[arg(long)]
    node_id: Option<i32>,
    /// The controller quorum of a cluster: ID@HOST:PORT of every voter's
    /// --controller-listen, comma separated, the same list on every broker
    /// (e.g. 1@10.0.0.1:9500,2@10.0.0.2:9500,3@10.0.0.3:9500). Without it
    /// the broker is a cluster of one.
    #[arg(long)]
    controllers: Option<String>,
    /// Where this broker's controller accepts the other controllers' Raft
    /// traffic, HOST:PORT (plaintext: keep it on a private network).
    #[arg(long)]
    controller_listen: Option<SocketAddr>,
    /// The host, or HOST:PORT, native clients (and the other brokers of a
    /// cluster) are told to connect to: needed when --listen is 0.0.0.0 or
    /// behind NAT; the shard ports are advertised at this host too
    /// [default: the --listen address].
    #[arg(long)]
    advertise: Option<String>,
    /// Applied metadata changes between two Raft snapshots (the log before
    /// a snapshot is dropped) [default: 1024].
    #[arg(long)]
    raft_snapshot_entries: Option<u64>,
    /// Kafka protocol listener, HOST:PORT (every shard accepts there);
    /// `none` turns it off; port 0 picks one [default: 127.0.0.1:9092].
    /// Repeat it as PROTOCOL://HOST:PORT (PLAINTEXT, SSL, SASL_PLAINTEXT,
    /// SASL_SSL) to run several listeners side by side, e.g.
    /// `--kafka-listen PLAINTEXT://127.0.0.1:9092 --kafka-listen
    /// SSL://0.0.0.0:9093`.
    #[arg(long)]
    kafka_listen: Vec<String>,
    /// The security protocol of a bare --kafka-listen HOST:PORT: PLAINTEXT,
    /// SSL, SASL_PLAINTEXT or SASL_SSL [default: PLAINTEXT].
    #[arg(long)]
    kafka_security_protocol: Option<String>,
    /// SASL mechanisms SASL_PLAINTEXT and SASL_SSL listeners offer, comma
    /// separated: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN (PLAIN only over TLS)
    /// [default: SCRAM-SHA-256,SCRAM-SHA-512].
    #[arg(long)]
    sasl_enabled_mechanisms: Option<String>,
    /// TLS on the native listener (its shared port and every shard port):
    /// tls or none [default: none].
    #[arg(long)]
    native_security: Option<String>,
    /// TLS on the HTTP listener: tls or none [default: none].
    #[arg(long)]
    http_security: Option<String>,
    /// PEM certificate (then its chain) of every TLS listener; reloaded on
    /// SIGHUP.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates client certificates must chain to (mutual TLS);
    /// a client certificate is then required unless --tls-client-auth says
    /// otherwise.
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Client certificates: none, requested or required [default: required
    /// with --tls-client-ca, else none].
    #[arg(long)]
    tls_client_auth: Option<String>,
    /// HTTP listener for Prometheus metrics (`/metrics`), the JSON admin API
    /// (`/v1/...`) and the web console (`/`), HOST:PORT; `none` turns it
    /// off; port 0 picks one [default: 127.0.0.1:9644].
    #[arg(long)]
    http_listen: Option<String>,
    /// HOST:PORT Kafka clients are told to connect to (default: the bound
    /// Kafka address); PROTOCOL://HOST:PORT for the listener of that
    /// protocol. Repeatable.
    #[arg(long)]
    kafka_advertise: Vec<String>,
    /// Shard-aware Kafka mode: advertise every shard as a Kafka broker of
    /// its own, on its own Kafka port, leading the partitions it owns, so
    /// Kafka clients send each partition's requests to the core that owns
    /// it (off by default). The host of --kafka-advertise is used.
    #[arg(long)]
    kafka_shard_brokers: bool,
    /// Each shard's own Kafka port with --kafka-shard-brokers, comma
    /// separated (default: the ports after the Kafka port, or ephemeral
    /// ports when it is 0).
    #[arg(long, value_delimiter = ',')]
    kafka_shard_ports: Option<Vec<u16>>,
    /// Create topics Kafka clients name in metadata requests, with the
    /// broker's defaults (off by default).
    #[arg(long)]
    auto_create_topics: bool,
    /// Refuse produce requests with a retriable DISK_FULL error while the
    /// data directory's file system has less free space than this many
    /// bytes, before it is actually full; 0 turns the check off [default:
    /// the smaller of 1 GiB and 5% of the file system].
    #[arg(long)]
    disk_free_min_bytes: Option<u64>,
    /// Measure where produce requests spend their time (receive, queue,
    /// cross-core hop, append, device write, fsync wait, answer) and log
    /// the last second's breakdown every second (off by default; costs a
    /// few clock readings per request).
    #[arg(long)]
    trace_latency: bool,
    /// none (every request allowed, the ACL APIs disabled) or acl (ACLs,
    /// kept in the metadata file, with Kafka's semantics) [default: none].
    #[arg(long)]
    authorizer: Option<crate::config::AuthorizerKind>,
    /// Principals allowed everything whatever the ACLs say, separated by
    /// ';' (certificate subjects contain commas): "User:admin;User:CN=ops,O=corp".
    #[arg(long)]
    super_users: Option<String>,
    /// Give this user SCRAM-SHA-256 and SCRAM-SHA-512 credentials at start
    /// if it has none (an existing credential is left as it is), with the
    /// password in the environment variable CORELOG_BOOTSTRAP_PASSWORD.
    #[arg(long, value_name = "NAME")]
    bootstrap_user: Option<String>,
}

/// The configuration the flags and file describe.
fn config_from(args: &ServeArgs) -> Result<BrokerConfig, String> {
    let mut config = BrokerConfig::new("./corelog-data");
    // `serve` speaks Kafka on Kafka's port unless told otherwise (the
    // library default, used by embedded brokers, has no Kafka listener).
    config.kafka_listen = Some("127.0.0.1:9092".parse().expect("a valid address"));
    config.http_listen = Some(
        crate::constants::HTTP_LISTEN_DEFAULT
            .parse()
            .expect("a valid address"),
    );
    if let Some(file) = &args.config {
        config.apply_file(file)?;
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.cores {
        config.cores = v;
    }
    if let Some(v) = &args.shard_ports {
        config.shard_ports = Some(v.clone());
    }
    if let Some(v) = args.fsync {
        config.topic_defaults.fsync = v;
    }
    if let Some(v) = args.retention_ms {
        config.topic_defaults.retention_ms = Some(v);
    }
    if let Some(v) = args.retention_bytes {
        config.topic_defaults.retention_bytes = Some(v);
    }
    if let Some(v) = args.segment_bytes {
        config.topic_defaults.segment_bytes = v;
    }
    if let Some(v) = args.retention_check_ms {
        config.retention_check_interval = std::time::Duration::from_millis(v);
    }
    if let Some(v) = args.log_cleaner_interval_ms {
        config.log_cleaner_interval = std::time::Duration::from_millis(v);
    }
    if let Some(v) = args.idle_timeout_ms {
        config.idle_timeout = std::time::Duration::from_millis(v);
    }
    if let Some(v) = args.frame_timeout_ms {
        config.frame_timeout = std::time::Duration::from_millis(v);
    }
    if let Some(v) = args.max_connections {
        config.max_connections = v;
    }
    if let Some(v) = args.request_memory_bytes {
        config.request_memory_bytes = v;
    }
    if let Some(v) = args.group_consumer_heartbeat_interval_ms {
        config.group_consumer_heartbeat_interval = std::time::Duration::from_millis(v);
    }
    if let Some(v) = args.group_consumer_session_timeout_ms {
        config.group_consumer_session_timeout = std::time::Duration::from_millis(v);
    }
    if let Some(v) = args.open_segment_files_per_shard {
        config.open_segment_files_per_shard = Some(v);
    }
    if args.no_pin {
        config.pin = false;
    }
    if let Some(v) = &args.http_listen {
        config.http_listen =
            crate::config::parse_listen(v).map_err(|e| format!("--http-listen: {e}"))?;
    }
    apply_security_args(&mut config, args)?;
    if args.kafka_shard_brokers {
        config.kafka_shard_brokers = true;
    }
    if let Some(v) = &args.kafka_shard_ports {
        config.kafka_shard_ports = Some(v.clone());
    }
    if args.auto_create_topics {
        config.auto_create_topics = true;
    }
    if args.trace_latency {
        config.trace_latency = true;
    }
    if let Some(v) = args.disk_free_min_bytes {
        config.disk_free_min_bytes = Some(v);
    }
    if let Some(v) = args.authorizer {
        config.authorizer = v;
    }
    if let Some(v) = &args.super_users {
        config.super_users = crate::config::parse_super_users(v);
    }
    if let Some(v) = args.node_id {
        config.node_id = v;
    }
    if let Some(v) = &args.controllers {
        config.controllers = crate::cluster::parse_controllers(v)?;
    }
    if let Some(v) = args.controller_listen {
        config.controller_listen = Some(v);
    }
    if let Some(v) = &args.advertise {
        config.advertise = Some(crate::config::parse_native_advertise(v)?);
    }
    if let Some(v) = args.raft_snapshot_entries {
        config.raft_snapshot_entries = v;
    }
    if let Some(name) = &args.bootstrap_user {
        config.bootstrap_user = Some(bootstrap_user(
            name,
            std::env::var(crate::config::BOOTSTRAP_PASSWORD_ENV).ok(),
        )?);
    }
    config.validate()?;
    Ok(config)
}

/// The listener and TLS flags.
fn apply_security_args(config: &mut BrokerConfig, args: &ServeArgs) -> Result<(), String> {
    use crate::config::{ListenerSecurity, parse_client_auth};
    use crate::security::SecurityProtocol;
    use crate::security::tls::{ClientAuth, TlsFiles};
    if let Some(v) = &args.kafka_security_protocol {
        config.kafka_security_protocol =
            SecurityProtocol::parse(v).map_err(|e| format!("--kafka-security-protocol: {e}"))?;
    }
    for (i, v) in args.kafka_listen.iter().enumerate() {
        config
            .add_kafka_listen(v, i == 0)
            .map_err(|e| format!("--kafka-listen: {e}"))?;
    }
    for v in &args.kafka_advertise {
        config
            .set_kafka_advertise(v)
            .map_err(|e| format!("--kafka-advertise: {e}"))?;
    }
    if let Some(v) = &args.sasl_enabled_mechanisms {
        config.sasl_mechanisms = crate::config::parse_sasl_mechanisms(v)
            .map_err(|e| format!("--sasl-enabled-mechanisms: {e}"))?;
    }
    if let Some(v) = &args.native_security {
        config.native_security =
            ListenerSecurity::parse(v).map_err(|e| format!("--native-security: {e}"))?;
    }
    if let Some(v) = &args.http_security {
        config.http_security =
            ListenerSecurity::parse(v).map_err(|e| format!("--http-security: {e}"))?;
    }
    let client_auth = args
        .tls_client_auth
        .as_deref()
        .map(parse_client_auth)
        .transpose()
        .map_err(|e| format!("--tls-client-auth: {e}"))?;
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let client_ca = args.tls_client_ca.clone();
            config.tls = Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_auth: client_auth.unwrap_or(if client_ca.is_some() {
                    ClientAuth::Required
                } else {
                    ClientAuth::None
                }),
                client_ca,
            });
        }
        (None, None) => {
            if args.tls_client_ca.is_some() || client_auth.is_some() {
                return Err(
                    "--tls-client-ca and --tls-client-auth need --tls-cert and --tls-key".into(),
                );
            }
        }
        _ => return Err("--tls-cert and --tls-key go together".into()),
    }
    Ok(())
}

/// `--bootstrap-user NAME` with the password from the environment.
fn bootstrap_user(
    name: &str,
    password: Option<String>,
) -> Result<crate::config::BootstrapUser, String> {
    use crate::config::BOOTSTRAP_PASSWORD_ENV;
    match password {
        Some(password) if !password.is_empty() => Ok(crate::config::BootstrapUser {
            name: name.to_string(),
            password,
        }),
        _ => Err(format!(
            "--bootstrap-user {name} needs the user's password in the environment variable {BOOTSTRAP_PASSWORD_ENV}, which is unset or empty"
        )),
    }
}

/// Raises the open-file soft limit to the hard limit: every connection and
/// every open segment costs descriptors, and the default soft limit (often
/// 1,024) is far below what the hard limit allows. Returns (soft, hard).
fn raise_fd_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let before = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                limit.rlim_cur = before;
            }
        }
    }
    Some((limit.rlim_cur, limit.rlim_max))
}

/// Starts the HTTP port (if any) before the shards recover their
/// partitions (/v1/health says 503 until they have), and prints its
/// address on a line of its own as soon as it is bound (a courtesy, like
/// the listening line: a failed write is ignored).
fn start_http(
    config: &BrokerConfig,
    board: &Arc<crate::metrics::Board>,
) -> Result<Option<crate::http::HttpServer>, String> {
    use crate::config::{ListenerSecurity, TlsListener};
    let Some(listen) = config.http_listen else {
        return Ok(None);
    };
    let tls = match config.http_security {
        ListenerSecurity::None => None,
        ListenerSecurity::Tls => {
            let files = config
                .tls_for(TlsListener::Http)
                .ok_or("--http-security tls needs --tls-cert and --tls-key")?;
            let server = crate::security::tls::TlsServer::load(files.clone())
                .map_err(|e| format!("the HTTP listener's TLS: {e}"))?;
            Some(Arc::new(server))
        }
    };
    let server = crate::http::start_tls(listen, board.clone(), tls)?;
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "corelog http listening on {}", server.addr());
    let _ = stdout.flush();
    drop(stdout);
    tracing::info!(addr = %server.addr(), "HTTP listener (metrics, admin API, console)");
    Ok(Some(server))
}

/// SIGHUP: every TLS listener reads its certificate and key again; new
/// handshakes use them, open connections keep theirs, and a listener whose
/// files are broken keeps serving the old ones (logged as an error).
fn reload_tls(tls: &crate::shard::ListenerTls, http: Option<&crate::security::tls::TlsServer>) {
    let mut results = tls.reload();
    if let Some(http) = http {
        results.push(
            http.reload()
                .map(|summary| format!("HTTP listener: {summary}"))
                .map_err(|e| format!("HTTP listener kept its certificate: {e}")),
        );
    }
    if results.is_empty() {
        tracing::info!("SIGHUP: no TLS listener to reload");
    }
    for result in results {
        match result {
            Ok(line) => tracing::info!(certificate = %line, "reloaded TLS certificates"),
            Err(e) => tracing::error!(error = %e, "reloading TLS certificates failed"),
        }
    }
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    match raise_fd_limit() {
        Some((soft, hard)) => tracing::info!(soft, hard, "open file limit"),
        None => tracing::warn!("could not read the open file limit"),
    }
    let config = config_from(&args)?;
    let cores = config.cores;
    let data_dir = config.data_dir.clone();
    let board = Arc::new(crate::metrics::Board::new(cores));
    board.set_broker(|b| {
        b.data_dir = data_dir.display().to_string();
        b.cores = cores;
        b.node_id = config.node_id;
        b.config = config.describe();
    });
    let http = start_http(&config, &board)?;
    let broker = crate::server::start_with(config, board.clone())?;
    board.set_broker(|b| {
        b.native_addr = Some(broker.addr.to_string());
        b.kafka_addr = broker.kafka_addr.map(|a| a.to_string());
    });
    let ports: Vec<String> = broker.shard_ports.iter().map(u16::to_string).collect();
    let kafka = broker
        .kafka_addr
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    // Only in the shard-aware Kafka mode, and last, so readers of the
    // earlier fields are unaffected.
    let kafka_shard_ports = if broker.kafka_shard_ports.is_empty() {
        String::new()
    } else {
        let ports: Vec<String> = broker
            .kafka_shard_ports
            .iter()
            .map(u16::to_string)
            .collect();
        format!(" kafka_shard_ports={}", ports.join(","))
    };
    // Every Kafka listener with its protocol, last.
    let kafka_listeners = if broker.kafka_addrs.is_empty() {
        String::new()
    } else {
        let all: Vec<String> = broker
            .kafka_addrs
            .iter()
            .map(|(p, a)| format!("{p}://{a}"))
            .collect();
        format!(" kafka_listeners={}", all.join(","))
    };
    // Signal handlers first: whoever saw the line below may send SIGTERM
    // at once, and before the handlers it would kill the broker uncleanly.
    let signal = broker.shutdown_signal();
    let tls = broker.tls_handle();
    let http_tls = http.as_ref().and_then(|h| h.tls());
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("installing signal handlers: {e}"))?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == signal_hook::consts::SIGHUP {
                    reload_tls(&tls, http_tls.as_deref());
                    continue;
                }
                tracing::info!(
                    signal = sig,
                    "shutting down: no new connections, finishing in-flight requests, syncing logs"
                );
                signal.raise();
                break;
            }
        })
        .map_err(|e| e.to_string())?;
    // One line on stdout that scripts and tests can wait for. A broker
    // whose stdout nobody reads (closed, or a pipe whose reader left)
    // serves all the same: the line is a courtesy, so a failed write is
    // ignored (println! would panic on it).
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "corelog listening on {} shards={} shard_ports={} data_dir={} kafka={}{}{}{}",
        broker.addr,
        cores,
        ports.join(","),
        data_dir.display(),
        kafka,
        kafka_shard_ports,
        kafka_listeners,
        broker
            .controller_addr
            .map(|a| format!(" controller={a}"))
            .unwrap_or_default()
    );
    let _ = stdout.flush();
    drop(stdout);
    let result = broker.join();
    drop(http);
    handle.close();
    match &result {
        Ok(()) => tracing::info!("stopped cleanly"),
        Err(e) => tracing::error!(error = %e, "stopped with errors"),
    }
    result
}
