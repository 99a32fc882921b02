"""kafka-python's admin client reads and changes topic settings on corelog's
Kafka listener: describe_configs with sources and synonyms, incremental
alter_configs (SET and DELETE), invalid values refused with INVALID_CONFIG
and nothing changed; then message.timestamp.type=LogAppendTime makes the
broker stamp its own time over a producer's old timestamps.

The broker must run with a segment size default of 8388608 (serve
--segment-bytes 8388608), so segment.bytes comes from the broker.

usage: kafka_python_configs.py BOOTSTRAP TOPIC
Prints one JSON line; exits non-zero on any mismatch.
"""
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.admin._configs import AlterConfigOp, ConfigResource, ConfigResourceType

bootstrap, topic = sys.argv[1], sys.argv[2]
NEVER = "9223372036854775807"
DEADLINE = time.time() + 120

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                              topic_configs={"retention.ms": "3600000"})])
resource = ConfigResource(ConfigResourceType.TOPIC, topic)


def describe():
    found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                   include_synonyms=True, config_filter="all")
    return found["topic"][topic]


def expect(configs, name, value, source):
    entry = configs.get(name)
    if entry is None:
        sys.exit(f"{name} missing from describe_configs: {sorted(configs)}")
    if (entry["value"], entry["config_source"]) != (value, source):
        sys.exit(f"{name}: want {value} from {source}, got {entry}")
    return entry


def alter(changes, validate_only=False):
    result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, changes)],
                                 validate_only=validate_only, incremental=True,
                                 raise_on_unknown=False)
    return result["topic"][topic]


configs = describe()
names = {"cleanup.policy", "delete.retention.ms", "min.compaction.lag.ms", "retention.ms", "retention.bytes", "segment.bytes", "segment.ms",
         "max.message.bytes", "message.timestamp.type", "min.insync.replicas",
         "flush.messages", "flush.ms"}
if set(configs) != names:
    sys.exit(f"described settings {sorted(configs)}, want {sorted(names)}")
expect(configs, "retention.ms", "3600000", "DYNAMIC_TOPIC_CONFIG")
segment = expect(configs, "segment.bytes", "8388608", "STATIC_BROKER_CONFIG")
synonyms = [(s["name"], s["value"], s["source"]) for s in segment["synonyms"]]
if synonyms != [("log.segment.bytes", "8388608", "STATIC_BROKER_CONFIG"),
                ("log.segment.bytes", "1073741824", "DEFAULT_CONFIG")]:
    sys.exit(f"segment.bytes synonyms: {synonyms}")
expect(configs, "cleanup.policy", "delete", "DEFAULT_CONFIG")
expect(configs, "message.timestamp.type", "CreateTime", "DEFAULT_CONFIG")
expect(configs, "flush.messages", NEVER, "DEFAULT_CONFIG")
expect(configs, "flush.ms", NEVER, "DEFAULT_CONFIG")
expect(configs, "min.insync.replicas", "1", "DEFAULT_CONFIG")

# SET and DELETE in one request.
result = alter({
    "retention.ms": (AlterConfigOp.SET, "7200000"),
    "segment.bytes": (AlterConfigOp.SET, "1048576"),
    "flush.ms": (AlterConfigOp.SET, "1000"),
    "min.insync.replicas": (AlterConfigOp.SET, "2"),
})
if result != "OK":
    sys.exit(f"alter: {result}")
configs = describe()
expect(configs, "retention.ms", "7200000", "DYNAMIC_TOPIC_CONFIG")
expect(configs, "segment.bytes", "1048576", "DYNAMIC_TOPIC_CONFIG")
expect(configs, "flush.ms", "1000", "DYNAMIC_TOPIC_CONFIG")
expect(configs, "flush.messages", NEVER, "DYNAMIC_TOPIC_CONFIG")
expect(configs, "min.insync.replicas", "2", "DYNAMIC_TOPIC_CONFIG")
result = alter({"segment.bytes": (AlterConfigOp.DELETE, None)})
if result != "OK":
    sys.exit(f"delete: {result}")
expect(describe(), "segment.bytes", "8388608", "STATIC_BROKER_CONFIG")

# Invalid values: INVALID_CONFIG with the reason, and nothing changes (not
# even the valid change beside the bad one).
before = describe()
for changes, reason in [
    ({"retention.ms": "soon"}, "whole number"),
    ({"cleanup.policy": "shred"}, "not one of delete, compact"),
    ({"retention.ms": "1000", "segment.bytes": "10"}, "segment.bytes 10 is outside"),
    ({"message.timestamp.type": "BrokerTime"}, "CreateTime, LogAppendTime"),
    ({"flush.messages": "100"}, "flush.messages 100 is not supported"),
    ({"compression.type": "zstd"}, "not supported"),
]:
    result = alter(changes)
    if "InvalidConfigurationError" not in result or reason not in result:
        sys.exit(f"{changes}: want INVALID_CONFIG with {reason!r}, got {result}")
if describe() != before:
    sys.exit("a refused change changed something")
# validate_only answers without changing anything.
if alter({"retention.ms": "1"}, validate_only=True) != "OK" or describe() != before:
    sys.exit("validate_only changed something")

# LogAppendTime: the broker's time replaces the producer's old timestamps.
if alter({"message.timestamp.type": "LogAppendTime"}) != "OK":
    sys.exit("setting LogAppendTime failed")
expect(describe(), "message.timestamp.type", "LogAppendTime", "DYNAMIC_TOPIC_CONFIG")
old = 1_000_000_000_000  # 2001
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
start = int(time.time() * 1000)
metas = [producer.send(topic, partition=0, value=f"stamped-{i}".encode(), timestamp_ms=old + i)
         .get(timeout=30) for i in range(20)]
producer.flush()
end = int(time.time() * 1000)
producer.close()
for m in metas:
    if not start - 1000 <= m.timestamp <= end + 1000:
        sys.exit(f"produce answered timestamp {m.timestamp}, want the append time in [{start}, {end}]")

consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         group_id=None, consumer_timeout_ms=3000)
tp = TopicPartition(topic, 0)
consumer.assign([tp])
consumer.seek_to_beginning(tp)
records = []
while len(records) < 20:
    if time.time() > DEADLINE:
        sys.exit(f"timed out reading: {len(records)} records")
    for msgs in consumer.poll(timeout_ms=500).values():
        records.extend(msgs)
consumer.close()
for r in records:
    if r.timestamp_type != 1:
        sys.exit(f"offset {r.offset}: timestamp type {r.timestamp_type}, want 1 (LogAppendTime)")
    if not start - 1000 <= r.timestamp <= end + 1000:
        sys.exit(f"offset {r.offset}: timestamp {r.timestamp} is not the broker's time [{start}, {end}]")
admin.close()
print(json.dumps({"described": len(configs), "stamped": len(records)}))
