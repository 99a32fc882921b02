"""confluent-kafka (librdkafka) against an external corelog broker, for
perf/kafka-shard-aware.sh: what a Kafka client pays and gains in the
shard-aware Kafka mode compared with the normal one.

usage:
  kafka_shard_probe.py BOOTSTRAP TOPIC PARTITIONS connect TRIALS
      TRIALS times: a new producer sends one record to every partition
      (acks=1) and flushes; reports the time from creating the producer to
      the first and to the last acknowledgement, and the TCP connections the
      producer holds to the broker then (read from /proc: its sockets whose
      peer is the bootstrap host).
  kafka_shard_probe.py BOOTSTRAP TOPIC PARTITIONS produce COUNT SIZE
      One producer (acks=1, linger.ms=5) sends COUNT records of SIZE bytes,
      round robin over the partitions, as fast as it can; reports records/s,
      MB/s and the produce-to-acknowledgement latency librdkafka measured
      for every record (p50, p99).
  kafka_shard_probe.py BOOTSTRAP TOPIC PARTITIONS serial COUNT
      One record (100 B, acks=1, linger 0) at a time, each flushed before
      the next, partitions in turn: the round trip of a single produce
      request, p50 and p99 — where a cross-core hop shows most.

Prints one JSON object. Bounded: every wait has a deadline.
"""
import json
import os
import socket
import statistics
import sys
import time

from confluent_kafka import Producer

DEADLINE_S = 120


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def own_connections(peer_host):
    """Established TCP connections of this process to peer_host (IPv4)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    peer = socket.inet_aton(peer_host)
    # /proc/net/tcp holds addresses as host-order hex of the network bytes.
    peer_hex = "%08X" % int.from_bytes(peer, "little")
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and inode in inodes and remote.split(":")[0] == peer_hex:
                count += 1
    return count


def connect(bootstrap, topic, partitions, trials):
    host = bootstrap.rsplit(":", 1)[0]
    firsts, lasts, conns = [], [], []
    for _ in range(trials):
        acked = []
        errors = []

        def on_delivery(err, _msg):
            if err is not None:
                errors.append(str(err))
            acked.append(time.monotonic())

        start = time.monotonic()
        producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "1",
            "linger.ms": 0,
            "enable.idempotence": False,
        })
        for p in range(partitions):
            producer.produce(topic, value=b"x" * 100, partition=p, on_delivery=on_delivery)
        left = producer.flush(DEADLINE_S)
        if left or errors or len(acked) != partitions:
            sys.exit(f"connect trial failed: {left} left, errors {errors[:3]}")
        firsts.append((min(acked) - start) * 1000)
        lasts.append((max(acked) - start) * 1000)
        conns.append(own_connections(host))
        del producer
    return {
        "trials": trials,
        "first_ack_ms_median": statistics.median(firsts),
        "all_acked_ms_median": statistics.median(lasts),
        "first_ack_ms": [round(x, 2) for x in firsts],
        "connections": conns,
    }


def produce(bootstrap, topic, partitions, count, size):
    latencies = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        latencies.append(msg.latency())

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "1",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 200000,
        "enable.idempotence": False,
    })
    # Metadata and connections first, so the timing is the steady state.
    producer.produce(topic, value=b"warm-up", partition=0)
    producer.flush(DEADLINE_S)
    value = b"v" * size
    deadline = time.monotonic() + DEADLINE_S
    start = time.monotonic()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=value, partition=i % partitions,
                                 on_delivery=on_delivery)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    sys.exit("produce timed out")
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(DEADLINE_S)
    elapsed = time.monotonic() - start
    if left or errors or len(latencies) != count:
        sys.exit(f"produce failed: {len(latencies)} of {count} acked, {left} left, errors {errors[:3]}")
    return {
        "records": count,
        "size": size,
        "seconds": elapsed,
        "records_per_s": count / elapsed,
        "mb_per_s": count * size / elapsed / 1e6,
        "latency_ms_p50": percentile(latencies, 0.50) * 1000,
        "latency_ms_p99": percentile(latencies, 0.99) * 1000,
        "connections": own_connections(bootstrap.rsplit(":", 1)[0]),
    }


def serial(bootstrap, topic, partitions, count):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "1",
        "linger.ms": 0,
        "enable.idempotence": False,
    })
    # Connections to every partition's leader first.
    for p in range(partitions):
        producer.produce(topic, value=b"warm-up", partition=p)
    producer.flush(DEADLINE_S)
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    rounds = []
    for i in range(count):
        start = time.monotonic()
        producer.produce(topic, value=b"s" * 100, partition=i % partitions,
                         on_delivery=on_delivery)
        if producer.flush(10):
            sys.exit(f"record {i} not acknowledged within 10 s")
        rounds.append(time.monotonic() - start)
    if errors:
        sys.exit(f"serial produce failed: {errors[:3]}")
    return {
        "records": count,
        "round_trip_us_mean": statistics.mean(rounds) * 1e6,
        "round_trip_us_p50": percentile(rounds, 0.50) * 1e6,
        "round_trip_us_p90": percentile(rounds, 0.90) * 1e6,
        "round_trip_us_p99": percentile(rounds, 0.99) * 1e6,
    }


def main():
    bootstrap, topic, partitions, what = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if what == "connect":
        out = connect(bootstrap, topic, partitions, int(sys.argv[5]))
    elif what == "serial":
        out = serial(bootstrap, topic, partitions, int(sys.argv[5]))
    elif what == "produce":
        out = produce(bootstrap, topic, partitions, int(sys.argv[5]), int(sys.argv[6]))
    else:
        sys.exit(__doc__)
    print(json.dumps(out))


main()
