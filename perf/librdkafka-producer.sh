#!/usr/bin/env bash
# A real librdkafka producer (librdkafka's own rdkafka_performance) against
# an external `corelog serve --cores 2`: 1 KiB records, acks=all, idempotent
# and not, alternating, REPEAT times each (3 by default).
#   1. throughput: COUNT records (1,000,000) as fast as the producer goes;
#   2. latency: RATE records/s (20,000 = 20 MB/s) for 10 s, per-message
#      produce -> delivery-report latency (-l -A), percentiles computed here.
#
#   RDKAFKA_PERFORMANCE=/path/to/rdkafka_performance perf/librdkafka-producer.sh
#
# rdkafka_performance is not packaged; build it from librdkafka's sources at
# the version of the installed library (Debian 12: 2.0.2):
#   apt-get install librdkafka-dev
#   git clone --branch v2.0.2 https://github.com/confluentinc/librdkafka
#   cd librdkafka && touch config.h && cd examples &&
#   gcc -O2 -I../src -o rdkafka_performance rdkafka_performance.c -lrdkafka -lpthread -lz -lm
# Output: perf/results/<date-time>-librdkafka/ (not committed); the figures
# are summarised by hand in perf/reports/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
perf=${RDKAFKA_PERFORMANCE:?set RDKAFKA_PERFORMANCE to an rdkafka_performance binary}
count=${COUNT:-1000000}
rate=${RATE:-20000}
repeat=${REPEAT:-3}
results="perf/results/$(date -u +%Y%m%d-%H%M%S)-librdkafka"
mkdir -p "$results"
cargo build --release --quiet
bin="$root/target/release/corelog"
data=$(mktemp -d)
"$bin" serve --cores 2 --data-dir "$data" --listen 127.0.0.1:0 --kafka-listen 127.0.0.1:0 --http-listen none \
    >"$results/broker.out" 2>"$results/broker.err" &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null; wait $broker_pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 300); do
    grep -q "kafka=" "$results/broker.out" && break
    sleep 0.1
done
native=$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' "$results/broker.out")
kafka=$(sed -n 's/.*kafka=\([^ ]*\).*/\1/p' "$results/broker.out")

# percentiles FILE: p50 p99 p99.9 max of the latency column (µs) in ms
percentiles() {
    python3 - "$1" <<'PY'
import sys
v = sorted(int(l) for l in open(sys.argv[1]) if l.strip().isdigit())  # µs, one per line
p = lambda q: v[min(len(v) - 1, int(q * len(v)))] / 1000
print(f"records={len(v)} p50_ms={p(0.5):.2f} p99_ms={p(0.99):.2f} p999_ms={p(0.999):.2f} max_ms={v[-1] / 1000:.2f}")
PY
}

for i in $(seq 1 "$repeat"); do
    for idem in false true; do
        topic="t-$idem-$i"
        "$bin" topic create "$topic" --partitions 4 --broker "$native" >/dev/null
        "$perf" -P -t "$topic" -b "$kafka" -s 1024 -c "$count" -a -1 \
            -X enable.idempotence=$idem -X linger.ms=5 2>&1 | grep -v CONFWARN \
            >"$results/throughput-$idem-$i.txt"
        echo "throughput idempotent=$idem run $i: $(tail -1 "$results/throughput-$idem-$i.txt")"
        topic="l-$idem-$i"
        "$bin" topic create "$topic" --partitions 4 --broker "$native" >/dev/null
        "$perf" -P -t "$topic" -b "$kafka" -s 1024 -c $((rate * 10)) -r "$rate" -a -1 -l \
            -A "$results/latency-$idem-$i.txt" \
            -X enable.idempotence=$idem -X linger.ms=5 >/dev/null 2>&1
        echo "latency idempotent=$idem run $i: $(percentiles "$results/latency-$idem-$i.txt")"
    done
done | tee "$results/summary.txt"
