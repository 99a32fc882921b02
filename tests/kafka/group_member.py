"""A consumer-group member: subscribes to TOPIC in GROUP and prints, flushed
line by line, "assigned <p,p,...>" after every rebalance and "rec <value>"
for every record, committing synchronously after each batch it processed.
SIGTERM closes it cleanly (it leaves the group); SIGKILL does not.

With confluent-consumer the member uses the consumer protocol (KIP-848,
group.protocol=consumer): assignments arrive incrementally, and it also
prints "revoked <p,...>" for each partition set it gives up.

usage: group_member.py confluent|confluent-consumer|kafka-python BOOTSTRAP TOPIC GROUP [INSTANCE_ID]
"""
import signal
import sys

lib, bootstrap, topic, group = sys.argv[1:5]
instance = sys.argv[5] if len(sys.argv) > 5 else None
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if lib == "confluent":
    from confluent_kafka import Consumer

    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    if instance:
        conf["group.instance.id"] = instance
    c = Consumer(conf)

    def on_assign(consumer, partitions):
        say("assigned " + ",".join(str(p.partition) for p in sorted(partitions, key=lambda p: p.partition)))

    c.subscribe([topic], on_assign=on_assign)
    while not stop:
        msgs = c.consume(500, 0.2)
        for m in msgs:
            if m.error() is None:
                say(f"rec {m.value().decode()}")
        if msgs:
            c.commit(asynchronous=False)
    c.close()
elif lib == "confluent-consumer":
    from confluent_kafka import Consumer

    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    if instance:
        conf["group.instance.id"] = instance
    c = Consumer(conf)
    owned = set()

    def show(word, partitions):
        say(word + " " + ",".join(str(p) for p in sorted(partitions)))

    def on_assign(consumer, partitions):
        # Incremental: only what is added.
        owned.update(p.partition for p in partitions)
        show("assigned", owned)

    def on_revoke(consumer, partitions):
        gone = {p.partition for p in partitions}
        if gone:
            # Commit what was processed before the partitions move on.
            try:
                consumer.commit(asynchronous=False)
            except Exception:
                pass
        owned.difference_update(gone)
        show("revoked", gone)
        show("assigned", owned)

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    while not stop:
        msgs = c.consume(500, 0.2)
        for m in msgs:
            if m.error() is None:
                say(f"rec {m.value().decode()}")
        if msgs:
            try:
                c.commit(asynchronous=False)
            except Exception as e:
                say(f"commit failed {e}")
    c.close()
elif lib == "kafka-python":
    from kafka import ConsumerRebalanceListener, KafkaConsumer

    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        metadata_max_age_ms=2000,
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            say("assigned " + ",".join(str(p.partition) for p in sorted(c.assignment(), key=lambda p: p.partition)))

    c.subscribe([topic], listener=Listener())
    while not stop:
        batches = c.poll(timeout_ms=200, max_records=500)
        n = 0
        for records in batches.values():
            for r in records:
                say(f"rec {r.value.decode()}")
                n += 1
        if n:
            c.commit()
    c.close()
else:
    sys.exit(f"unknown client {lib}")
say("closed")
