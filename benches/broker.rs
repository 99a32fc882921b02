//! Broker benchmark: produce over loopback against a raw TCP sink in the
//! same run, and the cost of a cross-core hop.
//!
//! ```text
//! cargo bench --bench broker              # about a minute
//! cargo bench --bench broker -- --quick
//! ```
//!
//! 1. Throughput: one producer, 1 KiB records, acks=1, fsync never, one
//!    partition, shard-aware, 1 MiB batches (BATCH=bytes to change), each
//!    run after an untimed warm-up of a fifth of its records. Baseline: a client writing the same number of
//!    bytes in 64 KiB writes to a sink that reads and discards them, the
//!    sink pinned to the core of the partition's shard. MB/s counts record
//!    values only (10^6 bytes), over the wall time until the last ack.
//! 2. Hop cost: one request at a time, one 1 KiB record, acks=1, sent to the
//!    owning shard's own port (no hop) and to the other shard's own port
//!    (every request crosses cores); latency percentiles from HDR
//!    histograms.

use corelog::client::{Acks, Admin, Connection, Producer, ProducerConfig, Routing, TopicSettings};
use corelog::config::BrokerConfig;
use corelog::protocol::wire;
use corelog::record::BatchBuilder;
use corelog::storage::FsyncPolicy;
use corelog::types::Timestamp;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORD_BYTES: usize = 1024;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn client<T: Send + 'static>(f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move { f().await })
        .unwrap()
        .join()
        .unwrap()
}

/// MB/s of record values through the broker.
fn produce_run(addr: SocketAddr, records: usize) -> f64 {
    client(async move || {
        let batch_bytes = std::env::var("BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 20);
        let config = ProducerConfig {
            acks: Acks::Leader,
            routing: Routing::Direct,
            batch_bytes,
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(addr, config).await.unwrap();
        let value = vec![0x42u8; RECORD_BYTES];
        // Warm-up, not timed: connections, buffers, the allocator's pages.
        for _ in 0..records / 5 {
            producer.send("bench", None, &value).await.unwrap();
        }
        producer.flush().await.unwrap();
        let started = Instant::now();
        let mut last = None;
        for _ in 0..records {
            last = Some(producer.send("bench", None, &value).await.unwrap());
        }
        producer.flush().await.unwrap();
        last.unwrap().await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        producer.close().await.unwrap();
        (records * RECORD_BYTES) as f64 / secs / 1e6
    })
}

/// MB/s of `bytes` written to a discarding sink on core `cpu`.
fn raw_run(bytes: usize, cpu: usize) -> f64 {
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(cpu))
        .spawn(move || async move {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let mut stream = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 256 << 10];
            let mut total = 0usize;
            while total < bytes {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "sink: stream ended early");
                total += n;
            }
            stream.write_all(b"k").await.unwrap();
        })
        .unwrap();
    let addr = rx.recv().unwrap();
    let mbps = client(async move || {
        let mut stream = glommio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let chunk = vec![0x42u8; 64 << 10];
        let started = Instant::now();
        let mut sent = 0;
        while sent < bytes {
            let n = chunk.len().min(bytes - sent);
            stream.write_all(&chunk[..n]).await.unwrap();
            sent += n;
        }
        let mut ack = [0u8; 1];
        stream.read_exact(&mut ack).await.unwrap();
        bytes as f64 / started.elapsed().as_secs_f64() / 1e6
    });
    sink.join().unwrap();
    mbps
}

/// Latency of one-record produce requests sent to `port`.
fn latency_run(port: u16, requests: usize) -> Histogram<u64> {
    client(async move || {
        let conn = Connection::connect(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let mut builder = BatchBuilder::default();
        builder.push(Timestamp::now(), None, Some(&[7u8; RECORD_BYTES]), &[]);
        let batch = builder.finish();
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for i in 0..requests + 1000 {
            let started = Instant::now();
            let response = conn
                .call(batch.len() + 256, |fbb| {
                    let records = fbb.create_vector(&batch[..]);
                    let part = wire::ProducePartitionData::create(
                        fbb,
                        &wire::ProducePartitionDataArgs {
                            partition: 0,
                            records: Some(records),
                        },
                    );
                    let parts = fbb.create_vector(&[part]);
                    let name = fbb.create_string("bench");
                    let t = wire::ProduceTopicData::create(
                        fbb,
                        &wire::ProduceTopicDataArgs {
                            topic: Some(name),
                            partitions: Some(parts),
                        },
                    );
                    let topics = fbb.create_vector(&[t]);
                    let body = wire::ProduceRequest::create(
                        fbb,
                        &wire::ProduceRequestArgs {
                            acks: 1,
                            timeout_ms: 10_000,
                            topics: Some(topics),
                        },
                    );
                    (wire::Request::ProduceRequest, body.as_union_value())
                })
                .await
                .unwrap();
            response.check().unwrap();
            // The first thousand warm the path up.
            if i >= 1000 {
                h.record(started.elapsed().as_nanos() as u64 / 1000 + 1)
                    .unwrap();
            }
        }
        h
    })
}

fn main() {
    corelog::alloc::tune();
    if std::env::var_os("RUST_LOG").is_some() {
        corelog::cli::init_logging();
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 5 };
    let records = std::env::var("RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 200_000 } else { 500_000 });
    let dir = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
        .join("broker-bench");
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = BrokerConfig::new(&dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.cores = 2;
    let broker = corelog::server::start(config).unwrap();
    let addr = broker.addr;
    let owner = client(async move || {
        let admin = Admin::connect(addr).await.unwrap();
        let settings = TopicSettings {
            fsync: Some(FsyncPolicy::Never),
            ..TopicSettings::default()
        };
        admin.create_topic("bench", 1, &settings).await.unwrap();
        admin.describe_topic("bench").await.unwrap().partitions[0].shard as usize
    });
    let other = 1 - owner;
    println!(
        "broker benchmark: 2 shards, partition on shard {owner}; {records} records of {RECORD_BYTES} B per run, {runs} runs"
    );
    let (mut raw, mut broker_mbps) = (Vec::new(), Vec::new());
    if std::env::var("ONLY_PRODUCE").is_ok() {
        // For profiling: the broker path alone.
        let cpu = || {
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: getrusage fills the struct we own.
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
            let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
            t(u.ru_utime) + t(u.ru_stime)
        };
        let before = cpu();
        let mbps = produce_run(addr, records);
        let gb = (records * RECORD_BYTES) as f64 / 1e9;
        let rss = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS"))
            .unwrap_or("")
            .to_string();
        println!(
            "produce only: {mbps:.0} MB/s, {:.2} CPU s per GB (client + broker), {rss}",
            (cpu() - before) / gb / 1.2
        );
        broker.shutdown();
        broker.join().unwrap();
        return;
    }
    for run in 0..runs {
        let r = raw_run(records * RECORD_BYTES, owner);
        let b = produce_run(addr, records);
        println!(
            "run {run}: raw TCP sink {r:.0} MB/s, corelog produce {b:.0} MB/s ({:.2})",
            b / r
        );
        raw.push(r);
        broker_mbps.push(b);
    }
    let (raw, produced) = (median(raw), median(broker_mbps));
    println!();
    println!(
        "| produce, 1 KiB records, 1 producer, acks=1, fsync never | MB/s (median of {runs}) | vs raw |"
    );
    println!("|---|---|---|");
    println!("| raw TCP sink, same bytes, 64 KiB writes | {raw:.0} | 1.00 |");
    println!(
        "| corelog producer → owning shard | {produced:.0} | {:.2} |",
        produced / raw
    );

    let requests = if quick { 5_000 } else { 20_000 };
    let direct = latency_run(broker.shard_ports[owner], requests);
    let hop = latency_run(broker.shard_ports[other], requests);
    println!();
    println!(
        "| produce latency, one 1 KiB record per request, acks=1 | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, h) in [
        ("owning shard's port (no hop)", &direct),
        ("other shard's port (one hop each way)", &hop),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    println!(
        "cross-core hop cost: +{} µs at p50, +{} µs at p99",
        h_diff(&hop, &direct, 0.5),
        h_diff(&hop, &direct, 0.99)
    );
    broker.shutdown();
    broker.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn h_diff(a: &Histogram<u64>, b: &Histogram<u64>, q: f64) -> i64 {
    a.value_at_quantile(q) as i64 - b.value_at_quantile(q) as i64
}
