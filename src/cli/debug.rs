//! Hidden tools for tests: a child process that appends until killed.

use crate::record::BatchBuilder;
use crate::storage::{Disk, FsyncPolicy, LogConfig, PartitionLog};
use crate::types::Timestamp;
use bytes::BytesMut;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum DebugCommand {
    /// Append batches with several concurrent writers until killed, printing
    /// `ack <base offset> <records> <writer> <sequence>` once each append
    /// has completed. With `CORELOG_TEST_CRASH_AT` set it dies at that
    /// crash point (see `storage::crash`).
    AppendLoop(AppendLoop),
    /// Append one keyed record per append (keys repeat) with several
    /// concurrent writers while a compaction pass runs every few
    /// milliseconds, until killed, printing `ack <offset> 1 <writer>
    /// <sequence>` once each append has completed (see `compact_key`).
    CompactLoop(CompactLoop),
}

#[derive(clap::Args, Debug)]
pub struct CompactLoop {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 4)]
    writers: u32,
    /// Distinct keys the records take.
    #[arg(long, default_value_t = 50)]
    keys: u64,
    #[arg(long, default_value_t = 64 << 10)]
    segment_bytes: u64,
    /// Milliseconds between compaction passes.
    #[arg(long, default_value_t = 5)]
    clean_every_ms: u64,
}

/// The key of record `seq` of writer `w` in `compact-loop`, over `keys`
/// distinct keys.
pub fn compact_key(writer: u32, seq: u64, keys: u64) -> String {
    format!("key{}", (writer as u64 * 7 + seq * 13) % keys)
}

/// The value of record `seq` of writer `w` in `compact-loop`.
pub fn compact_value(writer: u32, seq: u64) -> String {
    format!("w{writer}-s{seq}-{:0200}", 0)
}

#[derive(clap::Args, Debug)]
pub struct AppendLoop {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = "always")]
    fsync: FsyncPolicy,
    #[arg(long, default_value_t = 8)]
    writers: u32,
    #[arg(long, default_value_t = 256 << 10)]
    segment_bytes: u64,
    /// Apply retention by size every 10 ms with this limit.
    #[arg(long)]
    retention_bytes: Option<u64>,
    /// Close the log cleanly and reopen it after every this many appends
    /// (each writer's share), exercising close and clean recovery.
    #[arg(long)]
    reopen_every: Option<u64>,
}

pub fn run(command: DebugCommand) -> Result<(), String> {
    match command {
        DebugCommand::AppendLoop(args) => crate::support::executor(glommio::Placement::Unbound)
            .spawn(move || async move { append_loop(args).await })
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|e| e.to_string())?,
        DebugCommand::CompactLoop(args) => crate::support::executor(glommio::Placement::Unbound)
            .spawn(move || async move { compact_loop(args).await })
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|e| e.to_string())?,
    }
}

async fn compact_loop(args: CompactLoop) -> Result<(), String> {
    let disk = Disk::open(&args.dir).await.map_err(|e| e.to_string())?;
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        segment_bytes: args.segment_bytes,
        compact: true,
        cleanup_delete: false,
        delete_retention_ms: 0,
        ..LogConfig::default()
    };
    let dir = args.dir.join("crash").join("0");
    let log = Rc::new(
        PartitionLog::open(&disk, &dir, config)
            .await
            .map_err(|e| e.to_string())?,
    );
    // Each writer resumes after the sequences an earlier run may have used.
    let first = Timestamp::now().0 as u64 * 1000;
    let cleaner = {
        let log = log.clone();
        let every = Duration::from_millis(args.clean_every_ms);
        glommio::spawn_local(async move {
            let options = crate::storage::CleanOptions {
                map_bytes_max: 64 << 10,
                bytes_per_sec: 0,
            };
            loop {
                glommio::timer::sleep(every).await;
                if let Err(e) = log.clean(Timestamp::now(), &options, &|| false).await {
                    eprintln!("compaction failed: {e}");
                    std::process::exit(2);
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for writer in 0..args.writers {
        let log = log.clone();
        let keys = args.keys;
        tasks.push(glommio::spawn_local(async move {
            let mut builder = BatchBuilder::default();
            for seq in first.. {
                let key = compact_key(writer, seq, keys);
                let value = compact_value(writer, seq);
                builder.push(
                    Timestamp::now(),
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                    &[],
                );
                let batch = builder.finish();
                let info = log
                    .append(BytesMut::from(&batch[..]))
                    .await
                    .map_err(|e| e.to_string())?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {} 1 {writer} {seq}", info.base_offset)
                    .map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await?;
    }
    cleaner.cancel().await;
    Ok(())
}

/// The key of record `i` of batch `seq` of writer `w`: what the crash test
/// checks after reopening.
pub fn crash_key(writer: u32, seq: u64, i: u32) -> String {
    format!("w{writer}-s{seq}-r{i}")
}

async fn append_loop(args: AppendLoop) -> Result<(), String> {
    let disk = Disk::open(&args.dir).await.map_err(|e| e.to_string())?;
    let config = LogConfig {
        fsync: args.fsync,
        segment_bytes: args.segment_bytes,
        retention_bytes: args.retention_bytes,
        ..LogConfig::default()
    };
    let dir = args.dir.join("crash").join("0");
    let mut next_seq = vec![0u64; args.writers as usize];
    loop {
        let log = Rc::new(
            PartitionLog::open(&disk, &dir, config)
                .await
                .map_err(|e| e.to_string())?,
        );
        let retention = args.retention_bytes.map(|_| {
            let log = log.clone();
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                    if let Err(e) = log.enforce_retention(Timestamp::now()).await {
                        eprintln!("retention failed: {e}");
                        std::process::exit(2);
                    }
                }
            })
        });
        let mut tasks = Vec::new();
        for writer in 0..args.writers {
            let log = log.clone();
            let first = next_seq[writer as usize];
            let last = args.reopen_every.map_or(u64::MAX, |n| first + n);
            tasks.push(glommio::spawn_local(async move {
                write_batches(&log, writer, first..last).await
            }));
        }
        for (writer, task) in tasks.into_iter().enumerate() {
            next_seq[writer] = task.await?;
        }
        if let Some(retention) = retention {
            retention.cancel().await;
        }
        let log = Rc::try_unwrap(log).map_err(|_| "log still shared".to_string())?;
        log.close().await.map_err(|e| e.to_string())?;
    }
}

/// Appends batches `seqs` of `writer`, printing an ack line for each;
/// returns the next sequence number.
async fn write_batches(
    log: &PartitionLog,
    writer: u32,
    seqs: std::ops::Range<u64>,
) -> Result<u64, String> {
    let mut builder = BatchBuilder::default();
    for seq in seqs.clone() {
        let records = 1 + (seq % 5) as u32;
        for i in 0..records {
            let key = crash_key(writer, seq, i);
            builder.push(
                Timestamp::now(),
                Some(key.as_bytes()),
                Some(&[7u8; 300]),
                &[],
            );
        }
        let batch = builder.finish();
        let info = log
            .append(BytesMut::from(&batch[..]))
            .await
            .map_err(|e| e.to_string())?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ack {} {records} {writer} {seq}", info.base_offset)
            .map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(seqs.end)
}
