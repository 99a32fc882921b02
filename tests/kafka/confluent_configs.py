"""confluent-kafka's AdminClient reads and changes topic settings on
corelog's Kafka listener: incremental_alter_configs and describe_configs
with each value's source; an invalid value fails with INVALID_CONFIG and
changes nothing; LogAppendTime shows in delivery reports and consumed
messages as the broker's time.

usage: confluent_configs.py BOOTSTRAP TOPIC
Prints one JSON line; exits non-zero on any mismatch.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewTopic, ResourceType)

bootstrap, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
    f.result(30)


def describe():
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    (entries,) = [f.result(30) for f in futures.values()]
    return {name: (e.value, ConfigSource(e.source)) for name, e in entries.items()}


def alter(entries):
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    (future,) = admin.incremental_alter_configs([resource]).values()
    return future.result(30)


def entry(name, value, op=AlterConfigOpType.SET):
    return ConfigEntry(name, value, incremental_operation=op)


configs = describe()
if configs["retention.bytes"] != ("-1", ConfigSource.DEFAULT_CONFIG):
    sys.exit(f"retention.bytes: {configs['retention.bytes']}")
alter([entry("retention.bytes", "1073741824"),
       entry("message.timestamp.type", "LogAppendTime"),
       entry("flush.messages", "1")])
configs = describe()
for name, value in [("retention.bytes", "1073741824"),
                    ("message.timestamp.type", "LogAppendTime"),
                    ("flush.messages", "1")]:
    if configs[name] != (value, ConfigSource.DYNAMIC_TOPIC_CONFIG):
        sys.exit(f"{name}: want {value} set on the topic, got {configs[name]}")

try:
    alter([entry("retention.bytes", "-7")])
    sys.exit("a negative retention.bytes was accepted")
except KafkaException as e:
    err = e.args[0]
    if err.code() != KafkaError.INVALID_CONFIG or "-7" not in err.str():
        sys.exit(f"want INVALID_CONFIG naming the value, got {err.code()} {err.str()}")
if describe() != configs:
    sys.exit("a refused change changed something")

old = 1_000_000_000_000
reports = []
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
start = int(time.time() * 1000)
for i in range(10):
    producer.produce(topic, value=f"v{i}".encode(), timestamp=old + i,
                     on_delivery=lambda err, msg: reports.append((err, msg.timestamp())))
if producer.flush(30) != 0:
    sys.exit("produce did not finish")
end = int(time.time() * 1000)
for err, (kind, ts) in reports:
    if err is not None or kind != TIMESTAMP_LOG_APPEND_TIME or not start - 1000 <= ts <= end + 1000:
        sys.exit(f"delivery report: {err} {kind} {ts}, want the broker's time in [{start}, {end}]")

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-with-assign",
                     "enable.auto.commit": False})
consumer.assign([TopicPartition(topic, 0, 0)])
seen = []
deadline = time.time() + 60
while len(seen) < 10:
    if time.time() > deadline:
        sys.exit(f"timed out reading: {len(seen)}")
    msg = consumer.poll(1.0)
    if msg is None:
        continue
    if msg.error():
        raise KafkaException(msg.error())
    seen.append(msg.timestamp())
consumer.close()
for kind, ts in seen:
    if kind != TIMESTAMP_LOG_APPEND_TIME or not start - 1000 <= ts <= end + 1000:
        sys.exit(f"consumed timestamp {kind} {ts}, want the broker's time in [{start}, {end}]")
print(json.dumps({"delivered": len(reports), "consumed": len(seen)}))
