//! Recovery of a partition log over a mutated segment file: the bytes are
//! written as a segment `.log` in a fresh data directory and the log is
//! opened through `PartitionLog::open`, as a broker does at start.
//!
//! Input: one control byte, then the segment file. The control byte:
//! * bit 0: recompute every framed batch's CRC-32C, and bit 1: make base
//!   offsets run on from the segment's base — so mutations reach the
//!   checks behind the CRC and continuity;
//! * bit 2: the file is a *sealed* segment, followed by an empty active
//!   segment at the offset the file's batches claim to reach (bits 4–5
//!   move that next base: +0, +1, −1, +1000); otherwise it is the active
//!   segment;
//! * bit 3: also write offset and time indexes as the broker keeps them
//!   (from the batches the framing delimits), and for an active segment a
//!   clean-close marker vouching for its size; recovery then starts from
//!   the indexes instead of the first byte;
//! * bit 6: segment base 1000000 instead of 0.
//!
//! Properties: opening never panics; if it succeeds,
//! * the log starts at the segment's base, every read up to its end
//!   returns whole batches that verify, continuous in offsets, ending at
//!   the end offset (a sealed segment whose seal completed may instead
//!   report its damage as corrupt, as documented);
//! * what an active segment keeps is a prefix of the file as written;
//! * the log takes a new append at its end and returns it;
//! * reopening after a close finds the same log.
#![no_main]

use bytes::BytesMut;
use corelog::record::{BatchBuilder, HEADER_BYTES, read_framing, verify_stored};
use corelog::storage::index::{OffsetIndex, TimeIndex};
use corelog::storage::{Disk, LogConfig, PartitionLog, StorageError};
use corelog::types::{Offset, Timestamp};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::path::{Path, PathBuf};

const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const MAX_TIMESTAMP_AT: usize = 35;

thread_local! {
    static EXECUTOR: glommio::LocalExecutor = glommio::LocalExecutorBuilder::default()
        .make()
        .expect("a glommio executor");
    static ROOT: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
    static RUN: Cell<u64> = const { Cell::new(0) };
}

/// A framed batch of the file: position, bytes, offsets it spans, max
/// timestamp (from its header, unchecked).
struct Framed {
    pos: usize,
    bytes: usize,
    span: u64,
    max_timestamp: i64,
}

fn frames(file: &[u8]) -> Vec<Framed> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(framing) = read_framing(&file[at..]) {
        let total = framing.total_bytes;
        if total < HEADER_BYTES as u64 || total > (file.len() - at) as u64 {
            break;
        }
        let b = &file[at..at + total as usize];
        let delta = i32::from_be_bytes(b[LAST_OFFSET_DELTA_AT..][..4].try_into().unwrap());
        out.push(Framed {
            pos: at,
            bytes: total as usize,
            span: (delta.max(0) as u64) + 1,
            max_timestamp: i64::from_be_bytes(b[MAX_TIMESTAMP_AT..][..8].try_into().unwrap()),
        });
        at += total as usize;
    }
    out
}

fn log_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// Offset and time index bytes for `framed` (an entry at every batch but
/// the first), and with `sealed` the final time entry that marks a
/// completed seal.
fn indexes(framed: &[Framed], sealed: bool) -> (Vec<u8>, Vec<u8>) {
    let (mut index, mut time) = (OffsetIndex::default(), TimeIndex::default());
    let (mut rel, mut max_ts) = (0u64, Timestamp::NONE);
    for (i, f) in framed.iter().enumerate() {
        let Ok(r) = u32::try_from(rel) else { break };
        if i > 0 {
            index.push(r, f.pos as u32);
            time.maybe_push(max_ts, r);
        }
        max_ts = max_ts.max(Timestamp(f.max_timestamp));
        rel += f.span;
    }
    if sealed
        && let Ok(r) = u32::try_from(rel)
        && r > 0
    {
        time.push_final(max_ts, r);
    }
    let index_bytes = index
        .entries()
        .iter()
        .flat_map(|&(o, p)| OffsetIndex::encode_entry(o, p))
        .collect();
    let time_bytes = time
        .entries()
        .iter()
        .flat_map(|&(t, o)| TimeIndex::encode_entry(t, o))
        .collect();
    (index_bytes, time_bytes)
}

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

/// Everything readable from the log's start: the bytes of its batches.
/// `Err` if a read fails.
async fn read_all(log: &PartitionLog) -> Result<Vec<u8>, StorageError> {
    let (start, end) = (log.start_offset(), log.end_offset());
    let mut pos = start;
    let mut bytes = Vec::new();
    let mut expected = start;
    // Each read returns at least one batch (one offset) or ends the loop.
    for _ in 0..=end.0 - start.0 {
        let read = log.read(pos, 1 << 20).await?;
        if read.chunks.is_empty() {
            break;
        }
        for batch in read.batches() {
            let info = verify_stored(&batch, usize::MAX).expect("a read batch verifies");
            let base = read_framing(&batch).unwrap().base_offset;
            assert_eq!(base, expected.0 as i64, "batches continue each other");
            expected = expected.plus(info.records as u64);
            bytes.extend_from_slice(&batch);
        }
        assert!(read.next_offset > pos, "a read that returns data advances");
        pos = read.next_offset;
    }
    assert_eq!(expected, end, "the batches reach the end offset");
    Ok(bytes)
}

fn one_batch() -> BytesMut {
    let mut builder = BatchBuilder::default();
    builder.push(
        Timestamp(1_700_000_000_000),
        Some(b"k"),
        Some(b"after recovery"),
        &[],
    );
    BytesMut::from(&builder.finish()[..])
}

async fn check(dir: &Path, disk: &Disk, control: u8, file: &[u8], base: u64) {
    let sealed = control & 4 != 0;
    let log = match PartitionLog::open(disk, dir, config()).await {
        Ok(log) => log,
        Err(e) => {
            // A clean refusal; note it so runs can show which happen.
            if std::env::var_os("FUZZ_VERBOSE").is_some() {
                eprintln!("open refused: {e}");
            }
            return;
        }
    };
    assert_eq!(
        log.start_offset(),
        Offset(base),
        "the log starts at its first segment"
    );
    let end = log.end_offset();
    match read_all(&log).await {
        Ok(bytes) => {
            if !sealed {
                assert_eq!(
                    &bytes[..],
                    &file[..bytes.len()],
                    "recovery keeps a prefix of the file"
                );
            }
        }
        // Documented: a sealed segment whose seal completed but whose
        // records are missing opens, and reads that reach the damage fail.
        Err(StorageError::Corrupt { .. }) if sealed && control & 8 != 0 => {}
        Err(e) => panic!("recovered log {} fails a read: {e}", dir.display()),
    }
    let appended = log
        .append(one_batch())
        .await
        .expect("append after recovery");
    assert_eq!(appended.base_offset, end);
    log.close().await.expect("close");
    let log = PartitionLog::open(disk, dir, config())
        .await
        .expect("reopen");
    assert_eq!(log.start_offset(), Offset(base));
    assert_eq!(
        log.end_offset(),
        end.plus(1),
        "reopening finds the same log"
    );
    log.close().await.expect("close again");
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let base: u64 = if control & 64 != 0 { 1_000_000 } else { 0 };
    let mut file = data.to_vec();
    let framed = frames(&file);
    let mut next = base;
    for f in &framed {
        let b = &mut file[f.pos..f.pos + f.bytes];
        if control & 2 != 0 {
            b[..8].copy_from_slice(&(next as i64).to_be_bytes());
        }
        if control & 1 != 0 {
            let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
            b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        }
        next = next.saturating_add(f.span);
    }
    let run = RUN.with(|r| {
        r.set(r.get() + 1);
        r.get()
    });
    let root: PathBuf = ROOT.with(|t| t.path().join(run.to_string()));
    let dir = root.join("t").join("0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(log_name(base)), &file).unwrap();
    let with_indexes = control & 8 != 0;
    if control & 4 != 0 {
        let next_base = match (control >> 4) & 3 {
            0 => next,
            1 => next + 1,
            2 => next.saturating_sub(1).max(base + 1),
            _ => next + 1000,
        }
        .max(base + 1);
        std::fs::write(dir.join(log_name(next_base)), b"").unwrap();
        if with_indexes {
            let (index, time) = indexes(&framed, true);
            std::fs::write(dir.join(log_name(base)).with_extension("index"), index).unwrap();
            std::fs::write(dir.join(log_name(base)).with_extension("timeindex"), time).unwrap();
        }
    } else if with_indexes {
        let (index, time) = indexes(&framed, false);
        std::fs::write(dir.join(log_name(base)).with_extension("index"), index).unwrap();
        std::fs::write(dir.join(log_name(base)).with_extension("timeindex"), time).unwrap();
        let marker = format!(
            "corelog clean close v1 segment={base} bytes={}\n",
            file.len()
        );
        std::fs::write(dir.join(".clean-close"), marker).unwrap();
    }
    EXECUTOR.with(|ex| {
        ex.run(async {
            let disk = Disk::open(&root).await.expect("data directory");
            check(&dir, &disk, control, &file, base).await;
        })
    });
    std::fs::remove_dir_all(&root).unwrap();
});
