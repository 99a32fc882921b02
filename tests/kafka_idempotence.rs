//! Idempotent Kafka producers against a real broker: confluent-kafka with
//! `enable.idempotence=true` and kafka-python 3.0.12 with its default
//! (idempotent) settings, each through a broker SIGKILL (fsync always) and
//! through a proxy that swallows produce responses so the client times out
//! and retries. Every acknowledged record must be stored exactly once, in
//! order per partition. Skipped with CORELOG_SKIP_KAFKA_CLIENTS=1.

mod common;

use common::{Broker, corelog_bin, kafka_clients_available, script, wait_until};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const PRODUCE_API: i16 = 0;

fn create_topic(broker: &Broker, name: &str) {
    let out = Command::new(corelog_bin())
        .args(["topic", "create", name, "--partitions", "4"])
        .args(["--fsync", "always", "--broker", &broker.addr.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A producer script running in the background; its acknowledgements are
/// collected as they arrive.
struct Producer {
    child: Child,
    acked: Arc<Mutex<Vec<(u32, u64, u64)>>>,
    done: Arc<Mutex<Option<(u64, u64)>>>,
    reader: Option<JoinHandle<()>>,
}

impl Producer {
    fn start(lib: &str, bootstrap: SocketAddr, topic: &str, count: u64) -> Producer {
        let mut child = Command::new("timeout")
            .args(["300", "python3", &script("idempotent_produce.py"), lib])
            .args([&bootstrap.to_string(), topic, &count.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let acked: Arc<Mutex<Vec<(u32, u64, u64)>>> = Arc::default();
        let done: Arc<Mutex<Option<(u64, u64)>>> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let (acked, done) = (acked.clone(), done.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let f: Vec<&str> = line.split(' ').collect();
                    match f[0] {
                        "ack" => acked.lock().unwrap().push((
                            f[1].parse().unwrap(),
                            f[2].parse().unwrap(),
                            f[3].parse().unwrap(),
                        )),
                        "done" => {
                            *done.lock().unwrap() =
                                Some((f[1].parse().unwrap(), f[2].parse().unwrap()))
                        }
                        _ => {}
                    }
                }
            })
        };
        Producer {
            child,
            acked,
            done,
            reader: Some(reader),
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits for the script to finish; returns every acknowledgement.
    fn finish(mut self, count: u64) -> Vec<(u32, u64, u64)> {
        let status = self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        let mut stderr = String::new();
        let _ = self
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr);
        let done = *self.done.lock().unwrap();
        assert!(
            status.success() && done == Some((count, 0)),
            "the producer did not get all {count} records acknowledged: {status}, {done:?}\n{stderr}"
        );
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

/// Reads the whole topic with kcat and checks: every record 0..count is
/// stored exactly once, per partition in the order it was produced, and
/// every acknowledgement names where the record really is.
fn check_exactly_once(kafka: SocketAddr, topic: &str, count: u64, acked: &[(u32, u64, u64)]) {
    let out = Command::new("timeout")
        .args(["60", "kcat", "-b", &kafka.to_string(), "-C", "-t", topic])
        .args(["-o", "beginning", "-e", "-f", "%p %o %s\n"])
        .output()
        .unwrap();
    assert!(out.status.success(), "kcat: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut at: HashMap<u64, (u32, u64)> = HashMap::new();
    let mut last: HashMap<u32, u64> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (p, o): (u32, u64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let i: u64 = f[2][1..].parse().unwrap();
        if let Some(first) = at.insert(i, (p, o)) {
            panic!("record {i} stored twice: at {first:?} and at ({p}, {o})");
        }
        if let Some(prev) = last.insert(p, i) {
            assert!(prev < i, "partition {p}: record {i} stored after {prev}");
        }
    }
    assert_eq!(at.len() as u64, count, "records stored");
    for &(p, o, i) in acked {
        assert_eq!(at.get(&i), Some(&(p, o)), "acknowledgement of record {i}");
    }
}

/// Kills the broker (SIGKILL) after 3,000 acknowledgements, restarts it on
/// the same data directory and Kafka port, and lets the producer finish.
fn kill_and_restart(lib: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut broker = Broker::start(&data, 2, &["--kafka-listen", "127.0.0.1:0"]);
    let kafka = broker.kafka.unwrap();
    create_topic(&broker, "exactly-once");
    let count = 20_000;
    let producer = Producer::start(lib, kafka, "exactly-once", count);
    wait_until(
        Duration::from_secs(120),
        "3000 acknowledged records",
        || producer.acked() >= 3000,
    );
    broker.kill();
    // Same Kafka port: the producer keeps retrying its in-flight batches
    // against it.
    let kafka_flag = kafka.to_string();
    let broker = Broker::start(&data, 2, &["--kafka-listen", &kafka_flag]);
    let acked = producer.finish(count);
    check_exactly_once(kafka, "exactly-once", count, &acked);
    drop(broker);
}

#[test]
fn confluent_kafka_idempotent_producer_survives_a_broker_sigkill_exactly_once() {
    if kafka_clients_available() {
        kill_and_restart("confluent");
    }
}

#[test]
fn kafka_python_default_producer_survives_a_broker_sigkill_exactly_once() {
    if kafka_clients_available() {
        kill_and_restart("kafka-python");
    }
}

/// A TCP proxy in front of the Kafka listener that swallows every
/// `every`-th produce response (at most `max` of them): the connection then
/// goes silent (odd drops) or is closed (even drops), so the client's
/// request times out or fails and it retries a batch the broker already
/// wrote.
struct DropProxy {
    addr: SocketAddr,
    dropped: Arc<AtomicU64>,
    produce_requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl DropProxy {
    fn bind() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    fn start(listener: TcpListener, upstream: SocketAddr, every: u64, max: u64) -> DropProxy {
        let addr = listener.local_addr().unwrap();
        let dropped = Arc::new(AtomicU64::new(0));
        let produce_requests = Arc::new(AtomicU64::new(0));
        let responses = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (dropped, produce_requests, stop) =
                (dropped.clone(), produce_requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(upstream) else {
                        continue;
                    };
                    let apis: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
                    let dead = Arc::new(AtomicBool::new(false));
                    let pipe = |from: TcpStream, to: TcpStream, requests: bool| {
                        let (apis, dead) = (apis.clone(), dead.clone());
                        let (dropped, produce_requests, responses) =
                            (dropped.clone(), produce_requests.clone(), responses.clone());
                        move || {
                            forward(
                                from,
                                to,
                                requests,
                                &apis,
                                &dead,
                                &Counters {
                                    dropped: &dropped,
                                    produce_requests: &produce_requests,
                                    responses: &responses,
                                    every,
                                    max,
                                },
                            )
                        }
                    };
                    let up = pipe(
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    );
                    let down = pipe(server, client, false);
                    std::thread::spawn(up);
                    std::thread::spawn(down);
                }
            });
        }
        DropProxy {
            addr,
            dropped,
            produce_requests,
            stop,
        }
    }
}

impl Drop for DropProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

struct Counters<'a> {
    dropped: &'a AtomicU64,
    produce_requests: &'a AtomicU64,
    responses: &'a AtomicU64,
    every: u64,
    max: u64,
}

/// Copies Kafka frames from `from` to `to`. Requests: remembers each
/// correlation id's API. Responses: swallows some produce responses (see
/// [`DropProxy`]). Ends when either side closes.
fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    requests: bool,
    apis: &Mutex<HashMap<i32, i16>>,
    dead: &AtomicBool,
    c: &Counters,
) {
    let mut frame = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if from.read_exact(&mut len).is_err() {
            break;
        }
        let n = i32::from_be_bytes(len);
        if !(4..=64 << 20).contains(&n) {
            break;
        }
        frame.resize(n as usize, 0);
        if from.read_exact(&mut frame).is_err() {
            break;
        }
        if dead.load(Ordering::Relaxed) {
            // A silenced connection: everything is swallowed until the
            // client gives up on it.
            continue;
        }
        if requests {
            let api = i16::from_be_bytes([frame[0], frame[1]]);
            let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            if api == PRODUCE_API {
                c.produce_requests.fetch_add(1, Ordering::Relaxed);
            }
            apis.lock().unwrap().insert(correlation, api);
        } else {
            let correlation = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let api = apis.lock().unwrap().remove(&correlation);
            if api == Some(PRODUCE_API) {
                let n = c.responses.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(c.every) && c.dropped.load(Ordering::Relaxed) < c.max {
                    let drops = c.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if drops.is_multiple_of(2) {
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                        break;
                    }
                    dead.store(true, Ordering::Relaxed);
                    continue;
                }
            }
        }
        if to.write_all(&len).is_err() || to.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

fn through_a_response_dropping_proxy(lib: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (listener, proxy_addr) = DropProxy::bind();
    let advertise = proxy_addr.to_string();
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &[
            "--kafka-listen",
            "127.0.0.1:0",
            "--kafka-advertise",
            &advertise,
        ],
    );
    create_topic(&broker, "retried");
    let proxy = DropProxy::start(listener, broker.kafka.unwrap(), 3, 6);
    let count = 5_000;
    let producer = Producer::start(lib, proxy.addr, "retried", count);
    let acked = producer.finish(count);
    let dropped = proxy.dropped.load(Ordering::Relaxed);
    assert!(dropped >= 2, "the proxy swallowed only {dropped} responses");
    eprintln!(
        "{lib}: {count} records, {} produce requests, {dropped} responses swallowed",
        proxy.produce_requests.load(Ordering::Relaxed)
    );
    check_exactly_once(broker.kafka.unwrap(), "retried", count, &acked);
}

#[test]
fn confluent_kafka_retries_after_lost_responses_store_each_record_once() {
    if kafka_clients_available() {
        through_a_response_dropping_proxy("confluent");
    }
}

#[test]
fn kafka_python_retries_after_lost_responses_store_each_record_once() {
    if kafka_clients_available() {
        through_a_response_dropping_proxy("kafka-python");
    }
}

/// One InitProducerId v0 request (no transactional id) on `stream`:
/// (error code, producer id, epoch).
fn init_producer_id(stream: &mut TcpStream, correlation: i32) -> (i16, i64, i16) {
    let mut body = Vec::new();
    body.extend_from_slice(&22i16.to_be_bytes()); // InitProducerId
    body.extend_from_slice(&0i16.to_be_bytes()); // version 0
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(b"test");
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
    body.extend_from_slice(&60_000i32.to_be_bytes()); // transaction timeout
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(answer.len(), 4 + 4 + 2 + 8 + 2, "{answer:?}");
    assert_eq!(answer[..4], correlation.to_be_bytes());
    let error = i16::from_be_bytes([answer[8], answer[9]]);
    let id = i64::from_be_bytes(answer[10..18].try_into().unwrap());
    let epoch = i16::from_be_bytes([answer[18], answer[19]]);
    (error, id, epoch)
}

#[test]
fn producer_ids_are_never_handed_out_twice_across_blocks_and_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut seen = std::collections::HashSet::new();
    let mut highest = -1;
    for round in 0..2 {
        let mut broker = Broker::start(&data, 2, &["--kafka-listen", "127.0.0.1:0"]);
        let mut stream = TcpStream::connect(broker.kafka.unwrap()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // More than one block of ids, none of them used to write.
        for n in 0..1_200 {
            let (error, id, epoch) = init_producer_id(&mut stream, n);
            assert_eq!((error, epoch), (0, 0), "round {round}, request {n}");
            assert!(id > highest, "round {round}: id {id} after {highest}");
            assert!(seen.insert(id));
            highest = id;
        }
        // No clean shutdown: the ids handed out must still never come back.
        broker.kill();
    }
}
