//! Consumer groups against a real broker: confluent-kafka, kafka-python and
//! kcat as members of one group (splitting partitions, rebalancing when a
//! member joins or dies, committing as they go), committed offsets across a
//! broker SIGKILL, static membership, and the protocol's error cases sent
//! as raw requests. Skipped with CORELOG_SKIP_KAFKA_CLIENTS=1.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Broker, corelog_bin, kafka_clients_available, script, wait_until};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn corelog(broker: &Broker, args: &[&str]) -> String {
    let out = Command::new(corelog_bin())
        .args(args)
        .args(["--broker", &broker.addr.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "corelog {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `corelog group …` against the broker's Kafka listener.
fn group_cmd(broker: &Broker, args: &[&str]) -> std::process::Output {
    Command::new(corelog_bin())
        .arg("group")
        .args(args)
        .args(["--kafka-broker", &broker.kafka.unwrap().to_string()])
        .output()
        .unwrap()
}

fn group_ok(broker: &Broker, args: &[&str]) -> String {
    let out = group_cmd(broker, args);
    assert!(out.status.success(), "corelog group {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Produces records "<prefix>-<i>" for i in 0..n, spread over partitions by
/// key.
fn produce(kafka: SocketAddr, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let values: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let input: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("k{i}:{v}\n"))
        .collect();
    let mut child = Command::new("timeout")
        .args([
            "60",
            "kcat",
            "-b",
            &kafka.to_string(),
            "-P",
            "-t",
            topic,
            "-K:",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    values
}

/// A group member process and what it reported.
struct Member {
    name: String,
    child: Child,
    assigned: Arc<Mutex<Option<Vec<u32>>>>,
    rebalances: Arc<Mutex<u32>>,
    seen: Arc<Mutex<HashSet<String>>>,
    /// Every partition the member gave up ("revoked" lines).
    revoked: Arc<Mutex<Vec<u32>>>,
}

impl Member {
    fn python(
        lib: &str,
        kafka: SocketAddr,
        topic: &str,
        group: &str,
        instance: Option<&str>,
    ) -> Member {
        // Started directly (not under `timeout`), so a kill reaches the
        // client itself; Drop kills it at the end of the test.
        let mut cmd = Command::new("python3");
        cmd.args([&script("group_member.py"), lib])
            .args([&kafka.to_string(), topic, group])
            .args(instance);
        Member::spawn(lib, cmd, false)
    }

    fn kcat(kafka: SocketAddr, topic: &str, group: &str) -> Member {
        let mut cmd = Command::new("kcat");
        cmd.args(["-b", &kafka.to_string(), "-G", group, topic])
            .args(["-f", "rec %s\n", "-u"])
            .args(["-X", "auto.offset.reset=earliest"])
            .args([
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
            ])
            .args(["-X", "auto.commit.interval.ms=200"])
            .args(["-X", "topic.metadata.refresh.interval.ms=2000"]);
        Member::spawn("kcat", cmd, true)
    }

    fn corelog(kafka: SocketAddr, topic: &str, group: &str) -> Member {
        let mut cmd = Command::new(corelog_bin());
        cmd.args(["consume", topic, "--group", group, "--from-beginning"])
            .args([
                "--format",
                "rec {value}",
                "--kafka-broker",
                &kafka.to_string(),
            ]);
        Member::spawn("corelog", cmd, false)
    }

    fn spawn(name: &str, mut cmd: Command, kcat: bool) -> Member {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let assigned: Arc<Mutex<Option<Vec<u32>>>> = Arc::default();
        let rebalances: Arc<Mutex<u32>> = Arc::default();
        let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
        let revoked: Arc<Mutex<Vec<u32>>> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        {
            let (assigned, rebalances, seen) = (assigned.clone(), rebalances.clone(), seen.clone());
            let revoked = revoked.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(v) = line.strip_prefix("rec ") {
                        seen.lock().unwrap().insert(v.to_string());
                    } else if let Some(list) = line.strip_prefix("revoked ") {
                        revoked.lock().unwrap().extend(parse_list(list));
                    } else if let Some(list) = line.strip_prefix("assigned ") {
                        *assigned.lock().unwrap() = Some(parse_list(list));
                        *rebalances.lock().unwrap() += 1;
                    } else if line == "assigned" {
                        *assigned.lock().unwrap() = Some(Vec::new());
                        *rebalances.lock().unwrap() += 1;
                    }
                }
            });
        }
        {
            let assigned = assigned.clone();
            let rebalances = rebalances.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // corelog: "% group G generation N: member M assigned T[0, 1]"
                    if line.starts_with("% group ") && line.contains(" assigned ") {
                        let list = line
                            .rsplit_once('[')
                            .map_or("", |(_, l)| l.trim_end_matches(']'));
                        *assigned.lock().unwrap() = Some(parse_list(list));
                        *rebalances.lock().unwrap() += 1;
                        continue;
                    }
                    if !kcat {
                        continue;
                    }
                    // "% Group g rebalanced (memberid …): assigned: t [0], t [3]"
                    if let Some((_, list)) = line.split_once("): assigned: ") {
                        let parts = list
                            .split(", ")
                            .filter_map(|p| p.split_once('[')?.1.strip_suffix(']')?.parse().ok())
                            .collect();
                        *assigned.lock().unwrap() = Some(parts);
                        *rebalances.lock().unwrap() += 1;
                    } else if line.contains("): revoked: ") {
                        *assigned.lock().unwrap() = None;
                    }
                }
            });
        }
        Member {
            name: name.to_string(),
            child,
            assigned,
            rebalances,
            seen,
            revoked,
        }
    }

    fn assignment(&self) -> Option<Vec<u32>> {
        self.assigned.lock().unwrap().clone()
    }

    /// SIGTERM: a clean stop (commit, LeaveGroup).
    fn terminate(&mut self) {
        // SAFETY: kill(2) on a child we spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn parse_list(list: &str) -> Vec<u32> {
    list.split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Waits until the members' assignments are disjoint and cover 0..n.
fn wait_for_split(members: &[&Member], n: u32, what: &str) {
    wait_until(Duration::from_secs(90), what, || {
        let mut all = Vec::new();
        for m in members {
            match m.assignment() {
                Some(a) if !a.is_empty() => all.extend(a),
                _ => return false,
            }
        }
        let set: BTreeSet<u32> = all.iter().copied().collect();
        set.len() == all.len() && set == (0..n).collect()
    });
    let report: Vec<String> = members
        .iter()
        .map(|m| format!("{}: {:?}", m.name, m.assignment()))
        .collect();
    eprintln!("{what}: {}", report.join("; "));
}

fn wait_for_records(members: &[&Member], values: &[String], what: &str) {
    let missing = || {
        let seen: HashSet<String> = members
            .iter()
            .flat_map(|m| m.seen.lock().unwrap().clone())
            .collect();
        values
            .iter()
            .filter(|v| !seen.contains(*v))
            .cloned()
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !missing().is_empty() {
        if std::time::Instant::now() > deadline {
            let m = missing();
            panic!(
                "{what}: {} of {} records never read, e.g. {:?}",
                m.len(),
                values.len(),
                &m[..m.len().min(5)]
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn members_of_three_clients_split_rebalance_and_take_over_a_dead_members_partitions() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &["--kafka-listen", "127.0.0.1:0"],
    );
    let kafka = broker.kafka.unwrap();
    corelog(&broker, &["topic", "create", "orders", "--partitions", "8"]);
    let mut all = produce(kafka, "orders", "a", 400);

    // Two members split the 8 partitions with no overlap and read it all.
    let mut first = Member::python("confluent", kafka, "orders", "billing", None);
    let second = Member::python("kafka-python", kafka, "orders", "billing", None);
    wait_for_split(&[&first, &second], 8, "two members split 8 partitions");
    wait_for_records(&[&first, &second], &all, "the first 400 records read");

    // A third (kcat) joins: the group rebalances over three.
    let third = Member::kcat(kafka, "orders", "billing");
    wait_for_split(&[&first, &second, &third], 8, "three members after a join");
    all.extend(produce(kafka, "orders", "b", 400));
    wait_for_records(&[&first, &second, &third], &all, "records after the join");

    // The first is killed: after its session times out, the others take
    // its partitions and, from its committed offsets, read what it missed.
    first.kill();
    all.extend(produce(kafka, "orders", "c", 400));
    wait_for_split(&[&second, &third], 8, "two members after a SIGKILL");
    wait_for_records(
        &[&first, &second, &third],
        &all,
        "nothing skipped after the SIGKILL",
    );

    let out = group_ok(&broker, &["describe", "billing"]);
    assert!(
        out.contains("state Stable") && out.contains("2 member(s)"),
        "{out}"
    );
    // Every partition is owned, committed, and caught up (lag 0).
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("orders ")).collect();
    assert_eq!(rows.len(), 8, "{out}");
    wait_until(Duration::from_secs(30), "lag 0 on every partition", || {
        let out = group_ok(&broker, &["describe", "billing"]);
        out.lines()
            .filter(|l| l.starts_with("orders "))
            .all(|l| l.split_whitespace().nth(4) == Some("0"))
    });
    // A group with members cannot be deleted or reset.
    assert!(!group_cmd(&broker, &["delete", "billing"]).status.success());
    assert!(
        !group_cmd(
            &broker,
            &[
                "reset-offsets",
                "billing",
                "--topic",
                "orders",
                "--to-earliest"
            ]
        )
        .status
        .success()
    );
}

/// A broker with short consumer-protocol heartbeats and sessions, and a
/// topic `orders` of 8 partitions.
fn consumer_protocol_broker() -> (tempfile::TempDir, Broker) {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &[
            "--kafka-listen",
            "127.0.0.1:0",
            "--group-consumer-heartbeat-interval-ms",
            "200",
            "--group-consumer-session-timeout-ms",
            "3000",
        ],
    );
    corelog(&broker, &["topic", "create", "orders", "--partitions", "8"]);
    (tmp, broker)
}

#[test]
fn consumer_protocol_members_hand_over_only_the_partitions_that_move() {
    if !kafka_clients_available() {
        return;
    }
    let (_tmp, broker) = consumer_protocol_broker();
    let kafka = broker.kafka.unwrap();
    let mut all = produce(kafka, "orders", "a", 400);

    let mut first = Member::python("confluent-consumer", kafka, "orders", "kip848", None);
    let second = Member::python("confluent-consumer", kafka, "orders", "kip848", None);
    wait_for_split(
        &[&first, &second],
        8,
        "two KIP-848 members split 8 partitions",
    );
    wait_for_records(&[&first, &second], &all, "the first 400 records read");

    // A third joins: the others give up only what moves to it, and keep
    // consuming the rest throughout (never revoked, never re-assigned).
    let before = [first.assignment().unwrap(), second.assignment().unwrap()];
    first.revoked.lock().unwrap().clear();
    second.revoked.lock().unwrap().clear();
    let third = Member::python("confluent-consumer", kafka, "orders", "kip848", None);
    wait_for_split(&[&first, &second, &third], 8, "three members after a join");
    for (m, before) in [&first, &second].into_iter().zip(&before) {
        let after: BTreeSet<u32> = m.assignment().unwrap().into_iter().collect();
        let revoked: BTreeSet<u32> = m.revoked.lock().unwrap().iter().copied().collect();
        let before: BTreeSet<u32> = before.iter().copied().collect();
        assert!(
            after.is_subset(&before),
            "{}: kept {after:?} of {before:?}",
            m.name
        );
        assert_eq!(
            revoked,
            before.difference(&after).copied().collect(),
            "{}: only the partitions that moved were revoked",
            m.name
        );
    }
    all.extend(produce(kafka, "orders", "b", 400));
    wait_for_records(&[&first, &second, &third], &all, "records after the join");

    // SIGKILL: after the broker-side session timeout its partitions move,
    // and the others resume from its committed offsets.
    first.kill();
    all.extend(produce(kafka, "orders", "c", 400));
    wait_for_split(&[&second, &third], 8, "two members after a SIGKILL");
    wait_for_records(
        &[&first, &second, &third],
        &all,
        "nothing skipped after the SIGKILL",
    );

    let out = group_ok(&broker, &["describe", "kip848"]);
    assert!(
        out.contains("protocol consumer (KIP-848), assignor uniform")
            && out.contains("2 member(s)"),
        "{out}"
    );
    wait_until(Duration::from_secs(30), "lag 0 on every partition", || {
        let out = group_ok(&broker, &["describe", "kip848"]);
        let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("orders ")).collect();
        rows.len() == 8
            && rows
                .iter()
                .all(|l| l.split_whitespace().nth(4) == Some("0"))
    });
    // A classic member is refused with a clear error, not mixed in.
    let mut raw = Raw::connect(kafka);
    let r = raw.join("kip848", "", "consumer");
    assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
}

#[test]
fn a_native_member_and_a_kafka_member_share_one_consumer_group() {
    if !kafka_clients_available() {
        return;
    }
    use corelog::client::{ConsumerConfig, GroupConfig, GroupConsumer, OffsetReset};
    let (_tmp, broker) = consumer_protocol_broker();
    let kafka = broker.kafka.unwrap();
    let all = produce(kafka, "orders", "m", 400);
    let python = Member::python("confluent-consumer", kafka, "orders", "mixed", None);
    let native = broker.addr;
    let (python_seen, python_assigned) = (python.seen.clone(), python.assigned.clone());
    common::run(async move {
        let config = ConsumerConfig {
            max_wait: std::time::Duration::from_millis(20),
            reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut member =
            GroupConsumer::subscribe(native, config, GroupConfig::new("mixed", &["orders"]))
                .await
                .unwrap();
        let mut seen: HashSet<String> = HashSet::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            for r in member.poll().await.unwrap() {
                seen.insert(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into());
            }
            let mine: BTreeSet<u32> = member.assignment().into_iter().map(|(_, p)| p).collect();
            let theirs: BTreeSet<u32> = python_assigned
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            let everything = seen
                .iter()
                .chain(python_seen.lock().unwrap().iter())
                .cloned()
                .collect::<HashSet<String>>();
            if !mine.is_empty()
                && !theirs.is_empty()
                && mine.is_disjoint(&theirs)
                && mine.len() + theirs.len() == 8
                && all.iter().all(|v| everything.contains(v))
            {
                eprintln!("native {mine:?}, confluent-kafka {theirs:?}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no split: native {mine:?}, kafka {theirs:?}"
            );
        }
        member.close().await.unwrap();
    });
    let out = group_ok(&broker, &["describe", "mixed"]);
    assert!(out.contains("protocol consumer (KIP-848)"), "{out}");
}

/// A raw Kafka connection for the protocol's error cases.
struct Raw {
    stream: TcpStream,
    correlation: i32,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Raw {
            stream,
            correlation: 0,
        }
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("groups-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut answer = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut answer).unwrap();
        let mut bytes = Bytes::from(answer);
        let header =
            ResponseHeader::decode(&mut bytes, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        Resp::decode(&mut bytes, version).unwrap()
    }

    fn join(&mut self, group: &str, member: &str, protocol_type: &str) -> JoinGroupResponse {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_protocol_type(StrBytes::from_string(protocol_type.into()))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 255, 255, 255, 255])),
            ]);
        self.call(ApiKey::JoinGroup, 5, &request)
    }

    fn commit(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        topic: &str,
        offset: i64,
    ) -> i16 {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.into())))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ]);
        let response: OffsetCommitResponse = self.call(ApiKey::OffsetCommit, 7, &request);
        response.topics[0].partitions[0].error_code
    }

    fn fetch(&mut self, group: &str, topic: &str) -> (i64, i16) {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.into())))
                    .with_partition_indexes(vec![0]),
            ]));
        let response: OffsetFetchResponse = self.call(ApiKey::OffsetFetch, 5, &request);
        let p = &response.topics[0].partitions[0];
        (p.committed_offset, p.error_code)
    }

    fn sync(&mut self, group: &str, generation: i32, member: &str) -> SyncGroupResponse {
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member.into()));
        self.call(ApiKey::SyncGroup, 3, &request)
    }
}

#[test]
fn generations_fence_stale_members_and_offsets_survive_a_broker_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut broker = Broker::start(&data, 2, &["--kafka-listen", "127.0.0.1:0"]);
    corelog(&broker, &["topic", "create", "t", "--partitions", "2"]);
    let mut raw = Raw::connect(broker.kafka.unwrap());

    // v4+: a new member is first told its id.
    let first = raw.join("g", "", "consumer");
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = first.member_id.to_string();
    assert!(member.starts_with("groups-test-"), "{member}");
    let joined = raw.join("g", &member, "consumer");
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.to_string(), member, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    let generation = joined.generation_id;
    // The leader gives itself nothing: it still gets a parsable assignment.
    let synced = raw.sync("g", generation, &member);
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment.len(), 10, "an encoded empty assignment");

    assert_eq!(raw.commit("g", generation, &member, "t", 42), 0);
    assert_eq!(raw.fetch("g", "t"), (42, 0));
    // A stale generation, a stranger and a commit outside the group.
    assert_eq!(
        raw.commit("g", generation - 1, &member, "t", 7),
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        raw.commit("g", generation, "intruder", "t", 7),
        25,
        "UNKNOWN_MEMBER_ID"
    );
    assert_eq!(raw.commit("g", -1, "", "t", 7), 25, "the group has members");
    assert_eq!(raw.commit("g", generation, &member, "no-such-topic", 7), 3);
    assert_eq!(raw.fetch("g", "t"), (42, 0), "nothing refused was stored");
    // A member of another protocol type cannot join.
    assert_eq!(
        raw.join("g", "", "connect").error_code,
        23,
        "INCONSISTENT_GROUP_PROTOCOL"
    );
    // Group ids are bounded.
    assert_eq!(
        raw.join(&"x".repeat(300), "", "consumer").error_code,
        24,
        "INVALID_GROUP_ID"
    );
    // Users cannot write the offsets topic.
    let out = Command::new("kcat")
        .args([
            "-b",
            &broker.kafka.unwrap().to_string(),
            "-P",
            "-t",
            "__consumer_offsets",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"x\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        !out.status.success() || String::from_utf8_lossy(&out.stderr).contains("rror"),
        "a write to __consumer_offsets must fail: {out:?}"
    );

    // A simple (assign()) commit to another group, then SIGKILL.
    assert_eq!(raw.commit("standalone", -1, "", "t", 1234), 0);
    drop(raw);
    broker.kill();
    let broker = Broker::start(&data, 2, &["--kafka-listen", "127.0.0.1:0"]);
    let mut raw = Raw::connect(broker.kafka.unwrap());
    assert_eq!(
        raw.fetch("g", "t"),
        (42, 0),
        "committed offsets survive SIGKILL"
    );
    assert_eq!(raw.fetch("standalone", "t"), (1234, 0));
    // The member is gone with the coordinator's memory; its generation
    // survived, so a stale commit is still refused.
    assert_eq!(raw.commit("g", generation, &member, "t", 7), 25);
    let out = group_ok(&broker, &["list"]);
    assert!(out.contains("standalone") && out.contains("\ng "), "{out}");
    // Offsets of an empty group are reset: a plan, then executed.
    let plan = group_ok(
        &broker,
        &[
            "reset-offsets",
            "standalone",
            "--topic",
            "t",
            "--shift-by",
            "-5",
        ],
    );
    assert!(plan.contains("plan only"), "{plan}");
    assert_eq!(
        raw.fetch("standalone", "t"),
        (1234, 0),
        "a plan changes nothing"
    );
    // The log is empty: every target is clamped into [0, 0].
    group_ok(
        &broker,
        &[
            "reset-offsets",
            "standalone",
            "--topic",
            "t",
            "--to-latest",
            "--execute",
        ],
    );
    assert_eq!(raw.fetch("standalone", "t"), (0, 0));
    group_ok(&broker, &["delete", "standalone"]);
    assert!(!group_ok(&broker, &["list"]).contains("standalone"));
}

#[test]
fn ten_thousand_groups_from_one_client_stay_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &["--kafka-listen", "127.0.0.1:0"],
    );
    corelog(&broker, &["topic", "create", "t", "--partitions", "1"]);
    let mut raw = Raw::connect(broker.kafka.unwrap());
    let before = broker.peak_rss_kib();
    let started = std::time::Instant::now();
    for i in 0..10_000 {
        assert_eq!(raw.commit(&format!("group-{i}"), -1, "", "t", i), 0);
    }
    let elapsed = started.elapsed();
    let after = broker.peak_rss_kib();
    eprintln!(
        "10,000 groups with one commit each: {:.1} s ({:.0} commits/s over one connection, fsync always), peak RSS {} -> {} MiB",
        elapsed.as_secs_f64(),
        10_000.0 / elapsed.as_secs_f64(),
        before / 1024,
        after / 1024
    );
    assert!(
        after - before < 256 * 1024,
        "10,000 groups took {} KiB",
        after - before
    );
    assert_eq!(raw.fetch("group-9999", "t"), (9999, 0));
}

#[test]
fn a_static_member_restarting_within_its_session_causes_no_rebalance() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &["--kafka-listen", "127.0.0.1:0"],
    );
    let kafka = broker.kafka.unwrap();
    corelog(&broker, &["topic", "create", "s", "--partitions", "4"]);
    let mut fixed = Member::python("confluent", kafka, "s", "static", Some("worker-1"));
    let other = Member::python("confluent", kafka, "s", "static", Some("worker-2"));
    wait_for_split(&[&fixed, &other], 4, "two static members");
    let rebalances = *other.rebalances.lock().unwrap();
    let before = fixed.assignment().unwrap();
    // Killed (no LeaveGroup: static members do not send one) and back.
    fixed.kill();
    let fixed = Member::python("confluent", kafka, "s", "static", Some("worker-1"));
    wait_until(
        Duration::from_secs(60),
        "the static member's assignment",
        || fixed.assignment().is_some(),
    );
    assert_eq!(
        fixed.assignment().unwrap(),
        before,
        "the same partitions again"
    );
    assert_eq!(
        *other.rebalances.lock().unwrap(),
        rebalances,
        "the other member saw no rebalance"
    );
}

#[test]
fn corelog_consume_group_members_split_partitions_with_a_kafka_member_and_resume() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &["--kafka-listen", "127.0.0.1:0"],
    );
    let kafka = broker.kafka.unwrap();
    corelog(&broker, &["topic", "create", "cli", "--partitions", "6"]);
    let mut all = produce(kafka, "cli", "a", 300);
    let mut one = Member::corelog(kafka, "cli", "cli-group");
    let two = Member::python("kafka-python", kafka, "cli", "cli-group", None);
    wait_for_split(
        &[&one, &two],
        6,
        "corelog and kafka-python split 6 partitions",
    );
    wait_for_records(
        &[&one, &two],
        &all,
        "every record read once the group is stable",
    );
    // A clean stop leaves the group; the other member takes everything
    // and resumes from the committed offsets.
    one.terminate();
    wait_for_split(&[&two], 6, "kafka-python alone after corelog left");
    all.extend(produce(kafka, "cli", "b", 300));
    wait_for_records(&[&one, &two], &all, "records after the leave");
    let three = Member::corelog(kafka, "cli", "cli-group");
    wait_for_split(&[&two, &three], 6, "a new corelog member joins");
}

#[test]
fn a_data_directory_written_by_096b07a_keeps_groups_producer_ids_and_settings() {
    // tests/fixtures/README.md says how the fixture was made: idempotent
    // batches with producer snapshots, a LogAppendTime topic, a group with
    // committed offsets in __consumer_offsets.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-096b07a");
    common::copy_tree(&fixture, &data);
    for round in 0..2 {
        let mut broker = Broker::start(&data, 2, &["--kafka-listen", "127.0.0.1:0"]);
        let events = corelog(
            &broker,
            &[
                "consume",
                "events",
                "--from-beginning",
                "--format",
                "{offset} {key} {value}",
            ],
        );
        let lines: Vec<&str> = events.lines().collect();
        assert_eq!(lines.len(), 400, "round {round}");
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(
                *line,
                format!("{i} ev-{i:04} event {i:04} {}", "e".repeat(200))
            );
        }
        let stamped = corelog(&broker, &["topic", "describe", "stamped"]);
        assert!(
            stamped.contains("LogAppendTime") && stamped.contains("86400000"),
            "{stamped}"
        );
        // That version made the offsets topic with cleanup.policy delete;
        // it is switched to compact at start.
        let offsets = corelog(&broker, &["topic", "describe", "__consumer_offsets"]);
        let policy = offsets
            .lines()
            .find(|l| l.trim_start().starts_with("cleanup.policy"))
            .unwrap_or_default()
            .to_string();
        assert!(policy.contains("compact"), "{offsets}");
        let mut raw = Raw::connect(broker.kafka.unwrap());
        assert_eq!(raw.fetch("billing", "events"), (400, 0), "round {round}");
        // Producer ids handed out by that broker are never handed out again.
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let answer: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 2, &request);
        assert_eq!(answer.error_code, 0);
        assert!(answer.producer_id.0 >= 1000, "{:?}", answer.producer_id);
        assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    }
}
