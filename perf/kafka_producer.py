"""A librdkafka producer (confluent-kafka) writing COUNT records of SIZE
bytes to TOPIC as fast as it can, acks=all. Prints one JSON line: records/s,
MB/s and the produce()→delivery-report latency percentiles in ms (the
latency a librdkafka application sees, batching included).

usage: kafka_producer.py BOOTSTRAP TOPIC COUNT SIZE IDEMPOTENT(true|false)
"""
import json
import sys
import time

from confluent_kafka import Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
count, size, idempotent = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "true"
producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": idempotent,
    "linger.ms": 5,
    "batch.size": 1 << 20,
    "queue.buffering.max.kbytes": 256 << 10,
    "compression.type": "none",
})
payload = bytes(size)
latencies = []



sent_at = [0.0] * count
done = [0]


def make_cb(i):
    def cb(err, msg):
        if err is not None:
            sys.exit(f"delivery failed: {err}")
        latencies.append(time.perf_counter() - sent_at[i])
        done[0] += 1
    return cb


# Warm up: metadata, connections, the producer id.
producer.produce(topic, payload)
producer.flush(30)
start = time.perf_counter()
for i in range(count):
    while True:
        try:
            sent_at[i] = time.perf_counter()
            producer.produce(topic, payload, on_delivery=make_cb(i))
            break
        except BufferError:
            producer.poll(0.001)
    if i % 1000 == 0:
        producer.poll(0)
producer.flush(120)
elapsed = time.perf_counter() - start
latencies.sort()


def pct(p):
    return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 2)


print(json.dumps({
    "idempotent": idempotent,
    "records": count,
    "record_bytes": size,
    "seconds": round(elapsed, 3),
    "records_per_s": round(count / elapsed),
    "mb_per_s": round(count * size / elapsed / 1e6, 1),
    "latency_ms": {"p50": pct(50), "p99": pct(99), "p999": pct(99.9), "max": round(latencies[-1] * 1000, 2)},
}))
