"""Produces to a replicated topic until a stop file appears, at a fixed
moderate rate, with an idempotent acks=all confluent-kafka producer; every
acknowledged value goes to the acked file (one per line) and every error
reported to the application to the errors file. Values are unique:
"v<n>".

usage: replicated_producer.py BOOTSTRAP TOPIC ACKED_FILE ERRORS_FILE STOP_FILE [RATE]
"""
import os
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, acked_path, errors_path, stop_path = sys.argv[1:6]
rate = int(sys.argv[6]) if len(sys.argv) > 6 else 200

acked = open(acked_path, "w", buffering=1)
errors = open(errors_path, "w", buffering=1)


def delivered(err, msg):
    if err is None:
        acked.write(msg.value().decode() + "\n")
    else:
        errors.write(f"{err.name()} retriable={err.retriable()} {err.str()}\n")


p = Producer({
    "bootstrap.servers": bootstrap,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    # Generous: a failover must be retried through, never given up on.
    "message.timeout.ms": 120000,
    "retry.backoff.ms": 50,
    "topic.metadata.refresh.interval.ms": 1000,
})
n = 0
started = time.time()
while not os.path.exists(stop_path):
    due = started + n / rate
    now = time.time()
    if due > now:
        p.poll(min(due - now, 0.05))
        continue
    try:
        p.produce(topic, value=f"v{n}", on_delivery=delivered)
        n += 1
    except BufferError:
        p.poll(0.05)
    p.poll(0)
left = p.flush(120)
errors.write("") if left == 0 else errors.write(f"UNFLUSHED {left}\n")
print(n)
