"""kafka-python against corelog's Kafka listener: the admin client creates,
lists, grows and deletes topics; a producer writes keyed records; a
consumer with assign() seeks to the beginning, to an offset, and to a time
found with offsets_for_times, and reads what each seek promises.

usage: kafka_python_roundtrip.py BOOTSTRAP
Prints one JSON line; exits non-zero on any mismatch.
"""
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic

bootstrap = sys.argv[1]
topic = "kp-roundtrip"
DEADLINE = time.time() + 120

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                              topic_configs={"retention.ms": "3600000"})])
names = set(admin.list_topics())
if topic not in names:
    sys.exit(f"created topic missing from list_topics: {names}")
admin.create_partitions({topic: NewPartitions(total_count=4)})

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                         linger_ms=5)
first_half_end = time.time() * 1000
sent = []
for i in range(400):
    if i == 200:
        producer.flush()
        time.sleep(0.05)
        first_half_end = int(time.time() * 1000)
        time.sleep(0.05)
    meta = producer.send(topic, key=f"k{i % 50}".encode(), value=f"v{i}".encode()).get(timeout=30)
    sent.append((meta.partition, meta.offset, f"k{i % 50}", f"v{i}", meta.timestamp))
producer.flush()
producer.close()
partitions = sorted({p for p, *_ in sent})
if partitions != [0, 1, 2, 3]:
    sys.exit(f"keys should spread over the four partitions, got {partitions}")

consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         group_id=None, consumer_timeout_ms=3000)
tps = [TopicPartition(topic, p) for p in partitions]
consumer.assign(tps)


def read_until(stop):
    out = {}
    while not stop(out):
        if time.time() > DEADLINE:
            sys.exit(f"timed out reading: {len(out)} records")
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            for m in msgs:
                out[(tp.partition, m.offset)] = (m.key.decode(), m.value.decode())
    return out


# From the beginning: everything.
consumer.seek_to_beginning(*tps)
everything = read_until(lambda got: len(got) >= len(sent))
for p, o, k, v, _ in sent:
    if everything.get((p, o)) != (k, v):
        sys.exit(f"{p}/{o}: wrote {(k, v)}, read {everything.get((p, o))}")

# From an offset: that offset first.
tp0 = tps[0]
mid = max(o for p, o, *_ in sent if p == 0) // 2
consumer.seek(tp0, mid)
msgs = consumer.poll(timeout_ms=5000, max_records=1)
got = [m for batch in msgs.values() for m in batch]
if not got or got[0].offset != mid:
    sys.exit(f"seek to offset {mid}: first record {got[0].offset if got else None}")

# By time: the first record at or after a time between the two halves.
found = consumer.offsets_for_times({tp: first_half_end for tp in tps})
for tp, ot in found.items():
    want = min((o for p, o, *_, ts in sent if p == tp.partition and ts >= first_half_end), default=None)
    have = ot.offset if ot is not None else None
    if have != want:
        sys.exit(f"offsets_for_times {tp.partition}: broker said {have}, records say {want}")
consumer.close()

admin.delete_topics([topic])
deadline = time.time() + 30
while topic in set(admin.list_topics()):
    if time.time() > deadline:
        sys.exit("deleted topic still listed")
    time.sleep(0.1)
admin.close()
print(json.dumps({"sent": len(sent), "partitions": len(partitions)}))
