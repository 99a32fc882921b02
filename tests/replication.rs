//! Replicated partitions on a cluster of real brokers (one core each):
//! leaders and in-sync followers, failover when a leader is killed,
//! controlled shutdown, and no acknowledged record lost or duplicated.
//!
//! The Kafka side is confluent-kafka (librdkafka): an idempotent `acks=all`
//! producer at a fixed moderate rate while brokers die and return, then a
//! consumer that reads the topic back. Kill counts are small in CI;
//! `CORELOG_REPLICATION_KILLS` raises them.

mod common;

use common::cluster::{Cluster, corelog};
use common::{script, wait_until};
use corelog::meta::Snapshot;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests share the machine's two cores; one cluster at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The metadata as broker `id` last saved it.
fn metadata(cluster: &Cluster, id: u64) -> Option<Snapshot> {
    let bytes = std::fs::read(cluster.dirs[id as usize - 1].join(".corelog-metadata")).ok()?;
    Snapshot::decode(&bytes).ok()
}

/// (leader, epoch, isr) of `topic`'s partition `p` as broker `id` has it.
fn partition(cluster: &Cluster, id: u64, topic: &str, p: u32) -> Option<(u32, u32, Vec<u32>)> {
    let snapshot = metadata(cluster, id)?;
    let meta = snapshot.topic(topic)?;
    let r = meta.partition_replicas(p)?;
    Some((meta.node_of(p)?, r.epoch, r.isr))
}

fn create_replicated(cluster: &Cluster, topic: &str, partitions: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out) = corelog(&[
            "topic",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
            "--replication-factor",
            "3",
            "--min-insync-replicas",
            "2",
            "--broker",
            &cluster.broker(1).addr.to_string(),
        ]);
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline
                && (out.contains("REQUEST_TIMED_OUT")
                    || out.contains("NOT_CONTROLLER")
                    || out.contains("INVALID_REPLICATION_FACTOR")),
            "creating {topic}: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every running broker of `on` sees all three replicas of
/// every partition of `topic` in sync.
fn wait_all_in_sync(cluster: &Cluster, on: &[u64], topic: &str, partitions: u32, within: Duration) {
    wait_until(within, &format!("every replica of {topic} in sync"), || {
        on.iter().all(|id| {
            (0..partitions).all(|p| {
                partition(cluster, *id, topic, p).is_some_and(|(_, _, isr)| isr.len() == 3)
            })
        })
    });
}

struct Producer {
    child: Child,
    acked: std::path::PathBuf,
    errors: std::path::PathBuf,
    stop: std::path::PathBuf,
}

impl Producer {
    fn start(dir: &Path, bootstrap: &str, topic: &str, rate: u32) -> Producer {
        Producer::start_with("replicated_producer.py", dir, bootstrap, topic, rate)
    }

    /// `script` (in tests/kafka) as the producer.
    fn start_with(
        script_name: &str,
        dir: &Path,
        bootstrap: &str,
        topic: &str,
        rate: u32,
    ) -> Producer {
        let acked = dir.join("acked.txt");
        let errors = dir.join("errors.txt");
        let stop = dir.join("stop");
        let child = Command::new("python3")
            .arg(script(script_name))
            .args([bootstrap, topic])
            .arg(&acked)
            .arg(&errors)
            .arg(&stop)
            .arg(rate.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Producer {
            child,
            acked,
            errors,
            stop,
        }
    }

    fn acked_count(&self) -> usize {
        std::fs::read_to_string(&self.acked)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Waits (bounded) for `more` acknowledgements past the current count.
    fn wait_progress(&self, more: usize, within: Duration) {
        let target = self.acked_count() + more;
        wait_until(within, &format!("{more} more acknowledged records"), || {
            self.acked_count() >= target
        });
    }

    /// Stops producing, flushes; (acknowledged values, errors reported).
    fn finish(mut self) -> (Vec<String>, Vec<String>) {
        std::fs::write(&self.stop, b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                assert!(status.success(), "producer failed: {err}");
                break;
            }
            assert!(Instant::now() < deadline, "producer did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        let read = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        (read(&self.acked), read(&self.errors))
    }
}

/// Every value of `topic` (all partitions), read with confluent-kafka
/// from the start to the high watermark.
fn read_all(bootstrap: &str, topic: &str) -> Vec<String> {
    let script = format!(
        r#"
import sys, time
from confluent_kafka import Consumer, TopicPartition
c = Consumer({{'bootstrap.servers': '{bootstrap}', 'group.id': 'replication-check',
              'enable.auto.commit': False, 'auto.offset.reset': 'earliest'}})
md = c.list_topics('{topic}', timeout=30)
parts = sorted(md.topics['{topic}'].partitions)
ends = {{}}
for p in parts:
    lo, hi = c.get_watermark_offsets(TopicPartition('{topic}', p), timeout=30)
    ends[p] = hi
c.assign([TopicPartition('{topic}', p, 0) for p in parts])
seen = {{p: 0 for p in parts}}
deadline = time.time() + 90
while any(seen[p] < ends[p] for p in parts) and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    seen[m.partition()] = m.offset() + 1
    print(m.value().decode())
c.close()
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Checks that every acknowledged value was read exactly once and nothing
/// was read that was not produced.
fn check_no_loss_no_duplicates(acked: &[String], read: &[String]) {
    let mut seen = HashSet::new();
    let duplicates: Vec<&String> = read.iter().filter(|v| !seen.insert(*v)).collect();
    assert!(
        duplicates.is_empty(),
        "{} values read twice, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(5)]
    );
    let lost: Vec<&String> = acked.iter().filter(|v| !seen.contains(*v)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged values lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

/// Every running broker's Kafka listener (restarted brokers listen on
/// new ports).
fn bootstrap(cluster: &Cluster) -> String {
    cluster
        .brokers
        .iter()
        .flatten()
        .map(|b| b.kafka.unwrap().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Three brokers (with native-port proxies if `proxied`) with `topic` of
/// `partitions` partitions, three replicas each (min.insync.replicas 2),
/// all in sync.
fn replicated_cluster(topic: &str, partitions: u32, proxied: bool) -> Cluster {
    let cluster = if proxied {
        Cluster::start_proxied(3)
    } else {
        Cluster::start(3)
    };
    cluster.leader(&[1, 2, 3]);
    cluster.wait_registered(&[1, 2, 3]);
    create_replicated(&cluster, topic, partitions);
    wait_all_in_sync(
        &cluster,
        &[1, 2, 3],
        topic,
        partitions,
        Duration::from_secs(20),
    );
    cluster
}

fn kills() -> usize {
    std::env::var("CORELOG_REPLICATION_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[test]
fn killing_leaders_loses_no_acknowledged_record() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kafka_clients_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut cluster = replicated_cluster("events", 2, false);
    // Every broker of the cluster as bootstrap: any may be down.
    let producer = Producer::start(work.path(), &bootstrap(&cluster), "events", 200);
    producer.wait_progress(200, Duration::from_secs(30));
    for round in 0..kills() {
        let (leader, epoch, _) = newest(&cluster, "events", 0);
        let victim = leader as u64;
        cluster.brokers[victim as usize - 1]
            .as_mut()
            .unwrap()
            .kill();
        let others: Vec<u64> = (1..=3).filter(|id| *id != victim).collect();
        // A new leader from the ISR within 10 s, with a new epoch.
        let killed_at = Instant::now();
        wait_until(
            Duration::from_secs(10),
            &format!("round {round}: a new leader for events/0 after killing {victim}"),
            || {
                others.iter().all(|id| {
                    partition(&cluster, *id, "events", 0)
                        .is_some_and(|(l, e, _)| l as u64 != victim && e > epoch)
                })
            },
        );
        eprintln!(
            "round {round}: killed leader {victim}; new leader after {} ms",
            killed_at.elapsed().as_millis()
        );
        // Writes go on with two in-sync replicas (min.insync.replicas 2).
        producer.wait_progress(100, Duration::from_secs(30));
        let back = cluster.launch(victim);
        cluster.brokers[victim as usize - 1] = Some(back);
        // It catches up and rejoins the ISR.
        wait_all_in_sync(&cluster, &others, "events", 2, Duration::from_secs(30));
    }
    producer.wait_progress(100, Duration::from_secs(30));
    let (acked, errors) = producer.finish();
    assert!(errors.is_empty(), "the producer was told: {errors:?}");
    assert!(acked.len() >= 200, "{} acknowledged", acked.len());
    let read = read_all(&bootstrap(&cluster), "events");
    check_no_loss_no_duplicates(&acked, &read);

    // The replicas are byte-identical: every broker's copy of each
    // partition is a prefix of the longest (the same batches, offsets and
    // epochs), stopped first so every file is whole.
    for id in 1..=3u64 {
        cluster.brokers[id as usize - 1]
            .as_mut()
            .unwrap()
            .terminate(Duration::from_secs(30));
    }
    for p in 0..2 {
        let copies: Vec<Vec<u8>> = cluster
            .dirs
            .iter()
            .map(|d| log_bytes(&d.join("events").join(p.to_string())))
            .collect();
        let shortest = copies.iter().map(Vec::len).min().unwrap();
        assert!(shortest > 0, "partition {p} is empty somewhere");
        for (i, c) in copies.iter().enumerate() {
            assert!(
                c[..shortest] == copies[0][..shortest],
                "partition {p}: broker {}'s copy differs from broker 1's within the first {shortest} bytes",
                i + 1
            );
        }
    }
}

/// The newest metadata any broker saved: `partition`'s (leader, epoch, isr).
fn newest(cluster: &Cluster, topic: &str, p: u32) -> (u32, u32, Vec<u32>) {
    let best = (1..=cluster.dirs.len() as u64)
        .filter_map(|id| metadata(cluster, id))
        .max_by_key(|s| s.version)
        .expect("some broker saved metadata");
    let meta = best.topic(topic).expect("the topic");
    let r = meta.partition_replicas(p).expect("replicated");
    (meta.node_of(p).unwrap(), r.epoch, r.isr)
}

/// A partition directory's segment files, in offset order, concatenated,
/// without the zero padding a file may end with.
fn log_bytes(dir: &Path) -> Vec<u8> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let mut bytes = std::fs::read(&f).unwrap();
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        out.extend(bytes);
    }
    out
}

#[test]
fn a_stopped_follower_leaves_the_isr_and_rejoins() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kafka_clients_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut cluster = replicated_cluster("steady", 1, false);
    let (leader, _, _) = partition(&cluster, 1, "steady", 0).unwrap();
    let follower = (1..=3u64).find(|id| *id as u32 != leader).unwrap();
    let bootstrap = cluster.broker(leader as u64).kafka.unwrap().to_string();
    let producer = Producer::start(work.path(), &bootstrap, "steady", 200);
    producer.wait_progress(100, Duration::from_secs(30));
    cluster.brokers[follower as usize - 1]
        .as_mut()
        .unwrap()
        .signal(libc::SIGSTOP);
    // Out of the ISR after the lag limit (or fenced by the controller,
    // whichever comes first), and writes keep being acknowledged.
    wait_until(
        Duration::from_secs(25),
        "the stopped follower out of the ISR",
        || {
            partition(&cluster, leader as u64, "steady", 0)
                .is_some_and(|(_, _, isr)| !isr.contains(&(follower as u32)))
        },
    );
    producer.wait_progress(200, Duration::from_secs(30));
    cluster.brokers[follower as usize - 1]
        .as_mut()
        .unwrap()
        .signal(libc::SIGCONT);
    wait_all_in_sync(
        &cluster,
        &[leader as u64],
        "steady",
        1,
        Duration::from_secs(30),
    );
    let (acked, errors) = producer.finish();
    assert!(errors.is_empty(), "the producer was told: {errors:?}");
    let read = read_all(&bootstrap, "steady");
    check_no_loss_no_duplicates(&acked, &read);
}

#[test]
fn a_rolling_restart_with_sigterm_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kafka_clients_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut cluster = replicated_cluster("rolling", 2, false);
    let producer = Producer::start(work.path(), &bootstrap(&cluster), "rolling", 200);
    producer.wait_progress(100, Duration::from_secs(30));
    for id in 1..=3u64 {
        let others: Vec<u64> = (1..=3).filter(|o| *o != id).collect();
        let code = cluster.brokers[id as usize - 1]
            .as_mut()
            .unwrap()
            .terminate(Duration::from_secs(30));
        assert_eq!(code, 0, "broker {id} stopped cleanly");
        // Controlled shutdown: it handed its partitions over before it
        // left (the others see that as soon as they apply the change).
        wait_until(
            Duration::from_secs(15),
            &format!("no partition led by the stopped broker {id}"),
            || {
                (0..2).all(|p| {
                    partition(&cluster, others[0], "rolling", p)
                        .is_some_and(|(leader, _, _)| leader as u64 != id)
                })
            },
        );
        producer.wait_progress(50, Duration::from_secs(30));
        let back = cluster.launch(id);
        cluster.brokers[id as usize - 1] = Some(back);
        wait_all_in_sync(&cluster, &others, "rolling", 2, Duration::from_secs(30));
    }
    let (acked, errors) = producer.finish();
    assert!(errors.is_empty(), "the producer was told: {errors:?}");
    let read = read_all(&bootstrap(&cluster), "rolling");
    check_no_loss_no_duplicates(&acked, &read);
}

#[test]
fn an_isolated_leader_cannot_acknowledge_and_truncates_by_epoch_when_healed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kafka_clients_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut cluster = replicated_cluster("split", 1, true);
    let (old_leader, epoch, _) = newest(&cluster, "split", 0);
    let isolated = old_leader as u64;
    let others: Vec<u64> = (1..=3).filter(|id| *id != isolated).collect();
    let producer = Producer::start(work.path(), &bootstrap(&cluster), "split", 200);
    producer.wait_progress(200, Duration::from_secs(30));

    // Cut the leader off from both followers (and the controllers); its
    // clients still reach it.
    cluster.isolate_fully(isolated);
    let direct = cluster.broker(isolated).kafka.unwrap().to_string();
    let script = format!(
        r#"
from confluent_kafka import Producer
p = Producer({{'bootstrap.servers': '{direct}', 'acks': 'all', 'message.timeout.ms': 4000,
              'topic.metadata.refresh.interval.ms': 600000}})
out = []
p.produce('split', value='isolated', partition=0,
          on_delivery=lambda e, m: out.append('acked' if e is None else e.name()))
p.flush(20)
print(out[0] if out else 'undelivered')
"#
    );
    let outcome = String::from_utf8_lossy(&common::cluster::python(&script)).to_string();
    assert!(
        !outcome.contains("acked"),
        "the isolated leader acknowledged an acks=all write: {outcome}"
    );
    // The majority elects a new leader with a newer epoch.
    wait_until(
        Duration::from_secs(20),
        "a new leader elected by the majority",
        || {
            others.iter().all(|id| {
                partition(&cluster, *id, "split", 0)
                    .is_some_and(|(l, e, _)| l as u64 != isolated && e > epoch)
            })
        },
    );

    cluster.heal_fully();
    // The old leader follows again: it cut the tail the others never had
    // (at least the record written directly to it) where its epoch ends on
    // the new leader, caught up and rejoined the ISR.
    wait_all_in_sync(&cluster, &others, "split", 1, Duration::from_secs(40));
    let log = cluster.broker(isolated).log();
    assert!(
        log.contains("diverges from the leader's"),
        "the old leader did not truncate by epoch:\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
    producer.wait_progress(200, Duration::from_secs(40));
    let (acked, errors) = producer.finish();
    assert!(errors.is_empty(), "the producer was told: {errors:?}");
    let read = read_all(&bootstrap(&cluster), "split");
    check_no_loss_no_duplicates(&acked, &read);
    assert!(
        !read.iter().any(|v| !v.starts_with('v')),
        "the record only the isolated leader took was read"
    );
    for id in 1..=3u64 {
        cluster.brokers[id as usize - 1]
            .as_mut()
            .unwrap()
            .terminate(Duration::from_secs(30));
    }
    let copies: Vec<Vec<u8>> = cluster
        .dirs
        .iter()
        .map(|d| log_bytes(&d.join("split").join("0")))
        .collect();
    let shortest = copies.iter().map(Vec::len).min().unwrap();
    for (i, c) in copies.iter().enumerate() {
        assert!(
            c[..shortest] == copies[0][..shortest],
            "broker {}'s copy differs from broker 1's within the first {shortest} bytes",
            i + 1
        );
    }
}

#[test]
fn kafka_python_produces_and_consumes_through_a_failover() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kafka_clients_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut cluster = replicated_cluster("py", 1, false);
    let producer = Producer::start_with(
        "kafka_python_producer.py",
        work.path(),
        &bootstrap(&cluster),
        "py",
        100,
    );
    producer.wait_progress(100, Duration::from_secs(30));
    let (leader, epoch, _) = newest(&cluster, "py", 0);
    cluster.brokers[leader as usize - 1]
        .as_mut()
        .unwrap()
        .kill();
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader as u64).collect();
    wait_until(Duration::from_secs(10), "a new leader", || {
        others.iter().all(|id| {
            partition(&cluster, *id, "py", 0).is_some_and(|(l, e, _)| l != leader && e > epoch)
        })
    });
    producer.wait_progress(100, Duration::from_secs(40));
    let (acked, errors) = producer.finish();
    assert!(errors.is_empty(), "kafka-python was told: {errors:?}");
    // kafka-python reads it back from the new leader.
    let servers = others
        .iter()
        .map(|id| format!("'{}'", cluster.broker(*id).kafka.unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    let script = format!(
        r#"
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=[{servers}], enable_auto_commit=False,
                  auto_offset_reset='earliest', consumer_timeout_ms=5000)
tp = TopicPartition('py', 0)
c.assign([tp])
end = c.end_offsets([tp])[tp]
c.seek_to_beginning(tp)
for m in c:
    print(m.value.decode())
    if m.offset + 1 >= end:
        break
c.close()
"#
    );
    let out = common::cluster::python(&script);
    let read: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect();
    check_no_loss_no_duplicates(&acked, &read);
}

#[test]
fn a_cluster_written_by_612ed40_upgrades_and_takes_replicated_topics() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kafka_clients_available() {
        return;
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster-612ed40");
    let cluster = Cluster::start_on(3, &fixture);
    cluster.leader(&[1, 2, 3]);
    cluster.wait_registered(&[1, 2, 3]);
    // The old topic (one replica per partition, no epochs) serves every
    // record it had, through any broker.
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..60).map(|i| format!("rec-{i:02}")).collect();
        v.sort();
        v
    };
    let mut old = read_all(&bootstrap(&cluster), "spread");
    old.sort();
    assert_eq!(old, expected);
    let snapshot = metadata(&cluster, 1).unwrap();
    let spread = snapshot.topic("spread").unwrap();
    assert!(
        spread.replicas.is_empty(),
        "the old topic keeps one replica"
    );
    assert!(
        snapshot.brokers.values().all(|b| b.incarnation != 0),
        "every broker registered again with an incarnation"
    );
    // A replicated topic next to it works as on a new cluster.
    create_replicated(&cluster, "fresh", 1);
    wait_all_in_sync(&cluster, &[1, 2, 3], "fresh", 1, Duration::from_secs(20));
    let script = format!(
        r#"
from confluent_kafka import Producer
p = Producer({{'bootstrap.servers': '{}', 'acks': 'all', 'enable.idempotence': True}})
for i in range(50):
    p.produce('fresh', value=f'v{{i}}')
assert p.flush(30) == 0
"#,
        bootstrap(&cluster)
    );
    common::cluster::python(&script);
    let read = read_all(&bootstrap(&cluster), "fresh");
    let acked: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    check_no_loss_no_duplicates(&acked, &read);
    assert_eq!(read.len(), 50);
}
