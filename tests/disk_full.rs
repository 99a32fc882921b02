//! A full disk against real `corelog serve` processes: produce fails with a
//! clear, retriable error, the partition takes writes again once space
//! returns (no restart, no acknowledged record lost), topics can be deleted
//! on the full disk, and the free-space watermark refuses produce before the
//! disk is actually full.
//!
//! The first two tests inject the full disk through the broker's test hooks
//! (the disk seam's `CORELOG_TEST_ENOSPC_FILE`, the watermark's
//! `CORELOG_TEST_DISK_FREE_FILE`); the last fills a real ext4 file system on
//! a loop device, and is skipped (with a message) where mounting is not
//! allowed.

mod common;

use common::{Broker, run};
use corelog::client::{
    Acks, Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, SeekTo,
    TopicSettings,
};
use corelog::protocol::wire::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Produces one record and waits for its answer: its offset, or the error.
async fn produce_one(
    producer: &Producer,
    topic: &str,
    key: &str,
    value: &[u8],
) -> Result<u64, corelog::client::ClientError> {
    let record = ProducerRecord {
        topic,
        partition: Some(0),
        key: Some(key.as_bytes()),
        value: Some(value),
        ..Default::default()
    };
    let delivery = producer.send_record(record).await?;
    producer.flush().await?;
    Ok(delivery.await?.offset.expect("acks 1 or all answer"))
}

async fn producer(addr: SocketAddr, acks: Acks) -> Producer {
    let config = ProducerConfig {
        acks,
        linger: Duration::from_millis(0),
        ..ProducerConfig::default()
    };
    Producer::connect(addr, config).await.unwrap()
}

/// Produces `key` until it is acknowledged (every refusal must be the
/// retriable DISK_FULL), within `within`; returns its offset and how long it
/// took.
async fn produce_until_taken(
    producer: &Producer,
    topic: &str,
    key: &str,
    value: &[u8],
    within: Duration,
) -> (u64, Duration) {
    let started = Instant::now();
    loop {
        match produce_one(producer, topic, key, value).await {
            Ok(offset) => return (offset, started.elapsed()),
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::DISK_FULL), "{e}");
                assert!(
                    started.elapsed() < within,
                    "{topic}: writes still refused {within:?} after space returned: {e}"
                );
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Every record of partition 0 of `topic`, as (offset, key).
async fn read_keys(addr: SocketAddr, topic: &str) -> Vec<(u64, String)> {
    let admin = Admin::connect(addr).await.unwrap();
    let end = admin.describe_topic(topic).await.unwrap().partitions[0].high_watermark;
    let config = ConsumerConfig {
        max_wait: Duration::from_millis(50),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(addr, config).await.unwrap();
    consumer
        .assign(topic, Some(&[0]), SeekTo::Earliest)
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.position(topic, 0).unwrap() < end {
        assert!(Instant::now() < deadline, "reading {topic} took over 30 s");
        for r in consumer.poll().await.unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            out.push((r.offset, key));
        }
    }
    out
}

/// The partition holds every acknowledged record at its offset, densely,
/// and no record twice.
fn check_acknowledged(records: &[(u64, String)], acked: &BTreeMap<String, u64>, when: &str) {
    let mut seen = BTreeSet::new();
    for (i, (offset, key)) in records.iter().enumerate() {
        assert_eq!(*offset, i as u64, "{when}: offsets are dense");
        assert!(seen.insert(key.clone()), "{when}: {key} stored twice");
    }
    for (key, offset) in acked {
        assert_eq!(
            records.get(*offset as usize).map(|r| r.1.as_str()),
            Some(key.as_str()),
            "{when}: acknowledged {key} at offset {offset}"
        );
    }
}

/// Files under `dir` whose names end in `.tmp`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".tmp") {
                found.push(path);
            }
        }
    }
    found
}

fn create_topic(addr: SocketAddr, name: &str) {
    let name = name.to_string();
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic(&name, 1, &TopicSettings::default())
            .await
            .unwrap();
    });
}

#[test]
fn a_full_disk_fails_produce_then_the_partition_takes_writes_again_without_a_restart() {
    // Regression: after ENOSPC a partition stayed failed until the broker
    // restarted.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let full = tmp.path().join("disk-is-full");
    let env = [(corelog::storage::io::ENOSPC_FILE_ENV, full.as_path())];
    let args = ["--disk-free-min-bytes", "0"];
    let mut broker = Broker::start_with_env(&data, 1, &args, &env);
    let addr = broker.addr;
    create_topic(addr, "t");
    create_topic(addr, "other");
    let acked = run(async {
        let p = producer(addr, Acks::Leader).await;
        let all = producer(addr, Acks::All).await;
        let value = vec![7u8; 1000];
        let mut acked = BTreeMap::new();
        for i in 0..100 {
            let key = format!("before-{i}");
            acked.insert(
                key.clone(),
                produce_one(&p, "t", &key, &value).await.unwrap(),
            );
        }
        assert!(produce_one(&p, "other", "x", &value).await.is_ok());

        // The disk fills: the requests in flight fail with DISK_FULL.
        std::fs::write(&full, b"").unwrap();
        let mut refused = None;
        for i in 0..100_000 {
            let key = format!("filling-{i}");
            match produce_one(&p, "t", &key, &value).await {
                Ok(offset) => {
                    acked.insert(key, offset);
                }
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let refused = refused.expect("produce fails once the disk is full");
        assert_eq!(refused.code(), Some(ErrorCode::DISK_FULL), "{refused}");
        assert!(refused.to_string().contains("no space left"), "{refused}");
        let err = produce_one(&all, "t", "all", &value).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::DISK_FULL), "{err}");

        // Deleting a topic works on the full disk.
        let admin = Admin::connect(addr).await.unwrap();
        admin.delete_topic("other").await.unwrap();

        // Space returns: the same partition takes writes, no restart.
        std::fs::remove_file(&full).unwrap();
        let (offset, took) =
            produce_until_taken(&p, "t", "after-0", &value, Duration::from_secs(10)).await;
        eprintln!("writes taken again {took:?} after space returned");
        acked.insert("after-0".to_string(), offset);
        for i in 1..100 {
            let key = format!("after-{i}");
            acked.insert(
                key.clone(),
                produce_one(&all, "t", &key, &value).await.unwrap(),
            );
        }
        let records = read_keys(addr, "t").await;
        check_acknowledged(&records, &acked, "after recovery");
        acked
    });
    assert!(temp_files(&data).is_empty(), "{:?}", temp_files(&data));
    assert_eq!(
        broker.terminate(Duration::from_secs(30)),
        0,
        "{}",
        broker.log()
    );
    assert!(
        !data.join("other").exists(),
        "the deleted topic's files are gone"
    );
    let broker = Broker::start(&data, 1, &[]);
    let records = run(read_keys(broker.addr, "t"));
    check_acknowledged(&records, &acked, "after a restart");
}

#[test]
fn below_the_free_space_watermark_produce_is_refused_with_a_retriable_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let free = tmp.path().join("free-bytes");
    std::fs::write(&free, b"5000000").unwrap();
    let env = [(corelog::shard::DISK_FREE_FILE_ENV, free.as_path())];
    let args = ["--disk-free-min-bytes", "1000000"];
    let broker = Broker::start_with_env(&data, 2, &args, &env);
    let addr = broker.addr;
    create_topic(addr, "w");
    run(async {
        let p = producer(addr, Acks::Leader).await;
        let mut acked = BTreeMap::new();
        acked.insert(
            "a".to_string(),
            produce_one(&p, "w", "a", b"v").await.unwrap(),
        );
        // Free space drops below the watermark (the disk is not full).
        std::fs::write(&free, b"999999").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            let key = format!("b{}", acked.len());
            match produce_one(&p, "w", &key, b"v").await {
                Ok(offset) => {
                    acked.insert(key, offset);
                    assert!(Instant::now() < deadline, "produce never refused");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(err.code(), Some(ErrorCode::DISK_FULL), "{err}");
        assert!(err.to_string().contains("--disk-free-min-bytes"), "{err}");
        // Space is freed: accepted again.
        std::fs::write(&free, b"2000000").unwrap();
        let (offset, took) = produce_until_taken(&p, "w", "c", b"v", Duration::from_secs(10)).await;
        eprintln!("taken again {took:?} after free space rose above the watermark");
        acked.insert("c".to_string(), offset);
        check_acknowledged(&read_keys(addr, "w").await, &acked, "watermark");
    });
}

/// A loop-mounted ext4 file system, unmounted (and its image removed with
/// the temporary directory) on drop.
struct LoopMount {
    dir: PathBuf,
}

impl LoopMount {
    /// `None` (with the reason) where mounting is not allowed.
    fn new(root: &Path, mib: u64) -> Result<LoopMount, String> {
        let image = root.join("disk.img");
        let dir = root.join("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(mib << 20).unwrap();
        drop(file);
        let run = |cmd: &mut Command| -> Result<(), String> {
            match cmd.output() {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!("{cmd:?}: {e}")),
            }
        };
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&dir))?;
        Ok(LoopMount { dir })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it (a broker killed by a panic): detach
            // it lazily so the temporary directory can go.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Free bytes of the file system holding `dir`, as `df` sees them.
fn available(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_real_full_disk_is_survived_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = match LoopMount::new(tmp.path(), 64) {
        Ok(mount) => mount,
        Err(reason) => {
            eprintln!("skipping: cannot mount a loop file system here ({reason})");
            return;
        }
    };
    let data = mount.dir.join("data");
    let acked = {
        let mut broker = Broker::start(&data, 1, &["--disk-free-min-bytes", "0"]);
        let addr = broker.addr;
        create_topic(addr, "keep");
        create_topic(addr, "filler");
        let acked = run(async {
            let p = producer(addr, Acks::All).await;
            let small = vec![1u8; 1000];
            let big = vec![2u8; 256 << 10];
            let mut acked = BTreeMap::new();
            for i in 0..50 {
                let key = format!("before-{i}");
                acked.insert(
                    key.clone(),
                    produce_one(&p, "keep", &key, &small).await.unwrap(),
                );
            }
            // Fill the file system through the broker until it says so.
            let mut filled = None;
            for i in 0..1000 {
                if let Err(e) = produce_one(&p, "filler", &format!("f{i}"), &big).await {
                    filled = Some(e);
                    break;
                }
            }
            let err = filled.expect("a 64 MiB file system fills");
            assert_eq!(err.code(), Some(ErrorCode::DISK_FULL), "{err}");
            // The last scraps of space go to the other partition.
            let mut refused = None;
            for i in 0..10_000 {
                let key = format!("filling-{i}");
                match produce_one(&p, "keep", &key, &small).await {
                    Ok(offset) => {
                        acked.insert(key, offset);
                    }
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            let err = refused.expect("the full disk refuses every partition");
            assert_eq!(err.code(), Some(ErrorCode::DISK_FULL), "{err}");
            eprintln!("full: {} bytes available", available(&mount.dir));

            // Deleting a topic works on the full disk, and frees its space.
            let admin = Admin::connect(addr).await.unwrap();
            admin.delete_topic("filler").await.unwrap();
            assert!(temp_files(&data).is_empty(), "{:?}", temp_files(&data));

            let (offset, took) =
                produce_until_taken(&p, "keep", "after-0", &small, Duration::from_secs(10)).await;
            eprintln!("writes taken again {took:?} after the delete freed space");
            acked.insert("after-0".to_string(), offset);
            for i in 1..50 {
                let key = format!("after-{i}");
                acked.insert(
                    key.clone(),
                    produce_one(&p, "keep", &key, &small).await.unwrap(),
                );
            }
            check_acknowledged(&read_keys(addr, "keep").await, &acked, "recovered");
            acked
        });
        assert_eq!(
            broker.terminate(Duration::from_secs(30)),
            0,
            "{}",
            broker.log()
        );
        acked
    };

    // The watermark: produce is refused before the disk is actually full.
    let watermark = 24u64 << 20;
    let broker = Broker::start(&data, 1, &["--disk-free-min-bytes", &watermark.to_string()]);
    let addr = broker.addr;
    check_acknowledged(&run(read_keys(addr, "keep")), &acked, "restarted");
    let ballast = mount.dir.join("ballast");
    run(async {
        let p = producer(addr, Acks::Leader).await;
        assert!(produce_one(&p, "keep", "above", b"v").await.is_ok());
        // Something else takes the space, down to below the watermark.
        let free = available(&mount.dir);
        assert!(free > watermark + (4 << 20), "{free} bytes free");
        std::fs::write(&ballast, vec![0u8; (free - watermark + (2 << 20)) as usize]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            match produce_one(&p, "keep", "below", b"v").await {
                Ok(_) => {
                    assert!(
                        Instant::now() < deadline,
                        "never refused below the watermark"
                    );
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(err.code(), Some(ErrorCode::DISK_FULL), "{err}");
        assert!(err.to_string().contains("--disk-free-min-bytes"), "{err}");
        std::fs::remove_file(&ballast).unwrap();
        let (_, took) =
            produce_until_taken(&p, "keep", "freed", b"v", Duration::from_secs(10)).await;
        eprintln!("taken again {took:?} after the space was freed");
    });
    drop(broker);
    assert!(temp_files(&data).is_empty(), "{:?}", temp_files(&data));
    drop(mount);
}
