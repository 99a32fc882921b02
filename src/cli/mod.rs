//! The command line: one binary, `corelog`, with a subcommand per job.
//! Parsing lives here; each command's work lives in the module that owns it.

mod client_cmds;
mod debug;
mod demo;
mod serve;

pub use debug::crash_key;

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
    #[command(flatten)]
    broker: client_cmds::BrokerArg,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker until SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
    /// Create, list, describe or delete topics.
    #[command(subcommand)]
    Topic(client_cmds::TopicCommand),
    /// Send stdin to a topic, one record per line.
    Produce(client_cmds::ProduceArgs),
    /// Print a topic's records.
    Consume(client_cmds::ConsumeArgs),
    /// Show each shard's counters (connections, requests, cross-core hops).
    Stats,
    /// Append records to a partition log on direct I/O, read them back,
    /// verify them and print the throughput (a storage-engine demo).
    Demo(demo::DemoArgs),
    /// Tools for tests and diagnosis.
    #[command(hide = true, subcommand)]
    Debug(debug::DebugCommand),
}

/// Sets up logging to stderr; `RUST_LOG` overrides the default level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("corelog=info,warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topic(command) => client_cmds::topic(command, cli.broker.broker),
        Command::Produce(args) => client_cmds::produce(args, cli.broker.broker),
        Command::Consume(args) => client_cmds::consume(args, cli.broker.broker),
        Command::Stats => client_cmds::stats(cli.broker.broker),
        Command::Demo(args) => demo::run(args),
        Command::Debug(command) => debug::run(command),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("error: {message}");
            1
        }
    }
}
