//! A cluster of real brokers on loopback whose metadata is one Raft log:
//! changes made on any broker are seen by all, the quorum survives the
//! loss of its leader, a returning broker catches up from a snapshot, and
//! a broker cut off from the majority cannot change anything.
//!
//! Controllers reach each other through a proxy per broker (the
//! `--controllers` addresses are the proxies'), which can cut a broker
//! off. Brokers run with one core each; the tests run one at a time (they
//! take several brokers each).

mod common;

use common::cluster::{Cluster, corelog, python};
use common::{Broker, corelog_bin, wait_until};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests share the machine's two cores; one cluster at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn topics(broker: &Broker) -> Vec<String> {
    let (ok, out) = corelog(&["topic", "list", "--broker", &broker.addr.to_string()]);
    assert!(ok, "{out}");
    let mut names: Vec<String> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// Creates `name` through `broker`, retrying (bounded) while the quorum
/// elects a leader.
fn create(broker: &Broker, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out) = corelog(&[
            "topic",
            "create",
            name,
            "--partitions",
            "2",
            "--broker",
            &broker.addr.to_string(),
        ]);
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline
                && (out.contains("REQUEST_TIMED_OUT") || out.contains("NOT_CONTROLLER")),
            "creating {name}: {out}"
        );
    }
}

fn expect_topics(cluster: &Cluster, on: &[u64], want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    for id in on {
        wait_until(
            Duration::from_secs(10),
            &format!("node {id} to list {want:?}"),
            || topics(cluster.broker(*id)) == want,
        );
    }
}

/// Checks that node `id` opened exactly the partitions of `topic` the
/// cluster placed on it (waiting, bounded, for it to apply the change).
fn holds_its_partitions(cluster: &Cluster, id: u64, topic: &str) {
    let dir = &cluster.dirs[id as usize - 1];
    wait_until(
        Duration::from_secs(10),
        &format!("node {id} to open its partitions of {topic}"),
        || {
            let Ok(bytes) = std::fs::read(dir.join(".corelog-metadata")) else {
                return false;
            };
            let snapshot = corelog::meta::Snapshot::decode(&bytes).unwrap();
            let Some(meta) = snapshot.topic(topic) else {
                return false;
            };
            assert_eq!(
                meta.nodes.len(),
                meta.partitions as usize,
                "{topic} is placed"
            );
            (0..meta.partitions).all(|p| {
                let here = meta.nodes[p as usize] as u64 == id;
                dir.join(topic).join(p.to_string()).exists() == here
            })
        },
    );
}

#[test]
fn metadata_changes_on_any_broker_reach_all_and_survive_the_leader() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    cluster.wait_registered(&[1, 2, 3]);

    // A change through each broker, followers included.
    for id in 1..=3u64 {
        create(cluster.broker(id), &format!("t{id}"));
    }
    expect_topics(&cluster, &[1, 2, 3], &["t1", "t2", "t3"]);
    for id in 1..=3 {
        holds_its_partitions(&cluster, id, "t2");
    }

    // A Kafka client's CreateTopics through a follower.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    if common::kafka_clients_available() {
        let kafka = cluster.broker(follower).kafka.unwrap().to_string();
        let script = format!(
            "from confluent_kafka.admin import AdminClient, NewTopic\n\
             a = AdminClient({{'bootstrap.servers': '{kafka}'}})\n\
             for t, f in a.create_topics([NewTopic('kafka-made', 3, 1)], request_timeout=15).items():\n    f.result()\n"
        );
        python(&script);
        expect_topics(&cluster, &[1, 2, 3], &["t1", "t2", "t3", "kafka-made"]);
    }

    // Kill the leader: the other two elect one and take changes.
    let killed = Instant::now();
    cluster.brokers[leader as usize - 1]
        .as_mut()
        .unwrap()
        .kill();
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    create(cluster.broker(survivors[0]), "after-1");
    eprintln!(
        "first change after killing the leader: {:?}",
        killed.elapsed()
    );
    let new_leader = cluster.leader(&survivors);
    assert_ne!(new_leader, leader);
    // Enough changes that the log the killed broker missed is compacted
    // into a snapshot.
    for i in 2..=6 {
        create(cluster.broker(survivors[i % 2]), &format!("after-{i}"));
    }
    cluster.brokers[leader as usize - 1] = None;
    let mut all = vec![
        "t1", "t2", "t3", "after-1", "after-2", "after-3", "after-4", "after-5", "after-6",
    ];
    if common::kafka_clients_available() {
        all.push("kafka-made");
    }
    expect_topics(&cluster, &survivors, &all);

    // The killed broker returns and catches up from a snapshot.
    let restarted = cluster.launch(leader);
    cluster.brokers[leader as usize - 1] = Some(restarted);
    expect_topics(&cluster, &[leader], &all);
    assert!(
        cluster
            .broker(leader)
            .log()
            .contains("installing the leader's metadata snapshot"),
        "the restarted broker caught up from a snapshot:\n{}",
        cluster.broker(leader).log()
    );
    holds_its_partitions(&cluster, leader, "after-6");
    // It takes part again: a change through it reaches everyone.
    create(cluster.broker(leader), "back");
    all.push("back");
    expect_topics(&cluster, &[1, 2, 3], &all);
    let status = cluster.status(cluster.leader(&[1, 2, 3]));
    assert_eq!(status["voters"].as_array().unwrap().len(), 3);
}

#[test]
fn a_minority_cannot_commit_and_the_cluster_heals_to_one_history() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start(3);
    let leader = cluster.leader(&[1, 2, 3]);
    create(cluster.broker(1), "before");
    expect_topics(&cluster, &[1, 2, 3], &["before"]);

    // Cut the leader off: it is the minority.
    cluster.isolate(leader);
    let majority: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (ok, out) = corelog(&[
        "topic",
        "create",
        "minority",
        "--partitions",
        "1",
        "--broker",
        &cluster.broker(leader).addr.to_string(),
    ]);
    assert!(!ok, "the isolated broker committed a change: {out}");
    assert!(
        out.contains("REQUEST_TIMED_OUT") || out.contains("NOT_CONTROLLER"),
        "{out}"
    );
    // The majority elects a leader of its own and goes on.
    create(cluster.broker(majority[0]), "majority");
    let new_leader = cluster.leader(&majority);
    assert_ne!(new_leader, leader);
    expect_topics(&cluster, &majority, &["before", "majority"]);
    assert_eq!(topics(cluster.broker(leader)), vec!["before".to_string()]);

    // Healed: one history everywhere (the minority's change, computed
    // from metadata the majority has moved past, never takes effect).
    cluster.heal();
    expect_topics(&cluster, &[1, 2, 3], &["before", "majority"]);
    wait_until(
        Duration::from_secs(15),
        "every broker to apply the same metadata, with nobody fenced",
        || {
            let seen: Vec<serde_json::Value> = (1..=3).map(|id| cluster.status(id)).collect();
            let versions: HashSet<u64> = seen
                .iter()
                .map(|s| s["metadata_version"].as_u64().unwrap())
                .collect();
            versions.len() == 1 && seen.iter().all(|s| fenced(s).is_empty())
        },
    );
}

/// (partition, leader, error code) of `topic` as a Kafka client
/// bootstrapped from `kafka` sees it, sorted.
fn partitions_of(topic: &str, kafka: &str) -> Vec<(i64, i64, i64)> {
    let script = format!(
        "import json\nfrom confluent_kafka.admin import AdminClient\n\
         md = AdminClient({{'bootstrap.servers': '{kafka}'}}).list_topics('{topic}', timeout=10)\n\
         print(json.dumps(sorted([p.id, p.leader, p.error.code() if p.error else 0] \
         for p in md.topics['{topic}'].partitions.values())))\n"
    );
    serde_json::from_slice(&python(&script)).unwrap()
}

/// The brokers `status` reports fenced.
fn fenced(status: &serde_json::Value) -> Vec<u64> {
    status["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["fenced"].as_bool().unwrap())
        .map(|b| b["node_id"].as_u64().unwrap())
        .collect()
}

#[test]
fn brokers_register_and_a_silent_broker_is_fenced_until_it_returns() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Registered under the advertised host, at the bound shared port.
    let mut cluster = Cluster::start_with(3, &["--advertise", "localhost"]);
    let leader = cluster.leader(&[1, 2, 3]);
    cluster.wait_registered(&[1, 2, 3]);
    let status = cluster.status(leader);
    for b in status["brokers"].as_array().unwrap() {
        let id = b["node_id"].as_u64().unwrap();
        assert_eq!(
            b["native"],
            format!("localhost:{}", cluster.broker(id).addr.port())
        );
        assert_eq!(
            b["kafka"][0],
            format!("PLAINTEXT://{}", cluster.broker(id).kafka.unwrap())
        );
        assert_eq!(b["shards"], 1);
    }
    let (ok, out) = corelog(&[
        "cluster",
        "status",
        "--http",
        &cluster.broker(leader).http.unwrap().to_string(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" active ")).count(),
        3,
        "{out}"
    );
    assert!(out.contains(" leader "), "{out}");

    // One partition a broker.
    create(cluster.broker(leader), "fence-me");
    let (ok, out) = corelog(&[
        "topic",
        "add-partitions",
        "fence-me",
        "--total",
        "3",
        "--broker",
        &cluster.broker(leader).addr.to_string(),
    ]);
    assert!(ok, "{out}");
    let kafka = cluster.broker(leader).kafka.unwrap().to_string();
    let partitions = || partitions_of("fence-me", &kafka);
    let clients = common::kafka_clients_available();
    if clients {
        let seen = partitions();
        let leaders: HashSet<i64> = seen.iter().map(|p| p.1).collect();
        assert_eq!(leaders.len(), 3, "{seen:?}");
        assert!(seen.iter().all(|p| p.2 == 0), "{seen:?}");
    }

    // A follower stops (SIGSTOP): no heartbeats, fenced (its partition is
    // unavailable); it resumes, unfenced.
    let silent = (1..=3).find(|id| *id != leader).unwrap();
    let stopped = Instant::now();
    cluster.brokers[silent as usize - 1]
        .as_mut()
        .unwrap()
        .signal(libc::SIGSTOP);
    wait_until(
        Duration::from_secs(15),
        "the silent broker to be fenced",
        || fenced(&cluster.status(leader)) == vec![silent],
    );
    eprintln!("fenced after {:?}", stopped.elapsed());
    if clients {
        let seen = partitions();
        let unavailable: Vec<_> = seen.iter().filter(|p| p.2 != 0).collect();
        // LEADER_NOT_AVAILABLE (5), no leader.
        assert_eq!(unavailable.len(), 1, "{seen:?}");
        assert_eq!((unavailable[0].1, unavailable[0].2), (-1, 5), "{seen:?}");
    }
    cluster.brokers[silent as usize - 1]
        .as_mut()
        .unwrap()
        .signal(libc::SIGCONT);
    wait_until(Duration::from_secs(15), "the broker to be unfenced", || {
        fenced(&cluster.status(leader)).is_empty()
    });
    if clients {
        let seen = partitions();
        assert!(seen.iter().all(|p| p.2 == 0 && p.1 > 0), "{seen:?}");
    }
    // The fence went through the log: the returning broker applies the
    // unfencing too.
    wait_until(
        Duration::from_secs(10),
        "the returning broker to see itself unfenced",
        || {
            let s = cluster.status(silent);
            s["brokers"].as_array().unwrap().len() == 3 && fenced(&s).is_empty()
        },
    );
}

#[test]
fn a_data_directory_written_by_23d2df6_serves_as_before_and_is_refused_as_a_cluster_node() {
    // tests/fixtures/README.md says how the fixture was made: a topic with
    // 20 records, a SCRAM user and an ACL, and no brokers table.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-23d2df6");
    common::copy_tree(&fixture, &data);
    let before = std::fs::read(data.join(".corelog-metadata")).unwrap();

    // As a cluster node: refused, with the reason, and nothing written.
    let refused = Command::new(corelog_bin())
        .args(["serve", "--cores", "1", "--listen", "127.0.0.1:0"])
        .args(["--kafka-listen", "none", "--http-listen", "none"])
        .args(["--node-id", "1", "--controllers", "1@127.0.0.1:1"])
        .args(["--controller-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("one-broker"), "{stderr}");
    assert!(!data.join(".corelog-raft").exists());
    assert_eq!(
        std::fs::read(data.join(".corelog-metadata")).unwrap(),
        before
    );

    // As one broker: everything it had.
    let snapshot = corelog::meta::Snapshot::decode(&before).unwrap();
    assert!(snapshot.brokers.is_empty());
    assert_eq!(snapshot.security.user_credentials("alice").count(), 2);
    assert_eq!(snapshot.security.acls.len(), 1);
    let broker = Broker::start(
        &data,
        1,
        &["--authorizer", "acl", "--super-users", "User:ANONYMOUS"],
    );
    assert_eq!(topics(&broker), vec!["events".to_string()]);
    let (ok, out) = corelog(&[
        "consume",
        "events",
        "--from-beginning",
        "--max-messages",
        "20",
        "--format",
        "{key}:{value}\\n",
        "--broker",
        &broker.addr.to_string(),
    ]);
    assert!(ok, "{out}");
    let mut got: Vec<&str> = out.lines().filter(|l| l.starts_with("user-")).collect();
    got.sort();
    let mut want: Vec<String> = (0..20)
        .map(|i| format!("user-{}:event {i:02}", i % 3))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let after =
        corelog::meta::Snapshot::decode(&std::fs::read(data.join(".corelog-metadata")).unwrap())
            .unwrap();
    assert_eq!(after.security, snapshot.security);
}

#[test]
fn kafka_clients_produce_and_consume_across_brokers_each_partition_on_its_broker() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kafka_clients_available() {
        return;
    }
    let cluster = Cluster::start(3);
    cluster.leader(&[1, 2, 3]);
    cluster.wait_registered(&[1, 2, 3]);
    let (ok, out) = corelog(&[
        "topic",
        "create",
        "spread",
        "--partitions",
        "6",
        "--broker",
        &cluster.broker(1).addr.to_string(),
    ]);
    assert!(ok, "{out}");
    // Placed two partitions a broker; each broker opened only its own.
    for (i, dir) in cluster.dirs.iter().enumerate() {
        let here = (0..6)
            .filter(|p| dir.join("spread").join(p.to_string()).exists())
            .count();
        assert_eq!(here, 2, "node {} holds {here} partitions of spread", i + 1);
    }

    // confluent-kafka bootstrapped from broker 1 only: it sees every
    // broker, sends each partition's records to its broker; a group
    // consumer bootstrapped from broker 3 reads them all back (its
    // coordinator may be any broker).
    let b1 = cluster.broker(1).kafka.unwrap().to_string();
    let b3 = cluster.broker(3).kafka.unwrap().to_string();
    let result = produce_then_read_as_group(&b1, &b3);
    assert_eq!(result["leaders"], serde_json::json!([1, 2, 3]), "{result}");
    assert_eq!(result["brokers"], serde_json::json!([1, 2, 3]), "{result}");
    assert_eq!(result["acked"], 300);
    let mut want: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
    want.sort();
    let got: Vec<String> = serde_json::from_value(result["got"].clone()).unwrap();
    assert_eq!(got, want, "every acknowledged record once");

    // kcat bootstrapped from broker 2 reads every partition too.
    let b2 = cluster.broker(2).kafka.unwrap().to_string();
    let kcat = Command::new("kcat")
        .args([
            "-C",
            "-b",
            &b2,
            "-t",
            "spread",
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(
        kcat.status.success(),
        "{}",
        String::from_utf8_lossy(&kcat.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&kcat.stdout).lines().count(), 300);

    // The native client asked the wrong broker is told where to go.
    let snapshot = corelog::meta::Snapshot::decode(
        &std::fs::read(cluster.dirs[0].join(".corelog-metadata")).unwrap(),
    )
    .unwrap();
    let nodes = snapshot.topic("spread").unwrap().nodes.clone();
    let elsewhere = nodes.iter().position(|n| *n != 1).unwrap();
    let (ok, text) = native_produce(cluster.broker(1), elsewhere);
    assert!(!ok && text.contains("NOT_LEADER_OR_FOLLOWER"), "{text}");
    let (ok, text) = native_produce(cluster.broker(nodes[elsewhere] as u64), elsewhere);
    assert!(ok, "{text}");
}

/// confluent-kafka produces 300 records to `spread` (partition i % 6)
/// bootstrapped from `producer_bootstrap` only, then a group consumer
/// bootstrapped from `consumer_bootstrap` reads them back; the leaders
/// and brokers the producer's metadata showed, the acknowledged count and
/// the values read, sorted.
fn produce_then_read_as_group(
    producer_bootstrap: &str,
    consumer_bootstrap: &str,
) -> serde_json::Value {
    let (b1, b3) = (producer_bootstrap, consumer_bootstrap);
    let script = format!(
        r#"
import json, time
from confluent_kafka import Producer, Consumer
md = Producer({{'bootstrap.servers': '{b1}'}}).list_topics('spread', timeout=15)
leaders = sorted({{p.leader for p in md.topics['spread'].partitions.values()}})
brokers = sorted(md.brokers)
p = Producer({{'bootstrap.servers': '{b1}', 'acks': 'all', 'linger.ms': 5}})
acked = []
for i in range(300):
    p.produce('spread', key=f'k{{i}}', value=f'v{{i}}', partition=i % 6,
              on_delivery=lambda e, m: acked.append(m.value().decode()) if e is None else None)
p.flush(30)
c = Consumer({{'bootstrap.servers': '{b3}', 'group.id': 'spread-readers',
              'auto.offset.reset': 'earliest', 'enable.auto.commit': False}})
c.subscribe(['spread'])
got = []
deadline = time.time() + 60
while len(got) < 300 and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    got.append(m.value().decode())
c.commit(asynchronous=False)
c.close()
print(json.dumps({{'leaders': leaders, 'brokers': brokers, 'acked': len(acked), 'got': sorted(got)}}))
"#
    );
    let stdout = python(&script);
    let stdout = String::from_utf8_lossy(&stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// One record to `spread`'s `partition` through `broker` with the corelog
/// CLI (native protocol): whether it succeeded, and what it printed.
fn native_produce(broker: &Broker, partition: usize) -> (bool, String) {
    let mut child = Command::new(corelog_bin())
        .args(["produce", "spread", "--partition", &partition.to_string()])
        .args(["--acks", "all", "--broker", &broker.addr.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"native\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
