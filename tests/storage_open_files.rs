//! How many files the storage engine keeps open (issue 13, defect 2): an
//! idle partition holds one descriptor (its active segment's log), and
//! sealed segments open theirs on demand through the executor's bounded
//! cache — with reads racing eviction, retention deleting cached segments
//! and compaction replacing them.

use bytes::BytesMut;
use corelog::record::{BatchBuilder, RecordBatch};
use corelog::storage::{CleanOptions, Disk, FsyncPolicy, LogConfig, PartitionLog, StorageError};
use corelog::types::{Offset, Timestamp};
use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn run<T>(f: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(f)
}

/// A batch of `records` records of `value_bytes`, keys `k<n>` (n from
/// `first`, modulo `keys` if set), timestamps `ts0`.
fn batch(first: u64, records: u64, value_bytes: usize, keys: Option<u64>, ts0: i64) -> BytesMut {
    let mut builder = BatchBuilder::with_capacity(records as usize * (value_bytes + 32));
    for i in 0..records {
        let n = first + i;
        let key = format!("k{}", keys.map_or(n, |k| n % k));
        let mut value = vec![b'.'; value_bytes];
        value[..8].copy_from_slice(&n.to_be_bytes());
        builder.push(Timestamp(ts0), Some(key.as_bytes()), Some(&value), &[]);
    }
    BytesMut::from(&builder.finish()[..])
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 1024,
        write_chunk_bytes: 16 << 10,
        tail_cache_bytes: 8 << 10,
        batch_bytes_max: 64 << 10,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

/// Descriptors of this process open on files under `dir`: (all, deleted).
fn fds_under(dir: &Path) -> (usize, usize) {
    let dir = dir.canonicalize().unwrap();
    let (mut all, mut deleted) = (0, 0);
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.starts_with(&dir) {
            all += 1;
            if target.to_string_lossy().ends_with(" (deleted)") {
                deleted += 1;
            }
        }
    }
    (all, deleted)
}

/// Waits (bounded, on the executor) until `check` holds: closes of dropped
/// files complete on the executor's next I/O cycle.
async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// Appends 1 KB records until the log has `segments` segments, then waits
/// until every rolled one is sealed. Returns the end offset.
async fn fill(log: &PartitionLog, segments: usize, keys: Option<u64>) -> u64 {
    while log.segments().len() < segments {
        let first = log.end_offset().0;
        log.append(batch(first, 8, 1000, keys, 1_000))
            .await
            .unwrap();
    }
    wait_for("seals", || log.segments().iter().all(|s| !s.sealing)).await;
    log.end_offset().0
}

/// Reads everything from the start; checks every record is there once.
async fn read_all(log: &PartitionLog) -> u64 {
    let mut pos = log.start_offset();
    let mut records = 0u64;
    for _ in 0..100_000 {
        let read = log.read(pos, 16 << 10).await.expect("read");
        if read.chunks.is_empty() {
            assert_eq!(pos, read.high_watermark);
            break;
        }
        for bytes in read.batches() {
            let batch = RecordBatch::parse(bytes, 1 << 24).unwrap();
            for record in batch.records() {
                let offset = batch.base_offset().0 + record.offset_delta as u64;
                if offset >= pos.0 {
                    let value = record.value.unwrap();
                    assert_eq!(&value[..8], &offset.to_be_bytes()[..], "offset {offset}");
                    records += 1;
                }
            }
        }
        pos = read.next_offset;
    }
    records
}

#[test]
fn an_idle_partition_holds_one_descriptor_and_sealed_segments_share_a_bounded_cache() {
    const LOGS: usize = 40;
    const CACHE: usize = 4;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    run(async move {
        let disk = Disk::open(&data).await.unwrap();
        disk.open_files().set_capacity(CACHE);
        let mut logs = Vec::new();
        for i in 0..LOGS {
            let dir = data.join("t").join(i.to_string());
            let log = PartitionLog::open(&disk, dir, small_segments())
                .await
                .unwrap();
            fill(&log, 4, None).await;
            logs.push(log);
        }
        // Each log: one active log file; the 120 sealed segments share the
        // cache's 4 (files it evicted close on the executor's next cycle).
        wait_for("idle logs to hold one file each", || {
            fds_under(&data).0 <= LOGS + CACHE
        })
        .await;
        eprintln!(
            "{LOGS} idle logs with 3 sealed segments each: {} descriptors",
            fds_under(&data).0
        );
        for log in &logs {
            assert_eq!(read_all(log).await, log.end_offset().0);
            let stats = disk.open_files().stats();
            assert!(stats.open <= CACHE, "{stats:?}");
        }
        let stats = disk.open_files().stats();
        assert!(stats.evictions > 0 && stats.opens > 0, "{stats:?}");
        wait_for("evicted files to close", || {
            fds_under(&data).0 <= LOGS + CACHE
        })
        .await;
        // Closed and reopened, the logs hold the same.
        for log in logs {
            log.close().await.unwrap();
        }
        let mut logs = Vec::new();
        for i in 0..LOGS {
            let dir = data.join("t").join(i.to_string());
            logs.push(
                PartitionLog::open(&disk, dir, small_segments())
                    .await
                    .unwrap(),
            );
        }
        wait_for("files opened at start to settle", || {
            fds_under(&data).0 <= LOGS + CACHE
        })
        .await;
        for log in &logs {
            assert_eq!(read_all(log).await, log.end_offset().0);
        }
    });
}

#[test]
fn concurrent_reads_wait_for_a_free_slot_and_a_file_in_use_is_never_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    run(async move {
        let disk = Disk::open(&data).await.unwrap();
        disk.open_files().set_capacity(1);
        let mut logs = Vec::new();
        for i in 0..6 {
            let dir = data.join("t").join(i.to_string());
            let log = PartitionLog::open(&disk, dir, small_segments())
                .await
                .unwrap();
            fill(&log, 5, None).await;
            logs.push(Rc::new(log));
        }
        // Twelve readers over six logs' sealed segments through one slot:
        // each waits its turn, none reads a file closed under it.
        let readers: Vec<_> = (0..12)
            .map(|i| {
                let log = logs[i % logs.len()].clone();
                glommio::spawn_local(async move { read_all(&log).await == log.end_offset().0 })
            })
            .collect();
        for reader in readers {
            assert!(reader.await, "a reader saw every record");
        }
        let stats = disk.open_files().stats();
        assert!(stats.open <= 1, "{stats:?}");
        assert!(stats.waits > 0, "readers had to wait: {stats:?}");
    });
}

#[test]
fn retention_closes_the_cached_files_of_the_segments_it_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    run(async move {
        let disk = Disk::open(&data).await.unwrap();
        disk.open_files().set_capacity(16);
        let dir = data.join("t").join("0");
        let log = PartitionLog::open(&disk, &dir, small_segments())
            .await
            .unwrap();
        let end = fill(&log, 6, None).await;
        assert_eq!(read_all(&log).await, end);
        assert!(disk.open_files().stats().cached >= 5);
        // Keep about two segments.
        let mut config = log.config();
        config.retention_bytes = Some(130 << 10);
        log.set_config(config).unwrap();
        let outcome = log.enforce_retention(Timestamp::now()).await.unwrap();
        assert!(outcome.segments_deleted >= 3, "{outcome:?}");
        wait_for("deleted segments' files to close", || {
            fds_under(&data).1 == 0
        })
        .await;
        // A reader asking below the new start is told the range.
        match log.read(Offset::ZERO, 1024).await {
            Err(StorageError::OffsetOutOfRange { start, .. }) => {
                assert_eq!(start, log.start_offset())
            }
            other => panic!("expected out of range, got {other:?}"),
        }
        let start = log.start_offset().0;
        let mut pos = log.start_offset();
        let mut records = 0;
        while pos.0 < end {
            let read = log.read(pos, 16 << 10).await.unwrap();
            for b in read.batches() {
                let batch = RecordBatch::parse(b, 1 << 24).unwrap();
                records += batch.record_count() as u64;
            }
            pos = read.next_offset;
        }
        assert_eq!(records, end - start);
    });
}

#[test]
fn a_compaction_swap_of_a_cached_segment_is_read_from_its_new_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    run(async move {
        let disk = Disk::open(&data).await.unwrap();
        disk.open_files().set_capacity(3);
        let dir = data.join("t").join("0");
        let config = LogConfig {
            compact: true,
            cleanup_delete: false,
            ..small_segments()
        };
        let log = PartitionLog::open(&disk, &dir, config).await.unwrap();
        let end = fill(&log, 5, Some(20)).await;
        // Every sealed segment's old file goes through the cache.
        assert_eq!(read_all(&log).await, end);
        let cleaned = log
            .clean(Timestamp::now(), &CleanOptions::default(), &|| false)
            .await
            .unwrap()
            .expect("a pass runs");
        assert!(cleaned.records_removed > 0, "{cleaned:?}");
        // Reads see the compacted files: only the latest record of each
        // key below the cleaned offset, then everything after it.
        let mut pos = log.start_offset();
        let mut offsets = Vec::new();
        while pos.0 < end {
            let read = log.read(pos, 16 << 10).await.unwrap();
            assert!(!read.chunks.is_empty());
            for b in read.batches() {
                let batch = RecordBatch::parse(b, 1 << 24).unwrap();
                for r in batch.records() {
                    let offset = batch.base_offset().0 + r.offset_delta as u64;
                    assert_eq!(&r.value.unwrap()[..8], &offset.to_be_bytes()[..]);
                    if offset >= pos.0 {
                        offsets.push(offset);
                    }
                }
            }
            pos = read.next_offset;
        }
        let below = offsets
            .iter()
            .filter(|&&o| o < cleaned.cleaned_to.0)
            .count();
        assert_eq!(below, 20, "one record per key below the cleaned offset");
        assert_eq!(
            offsets.len() as u64 - below as u64,
            end - cleaned.cleaned_to.0
        );
        assert!(disk.open_files().stats().open <= 3);
        wait_for("replaced files to close", || fds_under(&data).1 == 0).await;
    });
}
