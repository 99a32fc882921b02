"""A Kafka client through a secured corelog listener: create the topic if
needed, produce COUNT records with acks=all, read them back from offset 0
and check each one.

usage: secure_roundtrip.py CLIENT BOOTSTRAP TOPIC COUNT CONFIG_JSON
  CLIENT       confluent (librdkafka) or kafka-python
  CONFIG_JSON  the client's security settings, in librdkafka's names
               (security.protocol, ssl.ca.location, ssl.certificate.location,
               ssl.key.location, sasl.mechanisms, sasl.username,
               sasl.password); mapped to kafka-python's own names here.

Prints one JSON line: {"produced": N, "consumed": N} on success. On a
failure prints {"error": "<kind>", "detail": "..."} and exits 3, where kind
is "authentication", "authorization", "transport" or "other", so a test
can check *why* a client was refused.
"""
import json
import sys
import time

client, bootstrap, topic, count, config = (
    sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5]))
DEADLINE = time.time() + 60


def fail(kind, detail):
    print(json.dumps({"error": kind, "detail": str(detail)[:500]}))
    sys.exit(3)


def classify(text):
    t = text.lower()
    if "authentication" in t or "sasl" in t and "fail" in t:
        return "authentication"
    if "authorization" in t or "not authorized" in t:
        return "authorization"
    if "ssl" in t or "certificate" in t or "handshake" in t or "transport" in t or "connect" in t:
        return "transport"
    return "other"


def values():
    return [f"secure-{i}".encode() for i in range(count)]


def confluent():
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    errors = []
    base = {"bootstrap.servers": bootstrap, **config,
            "error_cb": lambda e: errors.append(e)}
    admin = AdminClient(dict(base))
    try:
        fs = admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=15)
        for f in fs.values():
            try:
                f.result(20)
            except KafkaException as e:
                if "TOPIC_ALREADY_EXISTS" not in str(e):
                    raise
    except Exception as e:
        # A timeout says little: what the client reported on the way
        # (error_cb, served by poll) says why.
        admin.poll(1)
        said = " ".join(str(x) for x in errors)
        fail(classify(f"{said} {e}"), f"{e}; {errors[:3]}")

    acked = []
    delivery_errors = []

    def on_delivery(err, msg):
        if err is not None:
            delivery_errors.append(err)
        else:
            acked.append(msg.offset())

    producer = Producer({**base, "acks": "all", "linger.ms": 5})
    for v in values():
        producer.produce(topic, value=v, on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(30)
    if delivery_errors:
        fail(classify(delivery_errors[0].name() + " " + str(delivery_errors[0])), delivery_errors[0])
    if len(acked) != count:
        fail(classify(" ".join(str(x) for x in errors)), f"{len(acked)} of {count} acked; {errors[:3]}")

    consumer = Consumer({**base, "group.id": "secure-roundtrip", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < count and time.time() < DEADLINE:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            fail(classify(str(msg.error())), msg.error())
        got.append(msg.value())
    consumer.close()
    if got != values():
        fail("other", f"read {len(got)} records, not the {count} written")
    print(json.dumps({"produced": count, "consumed": len(got)}))


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    args = {"bootstrap_servers": bootstrap,
            "security_protocol": config.get("security.protocol", "PLAINTEXT")}
    if "ssl.ca.location" in config:
        args["ssl_cafile"] = config["ssl.ca.location"]
    if "ssl.certificate.location" in config:
        args["ssl_certfile"] = config["ssl.certificate.location"]
        args["ssl_keyfile"] = config["ssl.key.location"]
    if "sasl.mechanisms" in config:
        args["sasl_mechanism"] = config["sasl.mechanisms"]
        args["sasl_plain_username"] = config["sasl.username"]
        args["sasl_plain_password"] = config["sasl.password"]
    try:
        admin = KafkaAdminClient(**args, request_timeout_ms=15000)
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])
        except TopicAlreadyExistsError:
            pass
        admin.close()
        producer = KafkaProducer(**args, acks="all", linger_ms=5)
        futures = [producer.send(topic, v) for v in values()]
        for f in futures:
            f.get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(**args, enable_auto_commit=False, consumer_timeout_ms=10000)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got = []
        for msg in consumer:
            got.append(msg.value)
            if len(got) == count:
                break
        consumer.close()
    except KafkaError as e:
        fail(classify(type(e).__name__ + " " + str(e)), f"{type(e).__name__}: {e}")
    except Exception as e:
        fail(classify(type(e).__name__ + " " + str(e)), f"{type(e).__name__}: {e}")
    if got != values():
        fail("other", f"read {len(got)} records, not the {count} written")
    print(json.dumps({"produced": count, "consumed": len(got)}))


if client == "confluent":
    confluent()
elif client == "kafka-python":
    kafka_python()
else:
    sys.exit(f"unknown client {client}")
