//! The log's replication API against real files: leader epochs and their
//! cache, replica appends, truncation, the replicated high watermark.

use super::PartitionLog;
use crate::record::{BatchBuilder, RecordBatch, leader_epoch, stamp_leader_epoch};
use crate::storage::{Disk, FsyncPolicy, LogConfig, StorageError};
use crate::types::{Offset, Timestamp};
use bytes::BytesMut;
use std::future::Future;
use std::path::{Path, PathBuf};

fn run<T>(f: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(f)
}

/// A batch of `records` records keyed `k<n>` from `first`, values of
/// `value_bytes`, timestamps `ts0, ts0+1, …`, leader epoch -1 (as clients
/// send it).
fn batch(first: u64, records: u64, value_bytes: usize, ts0: i64) -> BytesMut {
    let mut builder = BatchBuilder::with_capacity(records as usize * (value_bytes + 32));
    for i in 0..records {
        let key = format!("k{:08}", first + i);
        builder.push(
            Timestamp(ts0 + i as i64),
            Some(key.as_bytes()),
            Some(&vec![7u8; value_bytes]),
            &[],
        );
    }
    let mut bytes = BytesMut::from(&builder.finish()[..]);
    stamp_leader_epoch(&mut bytes, -1);
    bytes
}

/// An idempotent producer's batch of `records` records from `seq`.
fn idempotent(producer: i64, seq: i32, records: u64) -> BytesMut {
    let mut builder = BatchBuilder::with_capacity(256);
    builder.set_producer(producer, 0, seq);
    for i in 0..records {
        builder.push(Timestamp(1000 + i as i64), Some(b"p"), Some(b"v"), &[]);
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
        ..LogConfig::default()
    }
}

async fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    let disk = Disk::open(dir.parent().unwrap()).await.unwrap();
    PartitionLog::open(&disk, dir, config).await.unwrap()
}

fn log_dir(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    tmp.path().join(name).join("0")
}

/// Every batch readable from `from` with `read` (the client's) or
/// `read_replica`: (base offset, record count, leader epoch, first key).
async fn batches(log: &PartitionLog, replica: bool) -> Vec<(u64, u32, i32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = log.start_offset();
    loop {
        let read = if replica {
            log.read_replica(pos, 1 << 20).await.unwrap()
        } else {
            log.read(pos, 1 << 20).await.unwrap()
        };
        if read.chunks.is_empty() {
            break;
        }
        for bytes in read.batches() {
            let b = RecordBatch::parse(bytes, 1 << 24).unwrap();
            let key = b.records().next().and_then(|r| r.key).unwrap_or(b"");
            out.push((
                b.base_offset().0,
                b.record_count(),
                b.partition_leader_epoch(),
                key.to_vec(),
            ));
        }
        pos = read.next_offset;
    }
    out
}

/// Copies everything of `leader` the follower lacks, as a fetch would.
async fn replicate(leader: &PartitionLog, follower: &PartitionLog) {
    loop {
        let read = leader
            .read_replica(follower.end_offset(), 1 << 20)
            .await
            .unwrap();
        if read.chunks.is_empty() {
            return;
        }
        let mut bytes = BytesMut::new();
        for chunk in &read.chunks {
            bytes.extend_from_slice(chunk);
        }
        follower.start_append_replica(bytes).await.unwrap();
    }
}

fn entries(list: &[(i32, u64)]) -> Vec<(i32, Offset)> {
    list.iter().map(|&(e, o)| (e, Offset(o))).collect()
}

#[test]
fn leader_appends_stamp_the_epoch_and_the_cache_survives_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let log = open(&dir, LogConfig::default()).await;
        // Never set: batches keep what the client sent.
        log.append(batch(0, 3, 10, 1000)).await.unwrap();
        assert_eq!(log.latest_epoch(), None);
        log.set_leader_epoch(3).await.unwrap();
        log.append(batch(3, 2, 10, 1000)).await.unwrap();
        // Queued around an epoch change: the order they were started in.
        let a = log.start_append(batch(5, 4, 10, 1000));
        let change = log.set_leader_epoch(5);
        let b = log.start_append(batch(9, 1, 10, 1000));
        let (b, _, a) = (b.await.unwrap(), change.await.unwrap(), a.await.unwrap());
        assert_eq!((a.base_offset, b.base_offset), (Offset(5), Offset(9)));
        // The same epoch again only resumes stamping; an older one fails.
        log.set_leader_epoch(5).await.unwrap();
        assert!(matches!(
            log.set_leader_epoch(4).await,
            Err(StorageError::InvalidLeaderEpoch {
                epoch: 4,
                latest: Some(5)
            })
        ));
        assert!(log.set_leader_epoch(-1).await.is_err());
        let expected = vec![(0, 3, -1), (3, 2, 3), (5, 4, 3), (9, 1, 5)];
        let seen = |b: Vec<(u64, u32, i32, Vec<u8>)>| {
            b.into_iter()
                .map(|(o, n, e, _)| (o, n, e))
                .collect::<Vec<_>>()
        };
        assert_eq!(seen(batches(&log, false).await), expected);
        assert_eq!(log.epoch_entries(), entries(&[(3, 3), (5, 9)]));
        assert_eq!(log.latest_epoch(), Some(5));
        log.close().await.unwrap();

        let log = open(&dir, LogConfig::default()).await;
        assert_eq!(log.epoch_entries(), entries(&[(3, 3), (5, 9)]));
        assert_eq!(seen(batches(&log, false).await), expected);
        // Stamping is not persisted: the replication layer sets it again.
        log.append(batch(10, 1, 10, 1000)).await.unwrap();
        assert_eq!(batches(&log, false).await.last().unwrap().2, -1);
        log.close().await.unwrap();
    });
}

#[test]
fn end_offset_for_epoch_answers_offset_for_leader_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let log = open(&dir, LogConfig::default()).await;
        assert_eq!(log.end_offset_for_epoch(0), None, "an empty log");
        log.set_leader_epoch(1).await.unwrap();
        log.append(batch(0, 10, 10, 1000)).await.unwrap();
        log.set_leader_epoch(4).await.unwrap();
        log.append(batch(10, 5, 10, 1000)).await.unwrap();
        log.set_leader_epoch(6).await.unwrap();
        log.append(batch(15, 5, 10, 1000)).await.unwrap();
        assert_eq!(log.end_offset_for_epoch(0), None);
        assert_eq!(log.end_offset_for_epoch(1), Some((1, Offset(10))));
        assert_eq!(log.end_offset_for_epoch(3), Some((1, Offset(10))));
        assert_eq!(log.end_offset_for_epoch(4), Some((4, Offset(15))));
        assert_eq!(log.end_offset_for_epoch(6), Some((6, Offset(20))));
        assert_eq!(log.end_offset_for_epoch(9), Some((6, Offset(20))));
        log.close().await.unwrap();
    });
}

#[test]
fn a_log_without_an_epoch_file_opens_with_an_empty_cache_as_epoch_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let log = open(&dir, LogConfig::default()).await;
        log.append(batch(0, 8, 10, 1000)).await.unwrap();
        log.close().await.unwrap();
        assert!(!dir.join(super::epochs::FILE_NAME).exists());
        let log = open(&dir, LogConfig::default()).await;
        assert_eq!(log.epoch_entries(), vec![]);
        assert_eq!(log.latest_epoch(), None);
        assert_eq!(log.end_offset_for_epoch(2), Some((0, Offset(8))));
        assert_eq!(log.end_offset_for_epoch(-1), None);
        log.close().await.unwrap();
    });
}

#[test]
fn epochs_past_the_recovered_end_are_dropped_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let log = open(&dir, LogConfig::default()).await;
        log.set_leader_epoch(1).await.unwrap();
        log.append(batch(0, 8, 10, 1000)).await.unwrap();
        // Saved before any record of it: as if a crash took them.
        log.set_leader_epoch(2).await.unwrap();
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 8)]));
        log.close().await.unwrap();
        let log = open(&dir, LogConfig::default()).await;
        assert_eq!(log.epoch_entries(), entries(&[(1, 0)]));
        log.close().await.unwrap();
        // And the file was rewritten.
        let text = std::fs::read_to_string(dir.join(super::epochs::FILE_NAME)).unwrap();
        assert_eq!(text, "0\n1\n1 0\n");
    });
}

#[test]
fn replica_appends_keep_offsets_and_epochs_and_refuse_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let config = LogConfig {
            fsync: FsyncPolicy::Always,
            ..small_segments()
        };
        let leader = open(&log_dir(&tmp, "leader"), config).await;
        let follower = open(&log_dir(&tmp, "follower"), config).await;
        leader.set_leader_epoch(2).await.unwrap();
        let mut n = 0;
        for i in 0..40 {
            if i == 25 {
                leader.set_leader_epoch(7).await.unwrap();
            }
            leader
                .append(batch(n, 5, 300, 1000 + n as i64))
                .await
                .unwrap();
            n += 5;
        }
        leader.append(idempotent(42, 0, 3)).await.unwrap();
        replicate(&leader, &follower).await;
        assert_eq!(follower.end_offset(), leader.end_offset());
        assert_eq!(follower.durable_offset(), follower.end_offset());
        assert_eq!(
            batches(&follower, false).await,
            batches(&leader, false).await
        );
        assert_eq!(follower.epoch_entries(), entries(&[(2, 0), (7, 125)]));
        assert_eq!(follower.epoch_entries(), leader.epoch_entries());
        assert!(follower.segment_count() > 1, "rolled like the leader");

        // A batch past the end, or before it: refused, nothing stored.
        let end = follower.end_offset();
        let mut gap = batch(0, 2, 10, 1000);
        crate::record::stamp_base_offset(&mut gap, end.plus(5));
        match follower.start_append_replica(gap).await {
            Err(StorageError::ReplicaOffsetMismatch { expected, got }) => {
                assert_eq!((expected, got), (end, end.plus(5)));
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        let mut old = batch(0, 2, 10, 1000);
        crate::record::stamp_base_offset(&mut old, Offset(3));
        assert!(follower.start_append_replica(old).await.is_err());
        // Two batches that do not follow each other.
        let mut first = batch(0, 2, 10, 1000);
        crate::record::stamp_base_offset(&mut first, end);
        let mut second = batch(0, 2, 10, 1000);
        crate::record::stamp_base_offset(&mut second, end.plus(3));
        first.extend_from_slice(&second);
        assert!(matches!(
            follower.start_append_replica(first).await,
            Err(StorageError::ReplicaOffsetMismatch { .. })
        ));
        assert_eq!(follower.end_offset(), end);

        // The producer's sequence is not checked on a replica (the leader
        // did), but recorded: once leader, the follower answers a retry of
        // its batch with the original offsets.
        let mut jump = idempotent(42, 50, 1);
        crate::record::stamp_base_offset(&mut jump, end);
        let info = follower.start_append_replica(jump).await.unwrap();
        assert_eq!(info.base_offset, end);
        follower.set_leader_epoch(8).await.unwrap();
        let retry = follower.append(idempotent(42, 50, 1)).await.unwrap();
        assert_eq!(retry.base_offset, end, "a duplicate, not a new batch");
        assert_eq!(follower.end_offset(), end.plus(1));
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
}

#[test]
fn a_compacted_batch_replicates() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let follower = open(&log_dir(&tmp, "follower"), LogConfig::default()).await;
        let filler = crate::record::filler_batch(Offset(0), 4, Timestamp(1000));
        let mut bytes = BytesMut::from(&filler[..]);
        stamp_leader_epoch(&mut bytes, 3);
        assert_eq!(leader_epoch(&bytes), 3);
        follower.start_append_replica(bytes).await.unwrap();
        follower
            .start_append_replica({
                let mut b = batch(4, 2, 10, 1000);
                crate::record::stamp_base_offset(&mut b, Offset(4));
                b
            })
            .await
            .unwrap();
        assert_eq!(follower.end_offset(), Offset(6));
        assert_eq!(follower.epoch_entries(), entries(&[(3, 0)]));
        follower.close().await.unwrap();
    });
}

#[test]
fn truncate_inside_the_active_segment_then_appends_continue_at_the_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let log = open(&dir, small_segments()).await;
        log.set_leader_epoch(1).await.unwrap();
        for i in 0..10u64 {
            if i == 6 {
                log.set_leader_epoch(2).await.unwrap();
            }
            log.append(batch(i * 4, 4, 200, 1000)).await.unwrap();
        }
        log.flush().await.unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 24)]));
        // Beyond the end: nothing to do.
        log.truncate_to(Offset(40)).await.unwrap();
        assert_eq!(log.end_offset(), Offset(40));
        // Inside a batch: cut at its base.
        log.truncate_to(Offset(22)).await.unwrap();
        assert_eq!(log.end_offset(), Offset(20));
        assert_eq!(log.high_watermark(), Offset(20));
        assert_eq!(log.epoch_entries(), entries(&[(1, 0)]));
        assert_eq!(log.end_offset_for_epoch(2), Some((1, Offset(20))));
        let info = log.append(batch(20, 3, 200, 2000)).await.unwrap();
        assert_eq!(info.base_offset, Offset(20));
        let expected: Vec<u64> = vec![0, 4, 8, 12, 16, 20];
        let bases = |b: Vec<(u64, u32, i32, Vec<u8>)>| b.iter().map(|b| b.0).collect::<Vec<_>>();
        let read = batches(&log, false).await;
        assert_eq!(bases(read.clone()), expected);
        assert_eq!(read.last().unwrap().3, b"k00000020".to_vec());
        // A cut in what is still only in the tail cache and the write chunk.
        log.append(batch(23, 2, 200, 2000)).await.unwrap();
        log.truncate_to(Offset(23)).await.unwrap();
        assert_eq!(log.end_offset(), Offset(23));
        assert!(matches!(
            log.truncate_to(Offset(0)).await,
            Ok(()) // the log start: everything goes
        ));
        assert_eq!(log.end_offset(), Offset(0));
        for i in 0..5u64 {
            log.append(batch(100 + i * 4, 4, 200, 3000)).await.unwrap();
        }
        log.truncate_to(Offset(12)).await.unwrap();
        let before = batches(&log, false).await;
        assert_eq!(bases(before.clone()), vec![0, 4, 8]);
        log.close().await.unwrap();

        let log = open(&dir, small_segments()).await;
        assert_eq!(log.end_offset(), Offset(12));
        assert_eq!(batches(&log, false).await, before);
        assert_eq!(log.epoch_entries(), vec![]);
        log.close().await.unwrap();
    });
}

#[test]
fn truncate_below_the_active_segment_removes_later_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let config = LogConfig {
            fsync: FsyncPolicy::Always,
            ..small_segments()
        };
        let log = open(&dir, config).await;
        log.set_leader_epoch(0).await.unwrap();
        let mut n = 0u64;
        for i in 0..120 {
            if i == 60 {
                log.set_leader_epoch(3).await.unwrap();
            }
            log.append(idempotent(9, i, 1)).await.unwrap();
            log.append(batch(n + 1, 4, 700, 1000 + n as i64))
                .await
                .unwrap();
            n += 5;
        }
        let segments = log.segments();
        assert!(segments.len() >= 4, "{} segments", segments.len());
        // Into the second segment, inside a batch.
        let second = segments[1].base_offset;
        let target = second.plus(12);
        let all = batches(&log, false).await;
        let keep = all
            .iter()
            .map(|b| b.0)
            .filter(|&b| b <= target.0)
            .max()
            .unwrap();
        let epoch3_start = log.epoch_entries()[1].1;
        log.truncate_to(target).await.unwrap();
        assert_eq!(log.end_offset(), Offset(keep));
        assert_eq!(log.durable_offset(), Offset(keep));
        assert_eq!(log.segment_count(), 2);
        assert!(log.segments()[1].active);
        let kept: Vec<_> = all.iter().filter(|b| b.0 < keep).cloned().collect();
        assert_eq!(batches(&log, false).await, kept);
        assert!(epoch3_start.0 > keep, "the cut drops epoch 3");
        assert_eq!(log.epoch_entries(), entries(&[(0, 0)]));
        // Later segments' files and producer snapshots are gone.
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(digits) = name.split('.').next().filter(|d| d.len() == 20) {
                let offset: u64 = digits.parse().unwrap();
                assert!(offset <= keep, "{name} survived a cut at {keep}");
            }
        }
        // Appends continue at the cut, and the producer state forgot the
        // cut batches: its next sequence follows the last kept one.
        let last_seq = (all.iter().filter(|b| b.0 < keep && b.3 == b"p").count() - 1) as i32;
        let info = log.append(idempotent(9, last_seq + 1, 1)).await.unwrap();
        assert_eq!(info.base_offset, Offset(keep));
        for i in 0..30 {
            log.append(batch(1000 + i * 4, 4, 700, 5000)).await.unwrap();
        }
        let before = batches(&log, false).await;
        let segments = log.segment_count();
        log.close().await.unwrap();

        let log = open(&dir, config).await;
        assert_eq!(batches(&log, false).await, before);
        assert_eq!(log.segment_count(), segments);
        // And a deep cut down to the log start empties the log.
        log.truncate_to(log.start_offset()).await.unwrap();
        assert_eq!(log.end_offset(), Offset(0));
        assert_eq!(log.segment_count(), 1);
        assert_eq!(batches(&log, false).await, vec![]);
        log.close().await.unwrap();
        let log = open(&dir, config).await;
        assert_eq!(log.end_offset(), Offset(0));
        log.close().await.unwrap();
    });
}

#[test]
fn truncate_below_the_log_start_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let config = LogConfig {
            retention_bytes: Some(1),
            ..small_segments()
        };
        let log = open(&dir, config).await;
        for i in 0..100 {
            log.append(batch(i * 4, 4, 700, 1000)).await.unwrap();
        }
        log.flush().await.unwrap();
        // Seals finish in the background; retention takes sealed ones.
        log.make_durable(log.end_offset()).await.unwrap();
        log.enforce_retention(Timestamp::now()).await.unwrap();
        let start = log.start_offset();
        assert!(start > Offset(0));
        assert!(matches!(
            log.truncate_to(Offset(1)).await,
            Err(StorageError::TruncateBelowStart { requested, start: s })
                if requested == Offset(1) && s == start
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn the_visible_end_caps_client_reads_but_not_replica_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let log = open(&dir, LogConfig::default()).await;
        for i in 0..5u64 {
            log.append(batch(i * 4, 4, 10, 1000 + i as i64 * 10))
                .await
                .unwrap();
        }
        assert_eq!(log.high_watermark(), Offset(20));
        assert_eq!(log.visible_end(), None);
        let listener = log.listen_for_data();
        log.set_visible_end(Offset(8));
        listener.await;
        assert_eq!(log.high_watermark(), Offset(8));
        assert_eq!(log.local_high_watermark(), Offset(20));
        let read = log.read(Offset(0), 1 << 20).await.unwrap();
        assert_eq!(
            (read.next_offset, read.high_watermark),
            (Offset(8), Offset(8))
        );
        assert_eq!(batches(&log, false).await.len(), 2);
        assert!(
            log.read(Offset(8), 1 << 20)
                .await
                .unwrap()
                .chunks
                .is_empty()
        );
        assert!(matches!(
            log.read(Offset(12), 1 << 20).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        let replica = log.read_replica(Offset(0), 1 << 20).await.unwrap();
        assert_eq!(
            (replica.next_offset, replica.high_watermark),
            (Offset(20), Offset(20))
        );
        assert_eq!(batches(&log, true).await.len(), 5);
        // Timestamps: 1000.. in the first batch, 1010.. in the second.
        assert_eq!(
            log.offset_for_timestamp(Timestamp(1011)).await.unwrap(),
            Some((Offset(5), Timestamp(1011)))
        );
        assert_eq!(
            log.offset_for_timestamp(Timestamp(1020)).await.unwrap(),
            None
        );
        assert_eq!(
            log.offset_of_max_timestamp().await.unwrap(),
            Some((Offset(7), Timestamp(1013)))
        );
        log.set_visible_end(Offset(40));
        assert_eq!(log.high_watermark(), Offset(20));
        assert_eq!(
            log.offset_of_max_timestamp().await.unwrap(),
            Some((Offset(19), Timestamp(1043)))
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_durability_wait_on_truncated_records_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let log = open(&dir, LogConfig::default()).await;
        log.append(batch(0, 4, 10, 1000)).await.unwrap();
        log.flush().await.unwrap();
        log.append(batch(4, 4, 10, 1000)).await.unwrap();
        let wait = log.make_durable(Offset(8));
        let cut = log.truncate_to(Offset(4));
        let (wait, cut) = futures::join!(wait, cut);
        cut.unwrap();
        assert!(
            matches!(
                wait,
                Err(StorageError::Truncated { offset, cut_to })
                    if offset == Offset(8) && cut_to == Offset(4)
            ),
            "{wait:?}"
        );
        assert_eq!(log.end_offset(), Offset(4));
        log.close().await.unwrap();
    });
}

#[test]
fn a_follower_with_a_divergent_tail_truncates_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let config = small_segments();
        let old_leader = open(&log_dir(&tmp, "a"), config).await;
        let new_leader = open(&log_dir(&tmp, "b"), config).await;
        // Epoch 1: both hold offsets 0..40.
        old_leader.set_leader_epoch(1).await.unwrap();
        for i in 0..10u64 {
            old_leader.append(batch(i * 4, 4, 500, 1000)).await.unwrap();
        }
        replicate(&old_leader, &new_leader).await;
        // The old leader appends more at epoch 1 that never replicates…
        for i in 10..30u64 {
            old_leader.append(batch(i * 4, 4, 500, 1000)).await.unwrap();
        }
        // …while the new leader, at epoch 2, takes other records.
        new_leader.set_leader_epoch(2).await.unwrap();
        for i in 0..5u64 {
            new_leader
                .append(batch(900 + i * 4, 4, 500, 2000))
                .await
                .unwrap();
        }
        // The old leader becomes a follower: OffsetForLeaderEpoch with its
        // latest epoch, then a cut there and a fetch.
        let latest = old_leader.latest_epoch().unwrap();
        let (epoch, end) = new_leader.end_offset_for_epoch(latest).unwrap();
        assert_eq!((epoch, end), (1, Offset(40)));
        old_leader.truncate_to(end).await.unwrap();
        assert_eq!(old_leader.end_offset(), Offset(40));
        replicate(&new_leader, &old_leader).await;
        assert_eq!(
            batches(&old_leader, false).await,
            batches(&new_leader, false).await
        );
        assert_eq!(old_leader.epoch_entries(), entries(&[(1, 0), (2, 40)]));
        old_leader.close().await.unwrap();
        new_leader.close().await.unwrap();
    });
}

#[test]
fn appends_queued_before_a_truncation_are_cut_and_later_ones_follow_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp, "t");
    run(async {
        let log = open(&dir, LogConfig::default()).await;
        log.append(batch(0, 4, 10, 1000)).await.unwrap();
        let before = log.start_append(batch(4, 4, 10, 1000));
        let cut = log.truncate_to(Offset(4));
        let (before, cut) = futures::join!(before, cut);
        cut.unwrap();
        assert_eq!(before.unwrap().base_offset, Offset(4));
        assert_eq!(log.end_offset(), Offset(4));
        let after = log.append(batch(8, 2, 10, 1000)).await.unwrap();
        assert_eq!(after.base_offset, Offset(4));
        let keys: Vec<Vec<u8>> = batches(&log, false)
            .await
            .into_iter()
            .map(|b| b.3)
            .collect();
        assert_eq!(keys, vec![b"k00000000".to_vec(), b"k00000008".to_vec()]);
        log.close().await.unwrap();
    });
}
