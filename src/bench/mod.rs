//! `corelog bench`: the load generator and its reports.
//!
//! A run: (with no `--broker`) start a broker inside this process on a
//! temporary directory; create the topics; start the consumers, then the
//! producers, each on an executor thread of its own, all through the real
//! network path; warm up (not measured); measure; drain; write the report.
//!
//! * [`schedule`]: open-loop sending — latency from the scheduled time, so
//!   a stall is not hidden by coordinated omission.
//! * [`report`]: the summary, the table, `.hgrm` and `.hlog` files.
//! * [`svg`]: the charts. [`baseline`]: raw TCP and disk limits.
//! * `compare`: two reports side by side.
//!
//! Every message's value starts with the nanoseconds since the run's start
//! at which it was scheduled, then its sequence number; consumers compute
//! end-to-end latency from it (same process, same monotonic clock).

pub mod baseline;
mod compare;
pub mod report;
pub mod schedule;
pub mod svg;
pub mod workload;

use crate::cli::out::outln;
use crate::client::{
    Acks, Admin, BrokerStats, ClientError, Consumer, ConsumerConfig, GroupConfig, GroupConsumer,
    OffsetReset, PolledBatch, Producer, ProducerConfig, ProducerRecord, RoundTripHook, Routing,
    SeekTo, TopicSettings,
};
use crate::config::BrokerConfig;
use crate::trace::Stage;
use crate::types::FsyncPolicy;
use hdrhistogram::Histogram;
use report::{Baseline, Latency, Second, Summary, Throughput, new_histogram};
use schedule::Schedule;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use workload::{Mode, SizeRange, Workload};

#[derive(clap::ValueEnum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum RoutingArg {
    /// Connect to the shard that owns each partition.
    #[default]
    Direct,
    /// Send everything through the shared port.
    Shared,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Compare two reports: a table with ratios (B / A) and an overlaid chart.
    Compare {
        /// The first report's summary.json (the reference).
        a: PathBuf,
        /// The second report's summary.json.
        b: PathBuf,
        /// Where to write the overlaid chart [default: compare.svg].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::E2e)]
    pub mode: Mode,
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    #[arg(long, default_value_t = 1)]
    pub topics: u32,
    /// Partitions per topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Topics are named PREFIX-0, PREFIX-1, …
    #[arg(long, default_value = "bench")]
    pub topic_prefix: String,
    /// Bytes per message value, or a range MIN..MAX drawn uniformly.
    #[arg(long, default_value = "1024")]
    pub message_size: SizeRange,
    /// Give every message a key (10,000 distinct keys).
    #[arg(long)]
    pub keyed: bool,
    /// Producer batch size in bytes.
    #[arg(long, default_value_t = 256 << 10)]
    pub batch_bytes: usize,
    /// How long a batch may wait to fill (ms).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// 0 (no answer), 1 (appended) or all (on stable media).
    #[arg(long, default_value = "1")]
    pub acks: Acks,
    /// fsync policy of the topics the run creates: always, interval:MS, never.
    #[arg(long, default_value = "never")]
    pub fsync: FsyncPolicy,
    /// Producers compress each batch: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: crate::record::Compression,
    /// The protocol producers and consumers speak: native (corelog's own)
    /// or kafka (Kafka's, to the broker's Kafka listener, with the requests
    /// librdkafka 2.0 sends).
    #[arg(long, default_value = "native")]
    pub protocol: crate::client::Wire,
    /// Total messages over all producers (default: run for --duration). In
    /// consume mode: the backlog filled first and then read once; without
    /// it, 1,000,000 messages are filled and read over and over for
    /// --duration.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds to run before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Target messages per second over all producers, open loop (default:
    /// as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// direct: to each partition's own shard; shared: through the shared port.
    #[arg(long, value_enum, default_value_t = RoutingArg::Direct)]
    pub routing: RoutingArg,
    /// e2e at unlimited rate: producers pause while consumers are more than
    /// this many bytes behind, so the figures are what producers and
    /// consumers sustain together (0: no limit, the backlog may grow)
    /// [default: one batch per partition, at least 4 MiB].
    #[arg(long)]
    pub max_lag_bytes: Option<u64>,
    /// Consumers join this consumer group (native protocol; the broker
    /// assigns partitions) instead of being dealt partitions round robin;
    /// the report adds the time the group took to settle and each
    /// member's throughput.
    #[arg(long)]
    pub group: Option<String>,
    /// An external broker (default: start one inside this process on a
    /// temporary directory).
    #[arg(long)]
    pub broker: Option<SocketAddr>,
    /// With --broker: connect with TLS, trusting this PEM CA (a broker
    /// with --native-security tls).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// With --broker and --protocol kafka: the broker's Kafka listener
    /// (topics are still set up through --broker).
    #[arg(long)]
    pub kafka_broker: Option<SocketAddr>,
    /// Shards of the embedded broker [default: every online CPU].
    #[arg(long)]
    pub cores: Option<usize>,
    /// With --protocol kafka: start the embedded broker in the shard-aware
    /// Kafka mode (`corelog serve --kafka-shard-brokers`), so clients
    /// connect to each partition's shard.
    #[arg(long)]
    pub kafka_shard_brokers: bool,
    /// Directory for the report [default: bench-results/<UTC date-time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also measure a loopback TCP sink and direct-I/O disk writes for the
    /// same bytes, and print the broker's figures as fractions of them.
    #[arg(long)]
    pub baseline: bool,
    /// Also measure where produce requests spend their time, stage by
    /// stage (client queue, round trip, and with the embedded broker its
    /// receive, queue, append, device write, fsync wait and answer), and
    /// print the breakdown (latency-breakdown.json in the report). An
    /// external broker logs its own stages when started with `corelog
    /// serve --trace-latency`.
    #[arg(long)]
    pub trace_latency: bool,
    /// Do not create missing topics (the broker's error is reported).
    #[arg(long)]
    pub no_create: bool,
    /// No progress line every second.
    #[arg(long)]
    pub quiet: bool,
    /// Read flags from a TOML file of `flag = value` lines (`partitions =
    /// 16`, `message-size = "100"`, `keyed = true`); flags on the command
    /// line win. perf/workloads/ holds the standard ones.
    #[arg(long, value_name = "FILE.toml")]
    pub workload: Option<PathBuf>,
}

/// `corelog bench` alone, to re-parse with a workload file's flags.
#[derive(clap::Parser, Debug)]
#[command(name = "corelog bench", args_override_self = true)]
struct BenchOnly {
    #[command(flatten)]
    args: BenchArgs,
}

/// Turns a workload file into flags: each `key = value` becomes
/// `--key value` (`key = true` becomes `--key`; `false` leaves it out).
pub fn workload_file_flags(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading workload file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("workload file {}: {e}", path.display()))?;
    let mut flags = Vec::new();
    for (key, value) in table {
        if key == "workload" {
            return Err(format!(
                "workload file {}: a workload file cannot name another",
                path.display()
            ));
        }
        let flag = format!("--{key}");
        match value {
            toml::Value::Boolean(true) => flags.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(v) => flags.extend([flag, v]),
            toml::Value::Integer(v) => flags.extend([flag, v.to_string()]),
            toml::Value::Float(v) => flags.extend([flag, v.to_string()]),
            other => {
                return Err(format!(
                    "workload file {}: {key} = {other} is not a flag value (use a string, number or true/false)",
                    path.display()
                ));
            }
        }
    }
    Ok(flags)
}

/// Applies `--workload FILE`: the file's flags first, then the command
/// line's (which override them).
fn with_workload_file(args: BenchArgs) -> Result<BenchArgs, String> {
    let Some(path) = args.workload.clone() else {
        return Ok(args);
    };
    let mut argv = vec!["corelog bench".to_string()];
    argv.extend(workload_file_flags(&path)?);
    // The command line after `bench`, as given.
    let cli: Vec<String> = std::env::args().collect();
    if let Some(at) = cli.iter().position(|a| a == "bench") {
        argv.extend(cli[at + 1..].iter().cloned());
    }
    use clap::Parser;
    BenchOnly::try_parse_from(&argv)
        .map(|b| b.args)
        .map_err(|e| format!("workload file {}: {e}", path.display()))
}

impl BenchArgs {
    fn workload(&self) -> Workload {
        Workload {
            mode: self.mode,
            producers: self.producers,
            consumers: if self.mode == Mode::Produce {
                0
            } else {
                self.consumers
            },
            topics: self.topics,
            partitions: self.partitions,
            topic_prefix: self.topic_prefix.clone(),
            message_size: self.message_size,
            keyed: self.keyed,
            batch_bytes: self.batch_bytes,
            linger_ms: self.linger_ms,
            compression: self.compression.to_string(),
            protocol: self.protocol.to_string(),
            acks: match self.acks {
                Acks::None => "0",
                Acks::Leader => "1",
                Acks::All => "all",
            }
            .into(),
            fsync: if self.no_create {
                "existing".into()
            } else {
                self.fsync.to_string()
            },
            messages: self.messages,
            duration_secs: self.duration,
            warmup_secs: self.warmup,
            rate: self.rate,
            routing: match self.routing {
                RoutingArg::Direct => "direct",
                RoutingArg::Shared => "shared",
            }
            .into(),
            group: self.group.clone(),
            max_lag_bytes: if self.mode == Mode::E2e && self.rate.is_none() {
                self.max_lag_bytes.unwrap_or_else(|| {
                    let partitions = self.topics as u64 * self.partitions as u64;
                    (partitions * self.batch_bytes as u64).max(4 << 20)
                })
            } else {
                0
            },
        }
    }
}

/// Runs `corelog bench` (or `corelog bench compare`).
pub fn run(args: BenchArgs) -> Result<(), String> {
    if let Some(BenchCommand::Compare { a, b, out }) = args.command {
        return compare::run(&a, &b, out.as_deref());
    }
    let args = with_workload_file(args)?;
    let workload = args.workload();
    workload.validate()?;
    if let Some(ca) = &args.tls_ca {
        let config = crate::security::tls::client_config(&crate::security::tls::ClientTlsFiles {
            ca: Some(ca.clone()),
            cert: None,
            key: None,
        })?;
        crate::client::set_tls(crate::client::ClientTls {
            config,
            server_name: None,
        });
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, interrupted.clone())
            .map_err(|e| format!("installing the Ctrl-C handler: {e}"))?;
    }
    let out_dir = args.out.clone().unwrap_or_else(|| {
        let stamp = report::utc_rfc3339(SystemTime::now())
            .replace([':', '-'], "")
            .replace('T', "-")
            .trim_end_matches('Z')
            .to_string();
        PathBuf::from("bench-results").join(stamp)
    });
    let kafka = args.protocol == crate::client::Wire::Kafka;
    if args.group.is_some() && (kafka || args.mode == Mode::Produce) {
        return Err("--group makes the consumers members of a consumer group over the native protocol: it needs --protocol native and --mode consume or e2e".into());
    }
    if args.kafka_shard_brokers && (!kafka || args.broker.is_some()) {
        return Err("--kafka-shard-brokers starts the embedded broker in the shard-aware Kafka mode: it needs --protocol kafka and no --broker (start an external broker with `corelog serve --kafka-shard-brokers`)".into());
    }
    let embedded = match args.broker {
        Some(_) => None,
        None => Some(Embedded::start(
            args.cores,
            kafka,
            args.kafka_shard_brokers,
        )?),
    };
    let addr = args
        .broker
        .unwrap_or_else(|| embedded.as_ref().unwrap().addr);
    // Where producers and consumers connect: the native port, or the
    // Kafka listener.
    let client_addr = match (kafka, &embedded, args.kafka_broker) {
        (false, _, _) => addr,
        (true, Some(e), _) => e.kafka.expect("the embedded broker has a Kafka listener"),
        (true, None, Some(k)) => k,
        (true, None, None) => {
            return Err("--protocol kafka with --broker needs --kafka-broker HOST:PORT too".into());
        }
    };
    let broker_text = match &embedded {
        Some(e) => format!(
            "embedded, {} shards{}, data in {} (removed after)",
            e.shards,
            if args.kafka_shard_brokers {
                ", Kafka shard-brokers"
            } else {
                ""
            },
            e.dir.display()
        ),
        None => addr.to_string(),
    };
    if !args.quiet {
        eprintln!(
            "corelog bench: {} mode against {broker_text}; report in {}",
            workload.mode,
            out_dir.display()
        );
    }
    setup_topics(addr, &workload, args.no_create, args.fsync)?;
    if args.trace_latency {
        crate::trace::enable(true);
    }
    let started_at = SystemTime::now();
    let outcome = execute(client_addr, addr, &workload, interrupted, args.quiet)?;
    let mut summary = summarize(
        &workload,
        &outcome,
        broker_text,
        started_at,
        embedded.is_some(),
    );
    if args.baseline && !outcome.interrupted {
        let disk_dir = embedded
            .as_ref()
            .map_or_else(std::env::temp_dir, |e| e.dir.clone());
        summary.baseline = Some(measure_baseline(&summary, &disk_dir, args.quiet)?);
    }
    if let Some(e) = embedded {
        e.stop()?;
    }
    write_report(&out_dir, &summary, &outcome, started_at)?;
    // Every file is written before anything is printed: printing ends the
    // process if stdout's reader has gone (`corelog bench | head -3`).
    let breakdown = if args.trace_latency {
        Some(write_breakdown(&out_dir)?)
    } else {
        None
    };
    outln!("{}", summary.table());
    if let Some(stages) = breakdown {
        print_breakdown(&stages, args.broker.is_some());
    }
    outln!("report: {}", out_dir.display());
    if outcome.interrupted {
        return Err("interrupted; the report covers what ran".into());
    }
    match (&summary.first_error, summary.errors) {
        (Some(e), n)
            if n > 0
                && summary.produce.as_ref().is_none_or(|t| t.messages == 0)
                && summary.consume.as_ref().is_none_or(|t| t.messages == 0) =>
        {
            Err(format!("the workload failed: {e}"))
        }
        _ => Ok(()),
    }
}

/// The broker's CPU seconds over the measured phase, from its stats at the
/// start and the end, and what they cover. An embedded broker shares this
/// process with the bench's clients, so only its shard threads count; an
/// external broker's whole process does. `None` if the broker did not tell
/// (an older broker answers 0).
fn broker_cpu(
    stats: &(Option<BrokerStats>, Option<BrokerStats>),
    embedded: bool,
) -> Option<(f64, &'static str)> {
    let (Some(start), Some(end)) = stats else {
        return None;
    };
    let (seconds, scope) = if embedded {
        (
            end.shard_cpu_seconds() - start.shard_cpu_seconds(),
            report::CPU_SCOPE_SHARDS,
        )
    } else {
        (
            end.process_cpu_seconds() - start.process_cpu_seconds(),
            report::CPU_SCOPE_PROCESS,
        )
    };
    let told = if embedded {
        end.shard_cpu_seconds() > 0.0
    } else {
        end.process_cpu_seconds() > 0.0
    };
    (told && seconds >= 0.0).then_some((seconds, scope))
}

/// The disk read baseline reads at least this much (a file grown past the
/// run's bytes if needed): enough for a steady figure.
const DISK_READ_BASELINE_BYTES_MIN: u64 = 1 << 30;

/// The run's figures as the report states them.
fn summarize(
    workload: &Workload,
    outcome: &Outcome,
    broker_text: String,
    started_at: SystemTime,
    embedded: bool,
) -> Summary {
    let mut summary = Summary {
        corelog_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: option_env!("CORELOG_GIT_COMMIT")
            .unwrap_or("unknown")
            .into(),
        started_at: report::utc_rfc3339(started_at),
        machine: report::Machine::describe(),
        broker: broker_text,
        workload: workload.clone(),
        interrupted: outcome.interrupted,
        measured_seconds: outcome.measured_secs,
        produce: (workload.mode != Mode::Consume).then(|| {
            Throughput::new(
                outcome.produced.0,
                outcome.produced.1,
                outcome.measured_secs,
            )
        }),
        consume: (workload.mode != Mode::Produce).then(|| {
            Throughput::new(
                outcome.consumed.0,
                outcome.consumed.1,
                outcome.measured_secs,
            )
        }),
        produce_latency_us: (workload.mode != Mode::Consume
            && !outcome.produce_latency.total.is_empty())
        .then(|| Latency::of(&outcome.produce_latency.total)),
        e2e_latency_us: (workload.mode == Mode::E2e && !outcome.e2e_latency.total.is_empty())
            .then(|| Latency::of(&outcome.e2e_latency.total)),
        round_trip_latency_us: (!outcome.produce_round_trip.total.is_empty())
            .then(|| Latency::of(&outcome.produce_round_trip.total)),
        fetch_round_trip_latency_us: (!outcome.fetch_round_trip.total.is_empty())
            .then(|| Latency::of(&outcome.fetch_round_trip.total)),
        per_second: outcome.per_second.clone(),
        baseline: None,
        errors: outcome.errors,
        first_error: outcome.first_error.clone(),
        group: outcome.group.clone(),
        ..Summary::default()
    };
    if let Some((seconds, scope)) = broker_cpu(&outcome.broker_stats, embedded) {
        summary.broker_cpu_seconds = Some(seconds);
        summary.broker_cpu_scope = Some(scope.into());
        summary.broker_cpu_seconds_per_gb_produced = summary
            .produce
            .as_ref()
            .filter(|t| t.bytes > 0)
            .map(|t| seconds / (t.bytes as f64 / 1e9));
    }
    summary
}

/// A loopback TCP sink, and direct-I/O writes to and reads from
/// `disk_dir`, for as many bytes as the run moved (64 MiB to 4 GiB).
fn measure_baseline(summary: &Summary, disk_dir: &Path, quiet: bool) -> Result<Baseline, String> {
    let bytes = summary
        .produce
        .as_ref()
        .or(summary.consume.as_ref())
        .map_or(0, |t| t.bytes)
        .clamp(64 << 20, 4 << 30);
    if !quiet {
        eprintln!(
            "measuring the baseline: {:.0} MB through loopback TCP, and written to {} with direct I/O and read back",
            bytes as f64 / 1e6,
            disk_dir.display()
        );
    }
    let tcp_mb_per_s = baseline::tcp_sink(bytes)?;
    let disk = baseline::direct_write_read(disk_dir, bytes, DISK_READ_BASELINE_BYTES_MIN)?;
    Ok(Baseline {
        tcp_mb_per_s,
        disk_mb_per_s: disk.write_mb_per_s,
        bytes,
        disk_read_mb_per_s: disk.read_mb_per_s,
        disk_read_bytes: disk.read_bytes,
        disk_read_io_bytes: baseline::READ_IO_BYTES as u64,
        disk_reads_in_flight: baseline::READS_IN_FLIGHT as u32,
    })
}

/// Writes `latency-breakdown.json`, the measured phase's produce latency
/// breakdown (see [`crate::trace`]), then switches tracing off.
fn write_breakdown(out_dir: &Path) -> Result<Vec<(Stage, Histogram<u64>)>, String> {
    let stages = crate::trace::totals();
    crate::trace::enable(false);
    let path = out_dir.join("latency-breakdown.json");
    let json =
        serde_json::to_string_pretty(&crate::trace::json(&stages)).map_err(|e| e.to_string())?;
    std::fs::write(&path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(stages)
}

/// Prints the breakdown [`write_breakdown`] wrote. `external`: the broker
/// runs elsewhere, so only client stages exist.
fn print_breakdown(stages: &[(Stage, Histogram<u64>)], external: bool) {
    outln!(
        "produce latency breakdown, measured phase, per request (device writes: per write chunk):\n{}",
        crate::trace::table(stages)
    );
    if external {
        outln!(
            "(client stages only: the broker's own stages are in its log when it runs with `corelog serve --trace-latency`)"
        );
    }
}

/// A broker started inside this process for the run. Dropped without
/// [`Embedded::stop`] (a run that failed part way), it still shuts the
/// broker down and removes its directory.
struct Embedded {
    broker: Option<crate::server::BrokerHandle>,
    addr: SocketAddr,
    /// The Kafka listener, when the run speaks Kafka.
    kafka: Option<SocketAddr>,
    dir: PathBuf,
    shards: usize,
}

impl Embedded {
    fn start(cores: Option<usize>, kafka: bool, shard_brokers: bool) -> Result<Embedded, String> {
        let dir = crate::support::tempfile_dir()?;
        let mut config = BrokerConfig::new(&dir);
        config.listen = "127.0.0.1:0".parse().unwrap();
        // Consumer-group rebalances take a few heartbeat rounds: a short
        // interval lets a --group run settle in well under a second.
        config.group_consumer_heartbeat_interval = Duration::from_millis(100);
        if kafka {
            config.kafka_listen = Some("127.0.0.1:0".parse().unwrap());
            config.kafka_shard_brokers = shard_brokers;
        }
        if let Some(cores) = cores {
            config.cores = cores;
        }
        let shards = config.cores;
        let broker = crate::server::start(config).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        Ok(Embedded {
            addr: broker.addr,
            kafka: broker.kafka_addr,
            broker: Some(broker),
            dir,
            shards,
        })
    }

    fn stop(mut self) -> Result<(), String> {
        self.shutdown()
            .map_err(|e| format!("the embedded broker stopped with an error: {e}"))
    }

    fn shutdown(&mut self) -> Result<(), String> {
        let Some(broker) = self.broker.take() else {
            return Ok(());
        };
        broker.shutdown();
        let result = broker.join();
        let _ = std::fs::remove_dir_all(&self.dir);
        result
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Creates the workload's topics that do not exist (unless `no_create`).
fn setup_topics(
    addr: SocketAddr,
    workload: &Workload,
    no_create: bool,
    fsync: FsyncPolicy,
) -> Result<(), String> {
    let names = workload.topic_names();
    let partitions = workload.partitions;
    crate::support::run_client(move || async move {
        let admin = Admin::connect(addr).await.map_err(|e| e.to_string())?;
        let existing: Vec<String> = admin
            .list_topics()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|t| t.name)
            .collect();
        for name in names {
            if no_create || existing.contains(&name) {
                // The broker's own answer says what is wrong, if anything.
                let topic = admin
                    .describe_topic(&name)
                    .await
                    .map_err(|e| format!("topic {name} on broker {addr}: {e}"))?;
                if (topic.partitions.len() as u32) < partitions {
                    return Err(format!(
                        "topic {name} on broker {addr} has {} partitions; the workload needs {partitions} (--partitions)",
                        topic.partitions.len()
                    ));
                }
                continue;
            }
            let settings = TopicSettings {
                fsync: Some(fsync),
                ..TopicSettings::default()
            };
            admin
                .create_topic(&name, partitions, &settings)
                .await
                .map_err(|e| format!("creating topic {name}: {e}"))?;
        }
        Ok(())
    })
}

/// Latency histograms of one side: the measured phase, and per second.
struct Hists {
    total: Histogram<u64>,
    intervals: Vec<Histogram<u64>>,
}

impl Hists {
    fn new() -> Hists {
        Hists {
            total: new_histogram(),
            intervals: Vec::new(),
        }
    }

    /// Records `latency_us` of a message scheduled at `due_ns` and done in
    /// second `second` of the run.
    fn record(&mut self, ctx: &Ctx, due_ns: u64, second: usize, latency_us: u64) {
        let v = latency_us.clamp(1, 3_600_000_000);
        while self.intervals.len() <= second {
            self.intervals.push(new_histogram());
        }
        let _ = self.intervals[second].record(v);
        if due_ns >= ctx.warmup_end_ns && due_ns < ctx.end_ns.load(Ordering::Relaxed) {
            let _ = self.total.record(v);
        }
    }

    fn merge(&mut self, other: Hists) {
        let _ = self.total.add(&other.total);
        for (i, h) in other.intervals.into_iter().enumerate() {
            if i < self.intervals.len() {
                let _ = self.intervals[i].add(&h);
            } else {
                self.intervals.push(h);
            }
        }
    }
}

/// What every producer and consumer thread shares.
/// Each consumer's (messages, bytes) read so far.
type MemberCounts = Vec<(u64, u64)>;

struct Ctx {
    addr: SocketAddr,
    workload: Workload,
    topics: Vec<String>,
    /// Time zero of the run (messages carry nanoseconds since it).
    base: Instant,
    warmup_end_ns: u64,
    /// Messages scheduled at or after this are not measured (u64::MAX until
    /// the end is known).
    end_ns: AtomicU64,
    stop_producers: AtomicBool,
    stop_consumers: AtomicBool,
    /// Messages handed to the producers' clients (acknowledged or not).
    sent_msgs: AtomicU64,
    produced_msgs: AtomicU64,
    produced_bytes: AtomicU64,
    consumed_msgs: AtomicU64,
    consumed_bytes: AtomicU64,
    consumers_ready: AtomicU32,
    /// With a group: partitions each member owns now.
    member_owned: Vec<AtomicU32>,
    /// Messages and bytes each consumer read.
    member_msgs: Vec<AtomicU64>,
    member_bytes: Vec<AtomicU64>,
    /// Each consumer's (messages, bytes) at the start and the end of the
    /// measured phase.
    member_window: Mutex<(MemberCounts, MemberCounts)>,
    /// With a group: how long after a member's subscribe it settled (every
    /// partition owned, every member with some); `None`: not yet.
    group_settled: Mutex<Option<Duration>>,
    producers_done: AtomicU32,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Where to ask the broker for its stats (its native port), if the
    /// run reads them.
    stats_addr: Option<SocketAddr>,
    /// The broker's stats at the start and the end of the measured phase.
    broker_stats: Mutex<(Option<BrokerStats>, Option<BrokerStats>)>,
}

impl Ctx {
    fn new(addr: SocketAddr, workload: Workload, base: Instant) -> Ctx {
        let members = workload.consumers;
        Ctx {
            addr,
            topics: workload.topic_names(),
            base,
            warmup_end_ns: workload.warmup_secs * 1_000_000_000,
            workload,
            end_ns: AtomicU64::new(u64::MAX),
            stop_producers: AtomicBool::new(false),
            stop_consumers: AtomicBool::new(false),
            sent_msgs: AtomicU64::new(0),
            produced_msgs: AtomicU64::new(0),
            produced_bytes: AtomicU64::new(0),
            consumed_msgs: AtomicU64::new(0),
            consumed_bytes: AtomicU64::new(0),
            consumers_ready: AtomicU32::new(0),
            member_owned: (0..members).map(|_| AtomicU32::new(0)).collect(),
            member_msgs: (0..members).map(|_| AtomicU64::new(0)).collect(),
            member_bytes: (0..members).map(|_| AtomicU64::new(0)).collect(),
            member_window: Mutex::new((Vec::new(), Vec::new())),
            group_settled: Mutex::new(None),
            producers_done: AtomicU32::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            stats_addr: None,
            broker_stats: Mutex::new((None, None)),
        }
    }

    /// The broker's stats now (`None` if the run does not read them or the
    /// broker did not answer: the report then has no CPU figures).
    fn read_broker_stats(&self) -> Option<BrokerStats> {
        let addr = self.stats_addr?;
        let (tx, rx) = std::sync::mpsc::channel();
        let read = crate::support::run_client(move || async move {
            let admin = Admin::connect(addr).await.map_err(|e| e.to_string())?;
            let stats = admin.stats().await.map_err(|e| e.to_string())?;
            let _ = tx.send(stats);
            Ok(())
        });
        match (read, rx.try_recv()) {
            (Ok(()), Ok(stats)) => Some(stats),
            (Err(e), _) => {
                tracing::warn!(error = %e, "reading the broker's stats failed; no CPU figures");
                None
            }
            _ => None,
        }
    }

    fn member_counts(&self) -> Vec<(u64, u64)> {
        self.member_msgs
            .iter()
            .zip(&self.member_bytes)
            .map(|(m, b)| (m.load(Ordering::Relaxed), b.load(Ordering::Relaxed)))
            .collect()
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn second(&self, t: Instant) -> usize {
        t.saturating_duration_since(self.base).as_secs() as usize
    }

    fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap();
        if first.is_none() {
            *first = Some(e.to_string());
        }
    }
}

/// What a run measured.
struct Outcome {
    group: Option<report::GroupFigures>,
    interrupted: bool,
    measured_secs: f64,
    produced: (u64, u64),
    consumed: (u64, u64),
    produce_latency: Hists,
    e2e_latency: Hists,
    /// Per request: produce sent → answered, fetch sent → answered.
    produce_round_trip: Hists,
    fetch_round_trip: Hists,
    per_second: Vec<Second>,
    /// The broker's stats at the start and the end of the measured phase.
    broker_stats: (Option<BrokerStats>, Option<BrokerStats>),
    errors: u64,
    first_error: Option<String>,
}

/// A small deterministic generator for sizes and keys.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Starts the consumers, then the producers, and monitors the run to its
/// end.
fn execute(
    addr: SocketAddr,
    stats_addr: SocketAddr,
    workload: &Workload,
    interrupted: Arc<AtomicBool>,
    quiet: bool,
) -> Result<Outcome, String> {
    let consume_mode = workload.mode == Mode::Consume;
    if consume_mode {
        prefill(addr, workload, &interrupted, quiet)?;
    }
    // Consumers first (they start at the end, or at the beginning to
    // read a prefilled topic), then time zero, then the producers.
    let provisional = Instant::now();
    let ctx = Arc::new(Ctx {
        stats_addr: Some(stats_addr),
        ..Ctx::new(addr, workload.clone(), provisional)
    });
    let consumers = spawn_consumers(
        &ctx,
        if consume_mode {
            SeekTo::Earliest
        } else {
            SeekTo::Latest
        },
    )?;
    let ready_by = Instant::now() + Duration::from_secs(30);
    while ctx.consumers_ready.load(Ordering::SeqCst) < consumers.len() as u32 {
        if ctx.errors.load(Ordering::SeqCst) > 0
            && ctx.consumers_ready.load(Ordering::SeqCst)
                + (ctx.errors.load(Ordering::SeqCst) as u32)
                >= consumers.len() as u32
        {
            break;
        }
        if Instant::now() > ready_by {
            return Err("consumers did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let producers = if consume_mode {
        Vec::new()
    } else {
        spawn_producers(&ctx)?
    };
    let outcome = monitor(&ctx, &interrupted, quiet, producers.len(), consumers);
    let produced_hists = join_all(&ctx, producers, "producer");
    let (measured_secs, produced, consumed, mut per_second, consumed_hists) = outcome?;
    // Each second's worst latencies, to find stalls.
    let max_of = |h: &Hists, second: u32| {
        h.intervals
            .get(second as usize)
            .filter(|h| !h.is_empty())
            .map(|h| h.max())
    };
    for s in &mut per_second {
        s.produce_latency_max_us = max_of(&produced_hists.latency, s.second);
        s.e2e_latency_max_us = max_of(&consumed_hists.latency, s.second);
    }
    let group = workload.group.as_ref().map(|name| {
        let window = ctx.member_window.lock().unwrap();
        report::GroupFigures {
            group: name.clone(),
            settle_ms: ctx
                .group_settled
                .lock()
                .unwrap()
                .map(|d| d.as_secs_f64() * 1000.0),
            members: window
                .0
                .iter()
                .zip(&window.1)
                .map(|(start, end)| {
                    Throughput::new(end.0 - start.0, end.1 - start.1, measured_secs)
                })
                .collect(),
        }
    });
    Ok(Outcome {
        group,
        interrupted: interrupted.load(Ordering::SeqCst),
        measured_secs,
        produced,
        consumed,
        produce_latency: produced_hists.latency,
        e2e_latency: consumed_hists.latency,
        produce_round_trip: produced_hists.round_trip,
        fetch_round_trip: consumed_hists.round_trip,
        per_second,
        broker_stats: ctx.broker_stats.lock().unwrap().clone(),
        errors: ctx.errors.load(Ordering::SeqCst),
        first_error: ctx.first_error.lock().unwrap().clone(),
    })
}

type Joined = std::thread::JoinHandle<Result<ClientHists, String>>;

/// What one client thread measured: per-record latency (produce→ack or
/// end to end) and per-request round trips (produce or fetch).
struct ClientHists {
    latency: Hists,
    round_trip: Hists,
}

impl ClientHists {
    fn new() -> ClientHists {
        ClientHists {
            latency: Hists::new(),
            round_trip: Hists::new(),
        }
    }

    fn merge(&mut self, other: ClientHists) {
        self.latency.merge(other.latency);
        self.round_trip.merge(other.round_trip);
    }
}

/// A round-trip hook that records each request, by its send time (measured
/// if sent in the measured phase) and the second it was answered, into
/// histograms of this client thread.
fn round_trip_hook(ctx: &Arc<Ctx>) -> (RoundTripHook, Rc<RefCell<Hists>>) {
    let hists = Rc::new(RefCell::new(Hists::new()));
    let hook = {
        let (ctx, hists) = (ctx.clone(), hists.clone());
        RoundTripHook::new(move |sent, took| {
            let now = sent + took;
            hists
                .borrow_mut()
                .record(&ctx, ctx.ns(sent), ctx.second(now), took.as_micros() as u64);
        })
    };
    (hook, hists)
}

/// The round trips a hook recorded, once the client that held it is gone
/// (or still holds it: then they are copied).
fn take_round_trips(hists: Rc<RefCell<Hists>>) -> Hists {
    Rc::try_unwrap(hists)
        .map(RefCell::into_inner)
        .unwrap_or_else(|rc| rc.replace(Hists::new()))
}

/// Open loop: the producer sleeps at least this long when it is ahead of
/// its schedule, then sends every record that fell due meanwhile. A record
/// may thus leave up to this late; its latency still counts from its due
/// time, so the pacing shows in the figures instead of hiding.
const PACING_QUANTUM: Duration = Duration::from_micros(100);

/// Records a producer may have sent and not yet seen acknowledged.
const ACKS_QUEUED_MAX: usize = 1 << 16;

/// Joins client threads, merging their histograms and counting failures.
fn join_all(ctx: &Ctx, threads: Vec<Joined>, what: &str) -> ClientHists {
    let mut merged = ClientHists::new();
    for t in threads {
        match t.join() {
            Ok(Ok(h)) => merged.merge(h),
            Ok(Err(e)) => ctx.error(e),
            Err(_) => ctx.error(format!("a {what} thread panicked")),
        }
    }
    merged
}
type MonitorResult = Result<(f64, (u64, u64), (u64, u64), Vec<Second>, ClientHists), String>;

/// Ticks every second: progress, the per-second series, the warm-up and
/// end boundaries, stopping and draining. Returns the measured seconds,
/// (msgs, bytes) produced and consumed in the measured phase, the series
/// and the merged end-to-end histograms.
fn monitor(
    ctx: &Arc<Ctx>,
    interrupted: &AtomicBool,
    quiet: bool,
    producers: usize,
    consumers: Vec<Joined>,
) -> MonitorResult {
    let w = &ctx.workload;
    let consume_mode = w.mode == Mode::Consume;
    let snapshot = || {
        (
            ctx.produced_msgs.load(Ordering::Relaxed),
            ctx.produced_bytes.load(Ordering::Relaxed),
            ctx.consumed_msgs.load(Ordering::Relaxed),
            ctx.consumed_bytes.load(Ordering::Relaxed),
        )
    };
    let warmup = Duration::from_secs(w.warmup_secs);
    let timed_end = w
        .messages
        .is_none()
        .then(|| warmup + Duration::from_secs(w.duration_secs));
    let target = w.messages;
    let mut series = Vec::new();
    let mut last = snapshot();
    let mut at_warmup = if w.warmup_secs == 0 {
        ctx.member_window.lock().unwrap().0 = ctx.member_counts();
        ctx.broker_stats.lock().unwrap().0 = ctx.read_broker_stats();
        Some((snapshot(), Instant::now()))
    } else {
        None
    };
    let mut second = 0u32;
    let finished_at: (Instant, (u64, u64, u64, u64));
    loop {
        let tick = ctx.base + Duration::from_secs(second as u64 + 1);
        // Sleep to the next tick, checking for completion and Ctrl-C often.
        let mut done = None;
        while Instant::now() < tick {
            std::thread::sleep(
                Duration::from_millis(5).min(tick.saturating_duration_since(Instant::now())),
            );
            let now = snapshot();
            // A message-count run is complete when every producer finished
            // (each flushes and waits for its acks first), or, reading a
            // prefilled topic, when everything was consumed.
            let complete = match (target, consume_mode) {
                (Some(_), false) => ctx.producers_done.load(Ordering::SeqCst) as usize == producers,
                (Some(n), true) => now.2 >= n,
                (None, _) => false,
            };
            let failed = producers > 0
                && ctx.producers_done.load(Ordering::SeqCst) as usize == producers
                && target.is_none();
            if interrupted.load(Ordering::SeqCst) || complete || failed {
                done = Some((Instant::now(), now));
                break;
            }
        }
        let now = snapshot();
        second += 1;
        let sample = Second {
            second: second - 1,
            warmup: (second as u64) <= w.warmup_secs,
            produced_msgs: now.0 - last.0,
            produced_bytes: now.1 - last.1,
            consumed_msgs: now.2 - last.2,
            consumed_bytes: now.3 - last.3,
            // Filled in once the clients' histograms are merged.
            ..Second::default()
        };
        last = now;
        if !quiet {
            let phase = if sample.warmup { "warm-up" } else { "measure" };
            let mut parts = Vec::with_capacity(3);
            if !consume_mode {
                parts.push(format!(
                    "produced {:>8.1} MB/s {:>9.0} msg/s",
                    sample.produced_bytes as f64 / 1e6,
                    sample.produced_msgs as f64
                ));
            }
            if w.mode != Mode::Produce {
                parts.push(format!(
                    "consumed {:>8.1} MB/s {:>9.0} msg/s",
                    sample.consumed_bytes as f64 / 1e6,
                    sample.consumed_msgs as f64
                ));
            }
            match ctx.errors.load(Ordering::Relaxed) {
                0 => {}
                n => parts.push(format!("{n} errors")),
            }
            eprintln!("[{second:>4}s {phase}] {}", parts.join(" | "));
        }
        series.push(sample);
        if at_warmup.is_none() && second as u64 >= w.warmup_secs {
            at_warmup = Some((now, Instant::now()));
            crate::trace::reset();
            ctx.member_window.lock().unwrap().0 = ctx.member_counts();
            ctx.broker_stats.lock().unwrap().0 = ctx.read_broker_stats();
        }
        if let Some(d) = done {
            finished_at = d;
            break;
        }
        if let Some(end) = timed_end
            && Duration::from_secs(second as u64) >= end
        {
            finished_at = (Instant::now(), now);
            break;
        }
    }
    // End of the measured phase: later messages are not measured.
    ctx.end_ns.store(ctx.ns(finished_at.0), Ordering::SeqCst);
    ctx.member_window.lock().unwrap().1 = ctx.member_counts();
    ctx.stop_producers.store(true, Ordering::SeqCst);
    if at_warmup.is_some() {
        ctx.broker_stats.lock().unwrap().1 = ctx.read_broker_stats();
    }
    let Some((start_counts, start_at)) = at_warmup else {
        if let Some(e) = ctx.first_error.lock().unwrap().clone() {
            return Err(e);
        }
        return Err(format!(
            "the run ended after {:.1} s, before its {} s warm-up: measure longer (--duration, --messages) or use --warmup 0",
            finished_at.0.duration_since(ctx.base).as_secs_f64(),
            w.warmup_secs
        ));
    };
    // Drain: consumers read what producers sent (bounded).
    let drain_by = Instant::now() + Duration::from_secs(15);
    while ctx.producers_done.load(Ordering::SeqCst) as usize != producers
        && Instant::now() < drain_by
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !consume_mode {
        while ctx.consumed_msgs.load(Ordering::Relaxed) < ctx.produced_msgs.load(Ordering::Relaxed)
            && !consumers.is_empty()
            && Instant::now() < drain_by
            && !interrupted.load(Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    ctx.stop_consumers.store(true, Ordering::SeqCst);
    let e2e = join_all(ctx, consumers, "consumer");
    let end = finished_at.1;
    let secs = finished_at
        .0
        .saturating_duration_since(start_at)
        .as_secs_f64();
    Ok((
        secs,
        (end.0 - start_counts.0, end.1 - start_counts.1),
        (end.2 - start_counts.2, end.3 - start_counts.3),
        series,
        e2e,
    ))
}

/// Fills the topics for consume mode (not measured).
fn prefill(
    addr: SocketAddr,
    workload: &Workload,
    interrupted: &AtomicBool,
    quiet: bool,
) -> Result<(), String> {
    let n = workload.messages.unwrap_or(1_000_000);
    if !quiet {
        eprintln!(
            "filling {} topic(s) with {n} messages (not measured)…",
            workload.topics
        );
    }
    let fill = Workload {
        mode: Mode::Produce,
        rate: None,
        messages: Some(n),
        warmup_secs: 0,
        ..workload.clone()
    };
    let ctx = Arc::new(Ctx::new(addr, fill, Instant::now()));
    let producers = spawn_producers(&ctx)?;
    for p in producers {
        while !p.is_finished() {
            if interrupted.load(Ordering::SeqCst) {
                ctx.stop_producers.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        p.join()
            .map_err(|_| "a producer thread panicked".to_string())??;
    }
    if let Some(e) = ctx.first_error.lock().unwrap().clone() {
        return Err(format!("filling the topics failed: {e}"));
    }
    Ok(())
}

fn spawn_producers(ctx: &Arc<Ctx>) -> Result<Vec<Joined>, String> {
    let w = &ctx.workload;
    (0..w.producers)
        .map(|i| {
            let ctx = ctx.clone();
            let quota = w
                .messages
                .map(|n| n / w.producers as u64 + u64::from((i as u64) < n % w.producers as u64));
            std::thread::Builder::new()
                .name(format!("bench-producer-{i}"))
                .spawn(move || {
                    let result = crate::support::executor(glommio::Placement::Unbound)
                        .make()
                        .map_err(|e| e.to_string())
                        .and_then(|ex| ex.run(producer_task(ctx.clone(), i, quota)));
                    ctx.producers_done.fetch_add(1, Ordering::SeqCst);
                    result
                })
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn producer_config(w: &Workload, hook: RoundTripHook) -> ProducerConfig {
    ProducerConfig {
        acks: match w.acks.as_str() {
            "0" => Acks::None,
            "all" => Acks::All,
            _ => Acks::Leader,
        },
        batch_bytes: w.batch_bytes,
        linger: Duration::from_millis(w.linger_ms),
        routing: if w.routing == "shared" {
            Routing::Shared
        } else {
            Routing::Direct
        },
        request_bytes_max: (4 << 20).max(w.batch_bytes),
        compression: w.compression.parse().unwrap_or_default(),
        wire: w.protocol.parse().unwrap_or_default(),
        round_trip: Some(hook),
        ..ProducerConfig::default()
    }
}

/// Waits for each sent record's ack, in send order, and records its
/// produce→ack latency from its due time.
async fn reap_acks(
    ctx: Arc<Ctx>,
    rx: glommio::channels::local_channel::LocalReceiver<(u64, u32, crate::client::Delivery)>,
) -> Hists {
    let mut hists = Hists::new();
    // Every record of a batch is acknowledged at once: only the first of
    // them waits, and the rest reuse its clock reading.
    let mut now = Instant::now();
    while let Some((due_ns, size, mut delivery)) = rx.recv().await {
        let answer = match futures::FutureExt::now_or_never(&mut delivery) {
            Some(answer) => answer,
            None => {
                let answer = delivery.await;
                now = Instant::now();
                answer
            }
        };
        match answer {
            Ok(_) => {
                ctx.produced_msgs.fetch_add(1, Ordering::Relaxed);
                ctx.produced_bytes.fetch_add(size as u64, Ordering::Relaxed);
                let latency = ctx.ns(now).saturating_sub(due_ns) / 1000;
                hists.record(&ctx, due_ns, ctx.second(now), latency);
            }
            Err(e) => ctx.error(describe(e, ctx.addr)),
        }
    }
    hists
}

/// Open loop, ahead of schedule: sleeps towards `due`, waking at least
/// every 50 ms to see a stop and at most once per pacing quantum (a
/// wake-up per record would cost the client more than the record).
/// Returns the time after the sleep.
async fn pace_towards(due: Instant, now: Instant) -> Instant {
    let wait = (due - now)
        .max(PACING_QUANTUM)
        .min(Duration::from_millis(50));
    glommio::timer::sleep(wait).await;
    let woke = Instant::now();
    if crate::trace::enabled() {
        crate::trace::record(
            Stage::ClientWakeLate,
            woke.saturating_duration_since(now + wait),
        );
    }
    woke
}

async fn producer_task(
    ctx: Arc<Ctx>,
    index: u32,
    quota: Option<u64>,
) -> Result<ClientHists, String> {
    let w = &ctx.workload;
    let (hook, round_trips) = round_trip_hook(&ctx);
    let config = producer_config(w, hook);
    let producer = match Producer::connect(ctx.addr, config).await {
        Ok(p) => p,
        Err(e) => {
            let e = describe(e, ctx.addr);
            ctx.error(&e);
            return Err(e);
        }
    };
    let rate = w.rate.map(|r| r / w.producers as f64);
    let mut schedule = Schedule::new(ctx.base, rate);
    // Sent records wait here for their acks; a full queue holds the
    // producer back (the reaper runs on the same executor).
    let (tx, rx) =
        glommio::channels::local_channel::new_bounded::<(u64, u32, crate::client::Delivery)>(
            ACKS_QUEUED_MAX,
        );
    let reaper = glommio::spawn_local(reap_acks(ctx.clone(), rx)).detach();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ ((index as u64 + 1) << 32));
    let mut value = vec![0x5au8; w.message_size.max];
    let mut seq = 0u64;
    let mut failed = None;
    let mean_size = ((w.message_size.min + w.message_size.max) / 2).max(1) as u64;
    let max_lag_msgs = w.max_lag_bytes / mean_size;
    // The clock is read once per wake-up, not once per record: records due
    // by then are sent back to back.
    let mut now = Instant::now();
    loop {
        if ctx.stop_producers.load(Ordering::Relaxed) || quota.is_some_and(|q| seq >= q) {
            break;
        }
        if let Some(due) = schedule.next_due()
            && due > now
        {
            now = Instant::now();
            if due > now {
                now = pace_towards(due, now).await;
                continue;
            }
        }
        // Closed loop: a record is due when it is handed over.
        let due_ns = if schedule.is_open_loop() {
            ctx.ns(schedule.take(now))
        } else {
            ctx.ns(schedule.take(Instant::now()))
        };
        let size = match w.message_size {
            SizeRange { min, max } if min == max => min,
            SizeRange { min, max } => min + (rng.next() % (max - min + 1) as u64) as usize,
        };
        value[..8].copy_from_slice(&due_ns.to_be_bytes());
        value[8..16].copy_from_slice(&((index as u64) << 48 | seq).to_be_bytes());
        let key = w.keyed.then(|| (rng.next() % 10_000).to_be_bytes());
        let topic = &ctx.topics[(seq % ctx.topics.len() as u64) as usize];
        let record = ProducerRecord {
            topic,
            key: key.as_ref().map(|k| &k[..]),
            value: Some(&value[..size]),
            ..Default::default()
        };
        match producer.send_record(record).await {
            Ok(delivery) => {
                if tx.send((due_ns, size as u32, delivery)).await.is_err() {
                    failed = Some("the ack reaper stopped".to_string());
                    break;
                }
            }
            Err(e) => {
                let e = describe(e, ctx.addr);
                ctx.error(&e);
                failed = Some(e);
                break;
            }
        }
        seq += 1;
        if seq.is_multiple_of(256) {
            let sent = ctx.sent_msgs.fetch_add(256, Ordering::Relaxed) + 256;
            // Hold back while the consumers are too far behind (e2e at
            // unlimited rate only), checking for a stop.
            while max_lag_msgs > 0
                && sent.saturating_sub(ctx.consumed_msgs.load(Ordering::Relaxed)) > max_lag_msgs
                && !ctx.stop_producers.load(Ordering::Relaxed)
            {
                glommio::timer::sleep(Duration::from_micros(500)).await;
            }
            // Let the producer's sender and the reaper run, and let the
            // executor look at finished I/O (acks, socket writes): a
            // yield alone would keep this task runnable and the rings
            // unpolled until the executor's preemption timer fires.
            glommio::timer::sleep(Duration::from_micros(1)).await;
        }
    }
    if let Err(e) = producer.flush().await {
        ctx.error(describe(e, ctx.addr));
    }
    drop(tx);
    let latency = reaper.await.unwrap_or_else(Hists::new);
    let _ = producer.close().await;
    match failed {
        Some(e) if seq == 0 => Err(e),
        _ => Ok(ClientHists {
            latency,
            round_trip: take_round_trips(round_trips),
        }),
    }
}

/// Client errors with what an operator needs to act on.
fn describe(e: ClientError, addr: SocketAddr) -> String {
    match e {
        ClientError::Connect { .. } | ClientError::Disconnected { .. } => e.to_string(),
        other => format!("{other} (broker {addr})"),
    }
}

fn spawn_consumers(ctx: &Arc<Ctx>, from: SeekTo) -> Result<Vec<Joined>, String> {
    let w = &ctx.workload;
    // Partitions are dealt round robin over the consumers.
    let mut shares: Vec<Vec<(String, u32)>> = vec![Vec::new(); w.consumers as usize];
    let mut i = 0;
    for topic in &ctx.topics {
        for p in 0..w.partitions {
            if let Some(share) = shares.get_mut(i % w.consumers.max(1) as usize) {
                share.push((topic.clone(), p));
            }
            i += 1;
        }
    }
    shares
        .into_iter()
        .enumerate()
        .map(|(j, share)| {
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("bench-consumer-{j}"))
                .spawn(move || {
                    crate::support::executor(glommio::Placement::Unbound)
                        .make()
                        .map_err(|e| e.to_string())
                        .and_then(|ex| match ctx.workload.group.clone() {
                            Some(group) => ex.run(group_consumer_task(ctx, j, group)),
                            None => ex.run(consumer_task(ctx, j, share, from)),
                        })
                })
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn consumer_config(w: &Workload, round_trip: RoundTripHook) -> ConsumerConfig {
    ConsumerConfig {
        max_wait: Duration::from_millis(100),
        routing: if w.routing == "shared" {
            Routing::Shared
        } else {
            Routing::Direct
        },
        reset: OffsetReset::Earliest,
        wire: w.protocol.parse().unwrap_or_default(),
        round_trip: Some(round_trip),
        ..ConsumerConfig::default()
    }
}

/// Counts what one poll read (and, in e2e mode, each record's latency).
fn account(ctx: &Ctx, member: usize, batches: &[PolledBatch], hists: &mut Hists) {
    let w = &ctx.workload;
    let now = Instant::now();
    let now_ns = ctx.ns(now);
    let second = ctx.second(now);
    let (mut msgs, mut bytes) = (0u64, 0u64);
    for polled in batches {
        let base = polled.batch.base_offset().0;
        for r in polled.batch.records() {
            if base + (r.offset_delta as u64) < polled.from {
                continue;
            }
            let Some(value) = r.value else { continue };
            msgs += 1;
            bytes += value.len() as u64;
            if w.mode == Mode::E2e && value.len() >= 8 {
                let sent_ns = u64::from_be_bytes(value[..8].try_into().unwrap());
                hists.record(ctx, sent_ns, second, now_ns.saturating_sub(sent_ns) / 1000);
            }
        }
    }
    ctx.consumed_msgs.fetch_add(msgs, Ordering::Relaxed);
    ctx.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
    ctx.member_msgs[member].fetch_add(msgs, Ordering::Relaxed);
    ctx.member_bytes[member].fetch_add(bytes, Ordering::Relaxed);
}

/// A consumer that is a member of the run's group: it counts as ready once
/// the whole group has settled (every partition owned, every member with
/// some when there are enough partitions), and the time that took is
/// reported.
async fn group_consumer_task(
    ctx: Arc<Ctx>,
    member: usize,
    group: String,
) -> Result<ClientHists, String> {
    let w = &ctx.workload;
    let mut hists = Hists::new();
    let (hook, round_trips) = round_trip_hook(&ctx);
    let started = Instant::now();
    let result: Result<(), String> = async {
        let topics: Vec<&str> = ctx.topics.iter().map(String::as_str).collect();
        let mut config = GroupConfig::new(&group, &topics);
        config.auto_commit_interval = Some(Duration::from_secs(1));
        let mut consumer = GroupConsumer::subscribe(ctx.addr, consumer_config(w, hook), config)
            .await
            .map_err(|e| describe(e, ctx.addr))?;
        let total = w.topics * w.partitions;
        let mut ready = false;
        let replay = w.mode == Mode::Consume && w.messages.is_none();
        while !ctx.stop_consumers.load(Ordering::Relaxed) {
            let batches = consumer
                .poll_batches()
                .await
                .map_err(|e| describe(e, ctx.addr))?;
            account(&ctx, member, &batches, &mut hists);
            let owned = consumer.assignment();
            ctx.member_owned[member].store(owned.len() as u32, Ordering::Relaxed);
            if !ready {
                let counts: Vec<u32> = ctx
                    .member_owned
                    .iter()
                    .map(|o| o.load(Ordering::Relaxed))
                    .collect();
                let every_member = counts.iter().all(|&c| c > 0) || total < w.consumers;
                if every_member && counts.iter().sum::<u32>() == total {
                    ready = true;
                    let mut settled = ctx.group_settled.lock().unwrap();
                    if settled.is_none() {
                        *settled = Some(started.elapsed());
                    }
                    ctx.consumers_ready.fetch_add(1, Ordering::SeqCst);
                }
            }
            if replay {
                for (topic, p) in &owned {
                    let hw = consumer.high_watermark(topic, *p).unwrap_or(0);
                    if hw > 0 && consumer.position(topic, *p).unwrap_or(0) >= hw {
                        consumer
                            .seek(topic, *p, SeekTo::Earliest)
                            .await
                            .map_err(|e| describe(e, ctx.addr))?;
                    }
                }
            }
        }
        consumer.close().await.map_err(|e| describe(e, ctx.addr))
    }
    .await;
    if let Err(e) = result {
        ctx.error(&e);
        return Err(e);
    }
    Ok(ClientHists {
        latency: hists,
        round_trip: take_round_trips(round_trips),
    })
}

async fn consumer_task(
    ctx: Arc<Ctx>,
    member: usize,
    share: Vec<(String, u32)>,
    from: SeekTo,
) -> Result<ClientHists, String> {
    let w = &ctx.workload;
    let (hook, round_trips) = round_trip_hook(&ctx);
    let config = consumer_config(w, hook);
    let mut hists = Hists::new();
    let result: Result<(), String> = async {
        let mut consumer = Consumer::connect(ctx.addr, config)
            .await
            .map_err(|e| describe(e, ctx.addr))?;
        for (topic, p) in &share {
            consumer
                .assign(topic, Some(&[*p]), from)
                .await
                .map_err(|e| describe(e, ctx.addr))?;
        }
        ctx.consumers_ready.fetch_add(1, Ordering::SeqCst);
        let replay = w.mode == Mode::Consume && w.messages.is_none();
        while !ctx.stop_consumers.load(Ordering::Relaxed) {
            let batches = consumer
                .poll_batches()
                .await
                .map_err(|e| describe(e, ctx.addr))?;
            account(&ctx, member, &batches, &mut hists);
            if replay {
                // A timed consume run reads the backlog again from the
                // start each time it reaches the end.
                for (topic, p) in &share {
                    let hw = consumer.high_watermark(topic, *p).unwrap_or(0);
                    if hw > 0 && consumer.position(topic, *p).unwrap_or(0) >= hw {
                        consumer
                            .seek(topic, *p, SeekTo::Earliest)
                            .await
                            .map_err(|e| describe(e, ctx.addr))?;
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        ctx.error(&e);
        return Err(e);
    }
    Ok(ClientHists {
        latency: hists,
        round_trip: take_round_trips(round_trips),
    })
}

/// Writes summary.json, the .hgrm and .hlog files and chart.svg.
fn write_report(
    dir: &Path,
    summary: &Summary,
    outcome: &Outcome,
    started_at: SystemTime,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let write = |name: &str, text: &[u8]| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("writing {}: {e}", dir.join(name).display()))
    };
    write(
        "summary.json",
        serde_json::to_string_pretty(summary)
            .map_err(|e| e.to_string())?
            .as_bytes(),
    )?;
    for (name, hists, present) in [
        (
            "produce-latency",
            &outcome.produce_latency,
            summary.produce_latency_us.is_some(),
        ),
        (
            "e2e-latency",
            &outcome.e2e_latency,
            summary.e2e_latency_us.is_some(),
        ),
        (
            "produce-round-trip",
            &outcome.produce_round_trip,
            summary.round_trip_latency_us.is_some(),
        ),
        (
            "fetch-round-trip",
            &outcome.fetch_round_trip,
            summary.fetch_round_trip_latency_us.is_some(),
        ),
    ] {
        if !present {
            continue;
        }
        report::write_hgrm(&hists.total, &dir.join(format!("{name}.hgrm")))
            .map_err(|e| e.to_string())?;
        let intervals: Vec<(f64, Histogram<u64>)> = hists
            .intervals
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(i, h)| (i as f64, h.clone()))
            .collect();
        let tag = name.trim_end_matches("-latency");
        report::write_hlog(
            &intervals,
            tag,
            started_at,
            &dir.join(format!("{name}.hlog")),
        )
        .map_err(|e| e.to_string())?;
    }
    write("chart.svg", svg::chart(&[("run", summary)]).as_bytes())
}
