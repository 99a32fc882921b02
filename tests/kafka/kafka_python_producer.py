"""replicated_producer.py's twin for kafka-python: produces "v<n>" values
to a topic at a fixed rate, idempotent with acks=all, until the stop file
appears; acknowledged values go to the acked file, errors to the errors
file.

usage: kafka_python_producer.py BOOTSTRAP TOPIC ACKED_FILE ERRORS_FILE STOP_FILE [RATE]
"""
import os
import sys
import time

from kafka import KafkaProducer

bootstrap, topic, acked_path, errors_path, stop_path = sys.argv[1:6]
rate = int(sys.argv[6]) if len(sys.argv) > 6 else 200

acked = open(acked_path, "w", buffering=1)
errors = open(errors_path, "w", buffering=1)

producer = KafkaProducer(
    bootstrap_servers=bootstrap.split(","),
    acks="all",
    enable_idempotence=True,
    linger_ms=5,
    retries=1000,
    retry_backoff_ms=100,
    request_timeout_ms=30000,
    delivery_timeout_ms=120000,
    metadata_max_age_ms=1000,
)


def ok(value):
    return lambda _meta: acked.write(value + "\n")


def failed(exc):
    errors.write(f"{type(exc).__name__}: {exc}\n")


n = 0
started = time.time()
while not os.path.exists(stop_path):
    due = started + n / rate
    now = time.time()
    if due > now:
        time.sleep(min(due - now, 0.05))
        continue
    value = f"v{n}"
    producer.send(topic, value=value.encode()).add_callback(ok(value)).add_errback(failed)
    n += 1
producer.flush(120)
producer.close(30)
print(n)
