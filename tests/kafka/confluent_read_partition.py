"""Reads partition 0 of a topic from its start to its end with
confluent-kafka and prints `offset key value` per record (a compacted topic
has gaps in its offsets; the client must skip them).

Usage: confluent_read_partition.py BOOTSTRAP TOPIC
"""

import sys
import time

from confluent_kafka import Consumer, TopicPartition

bootstrap, topic = sys.argv[1], sys.argv[2]
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "partition-reader",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
})
low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
consumer.assign([TopicPartition(topic, 0, low)])
deadline = time.time() + 60
last = low - 1
while last < high - 1:
    if time.time() > deadline:
        sys.exit(f"read up to offset {last} of {low}..{high} within 60 s")
    message = consumer.poll(1.0)
    if message is None:
        continue
    if message.error():
        sys.exit(f"consumer error: {message.error()}")
    key = message.key().decode() if message.key() is not None else ""
    value = message.value().decode() if message.value() is not None else ""
    print(f"{message.offset()} {key} {value}")
    last = message.offset()
consumer.close()
