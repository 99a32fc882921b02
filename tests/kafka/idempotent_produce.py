"""Produces COUNT records to TOPIC with an idempotent producer and waits
until every one is acknowledged, printing "ack <partition> <offset> <i>"
per acknowledgement as it arrives and "done <acked> <failed>" at the end.
Record i has value "i<i>" and key "k<i % 13>"; the producer's own timeouts
are short (so the test's faults make it retry) and its delivery timeout long
(so nothing is given up while a broker restarts).

usage: idempotent_produce.py confluent|kafka-python BOOTSTRAP TOPIC COUNT
"""
import sys

lib, bootstrap, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
acked, failed = 0, 0


def report(partition, offset, i):
    global acked
    acked += 1
    sys.stdout.write(f"ack {partition} {offset} {i}\n")
    sys.stdout.flush()


if lib == "confluent":
    from confluent_kafka import Producer

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 200,
        "request.timeout.ms": 2000,
        "socket.timeout.ms": 2000,
        "message.timeout.ms": 180000,
        "retry.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
    })

    def on_delivery(err, msg):
        global failed
        if err is None:
            report(msg.partition(), msg.offset(), int(msg.value()[1:]))
        else:
            failed += 1
            sys.stderr.write(f"delivery failed: {err}\n")

    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=f"i{i}".encode(), key=f"k{i % 13}".encode(),
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(240)
    failed += remaining
elif lib == "kafka-python":
    import logging
    from kafka import KafkaProducer

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # No enable_idempotence: kafka-python 3 is idempotent by default.
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=2,
        request_timeout_ms=2000,
        delivery_timeout_ms=180000,
        retry_backoff_ms=100,
        reconnect_backoff_max_ms=500,
    )
    assert producer.config["enable_idempotence"], "kafka-python should default to idempotence"
    futures = []
    for i in range(count):
        f = producer.send(topic, value=f"i{i}".encode(), key=f"k{i % 13}".encode())
        f.add_callback(lambda md, i=i: report(md.partition, md.offset, i))
        futures.append(f)
        if i % 200 == 199:
            # kafka-python packs a fast loop into a handful of requests;
            # smaller rounds give the test's faults more requests to hit.
            producer.flush(240)
    producer.flush(240)
    for f in futures:
        if not f.succeeded():
            failed += 1
            if f.exception is not None:
                sys.stderr.write(f"delivery failed: {f.exception!r}\n")
    producer.close(10)
else:
    sys.exit(f"unknown client {lib}")

sys.stdout.write(f"done {acked} {failed}\n")
sys.stdout.flush()
