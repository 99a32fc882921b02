//! Shards: one glommio executor per core, each owning its partitions, its
//! connections and its counters. Nothing here is shared between cores except
//! immutable metadata snapshots (`Arc`) and the messages of the cross-core
//! mesh.
//!
//! * [`start`] brings a broker up: every shard opens the data directory,
//!   binds the shared port (SO_REUSEPORT) and its own port (and, in the
//!   shard-aware Kafka mode, a Kafka port of its own), joins the mesh,
//!   opens the partition logs it owns, and only then — once every shard is
//!   ready — starts accepting connections.
//! * A request for a partition owned elsewhere becomes a [`ShardMsg`] to the
//!   owner, carrying record data as `BytesMut`/`Bytes` (no copy) and a
//!   `oneshot` reply channel; each such message counts as one cross-core
//!   hop.
//! * Shard 0 is the controller: it alone changes topic metadata, persists
//!   it, and broadcasts the new snapshot; a change is acknowledged only
//!   after every shard applied it.
//! * Shutdown is two-phase: every shard stops accepting and drains its
//!   connections (still serving other shards' messages), then all close
//!   their logs.
//! * File descriptors are budgeted at start ([`FdBudget`]): connections are
//!   capped so they cannot take storage's share, each shard's open-file
//!   cache of sealed segments is sized from it, and topic creates and
//!   partition increases are checked against it before anything is
//!   registered (and rolled back if opening the partitions fails anyway).
//! * A partition that cannot be opened at start (a damaged directory, the
//!   limit reached) is recorded as failed: requests for it get
//!   `STORAGE_FAILED` with the reason, and every other partition serves.

mod authz;
mod budget;
mod lock;
mod ops;
mod replication;

pub use replication::{EpochAnswer, EpochQuery};

mod report;

pub use crate::order::{ProduceOrder, Turn};
pub use budget::{FdBudget, open_file_limit};

pub use ops::{
    FetchData, FetchItem, FetchOutcome, OffsetAnswer, OffsetQuery, PartitionState, ProduceItem,
    ProduceOutcome, ShardStatsData,
};

use crate::config::BrokerConfig;
use crate::constants::{
    MESH_CHANNEL_CAPACITY, OPEN_FILE_LIMIT_UNKNOWN, PRODUCER_ID_BLOCK, SHUTDOWN_DRAIN_MS_MAX,
};
use crate::error::{BrokerError, ErrorKind};
use crate::meta::{Snapshot, TopicMeta};
use crate::security::SecurityProtocol;
use crate::storage::{Disk, PartitionLog};
use crate::types::{ShardId, Timestamp, TopicId};
use event_listener::Event;
use glommio::channels::channel_mesh::{MeshBuilder, Receivers, Senders};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::support::Signal;

/// An async barrier across shard threads that can be aborted, so one
/// shard's start-up failure releases the others instead of hanging them.
struct Barrier {
    arrived: AtomicUsize,
    parties: usize,
    aborted: AtomicBool,
    event: Event,
}

impl Barrier {
    fn new(parties: usize) -> Barrier {
        Barrier {
            arrived: AtomicUsize::new(0),
            parties,
            aborted: AtomicBool::new(false),
            event: Event::new(),
        }
    }

    fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    async fn wait(&self) -> Result<(), String> {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        self.event.notify(usize::MAX);
        loop {
            if self.aborted.load(Ordering::SeqCst) {
                return Err("another shard failed to start".into());
            }
            if self.arrived.load(Ordering::SeqCst) >= self.parties {
                return Ok(());
            }
            let listener = self.event.listen();
            if self.aborted.load(Ordering::SeqCst)
                || self.arrived.load(Ordering::SeqCst) >= self.parties
            {
                continue;
            }
            listener.await;
        }
    }
}

/// What a shard serves once it is ready: its listeners, until shutdown.
pub struct Listeners {
    /// The shared native port (SO_REUSEPORT across shards).
    pub shared: glommio::net::TcpListener,
    /// This shard's own native port.
    pub own: glommio::net::TcpListener,
    /// The Kafka ports (SO_REUSEPORT across shards), one per configured
    /// Kafka listener.
    pub kafka: Vec<(ListenerId, glommio::net::TcpListener)>,
    /// This shard's own Kafka port, in the shard-aware Kafka mode.
    pub kafka_own: Option<(ListenerId, glommio::net::TcpListener)>,
}

/// The function each shard runs to serve its listeners (the server's);
/// handed in so this module need not know the server.
pub type ServeFn =
    Arc<dyn Fn(Rc<Shard>, Listeners) -> futures::future::LocalBoxFuture<'static, ()> + Send + Sync>;

/// What shards tell each other while starting.
struct Startup {
    /// Raised to stop a cluster broker: shard 0 first hands the
    /// partitions it leads to other in-sync replicas (a controlled
    /// shutdown), then raises the shutdown signal.
    stopping: Arc<Signal>,
    shared_port: Mutex<Option<u16>>,
    /// Each Kafka listener's bound port, published by shard 0.
    kafka_ports: Mutex<Vec<Option<u16>>>,
    /// The TLS listeners' configurations (shared by every shard).
    tls: ListenerTls,
    shared_bound: Signal,
    /// Raised when any shard fails to start.
    failed: Signal,
    ports: Mutex<Vec<u16>>,
    /// Each shard's own Kafka port; empty unless in the shard-aware mode.
    kafka_shard_ports: Mutex<Vec<u16>>,
    peers: Mutex<Vec<usize>>,
    /// Each shard's connections within its share, for connection handoff.
    connection_load: Arc<[std::sync::atomic::AtomicU32]>,
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// The controller listener's bound address (cluster mode, shard 0).
    controller_addr: Mutex<Option<SocketAddr>>,
    error: Mutex<Option<String>>,
    bound: Barrier,
    ready: Barrier,
    drained: Barrier,
}

/// A running broker.
pub struct BrokerHandle {
    /// The shared port's address.
    pub addr: SocketAddr,
    /// Each shard's own port, by shard.
    pub shard_ports: Vec<u16>,
    /// The first Kafka listener's bound address, if there is one.
    pub kafka_addr: Option<SocketAddr>,
    /// Every Kafka listener's protocol and bound address, in configuration
    /// order.
    pub kafka_addrs: Vec<(SecurityProtocol, SocketAddr)>,
    /// The TLS listeners' configurations, for [`BrokerHandle::reload_tls`].
    tls: ListenerTls,
    /// Each shard's own Kafka port, by shard, in the shard-aware Kafka mode;
    /// empty otherwise.
    pub kafka_shard_ports: Vec<u16>,
    /// Where the controller listens for the other controllers (cluster
    /// mode).
    pub controller_addr: Option<SocketAddr>,
    /// What stops the broker: the shards' shutdown signal, or in a cluster
    /// the signal that starts a controlled shutdown (see
    /// `Startup::stopping`).
    stop: Arc<Signal>,
    threads: Vec<glommio::ExecutorJoinHandle<Result<(), String>>>,
    /// Held until the shards have stopped.
    _lock: lock::DataDirLock,
}

impl BrokerHandle {
    /// Reads every TLS listener's certificate and key again (SIGHUP). New
    /// handshakes use them; open connections keep theirs. A listener whose
    /// files do not load keeps its old ones. Returns one line per listener
    /// saying what it serves now, or why it kept the old files.
    pub fn reload_tls(&self) -> Vec<Result<String, String>> {
        self.tls.reload()
    }

    /// The TLS listeners' configurations, to reload from another thread.
    pub fn tls_handle(&self) -> ListenerTls {
        self.tls.clone()
    }

    /// Asks every shard to stop: no new connections, in-flight requests
    /// finish, logs are flushed, synced and closed. Returns at once; use
    /// [`BrokerHandle::join`] to wait.
    /// A cluster broker first moves the leadership of its partitions to
    /// other in-sync replicas (a controlled shutdown, bounded by
    /// [`CONTROLLED_SHUTDOWN_MS`](crate::constants::CONTROLLED_SHUTDOWN_MS)).
    pub fn shutdown(&self) {
        self.stop.raise();
    }

    /// The signal [`BrokerHandle::shutdown`] raises (for signal handlers).
    pub fn shutdown_signal(&self) -> Arc<Signal> {
        self.stop.clone()
    }

    /// Waits for every shard to finish; the first error if any failed.
    pub fn join(self) -> Result<(), String> {
        let mut first = Ok(());
        for (i, t) in self.threads.into_iter().enumerate() {
            let r = t
                .join()
                .map_err(|e| format!("shard {i} stopped abnormally: {e}"))
                .and_then(|r| r);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// Starts a broker whose shards run `serve` on their listeners, and
/// returns once every shard accepts connections.
pub fn start(config: BrokerConfig, serve: ServeFn) -> Result<BrokerHandle, String> {
    let board = Arc::new(crate::metrics::Board::new(config.cores));
    start_with(config, serve, board)
}

/// [`start`], publishing each shard's figures on `board` (which the HTTP
/// side may already be serving).
pub fn start_with(
    config: BrokerConfig,
    serve: ServeFn,
    board: Arc<crate::metrics::Board>,
) -> Result<BrokerHandle, String> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("creating data directory {}: {e}", config.data_dir.display()))?;
    let lock = lock::lock_data_dir(&config.data_dir)?;
    lock::check_port_free(config.listen, "the native port")?;
    for kafka in config.kafka_listeners() {
        lock::check_port_free(kafka.listen, &format!("the {} Kafka port", kafka.protocol))?;
    }
    if let Some(addr) = config.controller_listen {
        lock::check_port_free(addr, "the controller port")?;
    }
    let tls = ListenerTls::load(&config)?;
    if config.trace_latency {
        crate::trace::enable(true);
    }
    let n = config.cores;
    let limit = open_file_limit().unwrap_or(OPEN_FILE_LIMIT_UNKNOWN);
    let budget = Arc::new(FdBudget::new(
        limit,
        n,
        config.max_connections,
        config.open_segment_files_per_shard,
    )?);
    if budget.connections_capped {
        tracing::warn!(
            configured = config.max_connections,
            allowed = budget.max_connections,
            limit,
            "max connections lowered to fit the file-descriptor budget: connections may take at most a quarter of the open-file limit left after the reserves, so storage keeps the rest"
        );
    }
    tracing::info!(
        limit,
        reserved = budget.reserved,
        max_connections = budget.max_connections,
        open_segment_files_per_shard = budget.open_files_per_shard,
        partitions_max = budget.partitions_max,
        "file-descriptor budget"
    );
    let config = Arc::new(config);
    let startup = Arc::new(Startup {
        stopping: Arc::new(Signal::default()),
        shared_port: Mutex::new(None),
        kafka_ports: Mutex::new(vec![None; config.kafka_listeners().len()]),
        tls: tls.clone(),
        shared_bound: Signal::default(),
        failed: Signal::default(),
        ports: Mutex::new(vec![0; n]),
        kafka_shard_ports: Mutex::new(if config.kafka_shard_brokers {
            vec![0; n]
        } else {
            Vec::new()
        }),
        peers: Mutex::new(vec![usize::MAX; n]),
        connection_load: (0..n).map(|_| Default::default()).collect(),
        snapshot: Mutex::new(None),
        controller_addr: Mutex::new(None),
        error: Mutex::new(None),
        bound: Barrier::new(n),
        ready: Barrier::new(n),
        drained: Barrier::new(n),
    });
    let shutdown = Arc::new(Signal::default());
    let mesh = MeshBuilder::<ShardMsg, _>::full(n, MESH_CHANNEL_CAPACITY);
    let cpus = crate::config::online_cpus();
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let (config, startup, shutdown, mesh, serve, budget, board) = (
            config.clone(),
            startup.clone(),
            shutdown.clone(),
            mesh.clone(),
            serve.clone(),
            budget.clone(),
            board.clone(),
        );
        let placement = if config.pin && n <= cpus {
            glommio::Placement::Fixed(i)
        } else {
            glommio::Placement::Unbound
        };
        let handle = crate::support::executor(placement)
            .name(&format!("shard-{i}"))
            .spawn(move || async move {
                let result = run_shard(
                    i,
                    config,
                    budget,
                    startup.clone(),
                    shutdown.clone(),
                    mesh,
                    serve,
                    board,
                )
                .await;
                if let Err(e) = &result {
                    let mut error = startup.error.lock().unwrap();
                    if error.is_none() {
                        *error = Some(format!("shard {i}: {e}"));
                    }
                    drop(error);
                    startup.bound.abort();
                    startup.ready.abort();
                    startup.drained.abort();
                    startup.shared_bound.raise();
                    startup.failed.raise();
                    shutdown.raise();
                }
                result
            })
            .map_err(|e| format!("starting shard {i}: {e}"))?;
        threads.push(handle);
    }
    // Wait until every shard is ready or one failed.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        // Not `if let … = lock()…`: that would hold the lock while joining
        // the shards, which take it on their way out.
        let failure = startup.error.lock().unwrap().clone();
        if let Some(e) = failure {
            shutdown.raise();
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
        if startup.ready.arrived.load(Ordering::SeqCst) >= n {
            break;
        }
        if Instant::now() > deadline {
            shutdown.raise();
            return Err("shards did not become ready within 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let shared = startup
        .shared_port
        .lock()
        .unwrap()
        .expect("shard 0 bound the shared port");
    let kafka_ports = startup.kafka_ports.lock().unwrap().clone();
    let kafka_addrs: Vec<(SecurityProtocol, SocketAddr)> = config
        .kafka_listeners()
        .iter()
        .zip(kafka_ports)
        .map(|(l, port)| {
            let port = port.expect("shard 0 bound every Kafka port");
            (l.protocol, SocketAddr::new(l.listen.ip(), port))
        })
        .collect();
    Ok(BrokerHandle {
        addr: SocketAddr::new(config.listen.ip(), shared),
        shard_ports: startup.ports.lock().unwrap().clone(),
        kafka_addr: kafka_addrs.first().map(|(_, a)| *a),
        kafka_addrs,
        tls,
        kafka_shard_ports: startup.kafka_shard_ports.lock().unwrap().clone(),
        controller_addr: *startup.controller_addr.lock().unwrap(),
        stop: if config.controllers.is_empty() {
            shutdown
        } else {
            startup.stopping.clone()
        },
        threads,
        _lock: lock,
    })
}

/// Counters of one shard.
#[derive(Default)]
pub struct Counters {
    pub connections: Cell<u32>,
    pub requests: Cell<u64>,
    pub hops: Cell<u64>,
    pub bytes_in: Cell<u64>,
    pub bytes_out: Cell<u64>,
    pub errors: Cell<u64>,
}

impl Counters {
    pub fn add(cell: &Cell<u64>, n: u64) {
        cell.set(cell.get() + n);
    }
}

/// One core's share of the broker.
pub struct Shard {
    pub id: ShardId,
    pub count: u32,
    pub config: Arc<BrokerConfig>,
    /// How the open-file limit is split (the same for every shard).
    pub budget: Arc<FdBudget>,
    pub disk: Disk,
    /// Host the ports listen on, as given to clients.
    pub host: String,
    pub shared_port: u16,
    /// The shared port native clients are told (`--advertise`, or the
    /// bound one).
    pub advertised_port: u16,
    pub ports: Vec<u16>,
    /// Every listener, by [`ListenerId`]: what it speaks, its TLS, and
    /// (Kafka) where its clients are told to connect.
    pub listeners: Rc<[ListenerInfo]>,
    /// Each shard's own Kafka port, by shard, in the shard-aware Kafka mode
    /// (advertised at the host of the first Kafka listener's advertised
    /// address); empty otherwise.
    pub kafka_shard_ports: Vec<u16>,
    peer_of: Vec<usize>,
    /// Connections each shard serves within its share of the limit,
    /// published by the owning shard (the only writer of its slot) and read
    /// by a shard at its share looking for one with room.
    pub connection_load: Arc<[std::sync::atomic::AtomicU32]>,
    /// What the server does with a connection another shard hands over.
    adopt: RefCell<Option<AdoptFn>>,
    senders: Senders<ShardMsg>,
    snapshot: RefCell<Arc<Snapshot>>,
    /// The snapshot's ACLs, indexed for checks.
    authz: authz::AuthzCache,
    logs: RefCell<HashMap<(TopicId, u32), Rc<PartitionLog>>>,
    /// Partitions this shard owns whose log failed to open, and why.
    failed: RefCell<HashMap<(TopicId, u32), String>>,
    pub counters: Counters,
    pub shutdown: Arc<Signal>,
    /// Serializes metadata changes (used on shard 0 only).
    controller_lock: glommio::sync::Semaphore,
    /// The reserved block of producer ids not yet handed out, `[next, end)`
    /// (shard 0 only).
    producer_ids: Cell<(i64, i64)>,
    /// The consumer groups this shard coordinates.
    pub groups: crate::group::Coordinator,
    /// The controller quorum (shard 0 of a cluster broker): metadata
    /// changes are committed through it.
    controller: std::cell::OnceCell<Rc<crate::cluster::Controller>>,
    /// What this shard counts for metrics (published on `board`).
    pub metrics: Rc<crate::metrics::ShardMetrics>,
    pub board: Arc<crate::metrics::Board>,
    /// (free bytes, watermark) while the data directory's file system has
    /// less free space than `--disk-free-min-bytes`: produce is refused.
    /// Sampled every [`DISK_FREE_CHECK_MS`](crate::constants::DISK_FREE_CHECK_MS).
    disk_low: Cell<Option<(u64, u64)>>,
    /// The replicated partitions this shard owns, as leader or follower.
    pub(crate) replication: replication::Replication,
    /// This shard itself (for tasks that metadata changes start).
    this: std::rc::Weak<Shard>,
}

/// Random at each start of the process: see [`crate::meta::BrokerMeta`].
fn incarnation() -> u64 {
    static INCARNATION: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *INCARNATION.get_or_init(|| {
        u64::from_le_bytes(crate::meta::random_uuid()[..8].try_into().expect("8 bytes"))
    })
}

/// What a client is told when the metadata file could not be saved.
fn metadata_save_error(e: &std::io::Error) -> BrokerError {
    let kind = if crate::storage::io::is_no_space(e) {
        ErrorKind::DiskFull
    } else {
        ErrorKind::UnknownServerError
    };
    BrokerError::new(kind, format!("saving metadata: {e}"))
}

/// A process-level test hook: when set, the free space of the data
/// directory's file system is read from the file this names (a number of
/// bytes) instead of `statvfs`, while the file exists.
pub const DISK_FREE_FILE_ENV: &str = "CORELOG_TEST_DISK_FREE_FILE";

/// A process-level test hook: each shard waits this many milliseconds
/// (at most a minute) before recovering its partitions.
pub const RECOVERY_DELAY_ENV: &str = "CORELOG_TEST_RECOVERY_DELAY_MS";

/// (available bytes, total bytes) of the file system holding `dir`.
/// Blocking (one `statvfs`).
fn disk_space(dir: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs with a NUL-terminated path and a zeroed local struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = stat.f_frsize as u64;
    let mut available = stat.f_bavail as u64 * block;
    let total = stat.f_blocks as u64 * block;
    if let Some(file) = std::env::var_os(DISK_FREE_FILE_ENV)
        && let Ok(text) = std::fs::read_to_string(file)
        && let Ok(bytes) = text.trim().parse()
    {
        available = bytes;
    }
    Ok((available, total))
}

/// Which protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    Native,
    Kafka,
}

/// A listener of this broker, by its place in [`Shard::listeners`]: 0 is
/// the native listener (shared and shard ports), then each Kafka listener
/// in configuration order. The same on every shard, so a connection handed
/// between shards keeps its listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ListenerId(pub u8);

impl ListenerId {
    pub const NATIVE: ListenerId = ListenerId(0);

    /// The `i`-th Kafka listener.
    pub fn kafka(i: usize) -> ListenerId {
        ListenerId(1 + i as u8)
    }
}

/// What a listener speaks and how connections to it are secured.
#[derive(Debug)]
pub struct ListenerInfo {
    pub kind: ListenerKind,
    /// For logs and metrics: `native`, or the Kafka security protocol.
    pub name: &'static str,
    /// TLS: the configuration new handshakes use.
    pub tls: Option<Arc<crate::security::tls::TlsServer>>,
    /// Clients must authenticate with SASL before anything else.
    pub sasl: bool,
    /// Where Kafka clients of this listener are told to connect.
    pub advertised: Option<(String, u16)>,
}

/// The TLS listeners' server configurations, loaded once at start and
/// shared by every shard; reloaded together on SIGHUP.
#[derive(Clone, Debug, Default)]
pub struct ListenerTls {
    pub native: Option<Arc<crate::security::tls::TlsServer>>,
    pub kafka: Option<Arc<crate::security::tls::TlsServer>>,
}

impl ListenerTls {
    /// Loads what the configuration's TLS listeners need; an error names
    /// the file and the listener.
    pub fn load(config: &BrokerConfig) -> Result<ListenerTls, String> {
        use crate::config::{ListenerSecurity, TlsListener};
        use crate::security::tls::TlsServer;
        let load = |which: TlsListener, what: &str| -> Result<_, String> {
            let files = config
                .tls_for(which)
                .ok_or_else(|| format!("the {what} listener needs --tls-cert and --tls-key"))?;
            let server = TlsServer::load(files.clone())
                .map_err(|e| format!("the {what} listener's TLS: {e}"))?;
            tracing::info!(listener = what, certificate = %server.summary(), "TLS certificate loaded");
            Ok(Some(Arc::new(server)))
        };
        let native = match config.native_security {
            ListenerSecurity::Tls => load(TlsListener::Native, "native")?,
            ListenerSecurity::None => None,
        };
        let kafka = if config.kafka_listeners().iter().any(|l| l.protocol.tls()) {
            load(TlsListener::Kafka, "Kafka")?
        } else {
            None
        };
        Ok(ListenerTls { native, kafka })
    }

    pub fn reload(&self) -> Vec<Result<String, String>> {
        [("native", &self.native), ("Kafka", &self.kafka)]
            .into_iter()
            .filter_map(|(what, tls)| tls.as_ref().map(|t| (what, t)))
            .map(|(what, tls)| {
                tls.reload()
                    .map(|summary| format!("{what} listener: {summary}"))
                    .map_err(|e| format!("{what} listener kept its certificate: {e}"))
            })
            .collect()
    }
}

/// The server's handler of a connection handed over by another shard.
pub type AdoptFn = Rc<dyn Fn(std::os::fd::OwnedFd, ListenerId)>;

/// A message from one shard to another. Replies travel on `oneshot`
/// channels, which wake the waiting task across cores.
pub enum ShardMsg {
    Produce {
        items: Vec<ProduceItem>,
        acks: crate::types::Acks,
        /// When the request left the shard it arrived on (latency tracing).
        sent: Option<std::time::Instant>,
        reply: futures::channel::oneshot::Sender<Vec<ProduceOutcome>>,
    },
    Fetch {
        items: Vec<FetchItem>,
        reply: futures::channel::oneshot::Sender<Vec<FetchOutcome>>,
    },
    /// Completes when any item's log has data past its offset, at the
    /// deadline, or when the asker gives up (drops the receiver).
    WaitForData {
        items: Vec<FetchItem>,
        deadline: Instant,
        reply: futures::channel::oneshot::Sender<()>,
    },
    ListOffsets {
        items: Vec<OffsetQuery>,
        reply: futures::channel::oneshot::Sender<Vec<OffsetAnswer>>,
    },
    Describe {
        topic: TopicId,
        partitions: Vec<u32>,
        reply: futures::channel::oneshot::Sender<Vec<PartitionState>>,
    },
    Stats {
        reply: futures::channel::oneshot::Sender<ShardStatsData>,
    },
    /// A connection accepted by a shard at its connection share, for this
    /// one to serve (or refuse, should it have filled up meanwhile).
    Adopt {
        socket: std::os::fd::OwnedFd,
        listener: ListenerId,
    },
    /// Swap in a new metadata snapshot (open and close logs to match).
    Apply {
        snapshot: Arc<Snapshot>,
        reply: futures::channel::oneshot::Sender<Result<(), String>>,
    },
    /// Metadata changes, sent to shard 0.
    CreateTopic {
        name: String,
        partitions: u32,
        overrides: crate::meta::TopicOverrides,
        /// Replicas per partition (1: not replicated).
        replication: u32,
        reply: futures::channel::oneshot::Sender<Result<Arc<TopicMeta>, BrokerError>>,
    },
    /// Changes a topic's settings, sent to shard 0.
    AlterConfigs {
        name: String,
        changes: Vec<crate::meta::ConfigChange>,
        reply: futures::channel::oneshot::Sender<Result<Arc<TopicMeta>, BrokerError>>,
    },
    DeleteTopic {
        name: String,
        reply: futures::channel::oneshot::Sender<Result<(), BrokerError>>,
    },
    CreatePartitions {
        name: String,
        total: u32,
        reply: futures::channel::oneshot::Sender<Result<Arc<TopicMeta>, BrokerError>>,
    },
    /// Stores and deletes SCRAM credentials, sent to shard 0.
    AlterScramCredentials {
        upsertions: Vec<crate::security::ScramCredential>,
        deletions: Vec<(String, crate::security::ScramMechanism)>,
        reply: futures::channel::oneshot::Sender<Result<Vec<crate::meta::UserResult>, BrokerError>>,
    },
    /// Adds ACLs, sent to shard 0.
    CreateAcls {
        bindings: Vec<crate::security::AclBinding>,
        reply: futures::channel::oneshot::Sender<Result<Vec<Result<(), BrokerError>>, BrokerError>>,
    },
    /// Removes the ACLs filters select, sent to shard 0.
    DeleteAcls {
        filters: Vec<crate::security::AclFilter>,
        reply: futures::channel::oneshot::Sender<
            Result<Vec<Vec<crate::security::AclBinding>>, BrokerError>,
        >,
    },
    /// OffsetForLeaderEpoch questions, sent to the partitions' owner.
    EpochEnds {
        items: Vec<replication::EpochQuery>,
        reply: futures::channel::oneshot::Sender<Vec<(usize, replication::EpochAnswer)>>,
    },
    /// An ISR change a partition leader asks for, sent to shard 0.
    AlterIsr {
        topic: TopicId,
        partition: u32,
        leader: u32,
        epoch: u32,
        isr: Vec<u32>,
        reply: futures::channel::oneshot::Sender<Result<(), BrokerError>>,
    },
    /// A new idempotent producer id, sent to shard 0.
    AllocateProducerId {
        reply: futures::channel::oneshot::Sender<Result<i64, BrokerError>>,
    },
    /// A group operation, sent to the group's coordinator shard.
    Group {
        group: String,
        call: crate::group::GroupCall,
        reply: futures::channel::oneshot::Sender<crate::group::GroupReply>,
    },
    /// This shard's groups.
    ListGroups {
        reply: futures::channel::oneshot::Sender<Vec<crate::group::GroupListing>>,
    },
}

#[allow(clippy::too_many_arguments)]
async fn run_shard(
    index: usize,
    config: Arc<BrokerConfig>,
    budget: Arc<FdBudget>,
    startup: Arc<Startup>,
    shutdown: Arc<Signal>,
    mesh: MeshBuilder<ShardMsg, glommio::channels::channel_mesh::Full>,
    serve: ServeFn,
    board: Arc<crate::metrics::Board>,
) -> Result<(), String> {
    let n = config.cores;
    let disk = Disk::open(&config.data_dir)
        .await
        .map_err(|e| format!("opening data directory: {e}"))?;
    disk.open_files().set_capacity(budget.open_files_per_shard);
    // Shard 0 binds the shared port first (it may be 0: ephemeral), then
    // the others join it with SO_REUSEPORT.
    let mut quorum = None;
    if index == 0 {
        let mut snapshot = Snapshot::load(&config.data_dir, &config.topic_defaults)?;
        if let Some(user) = &config.bootstrap_user {
            snapshot = bootstrap_user(&config.data_dir, snapshot, user)?;
        }
        if config.clustered() {
            let (store, listener, newer) = open_quorum(&config, &snapshot)?;
            if let Some(newer) = newer {
                snapshot = newer;
            }
            *startup.controller_addr.lock().unwrap() =
                Some(listener.local_addr().map_err(|e| e.to_string())?);
            quorum = Some((store, listener));
        }
        *startup.snapshot.lock().unwrap() = Some(Arc::new(snapshot));
    } else {
        startup.shared_bound.wait().await;
        if startup.error.lock().unwrap().is_some() {
            return Err("another shard failed to start".into());
        }
    }
    let shared_addr = match index {
        0 => config.listen,
        _ => SocketAddr::new(
            config.listen.ip(),
            startup.shared_port.lock().unwrap().expect("published"),
        ),
    };
    let shared = glommio::net::TcpListener::bind(shared_addr)
        .map_err(|e| format!("binding {shared_addr}: {e}"))?;
    let shared_port = shared.local_addr().map_err(|e| e.to_string())?.port();
    // The Kafka ports work the same way: shard 0 binds each (0 picks
    // one), the others join with SO_REUSEPORT.
    let mut kafka = Vec::new();
    for (i, l) in config.kafka_listeners().iter().enumerate() {
        let addr = match index {
            0 => l.listen,
            _ => SocketAddr::new(
                l.listen.ip(),
                startup.kafka_ports.lock().unwrap()[i].expect("published"),
            ),
        };
        let listener = glommio::net::TcpListener::bind(addr)
            .map_err(|e| format!("binding the {} Kafka listener {addr}: {e}", l.protocol))?;
        if index == 0 {
            let port = listener.local_addr().map_err(|e| e.to_string())?.port();
            startup.kafka_ports.lock().unwrap()[i] = Some(port);
        }
        kafka.push((ListenerId::kafka(i), listener));
    }
    if index == 0 {
        *startup.shared_port.lock().unwrap() = Some(shared_port);
        startup.shared_bound.raise();
    }
    let own_port = match &config.shard_ports {
        Some(ports) => ports[index],
        None if config.listen.port() == 0 => 0,
        None => shared_port.checked_add(1 + index as u16).ok_or_else(|| {
            format!("shard port after {shared_port} overflows; set shard ports explicitly")
        })?,
    };
    let own_addr = SocketAddr::new(config.listen.ip(), own_port);
    let own = bind_exclusive(own_addr)
        .map_err(|e| format!("binding shard {index}'s port {own_addr}: {e}"))?;
    startup.ports.lock().unwrap()[index] = own.local_addr().map_err(|e| e.to_string())?.port();
    let kafka_own = bind_kafka_own(index, &config, &startup)?;

    // Joining waits for every shard; a shard that failed before joining
    // would leave the others waiting forever, so a start-up failure aborts.
    let (senders, receivers) = {
        let join = mesh.join();
        let failed = startup.failed.wait();
        futures::pin_mut!(join, failed);
        match futures::future::select(join, failed).await {
            futures::future::Either::Left((joined, _)) => {
                joined.map_err(|_| "joining the cross-core mesh failed".to_string())?
            }
            futures::future::Either::Right(_) => return Err("another shard failed to start".into()),
        }
    };
    startup.peers.lock().unwrap()[index] = senders.peer_id();
    startup.bound.wait().await?;

    let snapshot = startup
        .snapshot
        .lock()
        .unwrap()
        .clone()
        .expect("shard 0 loaded metadata");
    let listeners = listener_infos(&config, &startup);
    let shard = Rc::new_cyclic(|this| Shard {
        this: this.clone(),
        replication: replication::Replication::default(),
        id: ShardId(index as u32),
        count: n as u32,
        host: config
            .advertise
            .as_ref()
            .map_or_else(|| config.listen.ip().to_string(), |(h, _)| h.clone()),
        advertised_port: config
            .advertise
            .as_ref()
            .and_then(|(_, p)| *p)
            .unwrap_or(shared_port),
        shared_port,
        ports: startup.ports.lock().unwrap().clone(),
        listeners,
        kafka_shard_ports: startup.kafka_shard_ports.lock().unwrap().clone(),
        peer_of: startup.peers.lock().unwrap().clone(),
        connection_load: startup.connection_load.clone(),
        adopt: RefCell::new(None),
        config: config.clone(),
        budget: budget.clone(),
        disk,
        senders,
        snapshot: RefCell::new(Arc::new(Snapshot::default())),
        authz: authz::AuthzCache::default(),
        logs: RefCell::new(HashMap::new()),
        failed: RefCell::new(HashMap::new()),
        counters: Counters::default(),
        shutdown: shutdown.clone(),
        controller_lock: glommio::sync::Semaphore::new(1),
        producer_ids: Cell::new((0, 0)),
        groups: crate::group::Coordinator::default(),
        controller: std::cell::OnceCell::new(),
        disk_low: Cell::new(None),
        metrics: Rc::default(),
        board,
    });
    // Messages from other shards are served from here on, so peers can
    // make progress while this shard opens its logs.
    let mesh_tasks = spawn_mesh_receivers(shard.clone(), receivers);
    let registered: usize = snapshot
        .topics
        .values()
        .map(|t| t.partitions as usize)
        .sum();
    if index == 0 && registered > budget.partitions_max {
        tracing::warn!(
            partitions = registered,
            partitions_max = budget.partitions_max,
            limit = budget.limit,
            "the data directory holds more partitions than the file-descriptor budget allows; those that cannot be opened report STORAGE_FAILED (raise the open-file limit)"
        );
    }
    if let Some(ms) = std::env::var(RECOVERY_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // Test hook: a slow recovery, to observe the broker before it ends.
        glommio::timer::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    // A partition that cannot be opened does not stop the broker: it is
    // recorded as failed, and the others serve.
    if let Err(e) = shard.apply_snapshot(snapshot).await {
        tracing::error!(
            shard = index,
            failed = shard.failed.borrow().len(),
            error = %e,
            "partitions failed to open; requests for them get STORAGE_FAILED until the broker is restarted, the other partitions serve"
        );
    }
    shard.groups.load(&shard).await?;
    shard.check_disk_space().await;
    // Recovered: the health check counts this shard as ready.
    shard.publish().await;
    startup.ready.wait().await?;
    tracing::info!(shard = index, shared = %shared_addr.ip(), shared_port, own_port = shard.ports[index], partitions = shard.logs.borrow().len(), "shard ready");
    if let Some((store, listener)) = quorum {
        // Every shard is ready: committed changes can be applied on all.
        let controller = crate::cluster::Controller::new(
            &shard.config,
            store,
            shard.shutdown.clone(),
            shard.board.clone(),
        )?;
        let _ = shard.controller.set(controller.clone());
        controller.run(&shard, listener);
        tracing::info!(node = controller.id, voters = ?config.controllers, "controller started");
        let (shard, stopping) = (shard.clone(), startup.stopping.clone());
        glommio::spawn_local(async move {
            let stop = stopping.wait();
            let down = shard.shutdown.wait();
            futures::pin_mut!(stop, down);
            if let futures::future::Either::Left(_) = futures::future::select(stop, down).await {
                shard.controlled_shutdown().await;
                shard.shutdown.raise();
            }
        })
        .detach();
    }

    let retention = glommio::spawn_local(shard.clone().retention_loop());
    glommio::spawn_local(shard.clone().replication_loop()).detach();
    let cleaner = glommio::spawn_local(shard.clone().cleaner_loop());
    if shard.id == ShardId(0) {
        glommio::spawn_local(crate::group::compact_offsets_topic(shard.clone())).detach();
    }
    let groups = glommio::spawn_local(shard.clone().group_loop());
    let publisher = glommio::spawn_local(shard.clone().publish_loop());
    glommio::spawn_local(shard.clone().allocator_loop()).detach();
    if shard.id == ShardId(0) && shard.config.trace_latency {
        glommio::spawn_local(shard.clone().trace_loop()).detach();
    }
    let disk = glommio::spawn_local(shard.clone().disk_loop());
    let listeners = Listeners {
        shared,
        own,
        kafka,
        kafka_own,
    };
    serve(shard.clone(), listeners).await;

    // Phase 1 is over for this shard (no connections left); keep serving
    // other shards' messages until all are drained.
    let drain = glommio::timer::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX), async {
        startup
            .drained
            .wait()
            .await
            .map_err(|e| glommio::GlommioError::<()>::IoError(std::io::Error::other(e)))
    })
    .await;
    if drain.is_err() {
        tracing::warn!(
            shard = index,
            "not every shard drained in time; closing logs anyway"
        );
    }
    drop(retention);
    drop(groups);
    drop(publisher);
    drop(disk);
    // A cleaner pass checks the shutdown signal between batches and ends
    // with every segment whole; wait for it rather than cut it short.
    cleaner.await;
    let closed = shard.close_all_logs().await;
    shard.senders.close();
    drop(mesh_tasks);
    tracing::info!(shard = index, "shard stopped");
    closed
}

impl crate::cluster::Host for Shard {
    fn snapshot(&self) -> Arc<Snapshot> {
        Shard::snapshot(self)
    }

    fn topic_defaults(&self) -> &crate::meta::TopicConfig {
        &self.config.topic_defaults
    }

    fn broker_record(&self) -> crate::meta::BrokerMeta {
        Shard::broker_record(self)
    }

    async fn apply_committed(&self, next: Arc<Snapshot>) {
        Shard::apply_committed(self, next).await
    }

    async fn change_metadata(
        &self,
        change: impl Fn(&Snapshot) -> Option<Snapshot>,
    ) -> Result<bool, BrokerError> {
        Shard::change_metadata(self, change).await
    }
}

/// Opens the Raft state of a cluster broker and binds its controller
/// listener. Returns the metadata in the Raft snapshot when it is newer
/// than the metadata file (a crash between installing a snapshot and
/// saving the file). Blocking.
fn open_quorum(
    config: &BrokerConfig,
    loaded: &Snapshot,
) -> Result<
    (
        crate::cluster::store::Store,
        glommio::net::TcpListener,
        Option<Snapshot>,
    ),
    String,
> {
    let voters: Vec<u64> = config.controllers.iter().map(|v| v.id).collect();
    let (store, existed) = crate::cluster::store::Store::open(&config.data_dir, &voters)?;
    if !existed && (loaded.version > 0 || !loaded.topics.is_empty()) {
        let _ = std::fs::remove_dir_all(config.data_dir.join(crate::cluster::store::RAFT_DIR_NAME));
        return Err(format!(
            "{} holds the metadata of a one-broker setup (version {}, {} topics); a cluster starts on empty data directories (turning a one-broker data directory into a cluster node is not supported yet)",
            config.data_dir.display(),
            loaded.version,
            loaded.topics.len()
        ));
    }
    let mut newer = None;
    if store.snapshot_index() > 0 {
        let (snapshot, _) = Snapshot::decode_with(store.snapshot_data(), &config.topic_defaults)
            .map_err(|e| format!("the Raft snapshot's metadata does not decode: {e}"))?;
        if snapshot.version > loaded.version {
            newer = Some(snapshot);
        }
    }
    let addr = config
        .controller_listen
        .expect("validated: a cluster broker has one");
    let listener = glommio::net::TcpListener::bind(addr)
        .map_err(|e| format!("binding the controller listener {addr}: {e}"))?;
    Ok((store, listener, newer))
}

/// Iterations of the bootstrap user's credentials (Kafka's tools default
/// to 4096; twice that costs a login a few milliseconds more).
pub const BOOTSTRAP_ITERATIONS: u32 = 8192;

/// Gives `user` SCRAM-SHA-256 and SCRAM-SHA-512 credentials (random
/// salts, [`BOOTSTRAP_ITERATIONS`]) if it has no credential, and saves
/// them. Run by the controller as it loads the metadata, before any shard
/// has a snapshot, so the change needs no broadcast and no client can see
/// the user without them. A user with any credential is left as it is: the
/// password may have been changed since. Blocking.
fn bootstrap_user(
    data_dir: &std::path::Path,
    snapshot: Snapshot,
    user: &crate::config::BootstrapUser,
) -> Result<Snapshot, String> {
    use crate::security::{ScramMechanism, scram};
    let has: Vec<&str> = snapshot
        .security
        .user_credentials(&user.name)
        .map(|c| c.mechanism.name())
        .collect();
    if !has.is_empty() {
        tracing::info!(user = %user.name, mechanisms = ?has, "the bootstrap user has SCRAM credentials already; left as they are");
        return Ok(snapshot);
    }
    let credentials = ScramMechanism::ALL
        .into_iter()
        .map(|m| {
            scram::derive_credential(
                &user.name,
                m,
                user.password.as_bytes(),
                &scram::random_salt(),
                BOOTSTRAP_ITERATIONS,
            )
        })
        .collect();
    let (next, results) = snapshot.with_scram_changes(credentials, Vec::new());
    if let Some((_, Err(e))) = results.into_iter().next() {
        return Err(format!("bootstrap user {:?}: {}", user.name, e.message));
    }
    let next = next.expect("new credentials change the snapshot");
    next.save(data_dir)
        .map_err(|e| format!("saving the bootstrap user's credentials: {e}"))?;
    tracing::info!(user = %user.name, mechanisms = ?ScramMechanism::ALL.map(|m| m.name()), iterations = BOOTSTRAP_ITERATIONS, "created the bootstrap user's SCRAM credentials");
    Ok(next)
}

/// Binds this shard's own Kafka port in the shard-aware Kafka mode
/// (exclusively, as the native shard port) and publishes it; `None` when the
/// mode is off. Runs after shard 0 published the Kafka port.
fn bind_kafka_own(
    index: usize,
    config: &BrokerConfig,
    startup: &Startup,
) -> Result<Option<(ListenerId, glommio::net::TcpListener)>, String> {
    let Some(listen) = config.kafka_listen.filter(|_| config.kafka_shard_brokers) else {
        return Ok(None);
    };
    let kafka_port = startup.kafka_ports.lock().unwrap()[0].expect("published");
    let port = config.kafka_shard_port(index, kafka_port)?;
    let addr = SocketAddr::new(listen.ip(), port);
    let listener = bind_exclusive(addr)
        .map_err(|e| format!("binding shard {index}'s Kafka port {addr}: {e}"))?;
    startup.kafka_shard_ports.lock().unwrap()[index] =
        listener.local_addr().map_err(|e| e.to_string())?.port();
    Ok(Some((ListenerId::kafka(0), listener)))
}

/// Every listener's description, in [`ListenerId`] order.
fn listener_infos(config: &BrokerConfig, startup: &Startup) -> Rc<[ListenerInfo]> {
    let mut all = vec![ListenerInfo {
        kind: ListenerKind::Native,
        name: "native",
        tls: startup.tls.native.clone(),
        sasl: false,
        advertised: None,
    }];
    let ports = startup.kafka_ports.lock().unwrap().clone();
    for (l, port) in config.kafka_listeners().into_iter().zip(ports) {
        let advertised = l
            .advertise
            .clone()
            .or_else(|| Some((l.listen.ip().to_string(), port.expect("published"))));
        all.push(ListenerInfo {
            kind: ListenerKind::Kafka,
            name: l.protocol.name(),
            tls: l
                .protocol
                .tls()
                .then(|| startup.tls.kafka.clone())
                .flatten(),
            sasl: l.protocol.sasl(),
            advertised,
        });
    }
    all.into()
}

/// Binds a port that only this shard listens on (no SO_REUSEPORT, so two
/// brokers cannot silently share a shard port).
fn bind_exclusive(addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    // Bound once, by std (SO_REUSEADDR only), and handed to glommio: no
    // window in which another process could take the port, and port 0 yields
    // a port nobody else holds.
    let listener = std::net::TcpListener::bind(addr)?;
    // SAFETY: the fd comes from a bound, listening socket we own and give up.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) })
}

fn spawn_mesh_receivers(
    shard: Rc<Shard>,
    mut receivers: Receivers<ShardMsg>,
) -> Vec<glommio::task::JoinHandle<()>> {
    receivers
        .streams()
        .into_iter()
        .map(|(_, receiver)| {
            let shard = shard.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = receiver.recv().await {
                    let shard = shard.clone();
                    if let ShardMsg::Produce {
                        items,
                        acks,
                        sent,
                        reply,
                    } = msg
                    {
                        // Started here, in the order the hops arrive: a
                        // connection's requests stay in order across cores.
                        crate::trace::since(crate::trace::Stage::Hop, sent);
                        let appends = shard.produce_local(items, acks);
                        glommio::spawn_local(async move {
                            let _ = reply.send(appends.await);
                        })
                        .detach();
                        continue;
                    }
                    glommio::spawn_local(async move { shard.handle_msg(msg).await }).detach();
                }
            })
            .detach()
        })
        .collect()
}

impl Shard {
    /// The listener a connection came in on.
    pub fn listener(&self, id: ListenerId) -> &ListenerInfo {
        &self.listeners[(id.0 as usize).min(self.listeners.len() - 1)]
    }

    /// Where Kafka clients of `listener` are told to connect (the first
    /// Kafka listener's when `listener` is not a Kafka one).
    pub fn kafka_advertised(&self, listener: ListenerId) -> Option<(String, u16)> {
        let info = self.listener(listener);
        match info.kind {
            ListenerKind::Kafka => info.advertised.clone(),
            ListenerKind::Native => self
                .listeners
                .get(ListenerId::kafka(0).0 as usize)
                .and_then(|l| l.advertised.clone()),
        }
    }

    /// Whether partition `p` of `topic` is on this broker (always, but in
    /// a cluster that placed it on another).
    pub fn hosts(&self, topic: &TopicMeta, p: u32) -> bool {
        topic
            .node_of(p)
            .is_none_or(|node| node == self.config.node_id as u32)
    }

    /// Where Kafka clients of `listener` reach broker `node` of the
    /// cluster: the address it registered for a listener of the same
    /// security protocol (`None` if it has none, or is unknown).
    pub fn kafka_address_of(&self, node: u32, listener: ListenerId) -> Option<(String, u16)> {
        if node == self.config.node_id as u32 {
            return self.kafka_advertised(listener);
        }
        let protocol = match self.listener(listener).kind {
            ListenerKind::Kafka => self.listener(listener).name,
            ListenerKind::Native => self.listeners.get(1).map(|l| l.name)?,
        };
        let snapshot = self.snapshot();
        let broker = snapshot.brokers.get(&node)?;
        broker.kafka.iter().find_map(|l| {
            let rest = l.strip_prefix(protocol)?.strip_prefix("://")?;
            let (host, port) = rest.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        })
    }

    /// The error for a partition this broker does not serve because the
    /// cluster placed it on broker `node`.
    pub fn elsewhere(&self, topic: &TopicMeta, p: u32, node: u32) -> BrokerError {
        let snapshot = self.snapshot();
        match snapshot.brokers.get(&node) {
            Some(b) if b.fenced => BrokerError::new(
                ErrorKind::LeaderNotAvailable,
                format!(
                    "partition {p} of topic {:?} is on broker {node}, which is fenced (not heard from); unavailable until it returns",
                    topic.name
                ),
            ),
            Some(b) => BrokerError::new(
                ErrorKind::NotLeaderOrFollower,
                format!(
                    "partition {p} of topic {:?} is on broker {node} ({}); this is broker {}",
                    topic.name, b.native, self.config.node_id
                ),
            ),
            None => BrokerError::new(
                ErrorKind::NotLeaderOrFollower,
                format!(
                    "partition {p} of topic {:?} is on broker {node}; this is broker {}",
                    topic.name, self.config.node_id
                ),
            ),
        }
    }

    /// The current metadata snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// The shard owning a partition.
    pub fn owner(&self, topic: TopicId, partition: u32) -> ShardId {
        crate::meta::placement(topic, partition, self.count)
    }

    pub fn log(&self, topic: TopicId, partition: u32) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(&(topic, partition)).cloned()
    }

    /// Sets what this shard does with connections other shards hand over
    /// (the server calls it when it starts accepting).
    pub fn set_adopt(&self, adopt: Option<AdoptFn>) {
        *self.adopt.borrow_mut() = adopt;
    }

    pub fn partition_count(&self) -> usize {
        self.logs.borrow().len()
    }

    /// Why this shard has no log for a partition it is asked about: it
    /// failed to open (`STORAGE_FAILED`, with the reason), or it is not
    /// this shard's.
    pub(crate) fn unavailable(&self, topic: TopicId, partition: u32) -> BrokerError {
        if let Some(meta) = self.snapshot().topic_by_id(topic)
            && let Some(node) = meta.node_of(partition)
            && !self.hosts(meta, partition)
        {
            return self.elsewhere(meta, partition, node);
        }
        match self.failed.borrow().get(&(topic, partition)) {
            Some(reason) => BrokerError::new(ErrorKind::StorageFailed, reason.clone()),
            None => BrokerError::new(
                ErrorKind::UnknownPartition,
                format!(
                    "partition {partition} of topic id {topic} is not open on shard {}",
                    self.id
                ),
            ),
        }
    }

    /// Refuses `added` more partitions (for `what`) if the broker would then
    /// hold more than its file-descriptor budget allows.
    pub fn check_partition_budget(
        &self,
        snapshot: &Snapshot,
        added: u32,
        what: &str,
    ) -> Result<(), BrokerError> {
        let current = snapshot
            .topics
            .values()
            .map(|t| t.partitions as usize)
            .sum();
        self.budget
            .check_partitions(self.count as usize, current, added as usize, what)
    }

    /// Sends `msg` to another shard. Data-path messages (produce, fetch,
    /// wait, list offsets) count as cross-core hops; control messages do not,
    /// so reading the counters does not move them.
    pub(crate) async fn send_to(&self, shard: ShardId, msg: ShardMsg) -> Result<(), BrokerError> {
        assert_ne!(shard, self.id, "a shard never sends itself a message");
        if matches!(
            msg,
            ShardMsg::Produce { .. }
                | ShardMsg::Fetch { .. }
                | ShardMsg::WaitForData { .. }
                | ShardMsg::ListOffsets { .. }
        ) {
            Counters::add(&self.counters.hops, 1);
        }
        self.senders
            .send_to(self.peer_of[shard.0 as usize], msg)
            .await
            .map_err(|_| BrokerError::shutting_down())
    }

    async fn handle_msg(self: Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Produce {
                items,
                acks,
                sent,
                reply,
            } => {
                // Normally started by the mesh receiver itself.
                crate::trace::since(crate::trace::Stage::Hop, sent);
                let _ = reply.send(self.produce_local(items, acks).await);
            }
            ShardMsg::EpochEnds { items, reply } => {
                let _ = reply.send(self.epoch_ends_local(items));
            }
            ShardMsg::AlterIsr {
                topic,
                partition,
                leader,
                epoch,
                isr,
                reply,
            } => {
                let _ = reply.send(self.alter_isr(topic, partition, leader, epoch, isr).await);
            }
            ShardMsg::Fetch { items, reply } => {
                let _ = reply.send(self.fetch_local(items).await);
            }
            ShardMsg::WaitForData {
                items,
                deadline,
                mut reply,
            } => {
                let cancelled = reply.cancellation();
                futures::pin_mut!(cancelled);
                let wait = self.wait_local(&items, deadline);
                futures::pin_mut!(wait);
                if let futures::future::Either::Left(_) =
                    futures::future::select(wait, cancelled).await
                {
                    let _ = reply.send(());
                }
            }
            ShardMsg::ListOffsets { items, reply } => {
                let _ = reply.send(self.list_offsets_local(items).await);
            }
            ShardMsg::Describe {
                topic,
                partitions,
                reply,
            } => {
                let _ = reply.send(self.describe_local(topic, &partitions));
            }
            ShardMsg::Stats { reply } => {
                let _ = reply.send(self.stats_local());
            }
            ShardMsg::Adopt { socket, listener } => {
                let adopt = self.adopt.borrow().clone();
                match adopt {
                    Some(adopt) => adopt(socket, listener),
                    // Not serving (yet, or any more): the socket closes.
                    None => drop(socket),
                }
            }
            ShardMsg::Apply { snapshot, reply } => {
                let _ = reply.send(self.apply_snapshot(snapshot).await);
            }
            ShardMsg::CreateTopic {
                name,
                partitions,
                overrides,
                replication,
                reply,
            } => {
                let created = self
                    .changing(|| {
                        self.controller_create(
                            name.clone(),
                            partitions,
                            overrides.clone(),
                            replication,
                        )
                    })
                    .await;
                let _ = reply.send(created);
            }
            ShardMsg::AlterConfigs {
                name,
                changes,
                reply,
            } => {
                let altered = self
                    .changing(|| self.controller_alter_configs(name.clone(), changes.clone()))
                    .await;
                let _ = reply.send(altered);
            }
            ShardMsg::DeleteTopic { name, reply } => {
                let _ = reply.send(self.changing(|| self.controller_delete(name.clone())).await);
            }
            ShardMsg::CreatePartitions { name, total, reply } => {
                let grown = self
                    .changing(|| self.controller_create_partitions(name.clone(), total))
                    .await;
                let _ = reply.send(grown);
            }
            ShardMsg::AlterScramCredentials {
                upsertions,
                deletions,
                reply,
            } => {
                let altered = self
                    .changing(|| {
                        self.controller_alter_scram_credentials(
                            upsertions.clone(),
                            deletions.clone(),
                        )
                    })
                    .await;
                let _ = reply.send(altered);
            }
            ShardMsg::CreateAcls { bindings, reply } => {
                let created = self
                    .changing(|| self.controller_create_acls(bindings.clone()))
                    .await;
                let _ = reply.send(created);
            }
            ShardMsg::DeleteAcls { filters, reply } => {
                let deleted = self
                    .changing(|| self.controller_delete_acls(filters.clone()))
                    .await;
                let _ = reply.send(deleted);
            }
            ShardMsg::AllocateProducerId { reply } => {
                let _ = reply.send(
                    self.changing(|| self.controller_allocate_producer_id())
                        .await,
                );
            }
            ShardMsg::Group { group, call, reply } => {
                let _ = reply.send(self.groups.run(&self, group, call).await);
            }
            ShardMsg::ListGroups { reply } => {
                let _ = reply.send(self.groups.list());
            }
        }
    }

    /// Runs a metadata change (controller only), again while it is
    /// NOT_CONTROLLER — no controller leader yet, or computed from metadata
    /// another broker changed meanwhile — until the commit timeout. Only a
    /// cluster broker's changes can be NOT_CONTROLLER.
    async fn changing<T, F, Fut>(&self, change: F) -> Result<T, BrokerError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, BrokerError>>,
    {
        let deadline =
            Instant::now() + Duration::from_millis(crate::constants::CONTROLLER_COMMIT_TIMEOUT_MS);
        let mut pause = Duration::from_millis(10);
        loop {
            match change().await {
                Err(e)
                    if e.kind == ErrorKind::NotController && Instant::now() + pause < deadline =>
                {
                    tracing::debug!(error = %e, "metadata change not committed; trying again");
                    glommio::timer::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                result => return result,
            }
        }
    }

    /// Makes the metadata change `change` computes from the metadata in
    /// force, if it computes one (controller only); whether it did.
    pub(crate) async fn change_metadata(
        &self,
        change: impl Fn(&Snapshot) -> Option<Snapshot>,
    ) -> Result<bool, BrokerError> {
        self.changing(|| async {
            let _lock = self
                .controller_lock
                .acquire_permit(1)
                .await
                .map_err(|_| BrokerError::shutting_down())?;
            match change(&self.snapshot()) {
                Some(next) => self.commit(Arc::new(next)).await.map(|()| true),
                None => Ok(false),
            }
        })
        .await
    }

    /// This broker as it registers with a cluster: its native address,
    /// its Kafka listeners as advertised, its shards.
    pub(crate) fn broker_record(&self) -> crate::meta::BrokerMeta {
        crate::meta::BrokerMeta {
            node_id: self.config.node_id as u32,
            native: format!("{}:{}", self.host, self.advertised_port),
            kafka: self
                .listeners
                .iter()
                .filter(|l| l.kind == ListenerKind::Kafka)
                .filter_map(|l| {
                    l.advertised
                        .as_ref()
                        .map(|(host, port)| format!("{}://{host}:{port}", l.name))
                })
                .collect(),
            shards: self.count,
            fenced: false,
            incarnation: incarnation(),
        }
    }

    /// Applies a metadata change the controller quorum committed (cluster
    /// mode, shard 0): what a one-broker controller does around a change,
    /// on every broker — the metadata file saved, a new topic's leftover
    /// directory removed, every shard's logs opened and closed to match,
    /// a deleted topic's files removed. Failures are logged: the change is
    /// the cluster's and stands; a partition that does not open here
    /// reports STORAGE_FAILED.
    pub(crate) async fn apply_committed(&self, next: Arc<Snapshot>) {
        let previous = self.snapshot();
        let created: Vec<String> = next
            .topics
            .values()
            .filter(|t| previous.topic_by_id(t.id).is_none())
            .map(|t| t.name.to_string())
            .collect();
        let deleted: Vec<String> = previous
            .topics
            .values()
            .filter(|t| next.topic_by_id(t.id).is_none() && next.topic(&t.name).is_none())
            .map(|t| t.name.to_string())
            .collect();
        let (data_dir, saved, fresh) =
            (self.config.data_dir.clone(), next.clone(), created.clone());
        let save = glommio::executor()
            .spawn_blocking(move || -> std::io::Result<()> {
                for name in fresh {
                    // Left from a deletion that was cut short: no live data.
                    let dir = data_dir.join(&name);
                    if dir.exists() {
                        std::fs::remove_dir_all(&dir)?;
                    }
                }
                saved.save(&data_dir)
            })
            .await;
        if let Err(e) = save {
            tracing::error!(version = next.version, error = %e, "saving committed metadata failed; this broker has it from the Raft log");
        }
        let version = next.version;
        if let Err(e) = self.broadcast(next).await {
            tracing::error!(version, error = %e, "applying committed metadata on this broker's shards failed");
        }
        for name in deleted {
            self.remove_topic_files(&name).await;
        }
        tracing::debug!(version, ?created, "applied committed metadata");
    }

    /// Swaps in `next` and opens or closes this shard's logs to match.
    async fn apply_snapshot(&self, next: Arc<Snapshot>) -> Result<(), String> {
        let previous = self.snapshot.replace(next.clone());
        let mut failures = Vec::new();
        // Logs of topics that are gone (or replaced by a new topic id), and
        // of partitions a rolled-back increase took away again.
        let gone_from = |(id, p): &(TopicId, u32)| {
            next.topic_by_id(*id)
                .is_none_or(|topic| *p >= topic.partitions)
        };
        self.failed.borrow_mut().retain(|key, _| !gone_from(key));
        let gone: Vec<(TopicId, u32)> = self
            .logs
            .borrow()
            .keys()
            .filter(|key| gone_from(key))
            .copied()
            .collect();
        for key in gone {
            let log = self.logs.borrow_mut().remove(&key);
            if let Some(log) = log {
                match Rc::try_unwrap(log) {
                    Ok(log) => {
                        if let Err(e) = log.close().await {
                            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "closing a deleted partition's log");
                        }
                    }
                    Err(_) => {
                        tracing::debug!(topic = %key.0, partition = key.1, "deleted partition still in use; its files go when the last reader is done")
                    }
                }
            }
        }
        for topic in next.topics.values() {
            // A changed configuration applies to the open logs at once.
            if previous
                .topic_by_id(topic.id)
                .is_some_and(|p| p.config != topic.config)
            {
                let log_config = topic.config.log_config();
                let open: Vec<(u32, Rc<PartitionLog>)> = self
                    .logs
                    .borrow()
                    .iter()
                    .filter(|((id, _), _)| *id == topic.id)
                    .map(|((_, p), log)| (*p, log.clone()))
                    .collect();
                for (p, log) in open {
                    if let Err(e) = log.set_config(log_config) {
                        tracing::error!(topic = %topic.name, partition = p, error = %e, "changing a partition log's configuration failed");
                        failures.push(format!("{}/{p}: {e}", topic.name));
                    }
                }
            }
            // Unchanged topics are already open; a topic that gained
            // partitions opens the new ones.
            if previous
                .topic_by_id(topic.id)
                .is_some_and(|p| p.partitions == topic.partitions)
                && self.logs.borrow().keys().any(|(id, _)| *id == topic.id)
            {
                continue;
            }
            for p in 0..topic.partitions {
                if self.owner(topic.id, p) != self.id
                    || !topic.has_replica(p, self.config.node_id as u32)
                    || self.logs.borrow().contains_key(&(topic.id, p))
                {
                    continue;
                }
                let dir = self.config.data_dir.join(&*topic.name).join(p.to_string());
                match PartitionLog::open(&self.disk, dir, topic.config.log_config()).await {
                    Ok(log) => {
                        self.failed.borrow_mut().remove(&(topic.id, p));
                        self.logs.borrow_mut().insert((topic.id, p), Rc::new(log));
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = p, error = %e, "opening partition log failed");
                        self.failed.borrow_mut().insert(
                            (topic.id, p),
                            format!(
                                "partition {p} of topic {:?} failed to open: {e}",
                                topic.name
                            ),
                        );
                        failures.push(format!("{}/{p}: {e}", topic.name));
                    }
                }
            }
        }
        if let Some(this) = self.this.upgrade() {
            this.sync_replication(&next);
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Applies `next` on every shard (this one included) and waits for all.
    async fn broadcast(&self, next: Arc<Snapshot>) -> Result<(), String> {
        let mut replies = Vec::new();
        for s in 0..self.count {
            if s == self.id.0 {
                continue;
            }
            let (tx, rx) = futures::channel::oneshot::channel();
            self.senders
                .send_to(
                    self.peer_of[s as usize],
                    ShardMsg::Apply {
                        snapshot: next.clone(),
                        reply: tx,
                    },
                )
                .await
                .map_err(|_| format!("shard {s} is not reachable"))?;
            replies.push((s, rx));
        }
        let mut errors = Vec::new();
        if let Err(e) = self.apply_snapshot(next).await {
            errors.push(format!("shard {}: {e}", self.id));
        }
        for (s, rx) in replies {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("shard {s}: {e}")),
                Err(_) => errors.push(format!("shard {s} did not answer")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Changes a topic's settings (controller only): persisted, then every
    /// shard applies them to the partitions it runs.
    async fn controller_alter_configs(
        &self,
        name: String,
        changes: Vec<crate::meta::ConfigChange>,
    ) -> Result<Arc<TopicMeta>, BrokerError> {
        assert_eq!(self.id, ShardId(0), "only the controller changes metadata");
        let _lock = self
            .controller_lock
            .acquire_permit(1)
            .await
            .map_err(|_| BrokerError::shutting_down())?;
        let snapshot = self.snapshot();
        let Some((next, meta)) = snapshot
            .with_config_changes(&name, &changes)
            .map_err(BrokerError::from)?
        else {
            let meta = snapshot
                .topic(&name)
                .cloned()
                .ok_or_else(|| BrokerError::unknown_topic(&name))?;
            return Ok(meta);
        };
        self.commit(Arc::new(next)).await?;
        tracing::info!(
            topic = %name,
            changes = ?changes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            config = ?meta.config,
            "changed topic configuration"
        );
        Ok(meta)
    }

    /// Creates a topic (controller only).
    async fn controller_create(
        &self,
        name: String,
        partitions: u32,
        overrides: crate::meta::TopicOverrides,
        replication: u32,
    ) -> Result<Arc<TopicMeta>, BrokerError> {
        assert_eq!(self.id, ShardId(0), "only the controller changes metadata");
        let _lock = self
            .controller_lock
            .acquire_permit(1)
            .await
            .map_err(|_| BrokerError::shutting_down())?;
        let current = self.snapshot();
        let (next, meta) = current
            .with_replicated_topic(&name, partitions, overrides, replication)
            .map_err(BrokerError::from)?;
        // Checked before anything is written: a topic the broker cannot
        // hold open is refused whole.
        self.check_partition_budget(&current, partitions, &format!("topic {name:?}"))?;
        if let Some(quorum) = self.controller.get() {
            // Every broker's applier creates it (a partition that does not
            // open there is reported failed, not rolled back: the change is
            // the cluster's).
            quorum.commit(&next).await?;
            tracing::info!(topic = %name, partitions, id = %meta.id, "created topic");
            return Ok(meta);
        }
        let next = Arc::new(next);
        let (data_dir, saved, topic) = (self.config.data_dir.clone(), next.clone(), name.clone());
        glommio::executor()
            .spawn_blocking(move || -> std::io::Result<()> {
                // A directory of this name can only be left from a topic
                // whose deletion was interrupted: it holds no live data.
                let dir = data_dir.join(&topic);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                saved.save(&data_dir)
            })
            .await
            .map_err(|e| metadata_save_error(&e))?;
        if let Err(e) = self.broadcast(next.clone()).await {
            // Some partition did not open: take the topic away again, so
            // nothing half-created stays registered.
            let undone = next.without_topic(&name).map_err(BrokerError::from)?.0;
            self.roll_back(Arc::new(undone), vec![self.config.data_dir.join(&name)])
                .await;
            return Err(BrokerError::new(
                ErrorKind::StorageFailed,
                format!(
                    "creating topic {name:?} failed and was rolled back (nothing was created): {e}"
                ),
            ));
        }
        tracing::info!(topic = %name, partitions, id = %meta.id, "created topic");
        Ok(meta)
    }

    /// Undoes a metadata change whose partitions did not all open: persists
    /// and applies `undone` (every shard closes the logs the change opened),
    /// then removes `dirs`. Failures are logged: the change is refused
    /// either way.
    async fn roll_back(&self, undone: Arc<Snapshot>, dirs: Vec<std::path::PathBuf>) {
        if let Err(e) = self.persist(undone.clone()).await {
            tracing::error!(error = %e, "saving the metadata of a rolled-back change failed");
        }
        if let Err(e) = self.broadcast(undone).await {
            tracing::error!(error = %e, "applying a rolled-back change failed");
        }
        let removed = glommio::executor()
            .spawn_blocking(move || {
                for dir in dirs {
                    match std::fs::remove_dir_all(&dir) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(format!("{}: {e}", dir.display()));
                        }
                        _ => {}
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "removing the directories of a rolled-back change failed");
        }
    }

    /// Raises a topic's partition count (controller only): persisted, then
    /// every shard opens the new partitions it owns.
    async fn controller_create_partitions(
        &self,
        name: String,
        total: u32,
    ) -> Result<Arc<TopicMeta>, BrokerError> {
        assert_eq!(self.id, ShardId(0), "only the controller changes metadata");
        let _lock = self
            .controller_lock
            .acquire_permit(1)
            .await
            .map_err(|_| BrokerError::shutting_down())?;
        let current = self.snapshot();
        let (next, meta) = current
            .with_partitions(&name, total)
            .map_err(BrokerError::from)?;
        let before = current.topic(&name).map_or(0, |t| t.partitions);
        self.check_partition_budget(&current, total - before, &format!("topic {name:?}"))?;
        if let Some(quorum) = self.controller.get() {
            quorum.commit(&next).await?;
            tracing::info!(topic = %name, partitions = total, "added partitions");
            return Ok(meta);
        }
        let next = Arc::new(next);
        self.persist(next.clone()).await?;
        if let Err(e) = self.broadcast(next.clone()).await {
            let mut undone = (*next).clone();
            undone.version += 1;
            undone.topics.insert(
                meta.name.clone(),
                Arc::new(TopicMeta {
                    partitions: before,
                    ..(*meta).clone()
                }),
            );
            let topic_dir = self.config.data_dir.join(&name);
            let dirs = (before..total)
                .map(|p| topic_dir.join(p.to_string()))
                .collect();
            self.roll_back(Arc::new(undone), dirs).await;
            return Err(BrokerError::new(
                ErrorKind::StorageFailed,
                format!(
                    "adding partitions to topic {name:?} failed and was rolled back (it keeps {before}): {e}"
                ),
            ));
        }
        tracing::info!(topic = %name, partitions = total, "added partitions");
        Ok(meta)
    }

    /// Hands out the next producer id (controller only). Ids come from a
    /// block reserved in the metadata file first, so none is ever handed
    /// out twice, even across restarts (the rest of a block is skipped).
    async fn controller_allocate_producer_id(&self) -> Result<i64, BrokerError> {
        assert_eq!(self.id, ShardId(0), "only the controller changes metadata");
        let _lock = self
            .controller_lock
            .acquire_permit(1)
            .await
            .map_err(|_| BrokerError::shutting_down())?;
        let (next, end) = self.producer_ids.get();
        if next < end {
            self.producer_ids.set((next + 1, end));
            return Ok(next);
        }
        let (snapshot, first) = self.snapshot().with_producer_block(PRODUCER_ID_BLOCK);
        let end = snapshot.next_producer_id;
        self.commit(Arc::new(snapshot)).await?;
        tracing::info!(first, end, "reserved a block of producer ids");
        self.producer_ids.set((first + 1, end));
        Ok(first)
    }

    /// Stores and deletes SCRAM credentials (controller only), with
    /// per-user results (see [`Snapshot::with_scram_changes`]): one save
    /// and one broadcast for the whole request, none if nothing changes.
    async fn controller_alter_scram_credentials(
        &self,
        upsertions: Vec<crate::security::ScramCredential>,
        deletions: Vec<(String, crate::security::ScramMechanism)>,
    ) -> Result<Vec<crate::meta::UserResult>, BrokerError> {
        assert_eq!(self.id, ShardId(0), "only the controller changes metadata");
        let _lock = self
            .controller_lock
            .acquire_permit(1)
            .await
            .map_err(|_| BrokerError::shutting_down())?;
        let stored: Vec<_> = upsertions
            .iter()
            .map(|c| (c.user.clone(), c.mechanism.name()))
            .collect();
        let deleted: Vec<_> = deletions
            .iter()
            .map(|(user, m)| (user.clone(), m.name()))
            .collect();
        let (next, results) = self.snapshot().with_scram_changes(upsertions, deletions);
        if let Some(next) = next {
            self.commit(Arc::new(next)).await?;
        }
        let ok = |user: &String| results.iter().any(|(u, r)| u == user && r.is_ok());
        for (user, mechanism) in stored.iter().filter(|(u, _)| ok(u)) {
            tracing::info!(%user, %mechanism, "stored a SCRAM credential");
        }
        for (user, mechanism) in deleted.iter().filter(|(u, _)| ok(u)) {
            tracing::info!(%user, %mechanism, "deleted a SCRAM credential");
        }
        Ok(results)
    }

    /// Adds ACLs (controller only); per binding, whether it is stored. One
    /// save and one broadcast for the whole request.
    async fn controller_create_acls(
        &self,
        bindings: Vec<crate::security::AclBinding>,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        assert_eq!(self.id, ShardId(0), "only the controller changes metadata");
        let _lock = self
            .controller_lock
            .acquire_permit(1)
            .await
            .map_err(|_| BrokerError::shutting_down())?;
        let asked = bindings.clone();
        let (next, results) = self.snapshot().with_acls(bindings);
        if let Some(next) = next {
            self.commit(Arc::new(next)).await?;
        }
        for (acl, _) in asked.iter().zip(&results).filter(|(_, r)| r.is_ok()) {
            tracing::info!(?acl, "created an ACL");
        }
        Ok(results)
    }

    /// Removes the ACLs `filters` select (controller only); per filter,
    /// those it selected. One save and one broadcast for the whole request.
    async fn controller_delete_acls(
        &self,
        filters: Vec<crate::security::AclFilter>,
    ) -> Result<Vec<Vec<crate::security::AclBinding>>, BrokerError> {
        assert_eq!(self.id, ShardId(0), "only the controller changes metadata");
        let _lock = self
            .controller_lock
            .acquire_permit(1)
            .await
            .map_err(|_| BrokerError::shutting_down())?;
        let (next, deleted) = self.snapshot().without_acls(&filters);
        if let Some(next) = next {
            self.commit(Arc::new(next)).await?;
            let removed: std::collections::BTreeSet<_> = deleted.iter().flatten().collect();
            for acl in removed {
                tracing::info!(?acl, "deleted an ACL");
            }
        }
        Ok(deleted)
    }

    /// Saves `next` and applies it on every shard; in a cluster, commits it
    /// through the controller quorum, whose applier does that on every
    /// broker.
    async fn commit(&self, next: Arc<Snapshot>) -> Result<(), BrokerError> {
        if let Some(quorum) = self.controller.get() {
            return quorum.commit(&next).await;
        }
        self.persist(next.clone()).await?;
        self.broadcast(next)
            .await
            .map_err(|e| BrokerError::new(ErrorKind::StorageFailed, e))
    }

    /// Writes a snapshot to the metadata file (off the executor).
    async fn persist(&self, next: Arc<Snapshot>) -> Result<(), BrokerError> {
        let data_dir = self.config.data_dir.clone();
        glommio::executor()
            .spawn_blocking(move || next.save(&data_dir))
            .await
            .map_err(|e| metadata_save_error(&e))
    }

    /// Deletes a topic (controller only): metadata first, then every owner
    /// closes its logs, then the files go.
    async fn controller_delete(&self, name: String) -> Result<(), BrokerError> {
        assert_eq!(self.id, ShardId(0), "only the controller changes metadata");
        let _lock = self
            .controller_lock
            .acquire_permit(1)
            .await
            .map_err(|_| BrokerError::shutting_down())?;
        let (next, _) = self
            .snapshot()
            .without_topic(&name)
            .map_err(BrokerError::from)?;
        self.commit(Arc::new(next)).await?;
        // In a cluster, the applier removed them (on every broker).
        if self.controller.get().is_none() {
            self.remove_topic_files(&name).await;
        }
        tracing::info!(topic = %name, "deleted topic");
        Ok(())
    }

    /// Removes a deleted topic's directory (off the executor). A failure is
    /// logged: the files go when the name is reused.
    async fn remove_topic_files(&self, name: &str) {
        let dir = self.config.data_dir.join(name);
        let removed = glommio::executor()
            .spawn_blocking(move || std::fs::remove_dir_all(&dir))
            .await;
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(topic = %name, error = %e, "removing a deleted topic's files failed; they are removed when the name is reused");
        }
    }

    /// Samples the free space of the data directory's file system every
    /// [`DISK_FREE_CHECK_MS`](crate::constants::DISK_FREE_CHECK_MS): one
    /// `statvfs` off the executor, never one per request.
    async fn disk_loop(self: Rc<Self>) {
        loop {
            let sleep =
                glommio::timer::sleep(Duration::from_millis(crate::constants::DISK_FREE_CHECK_MS));
            let stop = self.shutdown.wait();
            futures::pin_mut!(sleep, stop);
            if let futures::future::Either::Right(_) = futures::future::select(sleep, stop).await {
                return;
            }
            self.check_disk_space().await;
        }
    }

    /// Takes one sample of the free space and sets (or clears) the
    /// watermark refusal of produce requests. On shard 0, with space above
    /// the watermark, takes the metadata reserve again if a full disk made
    /// a metadata save give it up.
    async fn check_disk_space(&self) {
        let dir = self.config.data_dir.clone();
        let take_reserve = self.id == ShardId(0);
        let sample = glommio::executor()
            .spawn_blocking(move || disk_space(&dir))
            .await;
        let (available, total) = match sample {
            Ok(sample) => sample,
            Err(e) => {
                tracing::warn!(error = %e, "reading the data directory's free space failed");
                return;
            }
        };
        let min = self.config.disk_free_min(total);
        let low = (available < min).then_some((available, min));
        match (self.disk_low.get(), low) {
            (None, Some(_)) => {
                tracing::warn!(shard = %self.id, available, watermark = min, "free disk space is below --disk-free-min-bytes: produce requests are refused (DISK_FULL, retriable) until space is freed");
            }
            (Some(_), None) => {
                tracing::info!(shard = %self.id, available, watermark = min, "free disk space is above --disk-free-min-bytes again: produce requests are taken");
            }
            _ => {}
        }
        self.disk_low.set(low);
        if take_reserve && low.is_none() {
            let dir = self.config.data_dir.clone();
            let taken = glommio::executor()
                .spawn_blocking(move || crate::meta::ensure_reserve(&dir))
                .await;
            if let Ok(true) = taken {
                tracing::info!(
                    "took the metadata reserve (space for metadata saves on a full disk)"
                );
            }
        }
    }

    /// The refusal of a produce request while free space is below the
    /// watermark, if it is.
    pub(crate) fn disk_refusal(&self) -> Option<BrokerError> {
        self.disk_low.get().map(|(available, min)| {
            BrokerError::new(
                ErrorKind::DiskFull,
                format!(
                    "the broker's disk has {available} bytes free, below its --disk-free-min-bytes of {min}; retry once space is freed (delete topics, lower retention)"
                ),
            )
        })
    }

    /// Applies retention to this shard's logs every check interval.
    /// Expires group sessions and rebalance deadlines.
    async fn group_loop(self: Rc<Self>) {
        loop {
            let sleep =
                glommio::timer::sleep(Duration::from_millis(crate::constants::GROUP_TICK_MS));
            let stop = self.shutdown.wait();
            futures::pin_mut!(sleep, stop);
            if let futures::future::Either::Right(_) = futures::future::select(sleep, stop).await {
                return;
            }
            self.groups.tick(&self).await;
        }
    }

    /// Gives memory freed after a burst back to the OS (see
    /// [`crate::alloc::collect`]).
    async fn allocator_loop(self: Rc<Self>) {
        loop {
            let sleep =
                glommio::timer::sleep(Duration::from_millis(crate::alloc::PURGE_DELAY_MS as u64));
            let stop = self.shutdown.wait();
            futures::pin_mut!(sleep, stop);
            if let futures::future::Either::Right(_) = futures::future::select(sleep, stop).await {
                return;
            }
            crate::alloc::collect();
        }
    }

    /// With `--trace-latency`: logs the last second's produce latency
    /// breakdown (every shard's, see [`crate::trace`]) once a second.
    async fn trace_loop(self: Rc<Self>) {
        loop {
            let sleep = glommio::timer::sleep(Duration::from_secs(1));
            let stop = self.shutdown.wait();
            futures::pin_mut!(sleep, stop);
            if let futures::future::Either::Right(_) = futures::future::select(sleep, stop).await {
                return;
            }
            let stages = crate::trace::take_interval();
            if !stages.is_empty() {
                tracing::info!(
                    "produce latency breakdown, last second, µs p50/p99/max: {}",
                    crate::trace::line(&stages)
                );
            }
        }
    }

    async fn retention_loop(self: Rc<Self>) {
        loop {
            let sleep = glommio::timer::sleep(self.config.retention_check_interval);
            let stop = self.shutdown.wait();
            futures::pin_mut!(sleep, stop);
            if let futures::future::Either::Right(_) = futures::future::select(sleep, stop).await {
                return;
            }
            let logs: Vec<_> = self.logs.borrow().values().cloned().collect();
            for log in logs {
                if let Err(e) = log.enforce_retention(Timestamp::now()).await {
                    tracing::warn!(dir = %log.dir().display(), error = %e, "retention failed");
                }
                glommio::yield_if_needed().await;
            }
        }
    }

    /// Compacts this shard's `compact` logs every cleaner interval, one at
    /// a time, each pass throttled (see `PartitionLog::clean`).
    async fn cleaner_loop(self: Rc<Self>) {
        let options = crate::storage::CleanOptions {
            map_bytes_max: self.config.log_cleaner_map_bytes.max(1 << 10),
            bytes_per_sec: self.config.log_cleaner_bytes_per_sec,
        };
        loop {
            let sleep = glommio::timer::sleep(self.config.log_cleaner_interval);
            let stop = self.shutdown.wait();
            futures::pin_mut!(sleep, stop);
            if let futures::future::Either::Right(_) = futures::future::select(sleep, stop).await {
                return;
            }
            let logs: Vec<_> = self
                .logs
                .borrow()
                .values()
                .filter(|log| log.config().compact)
                .cloned()
                .collect();
            let shutdown = self.shutdown.clone();
            let stopping = move || shutdown.is_raised();
            for log in logs {
                if stopping() {
                    return;
                }
                if let Err(e) = log.clean(Timestamp::now(), &options, &stopping).await {
                    tracing::warn!(dir = %log.dir().display(), error = %e, "log compaction failed");
                }
                glommio::yield_if_needed().await;
            }
        }
    }

    /// Flushes, syncs and closes every log of this shard.
    async fn close_all_logs(&self) -> Result<(), String> {
        let logs: Vec<_> = self.logs.borrow_mut().drain().collect();
        let mut errors = Vec::new();
        for ((topic, partition), log) in logs {
            // A task that still holds the log (a request cut short) keeps
            // its Rc; wait briefly for it to finish.
            let mut log = log;
            let deadline = Instant::now() + Duration::from_secs(5);
            let owned = loop {
                match Rc::try_unwrap(log) {
                    Ok(owned) => break Some(owned),
                    Err(shared) if Instant::now() < deadline => {
                        log = shared;
                        glommio::timer::sleep(Duration::from_millis(5)).await;
                    }
                    Err(_) => break None,
                }
            };
            match owned {
                Some(log) => {
                    if let Err(e) = log.close().await {
                        errors.push(format!("{topic}/{partition}: {e}"));
                    }
                }
                None => errors.push(format!(
                    "{topic}/{partition}: still in use at shutdown; not closed cleanly"
                )),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootstrapUser;
    use crate::security::{ScramMechanism, scram};

    #[test]
    fn the_bootstrap_user_gets_both_credentials_once() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = crate::meta::TopicConfig::default();
        let user = BootstrapUser {
            name: "admin".into(),
            password: "first secret".into(),
        };
        let loaded = Snapshot::load(dir.path(), &defaults).unwrap();
        let made = bootstrap_user(dir.path(), loaded, &user).unwrap();
        let creds: Vec<_> = made.security.user_credentials("admin").collect();
        assert_eq!(creds.len(), 2);
        for c in &creds {
            assert_eq!(c.iterations, BOOTSTRAP_ITERATIONS);
            let again = scram::derive_credential(
                "admin",
                c.mechanism,
                b"first secret",
                &c.salt,
                c.iterations,
            );
            assert!(again == **c, "{:?} derives from the password", c.mechanism);
        }
        assert_ne!(creds[0].salt, creds[1].salt, "a salt of its own each");
        // Saved: a restart sees them, and leaves them alone even with
        // another password.
        let reloaded = Snapshot::load(dir.path(), &defaults).unwrap();
        assert_eq!(reloaded, made);
        let other = BootstrapUser {
            password: "changed".into(),
            ..user
        };
        let kept = bootstrap_user(dir.path(), reloaded, &other).unwrap();
        assert_eq!(kept, made);
        // One mechanism is enough to count as having credentials.
        let (one, _) = made.with_scram_changes(
            Vec::new(),
            vec![("admin".to_string(), ScramMechanism::Sha512)],
        );
        let one = one.unwrap();
        assert_eq!(
            bootstrap_user(dir.path(), one.clone(), &other).unwrap(),
            one
        );
    }
}
