#!/usr/bin/env bash
# Kafka protocol vs native protocol, and compressed vs uncompressed, on the
# same machine in the same run: every workload is run REPEAT times (3 by
# default) for each protocol, alternating, each against a fresh embedded
# broker; the report quotes medians and the Kafka/native ratio.
#
#   perf/kafka-vs-native.sh               # writes perf/reports/<date>-kafka.md
#   DURATION=10 REPEAT=5 perf/kafka-vs-native.sh
#
# Full outputs go to perf/results/<date-time>-kafka/ (not committed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${DURATION:-5}
warmup=${WARMUP:-2}
repeat=${REPEAT:-3}
stamp=$(date -u +%Y%m%d-%H%M%S)
day=$(date -u +%Y-%m-%d)
results="perf/results/$stamp-kafka"
report="perf/reports/$day-kafka.md"
mkdir -p "$results" perf/reports
cargo build --release --quiet
bin="$root/target/release/corelog"

# run NAME ARGS...: one bench run into $results/NAME/
run() {
    local name=$1
    shift
    "$bin" bench --quiet --duration "$duration" --warmup "$warmup" --out "$results/$name" "$@" \
        >"$results/$name.txt" 2>&1 || { echo "run $name failed: see $results/$name.txt" >&2; exit 1; }
}

for i in $(seq 1 "$repeat"); do
    for proto in native kafka; do
        run "e2e-$proto-$i" --protocol "$proto"
        run "produce-$proto-$i" --protocol "$proto" --mode produce
        run "consume-$proto-$i" --protocol "$proto" --mode consume --messages 2000000
        for codec in gzip snappy lz4 zstd; do
            run "produce-$proto-$codec-$i" --protocol "$proto" --mode produce --compression "$codec"
        done
    done
done
run "baseline" --mode produce --baseline

python3 - "$results" "$report" "$repeat" "$duration" "$warmup" <<'PY'
import json, os, statistics, subprocess, sys
results, report, repeat, duration, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def summary(name):
    with open(os.path.join(results, name, "summary.json")) as f:
        return json.load(f)
def med(values):
    return statistics.median(values)
def figures(prefix, side):
    runs = [summary(f"{prefix}-{i}") for i in range(1, repeat + 1)]
    mbs = [r[side]["mb_per_s"] for r in runs]
    lat_key = "e2e_latency_us" if side == "consume" and runs[0].get("e2e_latency_us") else "produce_latency_us"
    p50 = [r[lat_key]["p50"] for r in runs if r.get(lat_key)]
    p99 = [r[lat_key]["p99"] for r in runs if r.get(lat_key)]
    return med(mbs), mbs, (med(p50) if p50 else None), (med(p99) if p99 else None)
base = summary("baseline")
m = base["machine"]
lines = []
w = lines.append
w(f"# Kafka protocol vs native protocol, compressed vs uncompressed — {os.path.basename(report)[:10]}")
w("")
w(f"Machine: {m.get('cpu_model','?')}, {m.get('cores','?')} cores, kernel {m.get('kernel','?')}, "
  f"{m.get('memory_gib', m.get('memory', '?'))} GiB; corelog {base['corelog_version']} ({base['git_commit']}). "
  "Shared and noisy: every figure is the median of the runs listed, protocols alternating in one session.")
w("")
w(f"Command: `perf/kafka-vs-native.sh` (DURATION={duration} WARMUP={warmup} REPEAT={repeat}): `corelog bench` against an "
  "embedded broker (2 shards), 1 topic × 4 partitions, 1 KiB values, 1 producer and 1 consumer, acks=1, fsync never; "
  "`--protocol native` (corelog's flatbuffers protocol, shard-aware clients) or `--protocol kafka` (the Kafka listener, "
  "Produce v7 / Fetch v11 as librdkafka 2.0 sends them). MB/s is record-value bytes (10^6) per measured second.")
w("")
w("## Kafka vs native")
w("")
w("| workload | native MB/s (median; runs) | Kafka MB/s (median; runs) | Kafka / native | native p50 / p99 | Kafka p50 / p99 |")
w("|---|---|---|---|---|---|")
def fmt_lat(p50, p99):
    if p50 is None: return "—"
    return f"{p50/1000:.1f} / {p99/1000:.1f} ms"
for label, prefix, side in [("e2e (produce and consume)", "e2e", "consume"), ("produce only", "produce", "produce"), ("consume a backlog", "consume", "consume")]:
    n, nr, n50, n99 = figures(f"{prefix}-native", side)
    k, kr, k50, k99 = figures(f"{prefix}-kafka", side)
    w(f"| {label} | {n:.0f} ({', '.join(f'{x:.0f}' for x in nr)}) | {k:.0f} ({', '.join(f'{x:.0f}' for x in kr)}) | {k/n:.2f} | {fmt_lat(n50, n99)} | {fmt_lat(k50, k99)} |")
w("")
w("Latency: produce→ack for produce, end to end for e2e; none for a backlog read.")
w("")
w("## Compressed produce")
w("")
w("| codec | native MB/s | Kafka MB/s | vs uncompressed (native / Kafka) |")
w("|---|---|---|---|")
n0 = figures("produce-native", "produce")[0]
k0 = figures("produce-kafka", "produce")[0]
w(f"| none | {n0:.0f} | {k0:.0f} | 1.00 / 1.00 |")
for codec in ["gzip", "snappy", "lz4", "zstd"]:
    n = figures(f"produce-native-{codec}", "produce")[0]
    k = figures(f"produce-kafka-{codec}", "produce")[0]
    w(f"| {codec} | {n:.0f} | {k:.0f} | {n/n0:.2f} / {k/k0:.2f} |")
w("")
w("The bench's values are the same byte repeated (with a timestamp and a sequence number), so they compress "
  "to almost nothing: these figures are the cost of compressing, validating (the broker decompresses every "
  "batch to check it) and decompressing, not what real data would gain.")
w("")
b = base.get("baseline") or {}
w("## Baselines in the same session")
w("")
w(f"Loopback TCP sink: {b.get('tcp_mb_per_s', 0):.0f} MB/s; O_DIRECT writes: {b.get('disk_mb_per_s', 0):.0f} MB/s "
  f"(the same bytes as a native produce run, `corelog bench --mode produce --baseline`: "
  f"{base['produce']['mb_per_s']:.0f} MB/s).")
with open(report, "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "report: $report"
