//! Client commands: `topic`, `produce`, `consume`, `stats`. Each runs the
//! Rust client on one (unpinned) glommio executor.

use crate::cli::out::{self, outln};
use crate::client::{
    Acks, Admin, ClientError, ConfigSetting, ConfigUpdate, Consumer, ConsumerConfig, OffsetReset,
    Producer, ProducerConfig, ProducerRecord, Routing, SeekTo, TopicSettings,
};
use crate::protocol::error_name;
use crate::support::run_client;
use crate::types::FsyncPolicy;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn show(e: ClientError) -> String {
    e.to_string()
}

#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArg {
    /// Broker address (the shared port).
    #[arg(long, default_value = "127.0.0.1:9400", global = true)]
    pub broker: SocketAddr,
    /// Connect with TLS, trusting this PEM CA (a broker with
    /// --native-security tls).
    #[arg(long, global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// PEM certificate to present (mutual TLS), with --tls-key.
    #[arg(long, global = true)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, global = true)]
    pub tls_key: Option<std::path::PathBuf>,
    /// Name to check the broker's certificate against [default: the
    /// broker's IP address].
    #[arg(long, global = true)]
    pub tls_server_name: Option<String>,
}

impl BrokerArg {
    /// Makes this process's connections use TLS when --tls-ca is given.
    pub fn apply_tls(&self) -> Result<(), String> {
        use crate::security::tls::{ClientTlsFiles, client_config, server_name};
        let Some(ca) = &self.tls_ca else {
            if self.tls_cert.is_some() || self.tls_key.is_some() {
                return Err("--tls-cert and --tls-key need --tls-ca (the CA to trust)".into());
            }
            return Ok(());
        };
        let config = client_config(&ClientTlsFiles {
            ca: Some(ca.clone()),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        })?;
        let server_name = self
            .tls_server_name
            .as_deref()
            .map(server_name)
            .transpose()?;
        crate::client::set_tls(crate::client::ClientTls {
            config,
            server_name,
        });
        Ok(())
    }
}

#[derive(clap::Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
    #[command(flatten)]
    pub broker: BrokerArg,
}

#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long)]
        partitions: u32,
        /// Replicas of each partition, on distinct brokers of a cluster
        /// (default 1).
        #[arg(long, default_value_t = 1)]
        replication_factor: u32,
        /// Kafka's min.insync.replicas: an acks=all write needs this many
        /// in-sync replicas (default: the broker's, 1).
        #[arg(long)]
        min_insync_replicas: Option<u32>,
        /// Delete sealed segments whose newest record is older (ms).
        #[arg(long)]
        retention_ms: Option<u64>,
        /// Delete the oldest sealed segments while a partition is bigger.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// Roll segments at this size.
        #[arg(long)]
        segment_bytes: Option<u64>,
        /// Roll segments at this age (ms).
        #[arg(long)]
        segment_ms: Option<u64>,
        /// always, interval:MS or never (default: the broker's).
        #[arg(long)]
        fsync: Option<FsyncPolicy>,
    },
    /// List topics.
    List,
    /// Show a topic's settings (each with its source: default, broker or
    /// topic) and, per partition, its shard, offsets and size.
    Describe { name: String },
    /// Change a topic's settings (Kafka's names: retention.ms,
    /// retention.bytes, segment.bytes, segment.ms, cleanup.policy,
    /// max.message.bytes, message.timestamp.type, min.insync.replicas,
    /// flush.messages, flush.ms). They apply to the running partitions at
    /// once and survive restarts; an invalid value changes nothing.
    Alter {
        name: String,
        /// Give the topic its own value: key=value, several separated by
        /// commas (a list value in brackets: cleanup.policy=[delete]).
        #[arg(long, value_name = "KEY=VALUE[,...]")]
        set: Vec<String>,
        /// Return a setting to the broker's default (several separated by
        /// commas).
        #[arg(long, value_name = "KEY[,...]")]
        delete: Vec<String>,
        /// Check the changes and show the result, changing nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Delete a topic and its data.
    Delete { name: String },
    /// Raise a topic's partition count (partitions are never removed;
    /// keyed records of the new partitions' keys go to new partitions).
    AddPartitions {
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        total: u32,
    },
}

pub fn topic(command: TopicCommand, broker: SocketAddr) -> Result<(), String> {
    run_client(move || async move {
        let admin = Admin::connect(broker).await.map_err(show)?;
        match command {
            TopicCommand::Create {
                name,
                partitions,
                replication_factor,
                min_insync_replicas,
                retention_ms,
                retention_bytes,
                segment_bytes,
                segment_ms,
                fsync,
            } => {
                let settings = TopicSettings {
                    retention_ms,
                    retention_bytes,
                    segment_bytes,
                    segment_ms,
                    fsync,
                    max_batch_bytes: None,
                    min_insync_replicas,
                };
                let (id, _) = admin
                    .create_replicated_topic(&name, partitions, replication_factor, &settings)
                    .await
                    .map_err(show)?;
                outln!(
                    "created topic {name} with {partitions} partitions, {replication_factor} replica(s) each (id {id})"
                );
            }
            TopicCommand::AddPartitions { name, total } => {
                let now = admin.create_partitions(&name, total).await.map_err(show)?;
                outln!("topic {name} now has {now} partitions");
            }
            TopicCommand::List => {
                let topics = admin.list_topics().await.map_err(show)?;
                outln!("{:<40} {:>10} {:>6}", "TOPIC", "PARTITIONS", "ID");
                for t in topics {
                    outln!("{:<40} {:>10} {:>6}", t.name, t.partitions, t.topic_id);
                }
            }
            TopicCommand::Alter {
                name,
                set,
                delete,
                validate_only,
            } => {
                let updates = parse_updates(&set, &delete)?;
                let after = admin
                    .alter_configs(&name, &updates, validate_only)
                    .await
                    .map_err(show)?;
                if validate_only {
                    outln!("topic {name} would be changed (nothing was changed):");
                } else {
                    outln!("altered topic {name}:");
                }
                print_settings(&after);
            }
            TopicCommand::Describe { name } => {
                let d = admin.describe_topic(&name).await.map_err(show)?;
                let settings = admin.describe_configs(&name, &[]).await.map_err(show)?;
                let fsync = d
                    .config
                    .fsync
                    .map_or("default".to_string(), |f| f.to_string());
                outln!("topic {} (id {}), fsync {fsync}", d.name, d.topic_id);
                print_settings(&settings);
                outln!(
                    "{:>9} {:>5} {:>12} {:>12} {:>12} {:>14} {:>8} {:>6} {:>12} {:>12} {:>6}  STATUS",
                    "PARTITION",
                    "SHARD",
                    "START",
                    "END",
                    "HW",
                    "BYTES",
                    "SEGMENTS",
                    "LEADER",
                    "REPLICAS",
                    "ISR",
                    "EPOCH"
                );
                for p in d.partitions {
                    let status = if p.error == crate::protocol::wire::ErrorCode::NONE {
                        "ok".to_string()
                    } else {
                        error_name(p.error)
                    };
                    let list = |v: &[u32]| {
                        if v.is_empty() {
                            "-".to_string()
                        } else {
                            v.iter()
                                .map(|n| n.to_string())
                                .collect::<Vec<_>>()
                                .join(",")
                        }
                    };
                    let under = p.isr.len() < p.replicas.len();
                    outln!(
                        "{:>9} {:>5} {:>12} {:>12} {:>12} {:>14} {:>8} {:>6} {:>12} {:>12} {:>6}  {status}{}",
                        p.partition,
                        p.shard,
                        p.start_offset,
                        p.end_offset,
                        p.high_watermark,
                        p.size_bytes,
                        p.segments,
                        p.leader.map_or("-".to_string(), |n| n.to_string()),
                        list(&p.replicas),
                        list(&p.isr),
                        p.leader_epoch.map_or("-".to_string(), |e| e.to_string()),
                        if under { " under-replicated" } else { "" }
                    );
                }
            }
            TopicCommand::Delete { name } => {
                admin.delete_topic(&name).await.map_err(show)?;
                outln!("deleted topic {name}");
            }
        }
        Ok(())
    })
}

/// Prints settings as a table: name, value, source.
fn print_settings(settings: &[ConfigSetting]) {
    outln!("  {:<24} {:<22} SOURCE", "SETTING", "VALUE");
    for s in settings {
        outln!("  {:<24} {:<22} {}", s.name, s.value, s.source);
    }
}

/// Splits comma-separated items, keeping commas inside brackets
/// (`a=1,b=[x,y]` is `a=1` and `b=[x,y]`).
fn split_items(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth <= 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The changes `topic alter` asks for.
fn parse_updates(set: &[String], delete: &[String]) -> Result<Vec<ConfigUpdate>, String> {
    let mut updates = Vec::new();
    for item in set.iter().flat_map(|s| split_items(s)) {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| format!("--set {item:?} is not key=value"))?;
        let value = value.trim();
        // Kafka tools write list values in brackets; the broker takes the
        // list itself.
        let value = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(value);
        updates.push(ConfigUpdate::Set {
            name: name.trim().to_string(),
            value: value.to_string(),
        });
    }
    for name in delete.iter().flat_map(|s| split_items(s)) {
        updates.push(ConfigUpdate::Delete {
            name: name.to_string(),
        });
    }
    if updates.is_empty() {
        return Err("nothing to change: give --set KEY=VALUE and/or --delete KEY".into());
    }
    Ok(updates)
}

pub fn stats(broker: SocketAddr) -> Result<(), String> {
    run_client(move || async move {
        let admin = Admin::connect(broker).await.map_err(show)?;
        let stats = admin.stats().await.map_err(show)?;
        outln!(
            "{:>5} {:>6} {:>6} {:>11} {:>10} {:>14} {:>14} {:>10} {:>7} {:>10} {:>14} {:>14}",
            "SHARD",
            "PORT",
            "CONNS",
            "REQUESTS",
            "HOPS",
            "BYTES_IN",
            "BYTES_OUT",
            "PARTITIONS",
            "ERRORS",
            "CPU_S",
            "DISK_READ",
            "CACHE_READ"
        );
        for s in &stats.shards {
            outln!(
                "{:>5} {:>6} {:>6} {:>11} {:>10} {:>14} {:>14} {:>10} {:>7} {:>10.2} {:>14} {:>14}",
                s.shard,
                s.port,
                s.connections,
                s.requests,
                s.cross_core_hops,
                s.bytes_in,
                s.bytes_out,
                s.partitions,
                s.errors,
                s.cpu_us as f64 / 1e6,
                s.disk_read_bytes,
                s.cache_read_bytes
            );
        }
        outln!(
            "process CPU: {:.2} s user, {:.2} s system",
            stats.process_cpu_user_us as f64 / 1e6,
            stats.process_cpu_system_us as f64 / 1e6
        );
        Ok(())
    })
}

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    topic: String,
    #[command(flatten)]
    pub broker: BrokerArg,
    /// Split each line at the first occurrence of this into key and value.
    #[arg(long)]
    key_separator: Option<String>,
    /// 0 (no answer), 1 (appended) or all (on stable media).
    #[arg(long, default_value = "1")]
    acks: Acks,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// Batch size in bytes.
    #[arg(long, default_value_t = 64 << 10)]
    batch_bytes: usize,
    /// Wait this long for a batch to fill (ms).
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Send through the shared port instead of straight to each partition's shard.
    #[arg(long)]
    shared: bool,
    /// Compress each batch: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: crate::record::Compression,
}

pub fn produce(args: ProduceArgs) -> Result<(), String> {
    let broker = args.broker.broker;
    // stdin is read on a thread of its own so batches keep leaving while it
    // waits for input.
    let (tx, mut rx) = futures::channel::mpsc::channel::<String>(1024);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            use std::io::BufRead;
            let mut tx = tx;
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if futures::executor::block_on(futures::SinkExt::send(&mut tx, line)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| e.to_string())?;
    run_client(move || async move {
        let config = ProducerConfig {
            acks: args.acks,
            batch_bytes: args.batch_bytes,
            linger: Duration::from_millis(args.linger_ms),
            routing: if args.shared {
                Routing::Shared
            } else {
                Routing::Direct
            },
            compression: args.compression,
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(broker, config).await.map_err(show)?;
        let mut deliveries = std::collections::VecDeque::new();
        let mut sent = 0u64;
        let mut failures = 0u64;
        let started = Instant::now();
        // A progress line while a large input streams in, on a terminal
        // only (not when stdin is the terminal too: it would overwrite
        // what is being typed).
        let mut progress = out::Progress::on_terminal(!std::io::stdin().is_terminal());
        let (mut bytes, mut last) = (0u64, (Instant::now(), 0u64));
        while let Some(line) = futures::StreamExt::next(&mut rx).await {
            bytes += line.len() as u64;
            if progress.due() {
                let secs = last.0.elapsed().as_secs_f64();
                progress.show(&format!(
                    "{sent} records sent, {:.1} MB/s",
                    (bytes - last.1) as f64 / 1e6 / secs
                ));
                last = (Instant::now(), bytes);
            }
            let (key, value) = match &args.key_separator {
                Some(sep) => match line.split_once(sep.as_str()) {
                    Some((k, v)) => (Some(k.as_bytes()), v.as_bytes()),
                    None => (None, line.as_bytes()),
                },
                None => (None, line.as_bytes()),
            };
            let record = ProducerRecord {
                topic: &args.topic,
                partition: args.partition,
                key,
                value: Some(value),
                ..Default::default()
            };
            deliveries.push_back(producer.send_record(record).await.map_err(show)?);
            sent += 1;
            // Keep the list of pending deliveries short.
            while deliveries.len() > 100_000 {
                if let Err(e) = deliveries.pop_front().unwrap().await {
                    failures += 1;
                    progress.clear();
                    eprintln!("error: {e}");
                }
            }
        }
        progress.clear();
        producer.flush().await.map_err(show)?;
        for d in deliveries {
            if let Err(e) = d.await {
                failures += 1;
                if failures <= 10 {
                    eprintln!("error: {e}");
                }
            }
        }
        producer.close().await.map_err(show)?;
        eprintln!(
            "produced {} records to {} in {:.2} s ({} failed)",
            sent - failures,
            args.topic,
            started.elapsed().as_secs_f64(),
            failures
        );
        if failures > 0 {
            Err(format!("{failures} records were not acknowledged"))
        } else {
            Ok(())
        }
    })
}

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    topic: String,
    #[command(flatten)]
    pub broker: BrokerArg,
    /// Start at the earliest offset (default: the end, like Kafka).
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset.
    #[arg(long, conflicts_with = "from_beginning")]
    offset: Option<u64>,
    /// Read only this partition (default: all).
    #[arg(long)]
    partition: Option<u32>,
    /// Stop after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Keep waiting for new records (default: stop at the end offsets seen
    /// at start).
    #[arg(long)]
    follow: bool,
    /// Output per record; placeholders {key} {value} {partition} {offset}
    /// {timestamp}; \t and \n are tab and newline.
    #[arg(long, default_value = "{value}")]
    format: String,
    /// Read through the shared port instead of straight from each partition's shard.
    #[arg(long)]
    shared: bool,
    /// Read as a member of this consumer group (through the Kafka listener):
    /// the group's members split the partitions, each resumes from the
    /// group's committed offsets and commits after every batch it prints.
    /// Runs until interrupted or --max-messages.
    #[arg(long, conflicts_with_all = ["offset", "partition", "shared", "follow"])]
    group: Option<String>,
    /// The Kafka listener, for --group.
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka_broker: std::net::SocketAddr,
}

pub fn consume(args: ConsumeArgs) -> Result<(), String> {
    if let Some(group) = args.group {
        return super::group::consume(super::group::GroupConsume {
            kafka_broker: args.kafka_broker,
            topic: args.topic,
            group,
            from_beginning: args.from_beginning,
            max_messages: args.max_messages,
            format: args.format,
        });
    }
    let broker = args.broker.broker;
    run_client(move || async move {
        let config = ConsumerConfig {
            routing: if args.shared {
                Routing::Shared
            } else {
                Routing::Direct
            },
            reset: OffsetReset::Earliest,
            max_wait: Duration::from_millis(if args.follow { 1000 } else { 100 }),
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::connect(broker, config).await.map_err(show)?;
        let start = match (args.from_beginning, args.offset) {
            (true, _) => SeekTo::Earliest,
            (_, Some(o)) => SeekTo::Offset(o),
            _ => SeekTo::Latest,
        };
        let partitions = args.partition.map(|p| vec![p]);
        consumer
            .assign(&args.topic, partitions.as_deref(), start)
            .await
            .map_err(show)?;
        // Without --follow: stop at the end offsets as of now.
        let admin = Admin::connect(broker).await.map_err(show)?;
        let description = admin.describe_topic(&args.topic).await.map_err(show)?;
        let ends: Vec<(u32, u64)> = description
            .partitions
            .iter()
            .filter(|p| args.partition.is_none_or(|only| only == p.partition))
            .map(|p| (p.partition, p.high_watermark))
            .collect();
        let template = args.format.clone();
        // Locked and buffered, flushed after each poll's records so a
        // reader (`| head -1`, a terminal following the topic) sees them
        // as they come. A failed write ends the process (quietly once the
        // reader has gone: see out::fail).
        let mut out = out::Stdout::new();
        let mut count = 0u64;
        loop {
            // A consumer waiting for records writes nothing, so it would not
            // notice a reader that went away until the next record.
            if out::reader_gone() {
                return Ok(());
            }
            if !args.follow
                && ends.iter().all(|(p, end)| {
                    consumer
                        .position(&args.topic, *p)
                        .is_some_and(|pos| pos >= *end)
                })
            {
                break;
            }
            let records = consumer.poll().await.map_err(show)?;
            for r in records {
                if !args.follow
                    && ends
                        .iter()
                        .any(|(p, end)| *p == r.partition && r.offset >= *end)
                {
                    continue;
                }
                if let Err(e) = render(&template, &r, &mut out) {
                    out::fail(e);
                }
                count += 1;
                if args.max_messages.is_some_and(|max| count >= max) {
                    out.flush_or_exit();
                    return Ok(());
                }
            }
            out.flush_or_exit();
        }
        Ok(())
    })
}

/// Writes one record by `template` and a newline, in one pass: text of the
/// record itself is never read as a placeholder. Unknown `{…}` stays as is.
pub(super) fn render(
    template: &str,
    r: &crate::client::ConsumerRecord,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("\\t") {
            out.write_all(b"\t")?;
            rest = after;
            continue;
        }
        if let Some(after) = rest.strip_prefix("\\n") {
            out.write_all(b"\n")?;
            rest = after;
            continue;
        }
        let field = ["{key}", "{value}", "{partition}", "{offset}", "{timestamp}"]
            .into_iter()
            .find(|p| rest.starts_with(p));
        match field {
            Some(p) => {
                match p {
                    "{key}" => write_opt(out, &r.key)?,
                    "{value}" => write_opt(out, &r.value)?,
                    "{partition}" => write!(out, "{}", r.partition)?,
                    "{offset}" => write!(out, "{}", r.offset)?,
                    _ => write!(out, "{}", r.timestamp)?,
                }
                rest = &rest[p.len()..];
            }
            None => {
                let c = rest.chars().next().unwrap();
                let mut buf = [0u8; 4];
                out.write_all(c.encode_utf8(&mut buf).as_bytes())?;
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out.write_all(b"\n")
}

fn write_opt(out: &mut impl Write, b: &Option<bytes::Bytes>) -> std::io::Result<()> {
    match b {
        Some(b) => out.write_all(b),
        None => out.write_all(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ConsumerRecord;

    fn record(value: &str) -> ConsumerRecord {
        ConsumerRecord {
            topic: std::sync::Arc::from("t"),
            partition: 3,
            offset: 42,
            timestamp: 1700,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
            headers: vec![],
        }
    }

    #[test]
    fn alter_arguments_split_at_commas_outside_brackets() {
        let updates = parse_updates(
            &["retention.ms=1000, cleanup.policy=[delete]".into()],
            &["segment.ms,flush.ms".into()],
        )
        .unwrap();
        let set = |n: &str, v: &str| ConfigUpdate::Set {
            name: n.into(),
            value: v.into(),
        };
        let delete = |n: &str| ConfigUpdate::Delete { name: n.into() };
        assert_eq!(
            updates,
            vec![
                set("retention.ms", "1000"),
                set("cleanup.policy", "delete"),
                delete("segment.ms"),
                delete("flush.ms"),
            ]
        );
        assert!(parse_updates(&["retention.ms".into()], &[]).is_err());
        assert!(parse_updates(&[], &[]).is_err());
    }

    #[test]
    fn format_placeholders_are_filled_once() {
        let mut out = Vec::new();
        render(
            "{partition}:{offset}\\t{key}={value} @{timestamp} {other}",
            &record("v {offset}"),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "3:42\tnull=v {offset} @1700 {other}\n"
        );
    }
}
