//! `corelog demo`: the storage engine end to end on this machine's disk.

use crate::cli::out::try_outln;
use crate::record::{BatchBuilder, RecordBatch};
use crate::storage::{Disk, FsyncPolicy, LogConfig, PartitionLog};
use crate::support::tempfile_dir;
use crate::types::Timestamp;
use bytes::BytesMut;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Data directory (default: a new temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Records to append.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value size of each record in bytes.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 1000)]
    batch_records: u64,
    /// fsync policy: always, interval:MS or never.
    #[arg(long, default_value = "never")]
    fsync: FsyncPolicy,
}

pub fn run(args: DemoArgs) -> Result<(), String> {
    let (dir, _guard) = match &args.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let tmp = tempfile_dir()?;
            (tmp.clone(), Some(RemoveOnDrop(tmp)))
        }
    };
    crate::support::executor(glommio::Placement::Unbound)
        .name("corelog-demo")
        .spawn(move || async move { demo(dir, args).await })
        .map_err(|e| format!("starting executor: {e}"))?
        .join()
        .map_err(|e| format!("executor failed: {e}"))?
}

async fn demo(dir: PathBuf, args: DemoArgs) -> Result<(), String> {
    let disk = Disk::open(&dir).await.map_err(|e| e.to_string())?;
    let config = LogConfig {
        fsync: args.fsync,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(&disk, dir.join("demo").join("0"), config)
        .await
        .map_err(|e| e.to_string())?;
    let value = vec![0x5au8; args.record_bytes];
    let mut builder =
        BatchBuilder::with_capacity((args.batch_records as usize) * (args.record_bytes + 32));
    let first = log.end_offset();
    try_outln!(
        "corelog demo: {} records of {} bytes in batches of {}, fsync {}, into {}",
        args.records,
        args.record_bytes,
        args.batch_records,
        args.fsync,
        dir.display()
    )?;
    let started = Instant::now();
    let mut appended = 0u64;
    let mut bytes = 0u64;
    while appended < args.records {
        let n = args.batch_records.min(args.records - appended);
        let now = Timestamp::now();
        for i in 0..n {
            let key = (appended + i).to_be_bytes();
            builder.push(now, Some(&key), Some(&value), &[]);
        }
        let batch = builder.finish();
        bytes += batch.len() as u64;
        log.append(BytesMut::from(&batch[..]))
            .await
            .map_err(|e| e.to_string())?;
        appended += n;
    }
    log.flush().await.map_err(|e| e.to_string())?;
    let write_secs = started.elapsed().as_secs_f64();
    try_outln!(
        "appended  {appended} records, {:.1} MB in {write_secs:.2} s: {:.1} MB/s, {:.0} records/s (durable after the final fdatasync)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / write_secs,
        appended as f64 / write_secs
    )?;
    log.close().await.map_err(|e| e.to_string())?;

    // Reopen so the reads come from the disk, not from memory.
    let log = PartitionLog::open(&disk, dir.join("demo").join("0"), LogConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut pos = first;
    let mut seen = 0u64;
    let mut read_bytes = 0u64;
    while pos < log.end_offset() {
        let read = log.read(pos, 4 << 20).await.map_err(|e| e.to_string())?;
        read_bytes += read.bytes as u64;
        for batch in read.batches() {
            let batch = RecordBatch::parse(batch, usize::MAX).map_err(|e| e.to_string())?;
            for record in batch.records() {
                let offset = batch.base_offset().0 + record.offset_delta as u64;
                let expected = offset - first.0;
                if record.key != Some(&expected.to_be_bytes()[..]) {
                    return Err(format!("record at offset {offset} has the wrong key"));
                }
                seen += 1;
            }
        }
        pos = read.next_offset;
    }
    let read_secs = started.elapsed().as_secs_f64();
    if seen != appended {
        return Err(format!("read back {seen} records, expected {appended}"));
    }
    try_outln!(
        "read back {seen} records, {:.1} MB in {read_secs:.2} s: {:.1} MB/s — every record verified (CRC and key)",
        read_bytes as f64 / 1e6,
        read_bytes as f64 / 1e6 / read_secs
    )?;
    try_outln!(
        "log {}: offsets {}..{}, {} segment(s)",
        log.dir().display(),
        log.start_offset(),
        log.end_offset(),
        log.segments().len()
    )?;
    log.close().await.map_err(|e| e.to_string())
}

/// Removes a temporary data directory when the command ends.
pub(crate) struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
