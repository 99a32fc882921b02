//! corelog's Kafka listener driven by real Kafka clients: kcat (librdkafka
//! 2.0), confluent-kafka (librdkafka 2.16) and kafka-python 3.0.12, against
//! a real `corelog serve` on 127.0.0.1 with ports the OS picks. `.ci/run`
//! installs the clients; without them these tests fail and say how to
//! install them (CORELOG_SKIP_KAFKA_CLIENTS=1 skips them).
//!
//! The last tests cover the shard-aware Kafka mode (`--kafka-shard-brokers`):
//! one broker per shard in metadata, and zero cross-core hops for clients
//! that follow it (the same workload in normal mode makes hops, so the zero
//! is not vacuous).

mod common;

use common::{Broker, corelog_bin, kafka_clients_available, script, start_with_kafka, wait_until};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn ok(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `corelog` against the broker's native port.
fn corelog(broker: &Broker, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(corelog_bin())
        .args(args)
        .args(["--broker", &broker.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    ok(
        child.wait_with_output().unwrap(),
        &format!("corelog {args:?}"),
    )
}

/// kcat with a 60 s ceiling on every run.
fn kcat(kafka: SocketAddr, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut child = Command::new("timeout")
        .args(["60", "kcat", "-b", &kafka.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    drop(child.stdin.take());
    ok(child.wait_with_output().unwrap(), &format!("kcat {args:?}"))
}

fn python(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["300", "python3"])
        .args(args)
        .output()
        .unwrap();
    ok(out, &format!("python3 {args:?}"))
}

fn data_dir(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    tmp.path().join("data")
}

#[test]
fn kcat_lists_the_broker_and_round_trips_keyed_lines_byte_for_byte() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&data_dir(&tmp), 2, &[]);
    let kafka = broker.kafka.unwrap();
    corelog(
        &broker,
        &["topic", "create", "lines", "--partitions", "3"],
        None,
    );

    let listing = kcat(kafka, &["-L"], None);
    assert!(listing.contains("1 brokers:"), "{listing}");
    assert!(
        listing.contains(&format!("broker 0 at 127.0.0.1:{}", kafka.port())),
        "{listing}"
    );
    assert!(
        listing.contains("topic \"lines\" with 3 partitions"),
        "{listing}"
    );

    // Keys and values with spaces, UTF-8 and punctuation; kcat splits
    // "key:value" lines.
    let lines: Vec<String> = (0..300)
        .map(|i| format!("user-{}:value {i} ünïcødé, {}", i % 7, "x".repeat(i % 40)))
        .collect();
    let input = lines.join("\n") + "\n";
    kcat(
        kafka,
        &["-P", "-t", "lines", "-K:", "-X", "acks=all"],
        Some(input.as_bytes()),
    );
    let out = kcat(
        kafka,
        &[
            "-C",
            "-t",
            "lines",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k:%s\n",
        ],
        None,
    );
    let mut got: Vec<&str> = out.lines().collect();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    // One key, one partition, in order.
    let per_key = kcat(
        kafka,
        &[
            "-C",
            "-t",
            "lines",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k %p %o %s\n",
        ],
        None,
    );
    let mut partition_of = HashMap::new();
    for line in per_key.lines() {
        let mut f = line.splitn(4, ' ');
        let (key, partition) = (f.next().unwrap(), f.next().unwrap());
        assert_eq!(
            *partition_of
                .entry(key.to_string())
                .or_insert(partition.to_string()),
            partition,
            "key {key} in two partitions"
        );
    }
}

#[test]
fn records_cross_between_kafka_clients_and_corelog_clients_unchanged() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&data_dir(&tmp), 2, &[]);
    let kafka = broker.kafka.unwrap();
    corelog(
        &broker,
        &["topic", "create", "cross", "--partitions", "1"],
        None,
    );
    // Kafka in, corelog out.
    let from_kafka: Vec<String> = (0..100).map(|i| format!("k{i}:kafka-{i} ✓")).collect();
    kcat(
        kafka,
        &["-P", "-t", "cross", "-K:", "-p", "0"],
        Some((from_kafka.join("\n") + "\n").as_bytes()),
    );
    // corelog in, Kafka out.
    let from_corelog: Vec<String> = (0..100).map(|i| format!("c{i}:corelog-{i} ✓")).collect();
    corelog(
        &broker,
        &[
            "produce",
            "cross",
            "--key-separator",
            ":",
            "--partition",
            "0",
            "--acks",
            "all",
        ],
        Some(&(from_corelog.join("\n") + "\n")),
    );
    let all: Vec<String> = from_kafka.iter().chain(&from_corelog).cloned().collect();
    let via_corelog = corelog(
        &broker,
        &[
            "consume",
            "cross",
            "--from-beginning",
            "--max-messages",
            "200",
            "--format",
            "{key}:{value}",
        ],
        None,
    );
    assert_eq!(via_corelog.lines().collect::<Vec<_>>(), all);
    let via_kafka = kcat(
        kafka,
        &[
            "-C",
            "-t",
            "cross",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k:%s\n",
        ],
        None,
    );
    assert_eq!(via_kafka.lines().collect::<Vec<_>>(), all);
}

#[test]
fn confluent_kafka_round_trips_100k_records_with_headers_in_every_codec() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&data_dir(&tmp), 2, &[]);
    let bootstrap = broker.kafka.unwrap().to_string();
    // 100,000 uncompressed; each codec with a smaller count.
    for (codec, count) in [
        ("none", "100000"),
        ("gzip", "20000"),
        ("snappy", "20000"),
        ("lz4", "20000"),
        ("zstd", "20000"),
    ] {
        let topic = format!("cf-{codec}");
        corelog(
            &broker,
            &["topic", "create", &topic, "--partitions", "4"],
            None,
        );
        let out = python(&[
            &script("confluent_roundtrip.py"),
            &bootstrap,
            &topic,
            codec,
            count,
        ]);
        assert!(out.contains(&format!("\"acknowledged\": {count}")), "{out}");
        // corelog's own consumer reads the same records (compressed ones
        // decompressed for printing).
        let printed = corelog(
            &broker,
            &[
                "consume",
                &topic,
                "--from-beginning",
                "--max-messages",
                count,
                "--format",
                "{value}",
            ],
            None,
        );
        // Values carry arbitrary bytes (newlines too): count the prefixes.
        assert_eq!(
            printed.matches(&format!("{codec}-value-")).count(),
            count.parse::<usize>().unwrap(),
            "{codec}"
        );
        assert!(printed.contains(&format!("{codec}-value-7-")), "{codec}");
    }
}

#[test]
fn kafka_python_administers_topics_and_seeks_by_offset_and_time() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&data_dir(&tmp), 2, &[]);
    let out = python(&[
        &script("kafka_python_roundtrip.py"),
        &broker.kafka.unwrap().to_string(),
    ]);
    assert!(out.contains("\"sent\": 400"), "{out}");
    assert!(
        !corelog(&broker, &["topic", "list"], None).contains("kp-roundtrip"),
        "the deleted topic is gone from the native protocol too"
    );
}

#[test]
fn sigkill_during_an_acks_all_confluent_kafka_run_loses_no_acknowledged_record() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let mut broker = start_with_kafka(&data, 2, &[]);
    let kafka = broker.kafka.unwrap();
    corelog(
        &broker,
        &[
            "topic",
            "create",
            "durable",
            "--partitions",
            "4",
            "--fsync",
            "always",
        ],
        None,
    );
    let mut producer = Command::new("python3")
        .args([
            &script("confluent_produce_until_killed.py"),
            &kafka.to_string(),
            "durable",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let acked: Arc<Mutex<Vec<(u32, u64, String)>>> = Arc::default();
    let reader = {
        let (stdout, acked) = (producer.stdout.take().unwrap(), acked.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let f: Vec<&str> = line.split(' ').collect();
                acked.lock().unwrap().push((
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].to_string(),
                ));
            }
        })
    };
    wait_until(Duration::from_secs(60), "5000 acknowledged records", || {
        acked.lock().unwrap().len() >= 5000
    });
    broker.kill();
    // Acks the client printed before it noticed the broker was gone.
    std::thread::sleep(Duration::from_millis(200));
    let _ = producer.kill();
    let _ = producer.wait();
    reader.join().unwrap();
    let broker = Broker::start(&data, 2, &["--kafka-listen", "127.0.0.1:0"]);
    let out = kcat(
        broker.kafka.unwrap(),
        &[
            "-C",
            "-t",
            "durable",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p %o %s\n",
        ],
        None,
    );
    let stored: HashMap<(u32, u64), String> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                (f[0].parse().unwrap(), f[1].parse().unwrap()),
                f[2].to_string(),
            )
        })
        .collect();
    let acked = acked.lock().unwrap();
    for (p, o, v) in acked.iter() {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(v),
            "acknowledged record {p}/{o} lost after SIGKILL"
        );
    }
    eprintln!(
        "{} acknowledged records, all present after SIGKILL",
        acked.len()
    );
    let _ = Path::new("");
}

#[test]
fn topics_are_created_on_first_use_only_when_the_broker_allows_it() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Off by default: naming a topic does not create it.
    let broker = start_with_kafka(&data_dir(&tmp), 1, &[]);
    let listing = kcat(broker.kafka.unwrap(), &["-L", "-t", "fresh"], None);
    assert!(
        listing.contains("Broker: Unknown topic or partition"),
        "{listing}"
    );
    assert!(!corelog(&broker, &["topic", "list"], None).contains("fresh"));
    drop(broker);
    // With --auto-create-topics the first producer creates it with the
    // broker's defaults, and acks=0 records (which get no answer) land.
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&data_dir(&tmp), 2, &["--auto-create-topics"]);
    let kafka = broker.kafka.unwrap();
    let lines: String = (0..50).map(|i| format!("fire-and-forget {i}\n")).collect();
    kcat(
        kafka,
        &["-P", "-t", "fresh", "-X", "acks=0"],
        Some(lines.as_bytes()),
    );
    assert!(corelog(&broker, &["topic", "list"], None).contains("fresh"));
    let out = kcat(
        kafka,
        &["-C", "-t", "fresh", "-o", "beginning", "-e", "-f", "%s\n"],
        None,
    );
    assert_eq!(out.lines().count(), 50, "{out}");
}

#[test]
fn corelog_produce_compresses_batches_that_kafka_clients_read() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&data_dir(&tmp), 2, &[]);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("z-{codec}");
        corelog(
            &broker,
            &["topic", "create", &topic, "--partitions", "1"],
            None,
        );
        let lines: Vec<String> = (0..500)
            .map(|i| format!("{codec} record {i} {}", "abc".repeat(20)))
            .collect();
        corelog(
            &broker,
            &["produce", &topic, "--compression", codec, "--acks", "all"],
            Some(&(lines.join("\n") + "\n")),
        );
        let out = kcat(
            broker.kafka.unwrap(),
            &["-C", "-t", &topic, "-o", "beginning", "-e", "-f", "%s\n"],
            None,
        );
        assert_eq!(out.lines().collect::<Vec<_>>(), lines, "{codec}");
        // Stored compressed: the partition is much smaller than the text.
        let describe = corelog(&broker, &["topic", "describe", &topic], None);
        let bytes: u64 = describe
            .lines()
            .find(|l| l.trim_start().starts_with("0 "))
            .and_then(|l| l.split_whitespace().nth(5))
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no partition line in {describe}"));
        let text: u64 = lines.iter().map(|l| l.len() as u64).sum();
        assert!(
            bytes * 3 < text,
            "{codec}: {bytes} bytes stored for {text} bytes of text"
        );
    }
}

/// The node id of shard `shard` of broker 0 in the shard-aware Kafka mode:
/// `2^20 + node_id * 1024 + shard` (written out here, not taken from the
/// crate, so the test checks the documented formula).
fn shard_broker_id(shard: u32) -> u32 {
    (1 << 20) + shard
}

/// Each partition's owning shard, from `corelog topic describe`.
fn owners(broker: &Broker, topic: &str) -> Vec<u32> {
    let describe = corelog(broker, &["topic", "describe", topic], None);
    let mut owners: Vec<(u32, u32)> = describe
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    owners.sort_unstable();
    owners.into_iter().map(|(_, shard)| shard).collect()
}

/// Cross-core hops per shard, from `corelog stats`.
fn hops(broker: &Broker) -> Vec<u64> {
    let stats = corelog(broker, &["stats"], None);
    stats
        .lines()
        .skip(1)
        // The shard rows; the process CPU line follows them.
        .filter(|l| !l.starts_with("process CPU"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f[4].parse()
                .unwrap_or_else(|_| panic!("no hop count in {l:?}:\n{stats}"))
        })
        .collect()
}

#[test]
fn kcat_lists_one_broker_per_shard_at_its_own_port_leading_the_partitions_it_owns() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Two ports the OS picks, freed again for the broker to bind as the
    // shards' own Kafka ports (given in reverse, so the order is checked).
    let picked: Vec<u16> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let given = format!("{},{}", picked[1], picked[0]);
    // The advertised host is honoured; in this mode the advertised port
    // (the shared Kafka port's) is not listed, only the shards' ports.
    let broker = start_with_kafka(
        &data_dir(&tmp),
        2,
        &[
            "--kafka-shard-brokers",
            "--kafka-shard-ports",
            &given,
            "--kafka-advertise",
            "localhost:1",
        ],
    );
    let kafka = broker.kafka.unwrap();
    let ports = broker.kafka_shard_ports.clone();
    assert_eq!(
        ports,
        vec![picked[1], picked[0]],
        "one Kafka port per shard"
    );
    assert!(!ports.contains(&kafka.port()));
    assert!(ports.iter().all(|p| !broker.shard_ports.contains(p)));
    corelog(
        &broker,
        &["topic", "create", "spread", "--partitions", "6"],
        None,
    );
    let owners = owners(&broker, "spread");
    assert_eq!(owners.len(), 6);

    let listing = kcat(kafka, &["-L"], None);
    assert!(listing.contains(" 2 brokers:"), "{listing}");
    for (shard, port) in ports.iter().enumerate() {
        let id = shard_broker_id(shard as u32);
        let controller = if shard == 0 { " (controller)" } else { "" };
        let line = format!("broker {id} at localhost:{port}{controller}\n");
        assert!(listing.contains(&line), "no {line:?} in\n{listing}");
    }
    for (partition, shard) in owners.iter().enumerate() {
        let id = shard_broker_id(*shard);
        let line = format!("partition {partition}, leader {id}, replicas: {id}, isrs: {id}\n");
        assert!(listing.contains(&line), "no {line:?} in\n{listing}");
    }
    // Any of the broker's Kafka ports answers metadata the same way.
    let via_shard_1 = kcat(SocketAddr::new(kafka.ip(), ports[1]), &["-L"], None);
    assert!(via_shard_1.contains(" 2 brokers:"), "{via_shard_1}");
}

/// Produces and consumes through kcat and confluent-kafka (every record
/// checked) on 4-partition topics; returns the hops per shard afterwards.
fn kafka_workload(broker: &Broker) -> Vec<u64> {
    let kafka = broker.kafka.unwrap();
    for topic in ["kc", "cf"] {
        corelog(
            broker,
            &["topic", "create", topic, "--partitions", "4"],
            None,
        );
        let owners = owners(broker, topic);
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
    }
    let lines: Vec<String> = (0..2000)
        .map(|i| format!("key-{}:value {i}", i % 61))
        .collect();
    kcat(
        kafka,
        &["-P", "-t", "kc", "-K:", "-X", "acks=all"],
        Some((lines.join("\n") + "\n").as_bytes()),
    );
    let out = kcat(
        kafka,
        &["-C", "-t", "kc", "-o", "beginning", "-e", "-f", "%k:%s\n"],
        None,
    );
    let (mut got, mut want): (Vec<&str>, Vec<&str>) = (
        out.lines().collect(),
        lines.iter().map(String::as_str).collect(),
    );
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "kcat round trip");
    let out = python(&[
        &script("confluent_roundtrip.py"),
        &kafka.to_string(),
        "cf",
        "none",
        "20000",
    ]);
    assert!(out.contains("\"acknowledged\": 20000"), "{out}");
    assert!(out.contains("\"read\": 20000"), "{out}");
    hops(broker)
}

#[test]
fn kafka_clients_make_zero_cross_core_hops_with_shard_brokers_and_hops_without() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let shard_aware = start_with_kafka(&data_dir(&tmp), 2, &["--kafka-shard-brokers"]);
    let hops_shard_aware = kafka_workload(&shard_aware);
    drop(shard_aware);
    let tmp = tempfile::tempdir().unwrap();
    let normal = start_with_kafka(&data_dir(&tmp), 2, &[]);
    assert!(
        normal.kafka_shard_ports.is_empty(),
        "no kafka_shard_ports field in normal mode"
    );
    let hops_normal = kafka_workload(&normal);
    assert_eq!(
        hops_shard_aware,
        vec![0, 0],
        "shard-aware mode: hops per shard (normal mode: {hops_normal:?})"
    );
    assert!(
        hops_normal.iter().sum::<u64>() > 0,
        "normal mode routes the same workload across cores: {hops_normal:?}"
    );
}

#[test]
fn a_partition_asked_at_another_shards_kafka_port_is_routed_to_its_owner() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&data_dir(&tmp), 2, &["--kafka-shard-brokers"]);
    let kafka = broker.kafka.unwrap();
    corelog(
        &broker,
        &["topic", "create", "stale", "--partitions", "4"],
        None,
    );
    let lines: String = (0..400).map(|i| format!("record {i}\n")).collect();
    kcat(
        kafka,
        &["-P", "-t", "stale", "-X", "acks=all"],
        Some(lines.as_bytes()),
    );
    assert_eq!(hops(&broker), vec![0, 0], "kcat followed the leaders");
    // Every partition asked at shard 0's own Kafka port, as a client with
    // stale metadata would: shard 1's partitions cross to shard 1.
    let shard_0 = SocketAddr::new(kafka.ip(), broker.kafka_shard_ports[0]).to_string();
    let out = python(&[&script("list_offsets_at.py"), &shard_0, "stale", "4"]);
    let answers: HashMap<String, (i16, i64)> = serde_json::from_str(&out).unwrap();
    let ends: i64 = answers
        .values()
        .map(|&(error, offset)| {
            assert_eq!(error, 0, "{out}");
            offset
        })
        .sum();
    assert_eq!(ends, 400, "latest offsets of all partitions: {out}");
    assert!(hops(&broker)[0] > 0, "shard 1's partitions were routed");
}

/// The value and source `topic describe` prints for `setting`.
fn setting_of(describe: &str, setting: &str) -> (String, String) {
    let line = describe
        .lines()
        .find(|l| l.split_whitespace().next() == Some(setting))
        .unwrap_or_else(|| panic!("{setting} missing from\n{describe}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[1].to_string(), f[2].to_string())
}

#[test]
fn kafka_admin_clients_read_and_change_topic_settings_and_log_append_time_stamps() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let flags = ["--segment-bytes", "8388608"];
    let mut broker = start_with_kafka(&data, 2, &flags);
    let kafka = broker.kafka.unwrap();
    let out = python(&[
        &script("kafka_python_configs.py"),
        &kafka.to_string(),
        "kp-configs",
    ]);
    assert!(out.contains("\"stamped\": 20"), "{out}");
    let out = python(&[
        &script("confluent_configs.py"),
        &kafka.to_string(),
        "cf-configs",
    ]);
    assert!(out.contains("\"consumed\": 10"), "{out}");

    // kcat reads the broker's time, not the producer's (2001) timestamps.
    let stamps = kcat(
        kafka,
        &[
            "-C",
            "-t",
            "cf-configs",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%T\n",
        ],
        None,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let stamps: Vec<i64> = stamps.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(stamps.len(), 10);
    for ts in stamps {
        assert!(
            (now - 600_000..=now).contains(&ts),
            "timestamp {ts} is not the broker's recent time ({now})"
        );
    }

    // The native protocol sees what the Kafka clients set, with sources;
    // and so does the next start of the broker.
    let check = |broker: &Broker| {
        let d = corelog(broker, &["topic", "describe", "kp-configs"], None);
        assert_eq!(
            setting_of(&d, "retention.ms"),
            ("7200000".into(), "topic".into())
        );
        assert_eq!(
            setting_of(&d, "message.timestamp.type"),
            ("LogAppendTime".into(), "topic".into())
        );
        assert_eq!(setting_of(&d, "flush.ms"), ("1000".into(), "topic".into()));
        assert_eq!(
            setting_of(&d, "min.insync.replicas"),
            ("2".into(), "topic".into())
        );
        assert_eq!(
            setting_of(&d, "segment.bytes"),
            ("8388608".into(), "broker".into())
        );
        assert_eq!(
            setting_of(&d, "segment.ms"),
            ("604800000".into(), "default".into())
        );
        let d = corelog(broker, &["topic", "describe", "cf-configs"], None);
        assert_eq!(
            setting_of(&d, "flush.messages"),
            ("1".into(), "topic".into())
        );
        assert!(d.contains("fsync always"), "{d}");
    };
    check(&broker);
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let broker = start_with_kafka(&data, 2, &flags);
    check(&broker);
}

/// The `key*` records of `offset key value` lines: (offset, key, value).
fn keyed_records(out: &str) -> Vec<(u64, String, String)> {
    out.lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, ' ');
            let offset = f.next()?.parse().ok()?;
            let (key, value) = (f.next()?, f.next().unwrap_or(""));
            key.starts_with("key")
                .then(|| (offset, key.to_string(), value.to_string()))
        })
        .collect()
}

#[test]
fn kafka_clients_read_exactly_the_latest_value_per_key_of_a_compacted_topic() {
    if !kafka_clients_available() {
        return;
    }
    const KEYS: usize = 50;
    const ROUNDS: usize = 10;
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_with_kafka(&data_dir(&tmp), 1, &["--log-cleaner-interval-ms", "200"]);
    let kafka = broker.kafka.unwrap();
    corelog(
        &broker,
        &["topic", "create", "compacted", "--partitions", "1"],
        None,
    );
    corelog(
        &broker,
        &[
            "topic",
            "alter",
            "compacted",
            "--set",
            "cleanup.policy=compact,segment.bytes=65536",
        ],
        None,
    );
    // Ten values for each of 50 keys (about 8 segments of 64 KiB), in one
    // producer's order: record `round * KEYS + k` gets that offset.
    let pad = "x".repeat(900);
    let value = |round: usize, k: usize| format!("r{round}-k{k}-{pad}");
    let mut input = String::new();
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            input.push_str(&format!("key{k}:{}\n", value(round, k)));
        }
    }
    kcat(
        kafka,
        &[
            "-P",
            "-t",
            "compacted",
            "-K:",
            "-X",
            "acks=all",
            // A batch must fit in a 64 KiB segment.
            "-X",
            "batch.size=16384",
            // In order even if a request is retried (offsets are checked),
            // and the compacted batches are an idempotent producer's.
            "-X",
            "enable.idempotence=true",
        ],
        Some(input.as_bytes()),
    );
    // Then 150 KiB of records under keys of their own, so every `key*`
    // record is in a sealed segment (the active one is never compacted).
    let filler: String = (0..150).map(|i| format!("pad{i}:{pad}\n")).collect();
    kcat(
        kafka,
        &[
            "-P",
            "-t",
            "compacted",
            "-K:",
            "-X",
            "acks=all",
            // A batch must fit in a 64 KiB segment.
            "-X",
            "batch.size=16384",
            // In order even if a request is retried (offsets are checked),
            // and the compacted batches are an idempotent producer's.
            "-X",
            "enable.idempotence=true",
        ],
        Some(filler.as_bytes()),
    );
    let read_with_kcat = || {
        kcat(
            kafka,
            &[
                "-C",
                "-t",
                "compacted",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%o %k %s\n",
            ],
            None,
        )
    };
    // The cleaner runs every 200 ms; wait for it to have compacted.
    let mut out = String::new();
    wait_until(Duration::from_secs(60), "the topic to be compacted", || {
        out = read_with_kcat();
        keyed_records(&out).len() == KEYS
    });
    let check = |records: Vec<(u64, String, String)>, client: &str| {
        let brief: Vec<String> = records
            .iter()
            .map(|(o, k, v)| format!("{o}:{k}={}", &v[..v.len().min(8)]))
            .collect();
        assert_eq!(
            records.len(),
            KEYS,
            "{client}: one record per key: {brief:?}"
        );
        for (offset, key, got) in records {
            let k: usize = key["key".len()..].parse().unwrap();
            assert!(
                got == value(ROUNDS - 1, k),
                "{client}: latest value of {key}: {brief:?}"
            );
            assert_eq!(
                offset,
                ((ROUNDS - 1) * KEYS + k) as u64,
                "{client}: {key} keeps its offset"
            );
        }
    };
    check(keyed_records(&out), "kcat");
    // Every pad record is still there, at its own offset.
    let pads: Vec<u64> = out
        .lines()
        .filter(|l| l.split(' ').nth(1).is_some_and(|k| k.starts_with("pad")))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let first_pad = (ROUNDS * KEYS) as u64;
    assert_eq!(pads, (first_pad..first_pad + 150).collect::<Vec<_>>());
    let via_confluent = python(&[
        &script("confluent_read_partition.py"),
        &kafka.to_string(),
        "compacted",
    ]);
    check(keyed_records(&via_confluent), "confluent-kafka");
    // A consumer starting inside a compacted gap reads on from the next
    // record.
    let from_gap = kcat(
        kafka,
        &[
            "-C",
            "-t",
            "compacted",
            "-o",
            "5",
            "-c",
            "1",
            "-f",
            "%o %k\n",
        ],
        None,
    );
    assert_eq!(from_gap.trim(), format!("{} key0", (ROUNDS - 1) * KEYS));
}
