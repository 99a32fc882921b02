"""Produces to TOPIC with acks=all until killed, printing one line per
acknowledged record: "<partition> <offset> <value>". Delivery failures
after the broker dies are expected and ignored (only acks count).

usage: confluent_produce_until_killed.py BOOTSTRAP TOPIC
"""
import sys

from confluent_kafka import Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": False,
    "linger.ms": 1,
    "message.timeout.ms": 5000,
    "retries": 0,
})


def on_delivery(err, msg):
    if err is None:
        sys.stdout.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")
        sys.stdout.flush()


i = 0
while True:
    try:
        producer.produce(topic, value=f"r{i}".encode(), key=f"k{i % 31}".encode(), on_delivery=on_delivery)
        i += 1
    except BufferError:
        pass
    producer.poll(0.001 if i % 50 else 0.01)
