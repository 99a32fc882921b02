//! The file-descriptor budget, against real `corelog serve` processes whose
//! open-file limit the test sets (issue 13, defect 2):
//!
//! * with a limit of 1,024, a broker holds 600 partitions with several
//!   sealed segments each, serves reads from all of them, and keeps its
//!   open descriptors within the budget;
//! * a topic create beyond the budget is refused with a clear error before
//!   anything is registered, and one whose partitions fail to open anyway
//!   (the limit lowered under the running broker) is rolled back; the
//!   broker restarts on the directory either way;
//! * a partition that cannot be opened at start reports STORAGE_FAILED while
//!   the others serve.

mod common;

use common::{Broker, run, wait_until};
use corelog::client::{
    Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, SeekTo,
    TopicSettings,
};
use corelog::protocol::wire::ErrorCode;
use corelog::storage::FsyncPolicy;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The open-file limit the brokers here run with.
const FD_LIMIT: u64 = 1024;
/// Few connections, so the budget leaves storage room for 600 partitions.
const MAX_CONNECTIONS: &str = "20";
/// Sealed-segment files each shard keeps open at most.
const OPEN_FILES_PER_SHARD: usize = 32;

fn start(data: &Path) -> Broker {
    Broker::start_with_fd_limit(
        data,
        2,
        &[
            "--max-connections",
            MAX_CONNECTIONS,
            "--open-segment-files-per-shard",
            &OPEN_FILES_PER_SHARD.to_string(),
        ],
        FD_LIMIT,
    )
}

fn small_segments() -> TopicSettings {
    TopicSettings {
        segment_bytes: Some(64 << 10),
        fsync: Some(FsyncPolicy::Never),
        ..TopicSettings::default()
    }
}

fn topics(addr: SocketAddr) -> Vec<String> {
    run(async move {
        let mut names: Vec<String> = Admin::connect(addr)
            .await
            .unwrap()
            .list_topics()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.sort();
        names
    })
}

/// Produces `per_partition` records of `value_bytes` to every partition;
/// the value of record `i` starts with `i`.
fn produce(addr: SocketAddr, topic: &str, partitions: u32, per_partition: u32, value_bytes: usize) {
    let topic = topic.to_string();
    run(async move {
        let config = ProducerConfig {
            linger: Duration::from_millis(5),
            ..ProducerConfig::default()
        };
        let p = Producer::connect(addr, config).await.unwrap();
        let mut pending = Vec::new();
        for i in 0..per_partition {
            for partition in 0..partitions {
                let mut value = format!("{i:08}").into_bytes();
                value.resize(value_bytes, b'.');
                let record = ProducerRecord {
                    topic: &topic,
                    partition: Some(partition),
                    value: Some(&value),
                    ..Default::default()
                };
                pending.push(p.send_record(record).await.unwrap());
            }
        }
        p.flush().await.unwrap();
        for d in pending {
            d.await.expect("every record is acknowledged");
        }
        p.close().await.unwrap();
    });
}

#[test]
fn six_hundred_partitions_with_sealed_segments_fit_a_limit_of_1024_and_all_serve_reads() {
    const PARTITIONS: u32 = 600;
    const PER_PARTITION: u32 = 150;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let broker = start(&data);
    let addr = broker.addr;
    let idle = broker.open_fds();
    eprintln!("descriptors of an empty broker: {idle}");
    let started = Instant::now();
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic("wide", PARTITIONS, &small_segments())
            .await
            .expect("600 partitions fit the budget of a 1,024 limit");
    });
    // About 150 KB per partition: with 64 KiB segments, two sealed ones
    // and the active one.
    produce(addr, "wide", PARTITIONS, PER_PARTITION, 1000);
    eprintln!(
        "created and filled {PARTITIONS} partitions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let described = run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .describe_topic("wide")
            .await
            .unwrap()
    });
    for p in &described.partitions {
        assert_eq!(p.error, ErrorCode::NONE, "partition {}", p.partition);
        assert_eq!(p.end_offset, PER_PARTITION as u64);
        assert!(
            p.segments >= 3,
            "partition {} has {} segments",
            p.partition,
            p.segments
        );
    }
    // Each partition holds one descriptor (its active segment's log); the
    // sealed segments' files are bounded by the shards' caches.
    let bound = idle + PARTITIONS as usize + 2 * OPEN_FILES_PER_SHARD + 16;
    let filled = broker.open_fds();
    eprintln!("descriptors with {PARTITIONS} partitions: {filled} (bound {bound})");
    assert!(filled <= bound, "{filled} descriptors open, bound {bound}");

    // Read every record of every partition from the start, sampling the
    // broker's descriptors while the reads run.
    let pid = broker.pid();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let n = std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|e| e.count())
                    .unwrap_or(0);
                peak.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let read_started = Instant::now();
    let counts = run(async move {
        let config = ConsumerConfig {
            max_wait: Duration::from_millis(50),
            partition_max_bytes: 64 << 10,
            fetch_max_bytes: 8 << 20,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::connect(addr, config).await.unwrap();
        consumer
            .assign("wide", None, SeekTo::Earliest)
            .await
            .unwrap();
        let mut counts = vec![0u32; PARTITIONS as usize];
        let deadline = Instant::now() + Duration::from_secs(60);
        while counts.iter().any(|&c| c < PER_PARTITION) {
            assert!(Instant::now() < deadline, "reading took over a minute");
            for r in consumer.poll().await.unwrap() {
                let value = r.value.unwrap();
                let seq: u32 = std::str::from_utf8(&value[..8]).unwrap().parse().unwrap();
                assert_eq!(
                    seq, counts[r.partition as usize],
                    "partition {} reads in order",
                    r.partition
                );
                assert_eq!(r.offset, seq as u64);
                counts[r.partition as usize] += 1;
            }
        }
        counts
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    assert!(counts.iter().all(|&c| c == PER_PARTITION));
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "read {} records in {:.1} s; peak descriptors while reading: {peak} (bound {bound}, limit {FD_LIMIT})",
        PARTITIONS * PER_PARTITION,
        read_started.elapsed().as_secs_f64()
    );
    assert!(
        peak <= bound,
        "{peak} descriptors open while reading, bound {bound}"
    );
    assert!(
        !broker.log().contains("Too many open files"),
        "{}",
        broker.log()
    );
}

#[test]
fn a_topic_beyond_the_budget_is_refused_before_anything_is_registered() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut broker = start(&data);
    let addr = broker.addr;
    // The advertised maximum partition count is far beyond what a 1,024
    // limit can hold open.
    let err = run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic("huge", 10_000, &small_segments())
            .await
            .unwrap_err()
    });
    assert_eq!(
        err.code(),
        Some(ErrorCode::INVALID_PARTITION_COUNT),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("file-descriptor budget") && text.contains("open-file limit 1024"),
        "{text}"
    );
    assert!(topics(addr).is_empty());
    assert!(!data.join("huge").exists(), "no directory is left behind");
    // What fits is created, and partitions added beyond the budget are
    // refused the same way.
    run(async move {
        let admin = Admin::connect(addr).await.unwrap();
        admin
            .create_topic("fits", 100, &small_segments())
            .await
            .unwrap();
        let err = admin.create_partitions("fits", 10_000).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(ErrorCode::INVALID_PARTITION_COUNT),
            "{err}"
        );
        let d = admin.describe_topic("fits").await.unwrap();
        assert_eq!(d.partitions.len(), 100);
    });
    assert!(!data.join("fits").join("100").exists());
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let again = start(&data);
    assert_eq!(topics(again.addr), vec!["fits".to_string()]);
}

/// Sets the running process's open-file limit (as `prlimit --pid` does).
fn set_fd_limit(pid: u32, limit: u64) {
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: FD_LIMIT,
    };
    // SAFETY: prlimit on a process we started, with a valid pointer.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &rl,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn a_topic_whose_partitions_fail_to_open_is_rolled_back_and_the_broker_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut broker = start(&data);
    let addr = broker.addr;
    // The budget was computed for 1,024; an operator (or another part of
    // the process) leaves far fewer, so the opens run out halfway.
    let low = broker.open_fds() as u64 + 60;
    set_fd_limit(broker.pid(), low);
    let err = run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic("half", 400, &small_segments())
            .await
            .unwrap_err()
    });
    assert_eq!(err.code(), Some(ErrorCode::STORAGE_FAILED), "{err}");
    assert!(err.to_string().contains("rolled back"), "{err}");
    set_fd_limit(broker.pid(), FD_LIMIT);
    assert!(
        topics(addr).is_empty(),
        "nothing half-created is registered"
    );
    wait_until(
        Duration::from_secs(10),
        "the topic's directory to go",
        || !data.join("half").exists(),
    );
    // The broker keeps working, and restarts on its directory.
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic("whole", 50, &small_segments())
            .await
            .unwrap();
    });
    produce(addr, "whole", 50, 3, 100);
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let again = start(&data);
    assert_eq!(topics(again.addr), vec!["whole".to_string()]);
}

#[test]
fn a_partition_that_cannot_open_at_start_reports_failed_while_the_others_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut broker = start(&data);
    let addr = broker.addr;
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic("t", 4, &small_segments())
            .await
            .unwrap();
    });
    produce(addr, "t", 4, 10, 100);
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    // Partition 2's log file becomes something no log can open.
    let log = data.join("t").join("2").join("00000000000000000000.log");
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();

    let broker = start(&data);
    let addr = broker.addr;
    run(async move {
        let admin = Admin::connect(addr).await.unwrap();
        let d = admin.describe_topic("t").await.unwrap();
        for p in &d.partitions {
            let expected = if p.partition == 2 {
                ErrorCode::STORAGE_FAILED
            } else {
                ErrorCode::NONE
            };
            assert_eq!(p.error, expected, "partition {}", p.partition);
        }
        let producer = Producer::connect(addr, ProducerConfig::default())
            .await
            .unwrap();
        let mut deliveries = Vec::new();
        for partition in 0..4 {
            let record = ProducerRecord {
                topic: "t",
                partition: Some(partition),
                value: Some(b"after the restart"),
                ..Default::default()
            };
            deliveries.push((partition, producer.send_record(record).await.unwrap()));
        }
        producer.flush().await.unwrap();
        for (partition, d) in deliveries {
            match (partition, d.await) {
                (2, Err(e)) => {
                    assert_eq!(e.code(), Some(ErrorCode::STORAGE_FAILED), "{e}");
                    assert!(e.to_string().contains("failed to open"), "{e}");
                }
                (2, Ok(m)) => panic!("partition 2 accepted a record: {m:?}"),
                (_, Ok(m)) => assert_eq!(m.offset, Some(10)),
                (p, Err(e)) => panic!("partition {p}: {e}"),
            }
        }
        let mut consumer = Consumer::connect(addr, ConsumerConfig::default())
            .await
            .unwrap();
        consumer
            .assign("t", Some(&[0, 1, 3]), SeekTo::Earliest)
            .await
            .unwrap();
        let mut read = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while read < 33 {
            assert!(Instant::now() < deadline, "read {read} of 33 records");
            read += consumer.poll().await.unwrap().len();
        }
        assert_eq!(read, 33);
    });
    assert!(broker.log().contains("failed to open"), "{}", broker.log());
}
