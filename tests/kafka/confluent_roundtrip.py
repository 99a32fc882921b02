"""confluent-kafka (librdkafka) against corelog's Kafka listener: produce
records with keys and headers with acks=all and a compression codec, then
read them back with assign() and check each one at the offset its delivery
report gave, in order per partition.

usage: confluent_roundtrip.py BOOTSTRAP TOPIC CODEC COUNT
Prints one JSON line with what it checked; exits non-zero on any mismatch.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

bootstrap, topic, codec, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
DEADLINE = time.time() + 120

producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": False,
    "compression.type": codec,
    "linger.ms": 5,
    "batch.num.messages": 1000,
})
acked = {}  # (partition, offset) -> (key, value, headers)
errors = []


def record(i):
    key = f"key-{i % 97}".encode()
    value = f"{codec}-value-{i}-".encode() + bytes([i % 256]) * (i % 50)
    headers = [("seq", str(i).encode()), ("codec", codec.encode())]
    return key, value, headers


def delivered(sent):
    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        acked[(msg.partition(), msg.offset())] = sent
    return on_delivery


for i in range(count):
    key, value, headers = record(i)
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers,
                             on_delivery=delivered((key, value, headers)))
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)
left = producer.flush(60)
if errors or left or len(acked) != count:
    sys.exit(f"produce failed: {len(acked)} of {count} acknowledged, {left} left, errors {errors[:5]}")

partitions = sorted({p for p, _ in acked})
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "unused-with-assign",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
})
consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
ends = {}
for p in partitions:
    ends[p] = max(o for q, o in acked if q == p) + 1
seen = {}
last = {}
while any(last.get(p, -1) + 1 < ends[p] for p in partitions):
    if time.time() > DEADLINE:
        sys.exit(f"consume timed out: {len(seen)} of {count} read")
    msg = consumer.poll(1.0)
    if msg is None:
        continue
    if msg.error():
        raise KafkaException(msg.error())
    p, o = msg.partition(), msg.offset()
    if o <= last.get(p, -1):
        sys.exit(f"partition {p}: offset {o} after {last[p]}: not in order")
    last[p] = o
    hdrs = [(k, v) for k, v in (msg.headers() or [])]
    seen[(p, o)] = (msg.key(), msg.value(), hdrs)
consumer.close()
for where, want in acked.items():
    got = seen.get(where)
    if got != want:
        sys.exit(f"record at {where}: wrote {want!r}, read {got!r}")
print(json.dumps({"codec": codec, "acknowledged": len(acked), "read": len(seen), "partitions": len(partitions)}))
