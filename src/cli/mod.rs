//! The command line: one binary, `corelog`, with a subcommand per job.
//! Parsing lives here; each command's work lives in the module that owns it.

mod client_cmds;
mod cluster;
mod debug;
mod demo;
mod group;
pub(crate) mod out;
mod security;
mod serve;

pub use debug::{compact_key, compact_value, crash_key};

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "corelog",
    version,
    about = "A thread-per-core event-streaming broker on glommio and io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How logs on stderr look: text (coloured only on a terminal) or json
    /// (one object a line, for log collectors).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

/// The shape of log lines on stderr.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIME LEVEL module::path: message key=value…`.
    #[default]
    Text,
    /// One JSON object a line: timestamp, level, fields (message and the
    /// event's own fields) and target (the module).
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker until SIGINT or SIGTERM (SIGHUP reloads TLS certificates).
    Serve(Box<serve::ServeArgs>),
    /// Create, list, describe or delete topics.
    Topic(client_cmds::TopicArgs),
    /// Send stdin to a topic, one record per line.
    Produce(client_cmds::ProduceArgs),
    /// Print a topic's records.
    Consume(client_cmds::ConsumeArgs),
    /// List, describe or delete consumer groups, or reset their offsets
    /// (through the Kafka listener).
    Group(group::GroupArgs),
    /// Create, list or delete SASL/SCRAM users (through the Kafka
    /// listener).
    User(security::UserArgs),
    /// Add, list or remove ACLs (through the Kafka listener; the broker
    /// needs --authorizer acl).
    Acl(security::AclArgs),
    /// The controller quorum of a cluster (through a broker's HTTP API).
    Cluster(cluster::ClusterArgs),
    /// Show each shard's counters (connections, requests, cross-core hops).
    Stats(client_cmds::BrokerArg),
    /// Run a workload and report throughput and latency (with no --broker,
    /// against a broker started inside this process).
    Bench(Box<crate::bench::BenchArgs>),
    /// Append records to a partition log on direct I/O, read them back,
    /// verify them and print the throughput (a storage-engine demo).
    Demo(demo::DemoArgs),
    /// Tools for tests and diagnosis.
    #[command(hide = true, subcommand)]
    Debug(debug::DebugCommand),
}

/// Sets up text logging to stderr at info level; `RUST_LOG` overrides it.
pub fn init_logging() {
    init_logging_at("corelog=info,warn", LogFormat::Text);
}

/// Sets up logging to stderr in `format` with `default` as the filter
/// unless `RUST_LOG` is set. Each line names its module (the target,
/// `corelog::storage::log`), so a line can be traced to its code and
/// filtered by it. Text is coloured only when stderr is a terminal (and
/// `NO_COLOR` is unset): escape codes in a file or a collector's pipe are
/// noise to grep and to parsers.
pub fn init_logging_at(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let _ = match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).try_init()
        }
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    // A benchmark's report is its output; the embedded broker only speaks
    // up about problems.
    match cli.command {
        Command::Bench(_) => init_logging_at("warn", cli.log_format),
        _ => init_logging_at("corelog=info,warn", cli.log_format),
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Topic(args) => args
            .broker
            .apply_tls()
            .and_then(|()| client_cmds::topic(args.command, args.broker.broker)),
        Command::Produce(args) => args
            .broker
            .apply_tls()
            .and_then(|()| client_cmds::produce(args)),
        Command::Consume(args) => args
            .broker
            .apply_tls()
            .and_then(|()| client_cmds::consume(args)),
        Command::Group(args) => group::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::User(args) => security::user(args),
        Command::Acl(args) => security::acl(args),
        Command::Stats(broker) => broker
            .apply_tls()
            .and_then(|()| client_cmds::stats(broker.broker)),
        Command::Bench(args) => crate::bench::run(*args),
        Command::Demo(args) => demo::run(args),
        Command::Debug(command) => debug::run(command),
    };
    match result {
        Ok(()) => 0,
        // Stdout's reader went away (`corelog demo | head -1`): what was
        // wanted was read, as with SIGPIPE in other commands.
        Err(_) if out::gone() => 0,
        Err(message) => {
            // Not eprintln!: it panics if stderr is gone.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {message}");
            1
        }
    }
}
