"""A consumer-group member: subscribes to TOPIC in GROUP and prints, flushed
line by line, "assigned <p,p,...>" after every rebalance and "rec <value>"
for every record, committing synchronously after each batch it processed.
SIGTERM closes it cleanly (it leaves the group); SIGKILL does not.

usage: group_member.py confluent|kafka-python BOOTSTRAP TOPIC GROUP [INSTANCE_ID]
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
