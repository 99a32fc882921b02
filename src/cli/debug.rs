//! Hidden tools for tests: a child process that appends until killed.

use crate::record::BatchBuilder;
use crate::storage::{Disk, FsyncPolicy, LogConfig, PartitionLog};
use crate::types::Timestamp;
use bytes::BytesMut;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

#[derive(clap::Subcommand, Debug)]
pub enum DebugCommand {
    /// Append batches with several concurrent writers until killed, printing
    /// `ack <base offset> <records> <writer> <sequence>` once each append
    /// has completed.
    AppendLoop {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "always")]
        fsync: FsyncPolicy,
        #[arg(long, default_value_t = 8)]
        writers: u32,
        #[arg(long, default_value_t = 256 << 10)]
        segment_bytes: u64,
    },
}

pub fn run(command: DebugCommand) -> Result<(), String> {
    match command {
        DebugCommand::AppendLoop {
            dir,
            fsync,
            writers,
            segment_bytes,
        } => glommio::LocalExecutorBuilder::default()
            .spawn(move || async move { append_loop(dir, fsync, writers, segment_bytes).await })
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|e| e.to_string())?,
    }
}

/// The key of record `i` of batch `seq` of writer `w`: what the crash test
/// checks after reopening.
pub fn crash_key(writer: u32, seq: u64, i: u32) -> String {
    format!("w{writer}-s{seq}-r{i}")
}

async fn append_loop(
    dir: PathBuf,
    fsync: FsyncPolicy,
    writers: u32,
    segment_bytes: u64,
) -> Result<(), String> {
    let disk = Disk::open(&dir).await.map_err(|e| e.to_string())?;
    let config = LogConfig {
        fsync,
        segment_bytes,
        ..LogConfig::default()
    };
    let log = Rc::new(
        PartitionLog::open(&disk, dir.join("crash").join("0"), config)
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let log = log.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut builder = BatchBuilder::default();
            for seq in 0u64.. {
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
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}
