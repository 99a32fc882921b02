//! Storage-engine benchmark: the partition log against raw direct I/O on
//! the same disk, in the same run.
//!
//! ```text
//! cargo bench --bench storage                 # full run (about a minute)
//! cargo bench --bench storage -- --quick      # smaller sizes
//! cargo bench --bench storage -- --dir /mnt/x # data directory on another disk
//! ```
//!
//! 1. Append, fsync `never`, 1 KiB records in 1 MiB batches, against a raw
//!    glommio DMA write loop of 1 MiB writes (queue depth 4, the log's own
//!    write depth, and 16).
//! 2. Sequential read of the log's segments from disk (reopened: nothing in
//!    memory) with 1 MiB reads, against raw DMA reads of the same files
//!    with the same size, one at a time and 4 at a time.
//! 3. fsync `always` with 32 concurrent appenders of one 1 KiB record each,
//!    against a plain loop of 4 KiB write + fdatasync.
//!
//! Each figure is the median of `--runs` runs (default 3); raw and log runs
//! alternate so drift on a shared machine hits both.

use bytes::BytesMut;
use corelog::record::BatchBuilder;
use corelog::storage::{Disk, FsyncPolicy, LogConfig, PartitionLog};
use corelog::types::{Offset, Timestamp};
use glommio::io::{DmaFile, OpenOptions};
use hdrhistogram::Histogram;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

const MIB: usize = 1 << 20;
const RECORD_BYTES: usize = 1024;

struct Args {
    quick: bool,
    dir: Option<PathBuf>,
    runs: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: false,
        dir: None,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--dir" => args.dir = it.next().map(PathBuf::from),
            "--runs" => args.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--bench" => {}
            other => panic!("unknown argument {other}; use --quick, --dir DIR, --runs N"),
        }
    }
    args
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// One batch of 1 KiB records filling about `bytes`.
fn template_batch(bytes: usize) -> bytes::Bytes {
    let value = vec![0xabu8; RECORD_BYTES];
    let mut builder = BatchBuilder::with_capacity(bytes + 4096);
    let key = 0u64.to_be_bytes();
    let one = builder.record_size(Timestamp(0), Some(&key), Some(&value), &[]);
    let records = (bytes - 61) / one;
    for i in 0..records as u64 {
        builder.push(Timestamp::now(), Some(&i.to_be_bytes()), Some(&value), &[]);
    }
    builder.finish()
}

async fn raw_write(path: &Path, total: usize, block: usize, depth: usize) -> f64 {
    let file = Rc::new(
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .unwrap(),
    );
    let next = Rc::new(Cell::new(0usize));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..depth {
        let (file, next) = (file.clone(), next.clone());
        tasks.push(glommio::spawn_local(async move {
            let mut buf = file.alloc_dma_buffer(block);
            buf.as_bytes_mut().fill(0x5a);
            let buf = Rc::new(buf);
            loop {
                let i = next.get();
                if i * block >= total {
                    break;
                }
                next.set(i + 1);
                let n = file
                    .write_rc_at(buf.clone(), (i * block) as u64)
                    .await
                    .unwrap();
                assert_eq!(n, block);
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    file.fdatasync().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    Rc::try_unwrap(file).unwrap().close().await.unwrap();
    total as f64 / secs / 1e6
}

async fn raw_read(paths: &[PathBuf], block: usize, depth: usize) -> f64 {
    let started = Instant::now();
    let mut total = 0usize;
    for path in paths {
        let file = Rc::new(DmaFile::open(path).await.unwrap());
        let size = file.file_size().await.unwrap() as usize;
        total += size;
        let next = Rc::new(Cell::new(0usize));
        let mut tasks = Vec::new();
        for _ in 0..depth {
            let (file, next) = (file.clone(), next.clone());
            tasks.push(glommio::spawn_local(async move {
                loop {
                    let i = next.get();
                    if i * block >= size {
                        break;
                    }
                    next.set(i + 1);
                    let r = file
                        .read_at_aligned((i * block) as u64, block)
                        .await
                        .unwrap();
                    std::hint::black_box(&r[..]);
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        Rc::try_unwrap(file).unwrap().close().await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64() / 1e6
}

/// Appends `count` copies of `template` with fsync `never`; returns MB/s
/// from the first append until a final flush (write + fdatasync) completed.
async fn log_append(
    disk: &Disk,
    dir: &Path,
    template: &bytes::Bytes,
    count: usize,
) -> (f64, Vec<PathBuf>) {
    let _ = std::fs::remove_dir_all(dir);
    let log = PartitionLog::open(
        disk,
        dir,
        LogConfig {
            fsync: FsyncPolicy::Never,
            ..LogConfig::default()
        },
    )
    .await
    .unwrap();
    // The request buffers exist before the clock starts, as they would
    // after arriving from the network.
    let batches: Vec<BytesMut> = (0..count).map(|_| BytesMut::from(&template[..])).collect();
    let started = Instant::now();
    for batch in batches {
        log.append(batch).await.unwrap();
    }
    log.flush().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let paths = log.segments().into_iter().map(|s| s.path).collect();
    log.close().await.unwrap();
    ((template.len() * count) as f64 / secs / 1e6, paths)
}

/// Reads the whole log from disk with `max_bytes` reads; MB/s.
async fn log_read(disk: &Disk, dir: &Path, max_bytes: usize) -> f64 {
    let log = PartitionLog::open(disk, dir, LogConfig::default())
        .await
        .unwrap();
    let started = Instant::now();
    let mut pos = Offset::ZERO;
    let mut bytes = 0usize;
    while pos < log.end_offset() {
        let read = log.read(pos, max_bytes).await.unwrap();
        bytes += read.bytes;
        pos = read.next_offset;
    }
    let mbps = bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
    log.close().await.unwrap();
    mbps
}

struct SyncFigures {
    ops_per_sec: f64,
    mb_per_sec: f64,
    syncs_per_sec: f64,
    latency: Histogram<u64>,
}

/// 4 KiB write + fdatasync, one at a time.
async fn raw_write_sync(path: &Path, ops: usize) -> SyncFigures {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .dma_open(path)
        .await
        .unwrap();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let buf = Rc::new({
        let mut b = file.alloc_dma_buffer(4096);
        b.as_bytes_mut().fill(1);
        b
    });
    let started = Instant::now();
    for i in 0..ops {
        let t = Instant::now();
        file.write_rc_at(buf.clone(), (i * 4096) as u64)
            .await
            .unwrap();
        file.fdatasync().await.unwrap();
        latency
            .record(t.elapsed().as_micros().max(1) as u64)
            .unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    file.close().await.unwrap();
    SyncFigures {
        ops_per_sec: ops as f64 / secs,
        mb_per_sec: (ops * 4096) as f64 / secs / 1e6,
        syncs_per_sec: ops as f64 / secs,
        latency,
    }
}

/// 32 concurrent appenders of one 1 KiB record each, fsync `always`.
async fn log_always(disk: &Disk, dir: &Path, appenders: usize, per_appender: usize) -> SyncFigures {
    let _ = std::fs::remove_dir_all(dir);
    let log = Rc::new(
        PartitionLog::open(
            disk,
            dir,
            LogConfig {
                fsync: FsyncPolicy::Always,
                ..LogConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    let template = {
        let mut b = BatchBuilder::default();
        b.push(
            Timestamp::now(),
            Some(b"key"),
            Some(&[7u8; RECORD_BYTES]),
            &[],
        );
        b.finish()
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..appenders {
        let log = log.clone();
        let template = template.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            for _ in 0..per_appender {
                let batch = BytesMut::from(&template[..]);
                let t = Instant::now();
                log.append(batch).await.unwrap();
                latency
                    .record(t.elapsed().as_micros().max(1) as u64)
                    .unwrap();
            }
            latency
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for t in tasks {
        latency.add(t.await).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let ops = appenders * per_appender;
    let syncs = log.stats().fsyncs;
    Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    SyncFigures {
        ops_per_sec: ops as f64 / secs,
        mb_per_sec: (ops * template.len()) as f64 / secs / 1e6,
        syncs_per_sec: syncs as f64 / secs,
        latency,
    }
}

fn pct(h: &Histogram<u64>, q: f64) -> String {
    format!("{:.0}", h.value_at_quantile(q) as f64)
}

fn main() {
    corelog::alloc::tune();
    let args = parse_args();
    let root = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("storage-bench"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let total = if args.quick { 512 * MIB } else { 2048 * MIB };
    let runs = args.runs;
    glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(0))
        .name("storage-bench")
        .spawn(move || async move {
            let disk = Disk::open(&root).await.unwrap();
            let template = template_batch(MIB);
            let count = total / template.len();
            println!("storage benchmark: {} MiB per run, {} runs, data in {}", total / MIB, runs, root.display());
            println!("batch: {} bytes, {} records of {RECORD_BYTES} B", template.len(), (template.len() - 61) / (RECORD_BYTES + 16));

            let (mut raw4, mut raw16, mut log_w) = (vec![], vec![], vec![]);
            let (mut raw_r1, mut raw_r4, mut log_r) = (vec![], vec![], vec![]);
            let log_dir = root.join("log").join("0");
            for run in 0..runs {
                raw4.push(raw_write(&root.join("raw.dat"), count * template.len(), MIB, 4).await);
                raw16.push(raw_write(&root.join("raw.dat"), count * template.len(), MIB, 16).await);
                let _ = std::fs::remove_file(root.join("raw.dat"));
                let (mbps, paths) = log_append(&disk, &log_dir, &template, count).await;
                log_w.push(mbps);
                log_r.push(log_read(&disk, &log_dir, MIB).await);
                raw_r1.push(raw_read(&paths, MIB, 1).await);
                raw_r4.push(raw_read(&paths, MIB, 4).await);
                println!(
                    "run {run}: write raw qd4 {:.0} qd16 {:.0} log {:.0} MB/s | read raw qd1 {:.0} qd4 {:.0} log {:.0} MB/s",
                    raw4[run], raw16[run], log_w[run], raw_r1[run], raw_r4[run], log_r[run]
                );
            }
            let (raw4, raw16, log_w) = (median(raw4), median(raw16), median(log_w));
            let (raw_r1, raw_r4, log_r) = (median(raw_r1), median(raw_r4), median(log_r));
            println!();
            println!("| append, fsync never, 1 MiB batches | MB/s (median) | log / raw |");
            println!("|---|---|---|");
            println!("| raw DMA write, 1 MiB, qd 4 | {raw4:.0} | {:.2} |", log_w / raw4);
            println!("| raw DMA write, 1 MiB, qd 16 | {raw16:.0} | {:.2} |", log_w / raw16);
            println!("| corelog append | {log_w:.0} | |");
            println!();
            println!("| sequential read from disk, 1 MiB | MB/s (median) | log / raw |");
            println!("|---|---|---|");
            println!("| raw DMA read, qd 1 | {raw_r1:.0} | {:.2} |", log_r / raw_r1);
            println!("| raw DMA read, qd 4 | {raw_r4:.0} | {:.2} |", log_r / raw_r4);
            println!("| corelog read (validates every batch) | {log_r:.0} | |");

            let ops = if args.quick { 2000 } else { 5000 };
            let per = if args.quick { 200 } else { 500 };
            let mut raw_sync = Vec::new();
            let mut log_sync = Vec::new();
            for _ in 0..runs {
                raw_sync.push(raw_write_sync(&root.join("sync.dat"), ops).await);
                log_sync.push(log_always(&disk, &root.join("always").join("0"), 32, per).await);
            }
            let pick = |v: Vec<SyncFigures>| {
                let mut v = v;
                v.sort_by(|a, b| a.ops_per_sec.partial_cmp(&b.ops_per_sec).unwrap());
                v.swap_remove(v.len() / 2)
            };
            let (raw, log) = (pick(raw_sync), pick(log_sync));
            println!();
            println!("| fsync always | ops/s | MB/s | fdatasync/s | p50 µs | p99 µs | p99.9 µs | max µs |");
            println!("|---|---|---|---|---|---|---|---|");
            for (name, f) in [("raw 4 KiB write + fdatasync, 1 at a time", &raw), ("corelog, 32 appenders × 1 KiB record", &log)] {
                println!(
                    "| {name} | {:.0} | {:.1} | {:.0} | {} | {} | {} | {} |",
                    f.ops_per_sec,
                    f.mb_per_sec,
                    f.syncs_per_sec,
                    pct(&f.latency, 0.5),
                    pct(&f.latency, 0.99),
                    pct(&f.latency, 0.999),
                    f.latency.max()
                );
            }
            println!("group commit: {:.1} appends per fdatasync; {:.1}× the raw loop's durable ops/s", log.ops_per_sec / log.syncs_per_sec, log.ops_per_sec / raw.ops_per_sec);
            let _ = std::fs::remove_dir_all(&root);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
