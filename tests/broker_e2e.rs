//! End to end against real `corelog serve` processes on 127.0.0.1.

mod common;

use common::{Broker, run, wait_until};
use corelog::client::{
    Acks, Admin, ConfigSetting, ConfigSource, ConfigUpdate, Consumer, ConsumerConfig, OffsetReset,
    Producer, ProducerConfig, ProducerRecord, Routing, SeekTo, TopicSettings,
};
use corelog::storage::FsyncPolicy;
use corelog::types::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn create_topic(addr: SocketAddr, name: &str, partitions: u32, settings: TopicSettings) {
    let name = name.to_string();
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic(&name, partitions, &settings)
            .await
            .unwrap();
    });
}

/// (partition, end offset) of every partition.
fn end_offsets(addr: SocketAddr, topic: &str) -> Vec<(u32, u64)> {
    let topic = topic.to_string();
    run(async move {
        let d = Admin::connect(addr)
            .await
            .unwrap()
            .describe_topic(&topic)
            .await
            .unwrap();
        d.partitions
            .iter()
            .map(|p| (p.partition, p.high_watermark))
            .collect()
    })
}

/// Every record of `topic` as (partition, offset, key, value), reading until
/// each partition's position reaches the end offsets seen at start.
fn consume_all(addr: SocketAddr, topic: &str, routing: Routing) -> Vec<(u32, u64, String, String)> {
    let ends = end_offsets(addr, topic);
    let topic = topic.to_string();
    run(async move {
        let config = ConsumerConfig {
            routing,
            max_wait: Duration::from_millis(100),
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::connect(addr, config).await.unwrap();
        consumer
            .assign(&topic, None, SeekTo::Earliest)
            .await
            .unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ends
            .iter()
            .all(|(p, end)| consumer.position(&topic, *p).unwrap() >= *end)
        {
            assert!(Instant::now() < deadline, "consuming took over 2 minutes");
            for r in consumer.poll().await.unwrap() {
                let text = |b: Option<bytes::Bytes>| {
                    b.map(|b| String::from_utf8(b.to_vec()).unwrap())
                        .unwrap_or_default()
                };
                out.push((r.partition, r.offset, text(r.key), text(r.value)));
            }
        }
        out
    })
}

/// Produces `count` records keyed `key-{i % keys}` with value
/// `p{producer}-{i}` from a thread of its own; returns (key, seq, partition,
/// offset) of each acknowledged record.
fn produce_keyed(
    addr: SocketAddr,
    topic: &str,
    producer: u32,
    count: u64,
    keys: u64,
    routing: Routing,
) -> std::thread::JoinHandle<Vec<(u64, u64, u32, u64)>> {
    let topic = topic.to_string();
    std::thread::spawn(move || {
        run(async move {
            let config = ProducerConfig {
                routing,
                linger: Duration::from_millis(2),
                ..ProducerConfig::default()
            };
            let p = Producer::connect(addr, config).await.unwrap();
            let mut pending = Vec::with_capacity(count as usize);
            for i in 0..count {
                let key = format!("key-{}", i % keys);
                let value = format!("p{producer}-{i}");
                let d = p
                    .send(&topic, Some(key.as_bytes()), value.as_bytes())
                    .await
                    .unwrap();
                pending.push((i % keys, i, d));
            }
            p.flush().await.unwrap();
            let mut acked = Vec::with_capacity(pending.len());
            for (key, seq, d) in pending {
                let m = d.await.expect("every record is acknowledged");
                acked.push((key, seq, m.partition, m.offset.unwrap()));
            }
            p.close().await.unwrap();
            acked
        })
    })
}

/// Checks count, per-(key, producer) order and content.
fn check_keyed(records: &[(u32, u64, String, String)], producers: u32, per_producer: u64) {
    assert_eq!(
        records.len() as u64,
        producers as u64 * per_producer,
        "record count"
    );
    let mut seen = vec![vec![false; per_producer as usize]; producers as usize];
    // Last sequence seen per (key, producer) in each partition's offset order.
    let mut last: HashMap<(String, u32), (u32, i64)> = HashMap::new();
    let mut by_partition: BTreeMap<u32, Vec<&(u32, u64, String, String)>> = BTreeMap::new();
    for r in records {
        by_partition.entry(r.0).or_default().push(r);
    }
    for (partition, mut rs) in by_partition {
        rs.sort_by_key(|r| r.1);
        for w in rs.windows(2) {
            assert_eq!(
                w[1].1,
                w[0].1 + 1,
                "offsets of partition {partition} are dense"
            );
        }
        for (_, _, key, value) in rs {
            let (p, seq) = value.strip_prefix('p').unwrap().split_once('-').unwrap();
            let (p, seq): (u32, u64) = (p.parse().unwrap(), seq.parse().unwrap());
            assert_eq!(key, &format!("key-{}", seq % 1000), "content of {value}");
            assert!(!seen[p as usize][seq as usize], "{value} read twice");
            seen[p as usize][seq as usize] = true;
            let entry = last.entry((key.clone(), p)).or_insert((partition, -1));
            assert_eq!(entry.0, partition, "key {key} must stay on one partition");
            assert!(
                (seq as i64) > entry.1,
                "key {key} of producer {p}: {seq} after {}",
                entry.1
            );
            entry.1 = seq as i64;
        }
    }
}

#[test]
fn a_million_keyed_records_from_four_producers_are_all_read_back_before_and_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut broker = Broker::start(&data, 2, &[]);
    create_topic(broker.addr, "orders", 8, TopicSettings::default());
    const PRODUCERS: u32 = 4;
    const PER_PRODUCER: u64 = 250_000;
    let started = Instant::now();
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            produce_keyed(
                broker.addr,
                "orders",
                p,
                PER_PRODUCER,
                1000,
                Routing::Direct,
            )
        })
        .collect();
    let mut acked = Vec::new();
    for t in threads {
        acked.extend(t.join().unwrap());
    }
    let produce_secs = started.elapsed().as_secs_f64();
    assert_eq!(acked.len() as u64, PRODUCERS as u64 * PER_PRODUCER);
    // Keys land where Kafka's partitioner puts them.
    for &(key, _, partition, _) in acked.iter().take(5000) {
        assert_eq!(
            partition,
            corelog::client::partitioner::partition_for_key(format!("key-{key}").as_bytes(), 8)
        );
    }
    let records = consume_all(broker.addr, "orders", Routing::Direct);
    check_keyed(&records, PRODUCERS, PER_PRODUCER);
    eprintln!("1,000,000 records produced in {produce_secs:.1} s and read back");

    assert_eq!(
        broker.terminate(Duration::from_secs(30)),
        0,
        "SIGTERM exits 0:\n{}",
        broker.log()
    );
    assert!(broker.log().contains("stopped cleanly"));
    let broker = Broker::start(&data, 2, &[]);
    let records = consume_all(broker.addr, "orders", Routing::Direct);
    check_keyed(&records, PRODUCERS, PER_PRODUCER);
}

#[test]
fn sigkill_during_acks_all_produce_with_fsync_always_loses_no_acknowledged_record() {
    sigkill_cycles(3, 1500, None, 0);
}

#[test]
fn sigkill_with_small_segments_and_the_cpus_loaded_loses_no_acknowledged_record() {
    // Regression: under CPU load a kill could land between a rolled
    // segment's final time-index entry and the trim of its log, and the
    // restarted broker served the zero padding as a corrupt batch. Small
    // segments make rolls (and background seals) happen every few hundred
    // records; CORELOG_BROKER_SIGKILL_CYCLES runs more cycles.
    let cycles = std::env::var("CORELOG_BROKER_SIGKILL_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let _hogs = common::CpuHogs::start(2);
    sigkill_cycles(cycles, 1500, Some(64 << 10), 2);
}

/// Produces with acks=all to an `fsync always` topic from eight concurrent
/// senders, SIGKILLs the broker once `per_cycle` more records are
/// acknowledged (plus a few random milliseconds), restarts it and checks
/// that every acknowledged record is stored — `cycles` times.
fn sigkill_cycles(cycles: u32, per_cycle: usize, segment_bytes: Option<u64>, jitter_ms: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut broker = Broker::start(&data, 2, &[]);
    create_topic(
        broker.addr,
        "durable",
        4,
        TopicSettings {
            fsync: Some(FsyncPolicy::Always),
            segment_bytes,
            ..TopicSettings::default()
        },
    );
    let acked: Arc<Mutex<Vec<(u32, u64, String)>>> = Arc::default();
    for cycle in 0..cycles {
        let addr = broker.addr;
        let target = acked.lock().unwrap().len() + per_cycle;
        let sink = acked.clone();
        let producer = std::thread::spawn(move || {
            run(async move {
                let config = ProducerConfig {
                    acks: Acks::All,
                    linger: Duration::from_millis(1),
                    ..ProducerConfig::default()
                };
                let Ok(p) = Producer::connect(addr, config).await else {
                    return;
                };
                let p = std::rc::Rc::new(p);
                // Eight concurrent senders, each waiting for its acks.
                let tasks: Vec<_> = (0..8u32)
                    .map(|w| {
                        let (p, sink) = (p.clone(), sink.clone());
                        glommio::spawn_local(async move {
                            for i in 0u64.. {
                                let value = format!("c{cycle}-w{w}-{i}-{}", "x".repeat(200));
                                let Ok(d) = p
                                    .send("durable", Some(value.as_bytes()), value.as_bytes())
                                    .await
                                else {
                                    return;
                                };
                                match d.await {
                                    Ok(m) => sink.lock().unwrap().push((
                                        m.partition,
                                        m.offset.unwrap(),
                                        value,
                                    )),
                                    Err(_) => return,
                                }
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
            })
        });
        wait_until(Duration::from_secs(60), "acknowledgements", || {
            acked.lock().unwrap().len() >= target
        });
        if jitter_ms > 0 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64;
            std::thread::sleep(Duration::from_micros(nanos % (jitter_ms * 1000)));
        }
        broker.kill();
        producer.join().unwrap();
        broker = Broker::start(&data, 2, &[]);
        let stored: HashMap<(u32, u64), String> =
            consume_all(broker.addr, "durable", Routing::Direct)
                .into_iter()
                .map(|(p, o, _, v)| ((p, o), v))
                .collect();
        let acked = acked.lock().unwrap();
        for (p, o, v) in acked.iter() {
            assert_eq!(
                stored.get(&(*p, *o)),
                Some(v),
                "acknowledged record {p}/{o} after SIGKILL cycle {cycle}"
            );
        }
        let log = broker.log();
        assert!(
            !log.contains("ERROR"),
            "recovery after a SIGKILL logged an error (cycle {cycle}):\n{log}"
        );
        eprintln!(
            "cycle {cycle}: {} acknowledged records, all present",
            acked.len()
        );
    }
}

#[test]
fn a_slow_consumer_does_not_slow_the_producers_down() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    create_topic(broker.addr, "feed", 4, TopicSettings::default());
    let timed = |n: u32| {
        let started = Instant::now();
        for r in produce_keyed(broker.addr, "feed", n, 100_000, 1000, Routing::Direct)
            .join()
            .unwrap()
        {
            let _ = r;
        }
        started.elapsed()
    };
    let alone = timed(0);
    // A consumer that asks for everything and never reads its socket: the
    // broker's writes to it block once the socket buffers fill…
    let mut stuck = std::net::TcpStream::connect(broker.addr).unwrap();
    {
        use std::io::Write;
        let frame = fetch_frame("feed", 4);
        for _ in 0..200 {
            stuck.write_all(&frame).unwrap();
        }
    }
    // …and one that reads a little, slowly.
    let addr = broker.addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            run(async move {
                let config = ConsumerConfig {
                    partition_max_bytes: 1024,
                    ..ConsumerConfig::default()
                };
                let mut c = Consumer::connect(addr, config).await.unwrap();
                c.assign("feed", None, SeekTo::Earliest).await.unwrap();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = c.poll().await.unwrap();
                    glommio::timer::sleep(Duration::from_millis(200)).await;
                }
            })
        })
    };
    let with_slow = timed(1);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    slow.join().unwrap();
    drop(stuck);
    eprintln!("100k records: {alone:?} alone, {with_slow:?} beside a stuck and a slow consumer");
    assert!(
        with_slow < alone * 3 + Duration::from_secs(2),
        "producers slowed from {alone:?} to {with_slow:?}"
    );
}

/// A raw fetch request for partitions 0..n from offset 0, 1 MiB each.
fn fetch_frame(topic: &str, n: u32) -> Vec<u8> {
    use corelog::protocol::wire;
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let parts: Vec<_> = (0..n)
        .map(|p| {
            wire::FetchPartition::create(
                &mut fbb,
                &wire::FetchPartitionArgs {
                    partition: p,
                    offset: 0,
                    max_bytes: 1 << 20,
                    ..Default::default()
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let name = fbb.create_string(topic);
    let t = wire::FetchTopic::create(
        &mut fbb,
        &wire::FetchTopicArgs {
            topic: Some(name),
            partitions: Some(parts),
        },
    );
    let topics = fbb.create_vector(&[t]);
    let body = wire::FetchRequest::create(
        &mut fbb,
        &wire::FetchRequestArgs {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 64 << 20,
            topics: Some(topics),
            ..Default::default()
        },
    );
    let env = wire::RequestEnvelope::create(
        &mut fbb,
        &wire::RequestEnvelopeArgs {
            correlation_id: 1,
            request_type: wire::Request::FetchRequest,
            request: Some(body.as_union_value()),
        },
    );
    fbb.finish_size_prefixed(env, None);
    fbb.finished_data().to_vec()
}

fn total_hops(addr: SocketAddr) -> u64 {
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .stats()
            .await
            .unwrap()
            .shards
            .iter()
            .map(|s| s.cross_core_hops)
            .sum()
    })
}

#[test]
fn shard_aware_clients_make_no_cross_core_hops_and_the_shared_port_is_routed() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    create_topic(broker.addr, "spread", 8, TopicSettings::default());
    let owners: Vec<u32> = run({
        let addr = broker.addr;
        async move {
            Admin::connect(addr)
                .await
                .unwrap()
                .describe_topic("spread")
                .await
                .unwrap()
                .partitions
                .iter()
                .map(|p| p.shard)
                .collect()
        }
    });
    assert!(
        owners.contains(&0) && owners.contains(&1),
        "partitions spread over both shards: {owners:?}"
    );

    let before = total_hops(broker.addr);
    produce_keyed(broker.addr, "spread", 0, 20_000, 1000, Routing::Direct)
        .join()
        .unwrap();
    let records = consume_all(broker.addr, "spread", Routing::Direct);
    assert_eq!(records.len(), 20_000);
    assert_eq!(
        total_hops(broker.addr),
        before,
        "the shard-aware client must cause no hop"
    );

    produce_keyed(broker.addr, "spread", 1, 20_000, 1000, Routing::Shared)
        .join()
        .unwrap();
    let records = consume_all(broker.addr, "spread", Routing::Shared);
    check_keyed(&records, 2, 20_000);
    let hops = total_hops(broker.addr) - before;
    assert!(
        hops > 0,
        "requests through the shared port for partitions on the other shard must be routed"
    );
    eprintln!("shared-port clients caused {hops} cross-core hops");
}

#[test]
fn a_long_poll_fetch_returns_as_soon_as_data_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    create_topic(broker.addr, "poll", 2, TopicSettings::default());
    let addr = broker.addr;
    run(async move {
        let config = ConsumerConfig {
            max_wait: Duration::from_secs(10),
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::connect(addr, config).await.unwrap();
        consumer
            .assign("poll", Some(&[1]), SeekTo::Latest)
            .await
            .unwrap();
        let writer = glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(300)).await;
            let p = Producer::connect(addr, ProducerConfig::default())
                .await
                .unwrap();
            let record = ProducerRecord {
                topic: "poll",
                partition: Some(1),
                value: Some(b"hello"),
                ..Default::default()
            };
            p.send_record(record).await.unwrap().await.unwrap();
            p.close().await.unwrap();
        });
        let started = Instant::now();
        let mut got = Vec::new();
        while got.is_empty() {
            got = consumer.poll().await.unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "the fetch never woke up"
            );
        }
        let waited = started.elapsed();
        writer.await;
        assert_eq!(got[0].value.as_deref(), Some(&b"hello"[..]));
        assert!(
            waited >= Duration::from_millis(250),
            "the fetch must wait for data, returned after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(5),
            "the fetch must return when data arrives, not at max wait: {waited:?}"
        );
    });
}

#[test]
fn topics_are_created_described_deleted_and_recreated_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let broker = Broker::start(&data, 2, &[]);
    let addr = broker.addr;
    run(async move {
        let admin = Admin::connect(addr).await.unwrap();
        let settings = TopicSettings {
            retention_ms: Some(3_600_000),
            fsync: Some(FsyncPolicy::Interval(Duration::from_millis(50))),
            ..TopicSettings::default()
        };
        let (id, effective) = admin.create_topic("life", 3, &settings).await.unwrap();
        assert_eq!(effective.retention_ms, Some(3_600_000));
        assert_eq!(
            effective.fsync,
            Some(FsyncPolicy::Interval(Duration::from_millis(50)))
        );
        let p = Producer::connect(addr, ProducerConfig::default())
            .await
            .unwrap();
        for i in 0..30u32 {
            let value = i.to_string();
            let record = ProducerRecord {
                topic: "life",
                partition: Some(i % 3),
                value: Some(value.as_bytes()),
                ..Default::default()
            };
            p.send_record(record).await.unwrap();
        }
        p.flush().await.unwrap();
        let d = admin.describe_topic("life").await.unwrap();
        assert_eq!(d.topic_id, id);
        assert_eq!(
            d.partitions
                .iter()
                .map(|p| p.end_offset)
                .collect::<Vec<_>>(),
            vec![10, 10, 10]
        );
        assert!(
            d.partitions
                .iter()
                .all(|p| p.size_bytes > 0 && p.segments == 1)
        );
        admin.delete_topic("life").await.unwrap();
        assert!(admin.list_topics().await.unwrap().is_empty());
        let err = admin.describe_topic("life").await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(corelog::protocol::wire::ErrorCode::UNKNOWN_TOPIC)
        );
        let (new_id, _) = admin
            .create_topic("life", 2, &TopicSettings::default())
            .await
            .unwrap();
        assert_ne!(new_id, id, "topic ids are never reused");
        let d = admin.describe_topic("life").await.unwrap();
        assert_eq!(
            d.partitions
                .iter()
                .map(|p| p.end_offset)
                .collect::<Vec<_>>(),
            vec![0, 0],
            "a recreated topic starts empty"
        );
    });
}

#[test]
fn consumers_seek_by_timestamp_and_retention_advances_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &["--retention-check-ms", "100"],
    );
    let addr = broker.addr;
    create_topic(addr, "ts", 1, TopicSettings::default());
    create_topic(
        addr,
        "short",
        1,
        TopicSettings {
            segment_bytes: Some(64 << 10),
            retention_bytes: Some(128 << 10),
            ..TopicSettings::default()
        },
    );
    run(async move {
        let p = Producer::connect(addr, ProducerConfig::default())
            .await
            .unwrap();
        for i in 0..100i64 {
            let value = i.to_string();
            let record = ProducerRecord {
                topic: "ts",
                value: Some(value.as_bytes()),
                timestamp: Some(Timestamp(10_000 + 10 * i)),
                ..Default::default()
            };
            p.send_record(record).await.unwrap();
        }
        let big = vec![7u8; 1000];
        for _ in 0..1000 {
            p.send("short", None, &big).await.unwrap();
        }
        p.close().await.unwrap();
        let mut c = Consumer::connect(
            addr,
            ConsumerConfig {
                reset: OffsetReset::Error,
                ..ConsumerConfig::default()
            },
        )
        .await
        .unwrap();
        c.assign("ts", None, SeekTo::Timestamp(10_455))
            .await
            .unwrap();
        assert_eq!(
            c.position("ts", 0),
            Some(46),
            "first record at or after the timestamp"
        );
        let records = c.poll().await.unwrap();
        assert_eq!(records[0].offset, 46);
        assert_eq!(records[0].timestamp, 10_460);
        c.seek("ts", 0, SeekTo::Timestamp(99_999)).await.unwrap();
        assert_eq!(c.position("ts", 0), Some(100), "past every record: the end");
    });
    // Retention keeps at least 128 KiB and deletes while the rest is over
    // it: at most the limit, one more sealed segment and the active one.
    let limit = (128 << 10) + 2 * (64 << 10);
    wait_until(
        Duration::from_secs(20),
        "retention to bring the partition to its limit",
        || {
            let p = run(async move {
                Admin::connect(addr)
                    .await
                    .unwrap()
                    .describe_topic("short")
                    .await
                    .unwrap()
                    .partitions[0]
                    .clone()
            });
            p.start_offset > 0 && p.size_bytes <= limit
        },
    );
    let d = run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .describe_topic("short")
            .await
            .unwrap()
    });
    let p = &d.partitions[0];
    assert!(
        p.size_bytes >= 128 << 10,
        "retention keeps at least retention.bytes: {} bytes",
        p.size_bytes
    );
    // Reading from the start now begins at the new start offset.
    let records = consume_all(addr, "short", Routing::Direct);
    assert_eq!(records.first().unwrap().1, p.start_offset);
    assert_eq!(records.len() as u64, p.end_offset - p.start_offset);
}

#[test]
fn concurrent_first_sends_to_a_topic_are_all_acknowledged() {
    // Regression: tasks that sent to a topic the producer had not seen yet
    // each loaded its metadata, and a later load replaced the topic's state,
    // dropping a batch the first had already filled; its deliveries never
    // completed.
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    create_topic(broker.addr, "fresh", 4, TopicSettings::default());
    let addr = broker.addr;
    run(async move {
        let p = std::rc::Rc::new(
            Producer::connect(addr, ProducerConfig::default())
                .await
                .unwrap(),
        );
        let tasks: Vec<_> = (0..16u32)
            .map(|i| {
                let p = p.clone();
                glommio::spawn_local(async move {
                    let d = p.send("fresh", Some(&i.to_be_bytes()), b"v").await.unwrap();
                    glommio::timer::timeout(Duration::from_secs(20), async { Ok(d.await) })
                        .await
                        .expect("delivery completes")
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
}

/// Every setting of `topic` (native protocol), by name: (value, source).
fn settings(addr: SocketAddr, topic: &str) -> BTreeMap<String, (String, ConfigSource)> {
    let topic = topic.to_string();
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .describe_configs(&topic, &[])
            .await
            .unwrap()
            .into_iter()
            .map(|s: ConfigSetting| (s.name, (s.value, s.source)))
            .collect()
    })
}

fn alter(
    addr: SocketAddr,
    topic: &str,
    updates: Vec<ConfigUpdate>,
    validate_only: bool,
) -> Result<Vec<ConfigSetting>, String> {
    let topic = topic.to_string();
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .alter_configs(&topic, &updates, validate_only)
            .await
            .map_err(|e| e.to_string())
    })
}

fn set(name: &str, value: &str) -> ConfigUpdate {
    ConfigUpdate::Set {
        name: name.into(),
        value: value.into(),
    }
}

fn is(value: &str, source: ConfigSource) -> (String, ConfigSource) {
    (value.to_string(), source)
}

#[test]
fn topic_settings_change_on_running_partitions_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let flags = ["--retention-check-ms", "100", "--retention-ms", "86400000"];
    let mut broker = Broker::start(&data, 2, &flags);
    let addr = broker.addr;
    create_topic(addr, "tuned", 2, TopicSettings::default());
    let before = settings(addr, "tuned");
    assert_eq!(before.len(), 12);
    assert_eq!(before["retention.ms"], is("86400000", ConfigSource::Broker));
    assert_eq!(
        before["segment.bytes"],
        is("1073741824", ConfigSource::Default)
    );
    assert_eq!(
        before["cleanup.policy"],
        is("delete", ConfigSource::Default)
    );

    // Bad values: INVALID_CONFIG with the reason, and nothing changes, not
    // even the good change beside the bad one.
    for (updates, reason) in [
        (
            vec![set("retention.ms", "1000"), set("segment.bytes", "10")],
            "segment.bytes 10 is outside",
        ),
        (
            vec![set("cleanup.policy", "shred")],
            "not one of delete, compact",
        ),
        (vec![set("max.message.bytes", "-1")], "must not be negative"),
        (vec![set("log.flush.scheduler", "1")], "not supported"),
    ] {
        let err = alter(addr, "tuned", updates, false).unwrap_err();
        assert!(
            err.contains("INVALID_CONFIG") && err.contains(reason),
            "{err}"
        );
    }
    assert_eq!(settings(addr, "tuned"), before);
    let err = alter(addr, "missing", vec![set("retention.ms", "1")], false).unwrap_err();
    assert!(err.contains("UNKNOWN_TOPIC"), "{err}");
    // validate_only answers with the result and changes nothing.
    let would = alter(addr, "tuned", vec![set("retention.ms", "1000")], true).unwrap();
    assert!(
        would
            .iter()
            .any(|s| s.name == "retention.ms" && s.value == "1000")
    );
    assert_eq!(settings(addr, "tuned"), before);

    // About 200 KiB per partition in one segment each.
    let big = vec![7u8; 1000];
    let produce = |n: usize| {
        let big = big.clone();
        run(async move {
            let p = Producer::connect(
                addr,
                ProducerConfig {
                    acks: Acks::All,
                    ..ProducerConfig::default()
                },
            )
            .await
            .unwrap();
            for i in 0..n {
                let record = ProducerRecord {
                    topic: "tuned",
                    partition: Some((i % 2) as u32),
                    value: Some(&big),
                    ..Default::default()
                };
                p.send_record(record).await.unwrap();
            }
            p.close().await.unwrap();
        })
    };
    produce(400);
    let segments = |addr| {
        run(async move {
            Admin::connect(addr)
                .await
                .unwrap()
                .describe_topic("tuned")
                .await
                .unwrap()
                .partitions
        })
    };
    assert!(segments(addr).iter().all(|p| p.segments == 1));

    // Smaller segments and size retention on the running partitions.
    alter(
        addr,
        "tuned",
        vec![
            set("segment.bytes", "65536"),
            set("retention.bytes", "131072"),
            set("flush.messages", "1"),
        ],
        false,
    )
    .unwrap();
    produce(400);
    wait_until(
        Duration::from_secs(20),
        "smaller segments and retention on both partitions",
        || {
            segments(addr)
                .iter()
                .all(|p| p.start_offset > 0 && p.size_bytes <= (128 << 10) + 2 * (64 << 10))
        },
    );
    let now = settings(addr, "tuned");
    assert_eq!(now["segment.bytes"], is("65536", ConfigSource::Topic));
    assert_eq!(now["retention.bytes"], is("131072", ConfigSource::Topic));
    assert_eq!(now["flush.messages"], is("1", ConfigSource::Topic));
    assert_eq!(now["retention.ms"], is("86400000", ConfigSource::Broker));

    // LogAppendTime on the running partitions: the broker's time replaces
    // the producer's.
    alter(
        addr,
        "tuned",
        vec![
            set("message.timestamp.type", "LogAppendTime"),
            ConfigUpdate::Delete {
                name: "flush.messages".into(),
            },
        ],
        false,
    )
    .unwrap();
    let (start, end) = (Timestamp::now().0, end_offsets(addr, "tuned"));
    run(async move {
        let p = Producer::connect(addr, ProducerConfig::default())
            .await
            .unwrap();
        for i in 0..10 {
            let record = ProducerRecord {
                topic: "tuned",
                partition: Some(0),
                value: Some(b"stamped"),
                timestamp: Some(Timestamp(1_000_000 + i)),
                ..Default::default()
            };
            p.send_record(record).await.unwrap();
        }
        p.close().await.unwrap();
        let mut c = Consumer::connect(addr, ConsumerConfig::default())
            .await
            .unwrap();
        c.assign("tuned", Some(&[0]), SeekTo::Offset(end[0].1))
            .await
            .unwrap();
        let (mut stamped, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(30));
        while stamped.len() < 10 {
            assert!(Instant::now() < deadline, "read {} of 10", stamped.len());
            stamped.extend(c.poll().await.unwrap());
        }
        let finish = Timestamp::now().0;
        for r in stamped {
            assert!(
                (start..=finish).contains(&r.timestamp),
                "offset {}: timestamp {} is not the append time",
                r.offset,
                r.timestamp
            );
        }
    });

    // Everything survives a restart.
    let expected = settings(addr, "tuned");
    assert_eq!(
        expected["message.timestamp.type"],
        is("LogAppendTime", ConfigSource::Topic)
    );
    assert_eq!(expected["flush.messages"].1, ConfigSource::Default);
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let mut broker = Broker::start(&data, 2, &flags);
    assert_eq!(settings(broker.addr, "tuned"), expected);
    // A topic setting stays; what follows the broker follows its new
    // configuration.
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let broker = Broker::start(&data, 2, &["--retention-ms", "3600000"]);
    let later = settings(broker.addr, "tuned");
    assert_eq!(later["retention.ms"], is("3600000", ConfigSource::Broker));
    assert_eq!(later["segment.bytes"], is("65536", ConfigSource::Topic));
}

/// Copies a directory tree (a fixture) to `to`.
#[test]
fn a_data_directory_written_by_version_0_1_0_starts_and_serves_everything() {
    // tests/fixtures/README.md says how the fixture was made; its first
    // `events` segment carries the zero padding that version left when it
    // was killed mid-seal.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-v0.1.0");
    common::copy_tree(&fixture, &data);
    let padded = data.join("events/0/00000000000000000000.log");
    assert_eq!(std::fs::metadata(&padded).unwrap().len(), 65536);
    let check = |addr: SocketAddr, extra_events: u64| {
        let events = consume_all(addr, "events", Routing::Direct);
        assert_eq!(events.len() as u64, 400 + extra_events);
        for (i, (p, offset, key, value)) in events.iter().take(400).enumerate() {
            assert_eq!((*p, *offset), (0, i as u64));
            assert_eq!(key, &format!("ev-{i:04}"));
            assert_eq!(value, &format!("event {i:04} {}", "e".repeat(200)));
        }
        let mut orders: Vec<String> = consume_all(addr, "orders", Routing::Direct)
            .into_iter()
            .map(|(_, _, k, v)| format!("{k}:{v}"))
            .collect();
        orders.sort();
        let mut want: Vec<String> = (0..30)
            .map(|i| format!("user-{}:order {i:04}", i % 7))
            .collect();
        want.sort();
        assert_eq!(orders, want);
    };
    let mut broker = Broker::start(&data, 2, &[]);
    check(broker.addr, 0);
    // The topics' settings as that version stored them, with sources.
    let events = settings(broker.addr, "events");
    assert_eq!(events["segment.bytes"], is("65536", ConfigSource::Topic));
    assert_eq!(events["flush.messages"], is("1", ConfigSource::Topic));
    assert_eq!(events["retention.ms"], is("-1", ConfigSource::Default));
    let orders = settings(broker.addr, "orders");
    assert!(
        orders
            .values()
            .all(|(_, source)| *source == ConfigSource::Default),
        "{orders:?}"
    );
    assert_eq!(
        std::fs::metadata(&padded).unwrap().len(),
        63818,
        "the padding an interrupted seal left is trimmed at start"
    );
    // The upgraded directory takes new records and survives a restart.
    let addr = broker.addr;
    run(async move {
        let p = Producer::connect(
            addr,
            ProducerConfig {
                acks: Acks::All,
                ..ProducerConfig::default()
            },
        )
        .await
        .unwrap();
        for i in 400..450 {
            let value = format!("event {i:04} {}", "e".repeat(200));
            p.send(
                "events",
                Some(format!("ev-{i:04}").as_bytes()),
                value.as_bytes(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    });
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let broker = Broker::start(&data, 2, &[]);
    check(broker.addr, 50);
}

#[test]
fn partitions_are_added_to_a_topic_with_its_data_kept_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut broker = Broker::start(&data, 2, &[]);
    create_topic(broker.addr, "grow", 2, TopicSettings::default());
    let before = produce_keyed(broker.addr, "grow", 0, 200, 20, Routing::Direct)
        .join()
        .unwrap();
    let addr = broker.addr;
    run(async move {
        let admin = Admin::connect(addr).await.unwrap();
        assert_eq!(admin.create_partitions("grow", 5).await.unwrap(), 5);
        // Partitions never shrink, and the count must grow.
        for bad in [5, 3, 0] {
            let err = admin.create_partitions("grow", bad).await.unwrap_err();
            assert!(err.to_string().contains("INVALID_PARTITION_COUNT"), "{err}");
        }
        let err = admin.create_partitions("missing", 3).await.unwrap_err();
        assert!(err.to_string().contains("UNKNOWN_TOPIC"), "{err}");
    });
    let after = produce_keyed(broker.addr, "grow", 1, 400, 50, Routing::Direct)
        .join()
        .unwrap();
    assert!(
        after.iter().any(|&(_, _, p, _)| p >= 2),
        "new records reach the new partitions"
    );
    let check = |addr| {
        let records = consume_all(addr, "grow", Routing::Direct);
        assert_eq!(records.len(), 600);
        let stored: HashMap<(u32, u64), String> = records
            .into_iter()
            .map(|(p, o, _, v)| ((p, o), v))
            .collect();
        for (producer, acked) in [(0, &before), (1, &after)] {
            for &(_, seq, p, o) in acked.iter() {
                assert_eq!(stored.get(&(p, o)), Some(&format!("p{producer}-{seq}")));
            }
        }
    };
    check(broker.addr);
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let broker = Broker::start(&data, 2, &[]);
    assert_eq!(end_offsets(broker.addr, "grow").len(), 5);
    check(broker.addr);
}

#[test]
fn a_data_directory_written_by_a4dde11_keeps_its_records_ids_and_settings() {
    // tests/fixtures/README.md says how the fixture was made: compressed
    // batches from kcat and corelog, topic UUIDs, a grown topic.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-a4dde11");
    common::copy_tree(&fixture, &data);
    let metadata = std::fs::read(data.join(".corelog-metadata")).unwrap();
    let before = corelog::meta::Snapshot::decode(&metadata).unwrap();
    let check = |addr: SocketAddr| {
        let events = consume_all(addr, "events", Routing::Direct);
        assert_eq!(events.len(), 400);
        for (i, (p, offset, key, value)) in events.iter().enumerate() {
            assert_eq!((*p, *offset), (0, i as u64));
            assert_eq!(key, &format!("ev-{i:04}"));
            assert_eq!(value, &format!("event {i:04} {}", "e".repeat(200)));
        }
        let mut orders: Vec<String> = consume_all(addr, "orders", Routing::Direct)
            .into_iter()
            .map(|(_, _, k, v)| format!("{k}:{v}"))
            .collect();
        orders.sort();
        let mut want: Vec<String> = (0..60)
            .map(|i| format!("user-{}:order {i:04}", i % 7))
            .collect();
        want.sort();
        assert_eq!(orders, want);
        assert_eq!(end_offsets(addr, "orders").len(), 3);
    };
    let shows_settings = |addr| {
        let events = settings(addr, "events");
        assert_eq!(events["segment.bytes"], is("65536", ConfigSource::Topic));
        assert_eq!(events["flush.messages"], is("1", ConfigSource::Topic));
        let orders = settings(addr, "orders");
        assert_eq!(orders["retention.ms"], is("86400000", ConfigSource::Topic));
        assert_eq!(
            orders["segment.bytes"],
            is("1073741824", ConfigSource::Default)
        );
    };
    let mut broker = Broker::start(&data, 2, &[]);
    check(broker.addr);
    shows_settings(broker.addr);
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let broker = Broker::start(&data, 2, &[]);
    check(broker.addr);
    shows_settings(broker.addr);
    let after =
        corelog::meta::Snapshot::decode(&std::fs::read(data.join(".corelog-metadata")).unwrap())
            .unwrap();
    assert_eq!(
        after.cluster_id, before.cluster_id,
        "the cluster id never changes"
    );
    for (name, topic) in &before.topics {
        let now = &after.topics[name];
        assert_eq!(now.uuid, topic.uuid, "{name} keeps its UUID");
        assert_eq!(now.config.retention_ms, topic.config.retention_ms);
        assert_eq!(now.config.fsync, topic.config.fsync);
        assert_eq!(now.config.segment_bytes, topic.config.segment_bytes);
    }
}

/// Runs `corelog serve` expecting it to refuse to start: its exit code and
/// what it printed.
fn serve_refused(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(common::corelog_bin())
        .arg("serve")
        .args(["--http-listen", "none"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_broker_on_the_same_data_directory_or_port_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut first = Broker::start(&data, 2, &[]);
    // The same directory: refused at once, naming the directory and the
    // holder, and nothing in the directory is touched.
    let other_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = other_port.local_addr().unwrap().to_string();
    drop(other_port);
    let (code, err) = serve_refused(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &free,
        "--kafka-listen",
        "none",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("is in use by another corelog broker")
            && err.contains(&format!("pid {}", first.pid()))
            && err.contains(data.to_str().unwrap()),
        "{err}"
    );
    // Another directory on the first broker's (SO_REUSEPORT) port: refused
    // instead of silently taking a share of its connections.
    let (code, err) = serve_refused(&[
        "--data-dir",
        tmp.path().join("other").to_str().unwrap(),
        "--listen",
        &first.addr.to_string(),
        "--kafka-listen",
        "none",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("already in use by another process"), "{err}");
    // Once the first broker is gone (even by SIGKILL), the directory is free.
    first.kill();
    let again = Broker::start(&data, 2, &[]);
    drop(again);
}

#[test]
fn the_broker_raises_its_open_file_limit_to_the_hard_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // A soft limit below the hard one, as shells commonly set it.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid pointer.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    if limit.rlim_max <= 1024 {
        eprintln!("skipping: the hard limit is only {}", limit.rlim_max);
        return;
    }
    // The broker inherits this process's soft limit: make it lower than
    // the hard one, as login shells commonly set it. (Harmless for the
    // other tests here: they need a few descriptors each.)
    if limit.rlim_cur > 1024 {
        let lower = libc::rlimit {
            rlim_cur: 1024,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit with a valid pointer.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lower) }, 0);
    }
    let broker = Broker::start(&tmp.path().join("data"), 1, &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", broker.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft = hard: {line}");
}

#[test]
fn a_full_request_never_lets_a_partitions_later_batch_overtake_an_earlier_one() {
    // The producer packs ready batches into requests of at most
    // `request_bytes_max`. Here the queue holds [p1: 1.8 KB, p0: 1.8 KB,
    // p0: 0.3 KB]: the second does not fit after the first, and the third
    // would; taking it would append p0's records out of order.
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 1, &[]);
    create_topic(broker.addr, "packed", 2, TopicSettings::default());
    let addr = broker.addr;
    let offsets = run(async move {
        let config = ProducerConfig {
            batch_bytes: 1000,
            request_bytes_max: 2500,
            linger: Duration::from_secs(5),
            ..ProducerConfig::default()
        };
        let p = Producer::connect(addr, config).await.unwrap();
        let (v1800, v300) = (vec![b'v'; 1800], vec![b'v'; 300]);
        let record = |partition: u32, value: &'static [u8]| ProducerRecord {
            topic: "packed",
            partition: Some(partition),
            value: Some(value),
            ..Default::default()
        };
        let v1800: &'static [u8] = v1800.leak();
        let v300: &'static [u8] = v300.leak();
        let first_p1 = p.send_record(record(1, v1800)).await.unwrap();
        let big = p.send_record(record(0, v1800)).await.unwrap();
        let small = p.send_record(record(0, v300)).await.unwrap();
        p.flush().await.unwrap();
        let (first_p1, big, small) = (
            first_p1.await.unwrap(),
            big.await.unwrap(),
            small.await.unwrap(),
        );
        p.close().await.unwrap();
        (first_p1.offset, big.offset, small.offset)
    });
    assert_eq!(offsets.0, Some(0));
    assert_eq!(
        (offsets.1, offsets.2),
        (Some(0), Some(1)),
        "partition 0's records keep the order they were sent in"
    );
}
