//! The partition log against real files: offsets, reads, rolling, indexes,
//! retention, durability, recovery from torn tails and corruption.

use bytes::BytesMut;
use corelog::record::{BatchBuilder, Header, RecordBatch};
use corelog::storage::{Disk, Faults, FsyncPolicy, LogConfig, PartitionLog, StorageError};
use corelog::types::{Offset, Timestamp};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

fn run<T>(f: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(f)
}

/// A batch of `records` records with values of `value_bytes`, keys
/// `k<offset-in-test>`, timestamps `ts0, ts0+1, …`.
fn batch(first: u64, records: u64, value_bytes: usize, ts0: i64) -> BytesMut {
    let mut builder = BatchBuilder::with_capacity(records as usize * (value_bytes + 32));
    for i in 0..records {
        let n = first + i;
        let key = format!("k{n:08}");
        let mut value = vec![(n % 251) as u8; value_bytes];
        if value_bytes >= 8 {
            value[..8].copy_from_slice(&n.to_be_bytes());
        }
        let headers = [Header {
            key: "n",
            value: Some(&n.to_be_bytes()),
        }];
        builder.push(
            Timestamp(ts0 + i as i64),
            Some(key.as_bytes()),
            Some(&value),
            &headers,
        );
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

/// Every record readable from `from`, as (offset, key) pairs, checking that
/// batches are whole and continuous.
async fn read_all(log: &PartitionLog, from: Offset, max_bytes: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = from;
    for _ in 0..1_000_000 {
        let read = log.read(pos, max_bytes).await.expect("read");
        if read.chunks.is_empty() {
            assert_eq!(
                pos, read.high_watermark,
                "an empty read must mean the reader caught up"
            );
            break;
        }
        for bytes in read.batches() {
            let batch =
                RecordBatch::parse(bytes, 1 << 24).expect("reads return whole, valid batches");
            for record in batch.records() {
                let offset = batch.base_offset().0 + record.offset_delta as u64;
                if offset >= pos.0 {
                    out.push((offset, record.key.unwrap().to_vec()));
                }
            }
        }
        assert!(read.next_offset > pos, "a non-empty read must advance");
        pos = read.next_offset;
    }
    out
}

fn expect_keys(records: &[(u64, Vec<u8>)], from: u64, to: u64) {
    assert_eq!(
        records.len() as u64,
        to - from,
        "record count from {from} to {to}"
    );
    for (i, (offset, key)) in records.iter().enumerate() {
        let n = from + i as u64;
        assert_eq!(*offset, n, "offsets must be dense and in order");
        assert_eq!(key, format!("k{n:08}").as_bytes());
    }
}

async fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    let disk = Disk::open(dir.parent().unwrap()).await.unwrap();
    PartitionLog::open(&disk, dir, config).await.unwrap()
}

fn log_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("topic").join("0")
}

#[test]
fn brand_new_empty_data_directory_writes_and_reads_back() {
    // Regression guard for glommio's poll-ring probe: on a device without
    // polled I/O, a first DMA open of an empty file used to make every later
    // read fail with EOPNOTSUPP.
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let data = tmp.path().join("fresh");
        let disk = Disk::open(&data).await.unwrap();
        let log = PartitionLog::open(&disk, data.join("t").join("0"), LogConfig::default())
            .await
            .unwrap();
        assert_eq!(
            (log.start_offset(), log.end_offset()),
            (Offset(0), Offset(0))
        );
        let info = log.append(batch(0, 10, 100, 1000)).await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(9)));
        log.flush().await.unwrap();
        log.close().await.unwrap();
        // Reopen so the read comes from disk, not the tail cache.
        let log = PartitionLog::open(&disk, data.join("t").join("0"), LogConfig::default())
            .await
            .unwrap();
        expect_keys(&read_all(&log, Offset(0), 1 << 20).await, 0, 10);
    });
}

#[test]
fn appends_get_dense_offsets_and_reads_honour_the_range() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let log = open(&log_dir(&tmp), LogConfig::default()).await;
        let mut next = 0;
        for records in [1u64, 5, 17, 3] {
            let info = log.append(batch(next, records, 50, 0)).await.unwrap();
            assert_eq!(info.base_offset, Offset(next));
            assert_eq!(info.last_offset, Offset(next + records - 1));
            next += records;
        }
        assert_eq!(log.end_offset(), Offset(next));
        expect_keys(&read_all(&log, Offset(0), 100).await, 0, next);
        // Reading in the middle of a batch returns that whole batch.
        let read = log.read(Offset(8), 1).await.unwrap();
        let first = RecordBatch::parse(read.batches().next().unwrap(), 1 << 24).unwrap();
        assert_eq!(
            (first.base_offset(), first.last_offset()),
            (Offset(6), Offset(22))
        );
        // At the end: nothing; past it: out of range with the valid range.
        assert!(
            log.read(Offset(next), 1000)
                .await
                .unwrap()
                .chunks
                .is_empty()
        );
        match log.read(Offset(next + 1), 1000).await {
            Err(StorageError::OffsetOutOfRange {
                requested,
                start,
                end,
            }) => {
                assert_eq!(
                    (requested, start, end),
                    (Offset(next + 1), Offset(0), Offset(next))
                );
            }
            other => panic!("expected out of range, got {other:?}"),
        }
        log.close().await.unwrap();
    });
}

#[test]
fn a_read_returns_one_whole_batch_even_when_it_exceeds_max_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let log = open(&dir, LogConfig::default()).await;
        log.append(batch(0, 100, 1000, 0)).await.unwrap();
        log.append(batch(100, 1, 10, 0)).await.unwrap();
        for from_disk in [false, true] {
            let read = log.read(Offset(0), 10).await.unwrap();
            assert_eq!(read.batches().count(), 1, "from disk: {from_disk}");
            assert!(read.bytes > 100_000);
            assert_eq!(read.next_offset, Offset(100));
            if !from_disk {
                log.flush().await.unwrap();
            }
        }
        log.close().await.unwrap();
        let log = open(&dir, LogConfig::default()).await;
        let read = log.read(Offset(50), 10).await.unwrap();
        assert_eq!((read.batches().count(), read.next_offset), (1, Offset(100)));
        log.close().await.unwrap();
    });
}

#[test]
fn an_invalid_batch_rejects_the_whole_append_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let log = open(&log_dir(&tmp), LogConfig::default()).await;
        log.append(batch(0, 3, 10, 0)).await.unwrap();
        let mut request = batch(3, 2, 10, 0);
        let mut bad = batch(5, 2, 10, 0);
        let n = bad.len();
        bad[n - 1] ^= 1;
        request.extend_from_slice(&bad);
        match log.append(request).await {
            Err(StorageError::InvalidBatch { index: 1, .. }) => {}
            other => panic!("expected batch 1 to be rejected, got {other:?}"),
        }
        assert!(matches!(
            log.append(BytesMut::new()).await,
            Err(StorageError::EmptyAppend)
        ));
        assert_eq!(log.end_offset(), Offset(3));
        assert_eq!(
            log.append(batch(3, 1, 10, 0)).await.unwrap().base_offset,
            Offset(3)
        );
        expect_keys(&read_all(&log, Offset(0), 1 << 20).await, 0, 4);
        log.close().await.unwrap();
    });
}

#[test]
fn segments_roll_by_size_and_reads_cross_every_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let log = open(&dir, small_segments()).await;
        let mut next = 0;
        while log.segments().len() < 5 {
            let records = 1 + next % 7;
            log.append(batch(next, records, 300, next as i64))
                .await
                .unwrap();
            next += records;
        }
        let segments = log.segments();
        for pair in segments.windows(2) {
            assert_eq!(
                pair[0].next_offset, pair[1].base_offset,
                "segments must be contiguous"
            );
            assert!(pair[0].bytes <= 64 << 10);
            assert!(!pair[0].active);
        }
        for (i, size) in [(0usize, 1usize), (1, 500), (2, 5000), (3, 1 << 20)] {
            expect_keys(&read_all(&log, Offset(0), size).await, 0, next);
            // Start exactly at each segment boundary and one before it.
            let base = segments[i + 1].base_offset.0;
            expect_keys(&read_all(&log, Offset(base), size).await, base, next);
            expect_keys(
                &read_all(&log, Offset(base - 1), size).await,
                base - 1,
                next,
            );
        }
        log.close().await.unwrap();
        // After reopening, sealed segments are read through their indexes.
        let log = open(&dir, small_segments()).await;
        assert_eq!(
            log.segments(),
            segments
                .iter()
                .cloned()
                .map(|mut s| {
                    s.active = s.base_offset == segments.last().unwrap().base_offset;
                    s.sealing = false;
                    s
                })
                .collect::<Vec<_>>()
        );
        for from in 0..next {
            let read = log.read(Offset(from), 1).await.unwrap();
            let first = RecordBatch::parse(read.batches().next().unwrap(), 1 << 24).unwrap();
            assert!(
                first.base_offset() <= Offset(from) && Offset(from) <= first.last_offset(),
                "read from {from}"
            );
        }
        log.close().await.unwrap();
    });
}

#[test]
fn sparse_index_lookups_land_on_the_right_batch_at_every_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let log = open(&dir, small_segments()).await;
        let mut bases = Vec::new();
        let mut next = 0;
        for i in 0..150u64 {
            bases.push(next);
            let records = 1 + i % 4;
            log.append(batch(next, records, 200, next as i64))
                .await
                .unwrap();
            next += records;
        }
        log.close().await.unwrap();
        let log = open(&dir, small_segments()).await;
        let first = log.segments()[0].base_offset;
        let (index, time_index) = log.index_entries(first).unwrap();
        assert!(
            index.len() >= 10,
            "the index must be sparse but present: {index:?}"
        );
        assert!(!time_index.is_empty());
        for &(rel, _) in &index {
            for from in [rel as u64 - 1, rel as u64, rel as u64 + 1] {
                let read = log.read(Offset(from), 1).await.unwrap();
                let b = RecordBatch::parse(read.batches().next().unwrap(), 1 << 24).unwrap();
                assert!(
                    b.base_offset() <= Offset(from) && Offset(from) <= b.last_offset(),
                    "index entry {rel}, read from {from}"
                );
            }
        }
        log.close().await.unwrap();
    });
}

#[test]
fn segments_roll_by_age() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let config = LogConfig {
            segment_ms: 20,
            ..LogConfig::default()
        };
        let log = open(&log_dir(&tmp), config).await;
        log.append(batch(0, 1, 10, 0)).await.unwrap();
        log.append(batch(1, 1, 10, 0)).await.unwrap();
        assert_eq!(log.segments().len(), 1, "young segment must not roll");
        glommio::timer::sleep(Duration::from_millis(25)).await;
        log.append(batch(2, 1, 10, 0)).await.unwrap();
        let segments = log.segments();
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[1].base_offset, Offset(2));
        log.close().await.unwrap();
    });
}

#[test]
fn timestamp_lookup_finds_the_first_record_at_or_after() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let log = open(&dir, small_segments()).await;
        // Timestamps 10 * offset, across several segments.
        let mut next = 0u64;
        while next < 2000 {
            let mut builder = BatchBuilder::default();
            for i in 0..5 {
                let n = next + i;
                builder.push(
                    Timestamp(10 * n as i64),
                    Some(format!("k{n:08}").as_bytes()),
                    Some(&[0u8; 100]),
                    &[],
                );
            }
            log.append(BytesMut::from(&builder.finish()[..]))
                .await
                .unwrap();
            next += 5;
        }
        assert!(log.segments().len() > 2);
        check_timestamp_lookups(&log, "live").await;
        log.close().await.unwrap();
        let log = open(&dir, small_segments()).await;
        check_timestamp_lookups(&log, "reopened").await;
        log.close().await.unwrap();
    });
}

/// Expects the records of `timestamp_lookup_finds_the_first_record_at_or_after`.
async fn check_timestamp_lookups(log: &PartitionLog, when: &str) {
    for target in [0i64, 1, 9, 10, 11, 5000, 5005, 19_990, 19_991] {
        let expected_offset = (target as u64).div_ceil(10);
        let found = log.offset_for_timestamp(Timestamp(target)).await.unwrap();
        if expected_offset < 2000 {
            assert_eq!(
                found,
                Some((
                    Offset(expected_offset),
                    Timestamp(10 * expected_offset as i64)
                )),
                "target {target}, {when}"
            );
        } else {
            assert_eq!(found, None, "target {target}, {when}");
        }
    }
}

#[test]
fn retention_deletes_whole_sealed_segments_and_advances_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let now = Timestamp::now().0;
        let config = LogConfig {
            retention_bytes: Some(150 << 10),
            retention_ms: Some(3_600_000),
            ..small_segments()
        };
        let log = open(&dir, config).await;
        let mut next = 0;
        // Two hours old, then fresh.
        while log.segments().len() < 3 {
            log.append(batch(next, 10, 500, now - 7_200_000))
                .await
                .unwrap();
            next += 10;
        }
        let old_segments = log.segments().len() - 1;
        while log.segments().len() < 8 {
            log.append(batch(next, 10, 500, now)).await.unwrap();
            next += 10;
        }
        let before = log.segments();
        let outcome = log.enforce_retention(Timestamp(now)).await.unwrap();
        let after = log.segments();
        assert!(
            outcome.segments_deleted >= old_segments,
            "time retention must drop the old segments"
        );
        assert_eq!(
            after[0].base_offset,
            before[outcome.segments_deleted].base_offset
        );
        assert_eq!(log.start_offset(), after[0].base_offset);
        assert_eq!(outcome.log_start_offset, log.start_offset());
        assert!(
            log.size_bytes() >= 150 << 10 || after.len() == 1,
            "size retention keeps at least the limit"
        );
        assert!(
            log.size_bytes() - after[0].bytes < 150 << 10,
            "and deletes while the rest is over the limit"
        );
        for gone in &before[..outcome.segments_deleted] {
            assert!(
                !gone.path.exists(),
                "{} must be deleted",
                gone.path.display()
            );
        }
        match log.read(Offset(0), 100).await {
            Err(StorageError::OffsetOutOfRange { start, .. }) => {
                assert_eq!(start, log.start_offset())
            }
            other => panic!("expected out of range, got {other:?}"),
        }
        let start = log.start_offset().0;
        expect_keys(
            &read_all(&log, log.start_offset(), 1 << 16).await,
            start,
            next,
        );
        // The active segment is never deleted, even when everything is old
        // (and every rolled one is sealed: one still sealing is kept).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log.segments().iter().any(|s| s.sealing) {
            assert!(std::time::Instant::now() < deadline, "seals never finished");
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let outcome = log
            .enforce_retention(Timestamp(now + 10 * 3_600_000))
            .await
            .unwrap();
        assert_eq!(log.segments().len(), 1);
        assert!(outcome.segments_deleted > 0);
        log.close().await.unwrap();
        let log = open(&dir, config).await;
        assert_eq!(log.end_offset(), Offset(next));
        assert_eq!(log.segments().len(), 1);
        log.close().await.unwrap();
    });
}

#[test]
fn always_policy_group_commits_concurrent_appends() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let config = LogConfig {
            fsync: FsyncPolicy::Always,
            ..LogConfig::default()
        };
        let log = Rc::new(open(&log_dir(&tmp), config).await);
        let mut tasks = Vec::new();
        for t in 0..32u64 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut offsets = Vec::new();
                for i in 0..20 {
                    let info = log.append(batch(t * 1000 + i, 1, 100, 0)).await.unwrap();
                    assert!(
                        log.durable_offset() > info.last_offset,
                        "an always append completes only once durable"
                    );
                    offsets.push(info.base_offset.0);
                }
                offsets
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await);
        }
        all.sort();
        assert_eq!(all, (0..640).collect::<Vec<_>>());
        let stats = log.stats();
        assert_eq!(stats.appends, 640);
        assert!(
            stats.fsyncs < 640 / 2,
            "one fdatasync must cover many appends, got {} for 640",
            stats.fsyncs
        );
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn interval_and_never_policies_write_data_out_in_the_background() {
    for policy in [
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        run(async {
            let dir = log_dir(&tmp);
            let log = open(
                &dir,
                LogConfig {
                    fsync: policy,
                    ..LogConfig::default()
                },
            )
            .await;
            log.append(batch(0, 10, 100, 0)).await.unwrap();
            // The file must receive the data without any flush call.
            let path = log.segments()[0].path.clone();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::fs::metadata(&path).unwrap().len() == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{policy}: data never reached the file"
                );
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            if let FsyncPolicy::Interval(_) = policy {
                while log.durable_offset() < Offset(10) {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "interval sync never happened"
                    );
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
            drop(log); // no close: what is in the file is what a crash leaves
            let log = open(&dir, LogConfig::default()).await;
            expect_keys(&read_all(&log, Offset(0), 1 << 20).await, 0, 10);
            log.close().await.unwrap();
        });
    }
}

/// Appends `batches` batches of 3 records and closes; returns segment paths.
fn write_log(dir: &Path, batches: u64, config: LogConfig) -> Vec<PathBuf> {
    run(async {
        let log = open(dir, config).await;
        for b in 0..batches {
            log.append(batch(b * 3, 3, 200, 0)).await.unwrap();
        }
        let paths = log.segments().into_iter().map(|s| s.path).collect();
        log.close().await.unwrap();
        paths
    })
}

fn reopen_and_read(dir: &Path, config: LogConfig) -> (u64, Vec<(u64, Vec<u8>)>) {
    run(async {
        let log = open(dir, config).await;
        let records = read_all(&log, log.start_offset(), 1 << 20).await;
        // The log must take appends at the right offset after recovery.
        let end = log.end_offset().0;
        assert_eq!(
            log.append(batch(end, 1, 10, 0)).await.unwrap().base_offset,
            Offset(end)
        );
        log.close().await.unwrap();
        (end, records)
    })
}

fn batch_len() -> u64 {
    batch(0, 3, 200, 0).len() as u64
}

#[test]
fn recovery_cuts_a_tail_truncated_mid_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 10, LogConfig::default());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[0])
        .unwrap();
    file.set_len(9 * batch_len() + 40).unwrap();
    let (end, records) = reopen_and_read(&dir, LogConfig::default());
    assert_eq!(end, 27);
    expect_keys(&records, 0, 27);
    // The torn bytes are gone and the new batch follows the last valid one.
    assert_eq!(
        std::fs::metadata(&paths[0]).unwrap().len(),
        9 * batch_len() + batch(27, 1, 10, 0).len() as u64
    );
}

#[test]
fn recovery_cuts_trailing_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 10, LogConfig::default());
    let len = std::fs::metadata(&paths[0]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[0])
        .unwrap()
        .set_len(len + 100_000)
        .unwrap();
    let (end, records) = reopen_and_read(&dir, LogConfig::default());
    assert_eq!(end, 30);
    expect_keys(&records, 0, 30);
}

#[test]
fn recovery_cuts_a_last_batch_with_a_flipped_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 10, LogConfig::default());
    flip_byte(&paths[0], 9 * batch_len() + 100);
    let (end, records) = reopen_and_read(&dir, LogConfig::default());
    assert_eq!(end, 27);
    expect_keys(&records, 0, 27);
}

#[test]
fn recovery_survives_a_damaged_or_missing_active_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let config = LogConfig {
        index_interval_bytes: 1000,
        ..LogConfig::default()
    };
    let paths = write_log(&dir, 50, config);
    let index = paths[0].with_extension("index");
    assert!(std::fs::metadata(&index).unwrap().len() > 16);
    // Garbage in the middle of the index, and an entry pointing past the log.
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[9] ^= 0xff;
    bytes.extend_from_slice(&[0, 0, 1, 0, 0x7f, 0, 0, 0]);
    std::fs::write(&index, &bytes).unwrap();
    let (end, records) = reopen_and_read(&dir, config);
    assert_eq!(end, 150);
    expect_keys(&records, 0, 150);
    std::fs::remove_file(&index).unwrap();
    std::fs::remove_file(paths[0].with_extension("timeindex")).unwrap();
    let (end, records) = reopen_and_read(&dir, config);
    assert_eq!(end, 151);
    expect_keys(&records[..150], 0, 150);
}

#[test]
fn a_missing_or_damaged_sealed_index_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 400, small_segments());
    assert!(paths.len() >= 3);
    let original = std::fs::read(paths[0].with_extension("index")).unwrap();
    let original_time = std::fs::read(paths[0].with_extension("timeindex")).unwrap();
    assert!(!original.is_empty());
    std::fs::remove_file(paths[0].with_extension("index")).unwrap();
    let mut damaged = std::fs::read(paths[1].with_extension("timeindex")).unwrap();
    damaged[3] ^= 0x40;
    damaged.truncate(damaged.len() - 5);
    std::fs::write(paths[1].with_extension("timeindex"), &damaged).unwrap();
    let (end, records) = reopen_and_read(&dir, small_segments());
    assert_eq!(end, 1200);
    expect_keys(&records[..1200], 0, 1200);
    assert_eq!(
        std::fs::read(paths[0].with_extension("index")).unwrap(),
        original,
        "the rebuilt index must equal the one written during appends"
    );
    assert_eq!(
        std::fs::read(paths[0].with_extension("timeindex")).unwrap(),
        original_time
    );
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn a_corrupt_batch_in_a_sealed_segment_is_an_error_naming_file_and_position() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 400, small_segments());
    let victim = 5 * batch_len();
    flip_byte(&paths[0], victim + 70);
    run(async {
        let log = open(&dir, small_segments()).await;
        // Batches before the damage read fine, one at a time…
        for b in 0..5u64 {
            let read = log.read(Offset(b * 3), 1).await.unwrap();
            assert_eq!(read.next_offset, Offset(b * 3 + 3));
        }
        // …and the damaged one is an error with its file and position,
        // whether the read starts at it or runs into it.
        for from in [15u64, 0] {
            match log.read(Offset(from), 1 << 20).await {
                Err(StorageError::Corrupt {
                    file,
                    position,
                    reason,
                }) => {
                    assert_eq!(file, paths[0]);
                    assert_eq!(position, victim, "position of the bad batch");
                    assert!(reason.contains("CRC"), "{reason}");
                }
                other => panic!("expected corruption reading from {from}, got {other:?}"),
            }
        }
        // …and the segments after it are unaffected.
        let second = log.segments()[1].base_offset;
        expect_keys(&read_all(&log, second, 1 << 20).await, second.0, 1200);
        log.close().await.unwrap();
    });
}

#[test]
fn a_failed_write_fails_the_log_and_reopening_recovers_a_consistent_prefix() {
    for tear in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = log_dir(&tmp);
        run(async {
            let disk = Disk::open(tmp.path()).await.unwrap();
            let faults = Rc::new(Faults::default());
            let config = LogConfig {
                fsync: FsyncPolicy::Always,
                write_chunk_bytes: 8192,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(&disk.with_faults(faults.clone()), &dir, config)
                .await
                .unwrap();
            let mut acked = 0;
            faults.fail_writes_after(20_000, tear);
            let mut error = None;
            for i in 0..100u64 {
                match log.append(batch(i * 3, 3, 200, 0)).await {
                    Ok(info) => acked = info.last_offset.0 + 1,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            assert!(
                matches!(error, Some(StorageError::Failed { .. })),
                "tear {tear}: {error:?}"
            );
            assert!(log.failure().is_some());
            assert!(matches!(
                log.append(batch(0, 1, 1, 0)).await,
                Err(StorageError::Failed { .. })
            ));
            faults.heal();
            drop(log);
            let log = PartitionLog::open(&disk, &dir, config).await.unwrap();
            let end = log.end_offset().0;
            assert!(
                end >= acked,
                "every acknowledged record survives: end {end}, acked {acked}"
            );
            expect_keys(&read_all(&log, Offset(0), 1 << 20).await, 0, end);
            log.close().await.unwrap();
        });
    }
}

/// The key `k{n:08}` of record `n` as `batch` writes it.
fn key_of(n: u64) -> Vec<u8> {
    format!("k{n:08}").into_bytes()
}

#[test]
fn a_full_disk_fails_the_appends_in_flight_and_the_log_takes_appends_again_once_space_returns() {
    // Regression: a write that failed with ENOSPC failed the log for good;
    // it took a reopen (a broker restart) to write to the partition again.
    let interval = FsyncPolicy::Interval(Duration::from_millis(5));
    let mut cases = vec![
        (FsyncPolicy::Always, 16 << 20, 30_000),
        (interval, 16 << 20, 30_000),
        (FsyncPolicy::Never, 16 << 20, 30_000),
    ];
    // Small segments, the disk filling at many points past the first rolls:
    // in appends, rolls and background seals.
    for step in 0..6u64 {
        cases.push((FsyncPolicy::Never, 64 << 10, 70_000 + step * 23_000));
        cases.push((FsyncPolicy::Always, 64 << 10, 400_000 + step * 150_000));
    }
    for (policy, segment_bytes, budget) in cases {
        // With one segment nothing else can become durable while the disk
        // is full, so the log must hold exactly the acknowledged records.
        let exact = segment_bytes > 1 << 20;
        let case = format!("{policy}, {segment_bytes}-byte segments, full after {budget} bytes");
        let tmp = tempfile::tempdir().unwrap();
        let dir = log_dir(&tmp);
        run(async {
            let disk = Disk::open(tmp.path()).await.unwrap();
            let faults = Rc::new(Faults::default());
            let config = LogConfig {
                fsync: policy,
                segment_bytes,
                write_chunk_bytes: 8192,
                index_interval_bytes: 1024,
                tail_cache_bytes: 16 << 10,
                ..LogConfig::default()
            };
            let log = Rc::new(
                PartitionLog::open(&disk.with_faults(faults.clone()), &dir, config)
                    .await
                    .unwrap(),
            );
            let mut acked: std::collections::BTreeMap<Vec<u8>, u64> = Default::default();
            for n in 0..20u64 {
                let info = log.append(batch(n, 1, 300, 0)).await.unwrap();
                acked.insert(key_of(n), info.base_offset.0);
            }
            log.flush().await.unwrap();

            // The disk fills while four producers append concurrently; each
            // stops at its first error.
            faults.fill_disk_after(budget);
            let producers: Vec<_> = (0..4u64)
                .map(|p| {
                    let log = log.clone();
                    glommio::spawn_local(async move {
                        let mut results = Vec::new();
                        for i in 0..20_000u64 {
                            let n = 1_000 + p * 100_000 + i;
                            let result = log.append(batch(n, 1, 300, 0)).await;
                            let failed = result.is_err();
                            results.push((n, result));
                            if failed {
                                break;
                            }
                        }
                        results
                    })
                })
                .collect();
            let mut failed_keys = Vec::new();
            for producer in producers {
                let results = producer.await;
                let (n, last) = results.last().unwrap();
                assert!(
                    matches!(last, Err(StorageError::DiskFull { .. })),
                    "{case}: an append in flight when the disk filled fails with a clear error: {last:?}"
                );
                assert!(
                    last.as_ref()
                        .unwrap_err()
                        .to_string()
                        .contains("no space left"),
                    "{case}: {last:?}"
                );
                failed_keys.push(*n);
                for (n, result) in &results[..results.len() - 1] {
                    acked.insert(key_of(*n), result.as_ref().unwrap().base_offset.0);
                }
            }
            assert!(log.is_disk_full(), "{case}");
            assert!(
                matches!(
                    log.append(batch(7, 1, 300, 0)).await,
                    Err(StorageError::DiskFull { .. })
                ),
                "{case}: no space, no append"
            );
            // Reads go on while the disk is full.
            assert!(
                !log.read(Offset(0), 1 << 20)
                    .await
                    .unwrap()
                    .chunks
                    .is_empty()
            );

            // Space returns: the same log takes appends again, no reopen.
            faults.heal();
            let healed = std::time::Instant::now();
            let mut n = 500_000u64;
            loop {
                match log.append(batch(n, 1, 300, 0)).await {
                    Ok(info) => {
                        acked.insert(key_of(n), info.base_offset.0);
                        break;
                    }
                    Err(StorageError::DiskFull { .. }) => {
                        assert!(
                            healed.elapsed() < Duration::from_secs(10),
                            "{case}: still refused 10 s after space returned"
                        );
                        glommio::timer::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => panic!("{case}: {e}"),
                }
                n += 1;
            }
            eprintln!(
                "{case}: appends taken again {:?} after space returned",
                healed.elapsed()
            );
            assert!(log.failure().is_none(), "{case}");
            // The producers retry what failed; more appends follow.
            for n in failed_keys.into_iter().chain(600_000..600_200) {
                let info = log.append(batch(n, 1, 300, 0)).await.unwrap();
                acked.insert(key_of(n), info.base_offset.0);
            }
            log.flush().await.unwrap();

            let check = |records: Vec<(u64, Vec<u8>)>, when: &str| {
                let mut seen = std::collections::BTreeSet::new();
                for (i, (offset, key)) in records.iter().enumerate() {
                    assert_eq!(*offset, i as u64, "{case} {when}: offsets are dense");
                    assert!(seen.insert(key.clone()), "{case} {when}: {key:?} twice");
                }
                for (key, offset) in &acked {
                    assert_eq!(
                        records.get(*offset as usize).map(|r| &r.1),
                        Some(key),
                        "{case} {when}: acknowledged {key:?} at {offset}"
                    );
                }
                if exact {
                    assert_eq!(
                        records.len(),
                        acked.len(),
                        "{case} {when}: the log holds the acknowledged records and nothing else"
                    );
                }
            };
            check(read_all(&log, Offset(0), 1 << 20).await, "live");
            Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
            // Reopened, everything comes from the files: no hole, no torn
            // batch, nothing recovery would cut.
            let log = PartitionLog::open(&disk, &dir, config).await.unwrap();
            check(read_all(&log, Offset(0), 1 << 20).await, "reopened");
            log.close().await.unwrap();
        });
    }
}

#[test]
fn tailing_reads_are_served_while_appends_continue() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let log = Rc::new(open(&log_dir(&tmp), small_segments()).await);
        let writer = {
            let log = log.clone();
            glommio::spawn_local(async move {
                for i in 0..300u64 {
                    log.append(batch(i * 2, 2, 700, 0)).await.unwrap();
                    if i % 10 == 0 {
                        glommio::yield_if_needed().await;
                        glommio::timer::sleep(Duration::from_micros(200)).await;
                    }
                }
            })
        };
        let mut seen = Vec::new();
        let mut pos = Offset(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while seen.len() < 600 {
            assert!(
                std::time::Instant::now() < deadline,
                "tailing reader stalled at {pos}"
            );
            let read = log.read(pos, 3000).await.unwrap();
            for bytes in read.batches() {
                let b = RecordBatch::parse(bytes, 1 << 24).unwrap();
                for r in b.records() {
                    let o = b.base_offset().0 + r.offset_delta as u64;
                    if o >= pos.0 {
                        seen.push((o, r.key.unwrap().to_vec()));
                    }
                }
            }
            pos = read.next_offset;
            if read.chunks.is_empty() {
                glommio::timer::sleep(Duration::from_micros(100)).await;
            }
        }
        writer.await;
        expect_keys(&seen, 0, 600);
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn forward_reads_from_disk_with_changing_sizes_return_every_record_once() {
    // Regression: a read-ahead window fetched for one read size was taken
    // for a truncated file when the next read asked for more.
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        let log = open(&dir, small_segments()).await;
        for b in 0..300u64 {
            log.append(batch(b * 3, 3, 400, 0)).await.unwrap();
        }
        log.close().await.unwrap();
        let log = open(&dir, small_segments()).await;
        let sizes = [1usize, 3000, 700, 1 << 20, 5000, 1, 64 << 10];
        let mut seen = Vec::new();
        let mut pos = Offset(0);
        for i in 0.. {
            let read = log.read(pos, sizes[i % sizes.len()]).await.unwrap();
            if read.chunks.is_empty() {
                break;
            }
            for bytes in read.batches() {
                let b = RecordBatch::parse(bytes, 1 << 24).unwrap();
                for r in b.records() {
                    let o = b.base_offset().0 + r.offset_delta as u64;
                    if o >= pos.0 {
                        seen.push((o, r.key.unwrap().to_vec()));
                    }
                }
            }
            pos = read.next_offset;
        }
        expect_keys(&seen, 0, 900);
        log.close().await.unwrap();
    });
}

#[test]
fn a_header_max_timestamp_that_disagrees_with_the_records_is_corrected() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let log = open(&dir, LogConfig::default()).await;
        let mut b = batch(0, 3, 10, 5000);
        // Claim a max timestamp far in the future, and fix the CRC so the
        // batch is otherwise valid.
        b[35..43].copy_from_slice(&9_999_999i64.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        log.append(b).await.unwrap();
        let read = log.read(Offset(0), 1 << 20).await.unwrap();
        let stored = RecordBatch::parse(read.batches().next().unwrap(), 1 << 24).unwrap();
        assert_eq!(stored.max_timestamp(), Timestamp(5002));
        assert_eq!(
            i64::from_be_bytes(read.chunks[0][35..43].try_into().unwrap()),
            5002,
            "the stored header is corrected"
        );
        assert_eq!(
            log.offset_for_timestamp(Timestamp(6000)).await.unwrap(),
            None
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_sealed_segment_cut_short_is_an_error_not_a_stall() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 400, small_segments());
    // Lose the last two batches of the first segment (outside corelog's
    // control: a sealed segment is never truncated by recovery).
    let len = std::fs::metadata(&paths[0]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[0])
        .unwrap()
        .set_len(len - 2 * batch_len())
        .unwrap();
    // A completed seal proves no crash did this: the damage is reported
    // (logged at open, and to readers), and no later segment is set aside —
    // not at the first open, nor at the next.
    for _ in 0..2 {
        run(async {
            let log = open(&dir, small_segments()).await;
            assert_eq!(log.segments().len(), paths.len());
            let second = log.segments()[1].base_offset;
            match log.read(Offset(second.0 - 1), 1 << 20).await {
                Err(StorageError::Corrupt { file, reason, .. }) => {
                    assert_eq!(file, paths[0]);
                    assert!(reason.contains("next segment starts at"), "{reason}");
                }
                other => panic!("expected a corruption error, got {other:?}"),
            }
            log.close().await.unwrap();
        });
    }
}

#[test]
fn make_durable_syncs_on_demand_under_never_and_readers_are_woken() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let log = Rc::new(open(&log_dir(&tmp), LogConfig::default()).await);
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                loop {
                    let listener = log.listen_for_data();
                    if log.high_watermark() >= Offset(5) {
                        return;
                    }
                    assert!(std::time::Instant::now() < deadline, "reader never woken");
                    listener.await;
                }
            })
        };
        log.append(batch(0, 5, 10, 0)).await.unwrap();
        waiter.await;
        // Under `never` nothing syncs by itself…
        assert_eq!(log.durable_offset(), Offset(0));
        assert_eq!(log.stats().fsyncs, 0);
        // …until someone needs durability.
        log.make_durable(Offset(5)).await.unwrap();
        assert_eq!(log.durable_offset(), Offset(5));
        assert_eq!(log.stats().fsyncs, 1);
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn appends_abandoned_by_their_caller_still_complete_whole() {
    // Regression: a produce timeout dropped an append while it waited for a
    // write slot, leaving the segment's size ahead of its data.
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let config = LogConfig {
        write_chunk_bytes: 4096,
        ..LogConfig::default()
    };
    run(async {
        let log = Rc::new(open(&dir, config).await);
        let mut acked = 0u64;
        for i in 0..200u64 {
            // Every batch spans several 4 KiB chunks, so appends wait for
            // write slots; give up on them after a microsecond.
            let r = glommio::timer::timeout(Duration::from_micros(1), async {
                Ok(log.append(batch(i * 10, 10, 2000, 0)).await)
            })
            .await;
            if let Ok(Ok(_)) = r {
                acked += 1;
            }
        }
        let _ = acked;
        // Whatever was abandoned finishes in the background, whole: an
        // append of our own queues behind every abandoned one (tasks start
        // in spawn order and take the log's append lock in turn), so once
        // it returns the end no longer moves.
        log.append(batch(2000, 10, 2000, 0)).await.unwrap();
        log.flush().await.unwrap();
        let end = log.end_offset().0;
        assert_eq!(end % 10, 0);
        let records = read_all(&log, Offset(0), 1 << 20).await;
        assert_eq!(records.len() as u64, end);
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
        let log = open(&dir, config).await;
        assert_eq!(log.end_offset().0, end);
        assert_eq!(read_all(&log, Offset(0), 1 << 20).await.len() as u64, end);
        log.close().await.unwrap();
    });
}

#[test]
fn with_background_seals_always_still_acknowledges_only_durable_records() {
    // Segments seal in the background after a roll; an `always` append
    // must still complete only once everything up to it is synced,
    // including the tail of a segment whose seal is still running.
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        let config = LogConfig {
            fsync: FsyncPolicy::Always,
            ..small_segments()
        };
        let log = Rc::new(open(&dir, config).await);
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for i in 0..60 {
                    let info = log.append(batch(t * 1000 + i, 3, 700, 0)).await.unwrap();
                    assert!(
                        log.durable_offset() > info.last_offset,
                        "acknowledged before durable"
                    );
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        assert!(log.segments().len() > 10, "the test must roll many times");
        assert!(log.stats().segments_rolled > 10);
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
        let log = open(&dir, config).await;
        assert_eq!(log.end_offset(), Offset(8 * 60 * 3));
        assert!(
            log.segments()
                .iter()
                .filter(|s| !s.active)
                .all(|s| std::fs::metadata(&s.path).unwrap().len() == s.bytes),
            "sealed files are trimmed"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_segment_whose_seal_was_interrupted_is_finished_at_open() {
    // A crash during a background seal leaves a non-last segment with zero
    // padding after its data and no final time-index entry.
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 300, small_segments());
    assert!(paths.len() >= 3);
    let victim = &paths[1];
    let len = std::fs::metadata(victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len.next_multiple_of(4096) + 4096)
        .unwrap();
    let time = victim.with_extension("timeindex");
    let t = std::fs::read(&time).unwrap();
    std::fs::write(&time, &t[..t.len() - 12]).unwrap();
    let (end, records) = reopen_and_read(&dir, small_segments());
    assert_eq!(end, 900);
    expect_keys(&records[..900], 0, 900);
    assert_eq!(
        std::fs::metadata(victim).unwrap().len(),
        len,
        "the padding is trimmed"
    );
}

#[test]
fn a_sealed_segment_padded_after_its_seal_completed_is_trimmed_at_open() {
    // Regression: a kill between writing a rolled segment's final
    // time-index entry and trimming its log left zero padding that the next
    // open trusted, and readers failed with "batch length field 12 is not
    // plausible" near the end of the segment.
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 300, small_segments());
    let victim = &paths[0];
    let len = std::fs::metadata(victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len.next_multiple_of(4096))
        .unwrap();
    let (end, records) = reopen_and_read(&dir, small_segments());
    assert_eq!(end, 900);
    expect_keys(&records[..900], 0, 900);
    assert_eq!(std::fs::metadata(victim).unwrap().len(), len);
}

#[test]
fn an_interrupted_seal_that_lost_records_ends_the_log_and_sets_later_segments_aside() {
    // Only a machine crash can lose written data: a rolled segment whose
    // seal had not completed (no final time-index entry) ends short of its
    // successor. Recovery ends the log in it and renames the later segments
    // aside, so the log is continuous and nothing is deleted.
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let paths = write_log(&dir, 300, small_segments());
    assert!(paths.len() >= 3);
    let victim = &paths[1];
    let len = std::fs::metadata(victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len - batch_len() - 10)
        .unwrap();
    let time = victim.with_extension("timeindex");
    let t = std::fs::read(&time).unwrap();
    std::fs::write(&time, &t[..t.len() - 12]).unwrap();
    let base_of =
        |path: &PathBuf| -> u64 { path.file_stem().unwrap().to_str().unwrap().parse().unwrap() };
    let (end, records) = reopen_and_read(&dir, small_segments());
    assert!(
        end > base_of(&paths[1]) && end < base_of(&paths[2]),
        "the log ends inside the damaged segment, at {end}"
    );
    expect_keys(&records, 0, end);
    for later in &paths[2..] {
        assert!(
            !later.exists(),
            "{} is no longer in the log",
            later.display()
        );
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with(later.file_name().unwrap().to_str().unwrap())
                    && n.contains(".discarded-")
            })
            .collect();
        assert_eq!(aside.len(), 1, "{} is renamed aside", later.display());
    }
}

#[test]
fn after_a_crash_the_active_segment_is_validated_from_its_start() {
    // Writes may land out of order when a process dies: a block in the
    // middle of the active segment can be missing while later blocks, and
    // index entries pointing into them, reached the disk. Without a clean
    // close, recovery trusts no index entry and cuts at the first bad byte.
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    let config = LogConfig {
        index_interval_bytes: 1024,
        ..LogConfig::default()
    };
    let paths = write_log(&dir, 100, config);
    std::fs::remove_file(dir.join(".clean-close")).expect("a clean close leaves its marker");
    let hole = 40 * batch_len() + 7;
    let mut bytes = std::fs::read(&paths[0]).unwrap();
    bytes[hole as usize..hole as usize + 300].fill(0);
    std::fs::write(&paths[0], &bytes).unwrap();
    let (end, records) = reopen_and_read(&dir, config);
    assert_eq!(end, 120, "the log ends at the batch before the hole");
    expect_keys(&records[..120], 0, 120);
}

#[test]
fn a_clean_close_marker_is_taken_by_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    write_log(&dir, 10, LogConfig::default());
    let marker = dir.join(".clean-close");
    let text = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        text,
        format!(
            "corelog clean close v1 segment=0 bytes={}\n",
            10 * batch_len()
        )
    );
    run(async {
        let log = open(&dir, LogConfig::default()).await;
        assert!(!marker.exists(), "an open log has no close marker");
        log.append(batch(30, 1, 10, 0)).await.unwrap();
        log.flush().await.unwrap();
        drop(log); // a crash: no marker vouches for what follows
    });
    assert!(!marker.exists());
    let (end, _) = reopen_and_read(&dir, LogConfig::default());
    assert_eq!(end, 31);
}

/// An idempotent batch of `records` records from producer `pid`/`epoch`
/// starting at sequence `seq`; keys as in [`batch`].
fn idempotent(pid: i64, epoch: i16, seq: i32, first_key: u64, records: u64) -> BytesMut {
    let mut builder = BatchBuilder::with_capacity(records as usize * 96);
    builder.set_producer(pid, epoch, seq);
    for i in 0..records {
        let key = format!("k{:08}", first_key + i);
        builder.push(Timestamp::now(), Some(key.as_bytes()), Some(b"v"), &[]);
    }
    BytesMut::from(&builder.finish()[..])
}

fn producer_error(result: corelog::storage::Result<corelog::storage::AppendInfo>) -> String {
    match result {
        Err(StorageError::Producer(e)) => format!("{e:?}"),
        other => panic!("expected a producer error, got {other:?}"),
    }
}

#[test]
fn a_retried_idempotent_batch_gets_its_original_offsets_and_is_not_written_again() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let log = open(&dir, small_segments()).await;
        log.append(batch(0, 3, 10, 1)).await.unwrap();
        let first = log.append(idempotent(7, 0, 0, 3, 5)).await.unwrap();
        let second = log.append(idempotent(7, 0, 5, 8, 2)).await.unwrap();
        assert_eq!(
            (first.base_offset, first.last_offset),
            (Offset(3), Offset(7))
        );
        // Both retried (the answers were lost): the original offsets, once.
        let again = log.append(idempotent(7, 0, 0, 3, 5)).await.unwrap();
        assert_eq!(
            (again.base_offset, again.last_offset),
            (Offset(3), Offset(7))
        );
        let again = log.append(idempotent(7, 0, 5, 8, 2)).await.unwrap();
        assert_eq!(
            (again.base_offset, again.last_offset),
            (second.base_offset, second.last_offset)
        );
        assert_eq!(log.end_offset(), Offset(10));
        // A gap, a stale epoch and a batch without a sequence: refused, nothing stored.
        assert!(
            producer_error(log.append(idempotent(7, 0, 9, 100, 1)).await).contains("OutOfOrder")
        );
        assert!(
            producer_error(log.append(idempotent(7, 0, 6, 100, 1)).await).contains("OutOfOrder")
        );
        // A new epoch starts at 0; the old epoch is then fenced.
        log.append(idempotent(7, 1, 0, 10, 1)).await.unwrap();
        assert!(producer_error(log.append(idempotent(7, 0, 7, 100, 1)).await).contains("Fenced"));
        assert!(
            producer_error(log.append(idempotent(7, 2, 3, 100, 1)).await).contains("OutOfOrder")
        );
        // Another producer is independent.
        log.append(idempotent(8, 0, 0, 11, 1)).await.unwrap();
        assert_eq!(log.end_offset(), Offset(12));
        let records = read_all(&log, Offset(0), 1 << 20).await;
        expect_keys(&records, 0, 12);
        // Only the last five batches are remembered: the sixth-oldest is now
        // an out-of-order sequence, not a duplicate.
        for n in 0..5 {
            log.append(idempotent(8, 0, 1 + n, 12 + n as u64, 1))
                .await
                .unwrap();
        }
        assert!(producer_error(log.append(idempotent(8, 0, 0, 0, 1)).await).contains("OutOfOrder"));
        let again = log.append(idempotent(8, 0, 1, 0, 1)).await.unwrap();
        assert_eq!(again.base_offset, Offset(12));
        log.close().await.unwrap();
    });
}

/// Appends idempotent batches of 20 records from producer 5 until the log
/// has `segments` segments; returns the next sequence and key.
async fn fill_idempotent(log: &PartitionLog, segments: usize, mut seq: i32) -> i32 {
    while log.segments().len() < segments {
        log.append(idempotent(5, 3, seq, seq as u64, 200))
            .await
            .unwrap();
        seq += 200;
    }
    seq
}

fn snapshots(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".snapshot"))
        .collect();
    names.sort();
    names
}

#[test]
fn producer_state_survives_a_clean_restart_a_crash_and_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig { ..small_segments() };
    let dir = log_dir(&tmp);
    // 1. A clean close writes a snapshot at the log end.
    let seq = run(async {
        let log = open(&dir, config).await;
        let seq = fill_idempotent(&log, 4, 0).await;
        log.close().await.unwrap();
        seq
    });
    let names = snapshots(&dir);
    assert!(
        !names.is_empty() && names.len() <= 2,
        "snapshots kept: {names:?}"
    );
    let end = run(async {
        let log = open(&dir, config).await;
        // The last batch, retried: deduplicated from the snapshot alone.
        let again = log
            .append(idempotent(5, 3, seq - 200, 0, 200))
            .await
            .unwrap();
        assert_eq!(again.last_offset.0 + 1, log.end_offset().0);
        assert!(
            producer_error(log.append(idempotent(5, 3, seq + 1, 0, 1)).await)
                .contains("OutOfOrder")
        );
        assert!(producer_error(log.append(idempotent(5, 2, seq, 0, 1)).await).contains("Fenced"));
        let seq = fill_idempotent(&log, 6, seq).await;
        // 2. A crash: no clean close, snapshots only at rolls; the batches
        //    after the newest one are replayed from the log.
        std::mem::forget(log);
        seq
    });
    let start = run(async {
        let log = open(&dir, config).await;
        let again = log
            .append(idempotent(5, 3, end - 200, 0, 200))
            .await
            .unwrap();
        assert_eq!(
            again.last_offset.0 + 1,
            log.end_offset().0,
            "replayed after a crash"
        );
        // 3. Retention removes every segment holding the producer's batches:
        //    its state is kept (in memory, and in the newest snapshot).
        let start = log.end_offset();
        for n in 0..40 {
            log.append(batch(n, 20, 500, 1)).await.unwrap();
        }
        log.close().await.unwrap();
        start
    });
    let retained = LogConfig {
        retention_bytes: Some(1),
        ..config
    };
    run(async {
        let log = open(&dir, retained).await;
        log.enforce_retention(Timestamp::now()).await.unwrap();
        assert!(
            log.start_offset() > start,
            "retention removed the producer's batches"
        );
        let again = log
            .append(idempotent(5, 3, end - 200, 0, 200))
            .await
            .unwrap();
        assert!(
            again.last_offset < start,
            "still a duplicate after retention"
        );
        log.close().await.unwrap();
    });
    run(async {
        let log = open(&dir, config).await;
        let again = log
            .append(idempotent(5, 3, end - 200, 0, 200))
            .await
            .unwrap();
        assert!(
            again.last_offset < log.start_offset(),
            "and after a restart"
        );
        log.append(idempotent(5, 3, end, 0, 1)).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn a_changed_configuration_applies_to_the_running_log() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..small_segments()
        };
        let log = open(&dir, config).await;
        let mut next = 0;
        // About 200 KiB in one segment.
        while log.size_bytes() < 200 << 10 {
            log.append(batch(next, 10, 500, Timestamp::now().0))
                .await
                .unwrap();
            next += 10;
        }
        assert_eq!(log.segments().len(), 1);
        assert_eq!(
            log.enforce_retention(Timestamp::now())
                .await
                .unwrap()
                .segments_deleted,
            0,
            "no retention configured yet"
        );

        // Smaller segments: the next append rolls, and later ones roll at
        // the new size.
        let smaller = LogConfig {
            segment_bytes: 64 << 10,
            ..config
        };
        log.set_config(smaller).unwrap();
        assert_eq!(log.config(), smaller);
        while log.size_bytes() < 400 << 10 {
            log.append(batch(next, 10, 500, Timestamp::now().0))
                .await
                .unwrap();
            next += 10;
        }
        let segments = log.segments();
        assert!(segments.len() >= 4, "{} segments", segments.len());
        assert!(
            segments[0].bytes >= 200 << 10,
            "the old segment stays whole"
        );
        for s in &segments[1..] {
            assert!(s.bytes <= 64 << 10, "{s:?}");
        }

        // Retention set on the running log deletes at the next check.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log.segments().iter().any(|s| s.sealing) {
            assert!(std::time::Instant::now() < deadline, "seals never finished");
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        log.set_config(LogConfig {
            retention_bytes: Some(128 << 10),
            ..smaller
        })
        .unwrap();
        let outcome = log.enforce_retention(Timestamp::now()).await.unwrap();
        assert!(outcome.segments_deleted >= 1, "{outcome:?}");
        assert!(log.start_offset() > Offset(0));
        assert!(log.size_bytes() - log.segments()[0].bytes < 128 << 10);

        // A lower batch limit refuses larger batches from the next append.
        log.set_config(LogConfig {
            batch_bytes_max: 1024,
            ..smaller
        })
        .unwrap();
        let end = log.end_offset();
        match log.append(batch(next, 10, 500, Timestamp::now().0)).await {
            Err(StorageError::InvalidBatch { .. }) => {}
            other => panic!("expected a refused batch, got {other:?}"),
        }
        assert_eq!(log.end_offset(), end, "nothing stored");
        log.append(batch(next, 1, 100, Timestamp::now().0))
            .await
            .unwrap();
        next += 1;

        // Invalid configurations and layout changes are refused, and the
        // log keeps its configuration.
        let before = log.config();
        for bad in [
            LogConfig {
                segment_bytes: 10,
                ..before
            },
            LogConfig {
                write_chunk_bytes: 32 << 10,
                ..before
            },
        ] {
            assert!(matches!(log.set_config(bad), Err(StorageError::Config(_))));
            assert_eq!(log.config(), before);
        }

        // Everything still reads back, and again after a reopen.
        let start = log.start_offset().0;
        expect_keys(
            &read_all(&log, log.start_offset(), 1 << 16).await,
            start,
            next,
        );
        log.close().await.unwrap();
        let log = open(&dir, config).await;
        expect_keys(
            &read_all(&log, log.start_offset(), 1 << 16).await,
            start,
            next,
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_policy_change_to_always_never_moves_the_high_watermark_back() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let config = LogConfig {
            fsync: FsyncPolicy::Never,
            ..LogConfig::default()
        };
        let log = open(&dir, config).await;
        for i in 0..5 {
            log.append(batch(i * 10, 10, 100, 1000)).await.unwrap();
        }
        let seen = log.high_watermark();
        assert_eq!(seen, Offset(50));
        log.set_config(LogConfig {
            fsync: FsyncPolicy::Always,
            ..config
        })
        .unwrap();
        assert!(log.high_watermark() >= seen);
        // Under always, an append completes once durable and is visible.
        let info = log.append(batch(50, 10, 100, 1000)).await.unwrap();
        assert!(log.durable_offset() > info.last_offset);
        assert_eq!(log.high_watermark(), Offset(60));
        // And back: interval, then the flusher syncs on its own.
        log.set_config(LogConfig {
            fsync: FsyncPolicy::Interval(Duration::from_millis(5)),
            ..config
        })
        .unwrap();
        log.append(batch(60, 10, 100, 1000)).await.unwrap();
        assert_eq!(log.high_watermark(), Offset(70));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log.durable_offset() < Offset(70) {
            assert!(std::time::Instant::now() < deadline, "never synced");
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        expect_keys(&read_all(&log, Offset(0), 1 << 20).await, 0, 70);
        log.close().await.unwrap();
    });
}

#[test]
fn log_append_time_stamps_the_append_time_into_each_batch() {
    use corelog::types::TimestampType;
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        let dir = log_dir(&tmp);
        let config = LogConfig::default();
        let log = open(&dir, config).await;
        // Create time: the producer's (old) timestamps stay.
        let info = log.append(batch(0, 3, 10, 1000)).await.unwrap();
        assert_eq!(info.log_append_time, None);

        log.set_config(LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..config
        })
        .unwrap();
        let before = Timestamp::now();
        let info = log.append(batch(3, 3, 10, 1000)).await.unwrap();
        let after = Timestamp::now();
        let stamped = info.log_append_time.expect("an append time");
        assert!(before <= stamped && stamped <= after, "{stamped:?}");
        // A batch that claims log-append time under create time is cleared.
        log.set_config(config).unwrap();
        let mut claimed = batch(6, 2, 10, 2000);
        let attributes = u16::from_be_bytes([claimed[21], claimed[22]]) | 0x08;
        claimed[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&claimed[21..]);
        claimed[17..21].copy_from_slice(&crc.to_be_bytes());
        log.append(claimed).await.unwrap();

        let check = |read: &corelog::storage::ReadBatches| {
            let batches: Vec<RecordBatch> = read
                .batches()
                .map(|b| RecordBatch::parse(b, 1 << 24).expect("the CRC was recomputed"))
                .collect();
            assert_eq!(batches.len(), 3);
            assert_eq!(batches[0].timestamp_type(), TimestampType::CreateTime);
            assert_eq!(batches[0].max_timestamp(), Timestamp(1002));
            let times: Vec<Timestamp> = batches[0]
                .records()
                .map(|r| batches[0].record_timestamp(&r))
                .collect();
            assert_eq!(times, [Timestamp(1000), Timestamp(1001), Timestamp(1002)]);
            assert_eq!(batches[1].timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!(batches[1].max_timestamp(), stamped);
            assert!(
                batches[1]
                    .records()
                    .all(|r| batches[1].record_timestamp(&r) == stamped),
                "every record reads as the append time"
            );
            assert_eq!(batches[2].timestamp_type(), TimestampType::CreateTime);
            assert_eq!(batches[2].max_timestamp(), Timestamp(2001));
        };
        check(&log.read(Offset(0), 1 << 20).await.unwrap());
        // Lookups by time see the stamped time.
        assert_eq!(
            log.offset_for_timestamp(Timestamp(1500)).await.unwrap(),
            Some((Offset(3), stamped))
        );
        log.close().await.unwrap();
        let log = open(&dir, config).await;
        check(&log.read(Offset(0), 1 << 20).await.unwrap());
        assert_eq!(
            log.offset_for_timestamp(Timestamp(1500)).await.unwrap(),
            Some((Offset(3), stamped))
        );
        log.close().await.unwrap();
    });
}

// ---------------------------------------------------------------------------
// Log compaction.

use corelog::record::Compression;
use corelog::storage::CleanOptions;
use std::collections::BTreeMap;

fn compacted(config: LogConfig) -> LogConfig {
    LogConfig {
        compact: true,
        cleanup_delete: false,
        ..config
    }
}

/// A batch of keyed records: `(key, value)`; `None` values are tombstones.
/// Timestamps `ts`.
fn keyed(records: &[(String, Option<Vec<u8>>)], ts: i64, codec: Compression) -> BytesMut {
    let mut builder = BatchBuilder::with_capacity(4096);
    for (key, value) in records {
        builder.push(Timestamp(ts), Some(key.as_bytes()), value.as_deref(), &[]);
    }
    BytesMut::from(&builder.finish_compressed(codec).unwrap()[..])
}

/// Waits (bounded) until no segment is still sealing in the background.
async fn wait_sealed(log: &PartitionLog) {
    for _ in 0..2000 {
        if log.segments().iter().all(|s| !s.sealing) {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    panic!("segments still sealing after 10 s");
}

/// Every record readable from the start: offset → (key, value).
async fn read_records(log: &PartitionLog) -> BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut pos = log.start_offset();
    for _ in 0..1_000_000 {
        let read = log.read(pos, 64 << 10).await.expect("read");
        if read.chunks.is_empty() {
            assert_eq!(pos, read.high_watermark);
            break;
        }
        for bytes in read.batches() {
            let batch = RecordBatch::parse(bytes, 1 << 24).expect("whole, valid batches");
            for record in batch.records() {
                let offset = batch.base_offset().0 + record.offset_delta as u64;
                assert!(offset <= batch.last_offset().0);
                if offset >= pos.0 {
                    let previous = out.insert(
                        offset,
                        (
                            record.key.unwrap().to_vec(),
                            record.value.map(<[u8]>::to_vec),
                        ),
                    );
                    assert!(previous.is_none(), "offset {offset} read twice");
                }
            }
        }
        assert!(read.next_offset > pos);
        pos = read.next_offset;
    }
    out
}

async fn clean_until_done(log: &PartitionLog, now: Timestamp, options: &CleanOptions) -> usize {
    let mut passes = 0;
    while let Some(outcome) = log.clean(now, options, &|| false).await.unwrap() {
        passes += 1;
        assert!(!outcome.stopped);
        assert!(passes < 1000, "compaction does not converge");
    }
    passes
}

/// Appends keyed batches (keys `key0..key{keys}`, values naming their offset)
/// until the log has `segments` segments; returns every record appended.
async fn fill_keyed(
    log: &PartitionLog,
    segments: usize,
    keys: u64,
    codec: Compression,
) -> BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)> {
    let mut all = BTreeMap::new();
    let mut n = 0u64;
    while log.segments().len() < segments {
        let base = log.end_offset().0;
        let records: Vec<(String, Option<Vec<u8>>)> = (0..10)
            .map(|i| {
                n += 1;
                let key = format!("key{}", (n * 7919) % keys);
                (key, Some(format!("v{:0100}", base + i).into_bytes()))
            })
            .collect();
        let info = log
            .append(keyed(&records, 1_000 + n as i64, codec))
            .await
            .unwrap();
        assert_eq!(info.base_offset.0, base);
        for (i, (k, v)) in records.into_iter().enumerate() {
            all.insert(base + i as u64, (k.into_bytes(), v));
        }
    }
    all
}

/// What a compacted log must hold: below `cleaned_to` the latest record of
/// each key (among those below it), and everything at or above it.
fn expected_after_compaction(
    all: &BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)>,
    cleaned_to: u64,
) -> BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)> {
    let mut latest: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for (&offset, (key, _)) in all.range(..cleaned_to) {
        latest.insert(key.clone(), offset);
    }
    all.iter()
        .filter(|&(&offset, (key, _))| offset >= cleaned_to || latest[key] == offset)
        .map(|(&o, r)| (o, r.clone()))
        .collect()
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_every_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        let log = open(&dir, compacted(small_segments())).await;
        let all = fill_keyed(&log, 6, 40, Compression::None).await;
        wait_sealed(&log).await;
        log.flush().await.unwrap();
        let segments_before = log.segments();
        let active = segments_before.last().unwrap().clone();
        let active_bytes = std::fs::read(&active.path).unwrap();
        let (start, end) = (log.start_offset(), log.end_offset());
        let size_before = log.size_bytes();

        let outcome = log
            .clean(Timestamp::now(), &CleanOptions::default(), &|| false)
            .await
            .unwrap()
            .expect("a pass runs");
        assert_eq!(outcome.segments_cleaned, segments_before.len() - 1);
        assert_eq!(outcome.cleaned_to, active.base_offset);
        assert!(outcome.records_removed > 0 && outcome.bytes_after < outcome.bytes_before);
        assert!(log.size_bytes() < size_before);
        assert_eq!((log.start_offset(), log.end_offset()), (start, end));
        // The active segment is not touched; segment boundaries stay.
        assert!(std::fs::read(&active.path).unwrap() == active_bytes);
        let bases = |s: &[corelog::storage::SegmentInfo]| {
            s.iter()
                .map(|s| (s.base_offset, s.next_offset))
                .collect::<Vec<_>>()
        };
        assert_eq!(bases(&log.segments()), bases(&segments_before));

        let expected = expected_after_compaction(&all, active.base_offset.0);
        assert_eq!(read_records(&log).await, expected);
        // Every key's latest value is readable.
        let mut latest: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)> = BTreeMap::new();
        for (&o, (k, v)) in &all {
            latest.insert(k.clone(), (o, v.clone()));
        }
        let now = read_records(&log).await;
        for (key, (offset, value)) in &latest {
            assert_eq!(now.get(offset), Some(&(key.clone(), value.clone())));
        }
        // Reads from every offset (through the sparse index, inside gaps)
        // start at the first record at or after it.
        for from in (start.0..end.0).step_by(3) {
            let read = log.read(Offset(from), 1).await.unwrap();
            let first = read
                .batches()
                .flat_map(|b| {
                    let b = RecordBatch::parse(b, 1 << 24).unwrap();
                    b.records()
                        .map(|r| b.base_offset().0 + r.offset_delta as u64)
                        .collect::<Vec<_>>()
                })
                .find(|&o| o >= from);
            let want = expected.range(from..).next().map(|(&o, _)| o);
            if let (Some(first), Some(want)) = (first, want) {
                assert_eq!(first, want, "read from {from}");
            }
            assert!(read.next_offset > Offset(from));
        }
        // Nothing left to do until new segments seal.
        assert!(
            log.clean(Timestamp::now(), &CleanOptions::default(), &|| false)
                .await
                .unwrap()
                .is_none()
        );
        log.close().await.unwrap();

        // Reopened (indexes rebuilt or loaded), the log reads the same, and
        // the cleaner's checkpoint says nothing is left to clean.
        let log = open(&dir, compacted(small_segments())).await;
        assert_eq!(read_records(&log).await, expected);
        assert!(
            log.clean(Timestamp::now(), &CleanOptions::default(), &|| false)
                .await
                .unwrap()
                .is_none()
        );
        log.close().await.unwrap();
        // Without the checkpoint a pass reads everything again and
        // rewrites nothing.
        std::fs::remove_file(dir.join(".cleaner-checkpoint")).unwrap();
        let log = open(&dir, compacted(small_segments())).await;
        let again = log
            .clean(Timestamp::now(), &CleanOptions::default(), &|| false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.records_removed, 0);
        assert_eq!(again.segments_rewritten, 0);
        // A checkpoint past the recovered log is not believed.
        std::fs::write(
            dir.join(".cleaner-checkpoint"),
            "corelog cleaner v1 cleaned_to=999999999 tombstone_due=none\n",
        )
        .unwrap();
        log.close().await.unwrap();
        let log = open(&dir, compacted(small_segments())).await;
        assert!(
            log.clean(Timestamp::now(), &CleanOptions::default(), &|| false)
                .await
                .unwrap()
                .is_some()
        );
        // Appends continue at the same end offset.
        let info = log
            .append(keyed(
                &[("key1".into(), Some(b"x".to_vec()))],
                5,
                Compression::None,
            ))
            .await
            .unwrap();
        assert_eq!(info.base_offset, end);
        log.close().await.unwrap();
    });
}

#[test]
fn a_small_key_map_compacts_over_several_passes_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        let log = open(&dir, compacted(small_segments())).await;
        let all = fill_keyed(&log, 5, 300, Compression::None).await;
        wait_sealed(&log).await;
        let active = log.segments().last().unwrap().base_offset;
        let options = CleanOptions {
            map_bytes_max: 4 << 10,
            bytes_per_sec: 0,
        };
        let passes = clean_until_done(&log, Timestamp::now(), &options).await;
        assert!(passes > 1, "a 4 KiB map cannot hold 300 keys at once");
        // Several partial maps converge on what one full map gives.
        let expected = expected_after_compaction(&all, active.0);
        assert_eq!(read_records(&log).await, expected);
        log.close().await.unwrap();
    });
}

#[test]
fn tombstones_stay_until_delete_retention_ms_then_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        let config = LogConfig {
            delete_retention_ms: 60_000,
            ..compacted(small_segments())
        };
        let log = open(&dir, config).await;
        let now = Timestamp::now();
        let value = |i: u64| Some(format!("value-{i:0200}").into_bytes());
        for round in 0..3u64 {
            let records: Vec<_> = (0..20).map(|k| (format!("t{k}"), value(round))).collect();
            log.append(keyed(&records, now.0, Compression::None))
                .await
                .unwrap();
        }
        // Tombstones for the even keys.
        let tombstones: Vec<_> = (0..20)
            .step_by(2)
            .map(|k| (format!("t{k}"), None))
            .collect();
        log.append(keyed(&tombstones, now.0, Compression::None))
            .await
            .unwrap();
        // Roll past them.
        let mut n = 0;
        while log.segments().len() < 3 {
            log.append(keyed(
                &[(format!("other{n}"), value(n))],
                now.0,
                Compression::None,
            ))
            .await
            .unwrap();
            n += 1;
        }
        wait_sealed(&log).await;
        let keys_with_value = |records: &BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)>| {
            records
                .values()
                .filter(|(k, _)| k.starts_with(b"t"))
                .map(|(k, v)| (String::from_utf8(k.clone()).unwrap(), v.is_some()))
                .collect::<BTreeMap<_, _>>()
        };
        let first = log
            .clean(now, &CleanOptions::default(), &|| false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.tombstones_removed, 0);
        let t = keys_with_value(&read_records(&log).await);
        assert_eq!(t.len(), 20, "one record per key: {t:?}");
        for k in 0..20 {
            assert_eq!(t[&format!("t{k}")], k % 2 == 1, "t{k}: tombstone or value");
        }
        // Not yet due: nothing to do.
        let soon = Timestamp(now.0 + 30_000);
        assert!(
            log.clean(soon, &CleanOptions::default(), &|| false)
                .await
                .unwrap()
                .is_none()
        );
        // Past delete.retention.ms the tombstones go, the values stay — after
        // a restart too (the checkpoint remembers when they fall due).
        log.close().await.unwrap();
        let log = open(&dir, config).await;
        let later = Timestamp(now.0 + 61_000);
        let second = log
            .clean(later, &CleanOptions::default(), &|| false)
            .await
            .unwrap()
            .expect("a pass for the due tombstones");
        assert_eq!(second.tombstones_removed, 10);
        let t = keys_with_value(&read_records(&log).await);
        assert_eq!(t.len(), 10);
        assert!(t.values().all(|&has_value| has_value));
        log.close().await.unwrap();
    });
}

#[test]
fn compressed_batches_are_recompressed_and_idempotent_producers_still_deduplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        let config = compacted(small_segments());
        let log = open(&dir, config).await;
        let mut all = BTreeMap::new();
        let codecs = [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        let mut seq = 0i32;
        let mut last_batch = BytesMut::new();
        let mut last_offsets = (Offset(0), Offset(0));
        for i in 0..400u64 {
            let codec = codecs[i as usize % codecs.len()];
            let records: Vec<_> = (0..5)
                .map(|j| {
                    (
                        format!("c{}", (i * 5 + j) % 30),
                        Some(format!("{i}-{j}-{:0200}", 0).into_bytes()),
                    )
                })
                .collect();
            let mut builder = BatchBuilder::with_capacity(4096);
            builder.set_producer(9, 1, seq);
            for (k, v) in &records {
                builder.push(Timestamp(1_000), Some(k.as_bytes()), v.as_deref(), &[]);
            }
            let bytes = BytesMut::from(&builder.finish_compressed(codec).unwrap()[..]);
            last_batch = bytes.clone();
            let info = log.append(bytes).await.unwrap();
            last_offsets = (info.base_offset, info.last_offset);
            for (j, (k, v)) in records.into_iter().enumerate() {
                all.insert(info.base_offset.0 + j as u64, (k.into_bytes(), v));
            }
            seq += 5;
        }
        // Seal the producer's last batch too.
        let mut n = 0;
        while log.segments().last().unwrap().base_offset <= last_offsets.1 {
            log.append(keyed(
                &[(format!("z{n}"), Some(vec![0; 500]))],
                2_000,
                Compression::None,
            ))
            .await
            .unwrap();
            n += 1;
        }
        wait_sealed(&log).await;
        let active = log.segments().last().unwrap().base_offset;
        let outcome = log
            .clean(Timestamp::now(), &CleanOptions::default(), &|| false)
            .await
            .unwrap()
            .unwrap();
        assert!(outcome.records_removed > 0);
        let records = read_records(&log).await;
        let expected: BTreeMap<_, _> = expected_after_compaction(&all, active.0)
            .into_iter()
            .filter(|(o, _)| *o < last_offsets.1.0 + 1)
            .collect();
        let got: BTreeMap<_, _> = records
            .into_iter()
            .filter(|(o, _)| *o <= last_offsets.1.0)
            .collect();
        assert_eq!(got, expected);
        // The rewritten batches keep their codecs and producer fields.
        let read = log.read(Offset(0), 1 << 20).await.unwrap();
        let mut codecs_seen = std::collections::BTreeSet::new();
        for b in read.batches() {
            let b = RecordBatch::parse(b, 1 << 24).unwrap();
            if b.record_count() > 0 {
                codecs_seen.insert(b.compression() as u8);
                if b.base_offset() <= last_offsets.1 {
                    assert_eq!((b.producer_id(), b.producer_epoch()), (9, 1));
                }
            }
        }
        assert!(codecs_seen.len() >= 2, "codecs kept: {codecs_seen:?}");
        // A retry of the producer's last batch is still recognised.
        let retry = log.append(last_batch.clone()).await.unwrap();
        assert_eq!((retry.base_offset, retry.last_offset), last_offsets);
        log.close().await.unwrap();

        // Rebuilt from the compacted log alone (no snapshot), the producer
        // state still knows the last sequence.
        for name in snapshots(&dir) {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        let log = open(&dir, config).await;
        let retry = log.append(last_batch).await.unwrap();
        assert_eq!((retry.base_offset, retry.last_offset), last_offsets);
        let mut builder = BatchBuilder::with_capacity(256);
        builder.set_producer(9, 1, seq);
        builder.push(Timestamp(3_000), Some(b"c1"), Some(b"next"), &[]);
        let end = log.end_offset();
        let next = log
            .append(BytesMut::from(&builder.finish()[..]))
            .await
            .unwrap();
        assert_eq!(next.base_offset, end, "the next sequence is taken as new");
        log.close().await.unwrap();
    });
}

#[test]
fn cleanup_policies_decide_between_retention_and_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        // compact only: retention settings do not delete anything.
        let dir = tmp.path().join("compact").join("0");
        let config = LogConfig {
            retention_bytes: Some(1),
            ..compacted(small_segments())
        };
        let log = open(&dir, config).await;
        let all = fill_keyed(&log, 4, 20, Compression::None).await;
        wait_sealed(&log).await;
        let outcome = log.enforce_retention(Timestamp::now()).await.unwrap();
        assert_eq!(outcome.segments_deleted, 0);
        assert_eq!(log.start_offset(), Offset(0));
        log.close().await.unwrap();

        // compact,delete: both apply.
        let dir = tmp.path().join("both").join("0");
        let config = LogConfig {
            cleanup_delete: true,
            retention_ms: Some(60_000),
            ..compacted(small_segments())
        };
        let log = open(&dir, config).await;
        let _ = fill_keyed(&log, 6, 20, Compression::None).await;
        wait_sealed(&log).await;
        let active = log.segments().last().unwrap().base_offset;
        assert!(
            log.clean(Timestamp::now(), &CleanOptions::default(), &|| false)
                .await
                .unwrap()
                .is_some()
        );
        // The records carry timestamps from 1970: every sealed segment is
        // past retention.ms.
        let retention = log.enforce_retention(Timestamp::now()).await.unwrap();
        assert!(retention.segments_deleted > 0);
        assert_eq!(log.start_offset(), active);
        read_records(&log).await;
        log.close().await.unwrap();

        // min.compaction.lag.ms: segments younger than the lag wait.
        let dir = tmp.path().join("lag").join("0");
        let config = LogConfig {
            min_compaction_lag_ms: 60_000,
            ..compacted(small_segments())
        };
        let log = open(&dir, config).await;
        let _ = fill_keyed(&log, 4, 20, Compression::None).await;
        wait_sealed(&log).await;
        // The records carry times around 1 s after the epoch.
        let young = Timestamp(30_000);
        assert!(
            log.clean(young, &CleanOptions::default(), &|| false)
                .await
                .unwrap()
                .is_none()
        );
        let old_enough = Timestamp(120_000);
        let outcome = log
            .clean(old_enough, &CleanOptions::default(), &|| false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcome.segments_cleaned, 3);
        log.close().await.unwrap();

        // delete only: the cleaner does nothing.
        let dir = tmp.path().join("delete").join("0");
        let log = open(&dir, small_segments()).await;
        let _ = fill_keyed(&log, 3, 20, Compression::None).await;
        wait_sealed(&log).await;
        assert!(
            log.clean(Timestamp::now(), &CleanOptions::default(), &|| false)
                .await
                .unwrap()
                .is_none()
        );
        log.close().await.unwrap();
        drop(all);
    });
}

#[test]
fn a_throttled_pass_keeps_to_its_rate_and_appends_go_on_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        let log = Rc::new(open(&dir, compacted(small_segments())).await);
        let all = fill_keyed(&log, 6, 40, Compression::None).await;
        wait_sealed(&log).await;
        let active = log.segments().last().unwrap().base_offset;
        let sealed_bytes: u64 = log
            .segments()
            .iter()
            .filter(|s| !s.active)
            .map(|s| s.bytes)
            .sum();
        let rate = 2u64 << 20;
        let options = CleanOptions {
            map_bytes_max: 1 << 20,
            bytes_per_sec: rate,
        };
        let done = Rc::new(std::cell::Cell::new(false));
        let pass = {
            let (log, done) = (log.clone(), done.clone());
            glommio::spawn_local(async move {
                let started = std::time::Instant::now();
                let outcome = log.clean(Timestamp::now(), &options, &|| false).await;
                done.set(true);
                (outcome, started.elapsed())
            })
        };
        // Appends while the pass runs: none waits for it.
        let mut during = 0;
        let mut slowest = Duration::ZERO;
        while !done.get() {
            let started = std::time::Instant::now();
            log.append(keyed(
                &[("live".into(), Some(vec![1; 100]))],
                7,
                Compression::None,
            ))
            .await
            .unwrap();
            slowest = slowest.max(started.elapsed());
            during += 1;
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        let (outcome, took) = pass.await;
        let outcome = outcome.unwrap().unwrap();
        // The pass reads every sealed byte twice (map, rewrite) and writes
        // what it keeps: at 2 MiB/s that takes a while.
        let least = Duration::from_secs_f64(2.0 * sealed_bytes as f64 / rate as f64 * 0.9);
        assert!(
            took >= least,
            "a pass over {sealed_bytes} bytes took {took:?}"
        );
        assert!(during >= 20, "only {during} appends during a {took:?} pass");
        assert!(
            slowest < Duration::from_millis(500),
            "an append took {slowest:?}"
        );
        assert!(outcome.records_removed > 0);
        // What the pass compacted is exact.
        let records = read_records(&log).await;
        let expected = expected_after_compaction(&all, active.0);
        let below: BTreeMap<_, _> = records.into_iter().filter(|(o, _)| *o < active.0).collect();
        let want: BTreeMap<_, _> = expected
            .into_iter()
            .filter(|(o, _)| *o < active.0)
            .collect();
        assert!(below == want);
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

/// Segments of a few read blocks (1 MiB each) with a tiny tail cache, so
/// forward readers read from the files, ahead of themselves, across
/// segment boundaries.
fn read_ahead_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 3 << 20,
        index_interval_bytes: 4096,
        write_chunk_bytes: 1 << 20,
        tail_cache_bytes: 64 << 10,
        ..LogConfig::default()
    }
}

/// Appends `batches` batches of 20 records of 1,000 bytes (offsets from 0)
/// and closes the log.
async fn fill_for_read_ahead(dir: &Path, batches: u64) {
    let log = open(dir, read_ahead_segments()).await;
    for b in 0..batches {
        log.append(batch(b * 20, 20, 1000, 0)).await.unwrap();
    }
    log.close().await.unwrap();
}

/// Reads forward from `from` to the high watermark in reads of
/// `max_bytes`, returning the bytes of every batch in order.
async fn read_bytes_forward(log: &PartitionLog, from: Offset, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = from;
    loop {
        let read = log.read(pos, max_bytes).await.unwrap();
        if read.chunks.is_empty() {
            assert_eq!(pos, read.high_watermark);
            return out;
        }
        for chunk in &read.chunks {
            out.extend_from_slice(chunk);
        }
        assert!(read.next_offset > pos);
        pos = read.next_offset;
    }
}

#[test]
fn forward_reads_with_read_ahead_return_the_same_bytes_as_without_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        // ~20 KiB batches: 10 MiB over four segments.
        fill_for_read_ahead(&dir, 500).await;
        // Without read-ahead: the shard's budget is 0.
        let disk = Disk::open(dir.parent().unwrap()).await.unwrap();
        disk.read_ahead().set_limit(0);
        let log = PartitionLog::open(&disk, &dir, read_ahead_segments())
            .await
            .unwrap();
        assert!(log.segments().len() >= 4, "the data spans several segments");
        let plain = read_bytes_forward(&log, Offset(0), 1 << 20).await;
        assert_eq!(disk.read_ahead().stats().ahead_blocks, 0);
        log.close().await.unwrap();

        for max_bytes in [1 << 20, 300 << 10, 5000] {
            let disk = Disk::open(dir.parent().unwrap()).await.unwrap();
            let log = PartitionLog::open(&disk, &dir, read_ahead_segments())
                .await
                .unwrap();
            let ahead = read_bytes_forward(&log, Offset(0), max_bytes).await;
            assert!(
                ahead == plain,
                "read-ahead changed the bytes read ({max_bytes})"
            );
            let stats = disk.read_ahead().stats();
            assert!(
                stats.ahead_hits > 0 && stats.ahead_blocks > 8,
                "forward reads were read ahead: {stats:?}"
            );
            assert_eq!(
                log.stats().disk_read_bytes + log.stats().cache_read_bytes,
                plain.len() as u64
            );
            log.close().await.unwrap();
            assert_eq!(
                disk.read_ahead().stats().held_bytes,
                0,
                "a closed log holds no blocks"
            );
        }
    });
}

#[test]
fn a_reader_that_jumps_back_or_elsewhere_reads_the_right_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        fill_for_read_ahead(&dir, 400).await;
        let log = open(&dir, read_ahead_segments()).await;
        let hw = log.high_watermark().0;
        // Read forward far enough for a read-ahead, then jump around.
        let mut pos = Offset(0);
        for _ in 0..5 {
            pos = log.read(pos, 256 << 10).await.unwrap().next_offset;
        }
        for from in [10u64, 0, pos.0 + 3000, 57, hw - 1, 4_000, 3_990, pos.0] {
            let read = log.read(Offset(from), 100 << 10).await.unwrap();
            let first = read.batches().next().expect("a batch");
            let batch = RecordBatch::parse(first, 1 << 24).unwrap();
            assert!(
                batch.base_offset().0 <= from && from <= batch.last_offset().0,
                "the first batch holds the offset asked for ({from})"
            );
            // Every record from there on, in order.
            let mut expected = batch.base_offset().0;
            for bytes in read.batches() {
                let b = RecordBatch::parse(bytes, 1 << 24).unwrap();
                for r in b.records() {
                    let o = b.base_offset().0 + r.offset_delta as u64;
                    assert_eq!(o, expected);
                    assert_eq!(r.key.unwrap(), key_of(o).as_slice());
                    expected += 1;
                }
            }
        }
        // Two readers interleaved, each forward (each keeps its own
        // read-ahead): both see every record of their range once.
        let starts = [0u64, 3_000];
        let mut pos = starts.map(Offset);
        let mut seen: [Vec<(u64, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
        let ends = [3_000u64, hw];
        while (0..2).any(|i| pos[i].0 < ends[i]) {
            for i in 0..2 {
                if pos[i].0 >= ends[i] {
                    continue;
                }
                let read = log.read(pos[i], 200 << 10).await.unwrap();
                for bytes in read.batches() {
                    let batch = RecordBatch::parse(bytes, 1 << 24).unwrap();
                    for r in batch.records() {
                        let o = batch.base_offset().0 + r.offset_delta as u64;
                        if o >= pos[i].0 && o < ends[i] {
                            seen[i].push((o, r.key.unwrap().to_vec()));
                        }
                    }
                }
                pos[i] = read.next_offset;
            }
        }
        expect_keys(&seen[0], 0, 3_000);
        expect_keys(&seen[1], 3_000, hw);
        log.close().await.unwrap();
    });
}

#[test]
fn a_forward_reader_just_behind_the_writer_reads_the_active_segment_whole() {
    let tmp = tempfile::tempdir().unwrap();
    run(async {
        // Small write chunks and cache: the active segment's written length
        // moves in small steps under a reader that reads it from the file.
        let config = LogConfig {
            write_chunk_bytes: 64 << 10,
            tail_cache_bytes: 16 << 10,
            ..read_ahead_segments()
        };
        let log = Rc::new(open(&log_dir(&tmp), config).await);
        let writer = {
            let log = log.clone();
            glommio::spawn_local(async move {
                for b in 0..400u64 {
                    log.append(batch(b * 20, 20, 1000, 0)).await.unwrap();
                    if b % 4 == 0 {
                        glommio::timer::sleep(Duration::from_micros(300)).await;
                    }
                }
            })
        };
        // Start behind (past the cache), then read forward in small steps.
        while log.high_watermark().0 < 2_000 {
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        let mut seen = Vec::new();
        let mut pos = Offset(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while seen.len() < 8_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "reader stalled at {pos}"
            );
            let read = log.read(pos, 64 << 10).await.unwrap();
            for bytes in read.batches() {
                let b = RecordBatch::parse(bytes, 1 << 24).unwrap();
                for r in b.records() {
                    let o = b.base_offset().0 + r.offset_delta as u64;
                    if o >= pos.0 {
                        seen.push((o, r.key.unwrap().to_vec()));
                    }
                }
            }
            pos = read.next_offset;
            if read.chunks.is_empty() {
                glommio::timer::sleep(Duration::from_micros(200)).await;
            }
        }
        writer.await;
        expect_keys(&seen, 0, 8_000);
        assert!(log.stats().disk_read_bytes > 0, "part came from the files");
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn retention_deleting_the_segment_a_forward_reader_is_in_moves_it_to_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_dir(&tmp);
    run(async {
        fill_for_read_ahead(&dir, 500).await;
        let log = open(&dir, read_ahead_segments()).await;
        let mut pos = Offset(0);
        for _ in 0..4 {
            pos = log.read(pos, 256 << 10).await.unwrap().next_offset;
        }
        let first_segment_end = log.segments()[1].base_offset;
        assert!(
            pos < first_segment_end,
            "the reader is in the first segment"
        );
        let config = LogConfig {
            retention_bytes: Some(4 << 20),
            ..read_ahead_segments()
        };
        log.set_config(config).unwrap();
        let outcome = log.enforce_retention(Timestamp::now()).await.unwrap();
        assert!(outcome.segments_deleted >= 1);
        let start = log.start_offset();
        match log.read(pos, 256 << 10).await {
            Err(StorageError::OffsetOutOfRange { start: s, .. }) => assert_eq!(s, start),
            other => panic!("a read below the start is out of range: {other:?}"),
        }
        // From the new start on, every record once.
        let mut seen = Vec::new();
        let mut at = start;
        loop {
            let read = log.read(at, 256 << 10).await.unwrap();
            if read.chunks.is_empty() {
                break;
            }
            for bytes in read.batches() {
                let b = RecordBatch::parse(bytes, 1 << 24).unwrap();
                for r in b.records() {
                    let o = b.base_offset().0 + r.offset_delta as u64;
                    if o >= at.0 {
                        seen.push((o, r.key.unwrap().to_vec()));
                    }
                }
            }
            at = read.next_offset;
        }
        expect_keys(&seen, start.0, 10_000);
        log.close().await.unwrap();
    });
}
