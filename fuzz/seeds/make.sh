#!/usr/bin/env bash
# Remakes the seed corpora in fuzz/corpus/ from real traffic: starts a
# broker on loopback ports, records the loopback traffic to its ports with
# tcpdump, drives it with the native client (corelog topic/produce/
# consume), kcat, confluent-kafka and kafka-python, then turns what the
# clients sent (capture.py splits the capture) and the segments the broker
# wrote into seeds (each below 64 KiB, to_corpus.py). See fuzz/README.md.
#
#   fuzz/seeds/make.sh            # build corelog (debug) and remake the seeds
#   CORELOG=path/to/corelog fuzz/seeds/make.sh
#
# Needs root (for tcpdump; Debian's tcpdump package), kcat, confluent-kafka
# and kafka-python (what .ci/run installs).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if [[ -z "${CORELOG:-}" ]]; then
    cargo build --quiet --bin corelog
    CORELOG=$root/target/debug/corelog
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
native=$(free_port); shard=$(free_port); kafka=$(free_port)

tcpdump -i lo -U -s 0 -w "$work/lo.pcap" \
    "tcp and (port $native or port $shard or port $kafka)" 2>"$work/tcpdump.log" &
pids+=($!)
# One core: the shared port, the one shard's port and the Kafka port.
timeout 600 "$CORELOG" serve --data-dir "$work/data" --cores 1 --no-pin \
    --listen "127.0.0.1:$native" --shard-ports "$shard" \
    --kafka-listen "127.0.0.1:$kafka" \
    --segment-bytes 65536 --fsync never >"$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $native), 1); socket.create_connection(('127.0.0.1', $kafka), 1)" 2>/dev/null &&
        grep -q listening "$work/tcpdump.log"; then
        break
    fi
    sleep 0.1
done

nb="--broker 127.0.0.1:$native"
kb="127.0.0.1:$kafka"

# Native client: straight to the shard, and through the shared port.
t() { timeout 60 "$CORELOG" "$@"; }
t topic create native-a --partitions 2 $nb
t topic create native-b --partitions 1 --segment-bytes 65536 --retention-ms 86400000 --fsync never $nb
t topic list $nb >/dev/null
t topic describe native-a $nb >/dev/null
t topic alter native-a --set retention.ms=3600000,cleanup.policy=compact $nb >/dev/null
t topic alter native-a --delete retention.ms --validate-only $nb >/dev/null
t topic add-partitions native-b --total 2 $nb
for codec in none gzip snappy lz4 zstd; do
    seq 1 40 | sed "s/^/key-\0=value-$codec-/" |
        t produce native-a --shared --compression "$codec" --key-separator = $nb
done
seq 1 5 | t produce native-b --acks all $nb
seq 1 5 | t produce native-b --shared --acks 0 --partition 1 $nb
t consume native-a --from-beginning --max-messages 100 $nb >/dev/null
t consume native-b --shared --offset 1 --partition 0 $nb >/dev/null
t stats $nb >/dev/null
t topic create native-gone --partitions 1 $nb
t topic delete native-gone $nb

# kcat (librdkafka), every codec.
for codec in none gzip snappy lz4 zstd; do
    seq 1 30 | sed "s/^/k\0:librdkafka-$codec-/" |
        timeout 60 kcat -P -b "$kb" -t native-a -K : -z "$codec" -X topic.metadata.refresh.interval.ms=1000
done
timeout 60 kcat -C -b "$kb" -t native-a -o beginning -e -q >/dev/null
timeout 60 kcat -L -b "$kb" >/dev/null

# confluent-kafka and kafka-python: admin, produce, groups, offsets.
timeout 300 python3 - "$kb" <<'EOF'
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource
import kafka
from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic

broker = sys.argv[1]
admin = AdminClient({"bootstrap.servers": broker})
for f in admin.create_topics([NewTopic("ck-topic", 2, 1, config={"retention.ms": "600000"})]).values():
    f.result()
for f in admin.create_partitions([NewPartitions("ck-topic", 3)]).values():
    f.result()
for f in admin.describe_configs([ConfigResource("topic", "ck-topic")]).values():
    f.result()
for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
    p = Producer({"bootstrap.servers": broker, "compression.type": codec,
                  "enable.idempotence": codec == "zstd", "linger.ms": 5})
    for i in range(50):
        p.produce("ck-topic", key=f"key-{i % 7}".encode(), value=f"{codec} value {i}".encode() * 3,
                  headers=[("h", b"v"), ("n", str(i).encode())])
    p.flush(30)
c = Consumer({"bootstrap.servers": broker, "group.id": "ck-group", "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe(["ck-topic"])
got, deadline = 0, time.time() + 30
while got < 100 and time.time() < deadline:
    m = c.poll(1.0)
    if m is not None and m.error() is None:
        got += 1
        if got % 20 == 0:
            c.commit(m, asynchronous=False)
c.committed([TopicPartition("ck-topic", 0)], timeout=10)
c.close()
for f in admin.delete_topics(["ck-topic"]).values():
    f.result()

ka = KafkaAdminClient(bootstrap_servers=broker)
ka.create_topics([KNewTopic("kp-topic", 1, 1)])
p = kafka.KafkaProducer(bootstrap_servers=broker, compression_type="gzip")
for i in range(30):
    p.send("kp-topic", key=b"k%d" % i, value=b"kafka-python %d" % i, headers=[("x", b"y")])
p.flush()
p.close()
c = kafka.KafkaConsumer("kp-topic", bootstrap_servers=broker, group_id="kp-group",
                        auto_offset_reset="earliest", consumer_timeout_ms=3000)
for _ in c:
    pass
c.commit()
c.close()
ka.list_groups()
ka.describe_groups(["kp-group", "ck-group"])
ka.list_group_offsets("kp-group")
ka.delete_group_offsets("kp-group", [kafka.TopicPartition("kp-topic", 0)])
ka.delete_groups(["ck-group"])
ka.close()
EOF

# Stop the broker (its segments closed cleanly), then the capture.
kill -INT "${pids[1]}"
wait "${pids[1]}" || true
sleep 1
kill -INT "${pids[0]}"
wait "${pids[0]}" || true
python3 fuzz/seeds/capture.py "$work/lo.pcap" "$work" "native=$native,$shard" "kafka=$kafka"

out=fuzz/corpus
rm -rf "$out"
mkdir -p "$out"/{frame_decoder,record_batch,kafka_request,segment_recovery}
python3 fuzz/seeds/to_corpus.py "$work" "$out"
du -sh "$out"/*
