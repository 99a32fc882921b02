#!/usr/bin/env bash
# Runs the standard workloads (perf/workloads/*.toml) against one broker and
# writes a dated report with the machine's description to perf/reports/.
#
#   perf/run.sh                        # starts `corelog serve` on a temp dir
#   BROKER=10.0.0.5:9400 perf/run.sh   # an already running broker
#   DURATION=5 perf/run.sh             # shorter runs (seconds measured)
#
# Each run's full output (summary.json, .hgrm, .hlog, chart.svg) goes to
# perf/results/<date-time>/<workload>/ (not committed); the report links
# the figures together: throughput, produce-ack and end-to-end latency, and
# the first workload as fractions of a raw loopback TCP sink and raw
# O_DIRECT writes measured in the same run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stamp=$(date -u +%Y%m%d-%H%M%S)
day=$(date -u +%Y-%m-%d)
results="perf/results/$stamp"
report="perf/reports/$day-suite.md"
mkdir -p "$results" perf/reports

cargo build --release --quiet
bin="$root/target/release/corelog"

data=""
server=""
cleanup() {
    if [[ -n "$server" ]]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [[ -n "$data" ]]; then rm -rf "$data"; fi
}
trap cleanup EXIT

if [[ -z "${BROKER:-}" ]]; then
    data=$(mktemp -d "${TMPDIR:-/tmp}/corelog-perf-XXXXXX")
    port=${PORT:-19400}
    "$bin" serve --data-dir "$data/data" --listen "127.0.0.1:$port" --kafka-listen none --http-listen 127.0.0.1:0 \
        >"$results/broker.out" 2>"$results/broker.log" &
    server=$!
    for _ in $(seq 1 300); do
        if grep -q "corelog listening on" "$results/broker.out" 2>/dev/null; then break; fi
        if ! kill -0 "$server" 2>/dev/null; then
            echo "corelog serve exited; see $results/broker.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    grep -q "corelog listening on" "$results/broker.out" || {
        echo "corelog serve did not start within 30 s; see $results/broker.log" >&2
        exit 1
    }
    BROKER="127.0.0.1:$port"
    broker_desc="corelog serve on 127.0.0.1:$port, all online CPUs, data on $(df -h --output=source "$data" | tail -1) ($data)"
else
    broker_desc="external broker at $BROKER"
fi

extra=()
if [[ -n "${DURATION:-}" ]]; then extra+=(--duration "$DURATION"); fi

run() { # name, extra flags...
    local name=$1
    shift
    echo "== $name" >&2
    "$bin" bench --workload "perf/workloads/$name.toml" --broker "$BROKER" \
        --quiet --out "$results/$name" "${extra[@]}" "$@" | tee "$results/$name.txt"
}

for file in perf/workloads/*.toml; do
    name=$(basename "$file" .toml)
    case "$name" in
    01-max-rate) run "$name" --baseline ;;
    02-half-rate)
        half=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["produce"]["msgs_per_s"] / 2))' \
            "$results/01-max-rate/summary.json")
        run "$name" --rate "$half"
        ;;
    *) run "$name" ;;
    esac
done

python3 - "$results" "$report" "$broker_desc" <<'PY'
import json, os, platform, subprocess, sys

results, report, broker = sys.argv[1:4]

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""

runs = []
for name in sorted(os.listdir(results)):
    path = os.path.join(results, name, "summary.json")
    if os.path.isfile(path):
        with open(path) as f:
            runs.append((name, json.load(f)))
if not runs:
    sys.exit("no results to report")
first = runs[0][1]
m = first["machine"]
disk = sh("lsblk -d -o NAME,MODEL,SIZE,ROTA 2>/dev/null | head -5")

def us(v):
    if v is None:
        return "–"
    return f"{v/1000:.1f} ms" if v >= 10000 else f"{v} µs"

def lat(s, key, p):
    l = s.get(key)
    return us(l[p]) if l else "–"

out = []
out.append(f"# Standard workloads — {first['started_at'][:10]}\n")
out.append("Produced by `perf/run.sh` (workloads in `perf/workloads/`). "
           "Throughput counts record values (10^6 bytes per MB) over the measured "
           "seconds, after the warm-up; latency is from HDR histograms of every "
           "measured message. Produce latency runs from the scheduled send time "
           "(open loop, 02) or the send call (closed loop, the others) to the ack; "
           "end-to-end from the same instant to the consumer's receipt.\n")
out.append("## Machine\n")
out.append(f"- CPU: {m['cpu_model']}, {m['cores']} online cores; memory {m['memory_gib']} GiB")
out.append(f"- Kernel: {m['kernel']} ({platform.machine()})")
out.append(f"- Broker: {broker}")
out.append(f"- corelog {first['corelog_version']} at commit {first['git_commit']}")
if disk:
    out.append("- Disks:\n\n```\n" + disk + "\n```")
out.append("")
out.append("## Results\n")
out.append("| workload | produced MB/s | msgs/s | consumed MB/s | ack p50 | ack p99 | ack p99.9 | e2e p50 | e2e p99 | e2e p99.9 | e2e max | errors |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, s in runs:
    p = s.get("produce") or {}
    c = s.get("consume") or {}
    out.append(
        f"| {name} | {p.get('mb_per_s', 0):.1f} | {p.get('msgs_per_s', 0):,.0f} | {c.get('mb_per_s', 0):.1f} | "
        f"{lat(s, 'produce_latency_us', 'p50')} | {lat(s, 'produce_latency_us', 'p99')} | {lat(s, 'produce_latency_us', 'p999')} | "
        f"{lat(s, 'e2e_latency_us', 'p50')} | {lat(s, 'e2e_latency_us', 'p99')} | {lat(s, 'e2e_latency_us', 'p999')} | "
        f"{lat(s, 'e2e_latency_us', 'max')} | {s.get('errors', 0)} |")
out.append("")
out.append("## Workloads\n")
for name, s in runs:
    w = s["workload"]
    rate = f"{w['rate']:,.0f} msg/s open loop" if w.get("rate") else "unlimited"
    out.append(f"- **{name}**: {w['mode']}, {w['producers']} producer(s), {w['consumers']} consumer(s), "
               f"{w['topics']} topic(s) × {w['partitions']} partition(s), {w['message_size']['min']}"
               f"{'' if w['message_size']['min'] == w['message_size']['max'] else '..' + str(w['message_size']['max'])} B, "
               f"acks={w['acks']}, fsync {w['fsync']}, rate {rate}, {s['measured_seconds']:.1f} s measured "
               f"after {w['warmup_secs']} s warm-up.")
b = first.get("baseline")
if b:
    p = first.get("produce") or {}
    out.append("")
    out.append("## Against the raw limits (01-max-rate, same run)\n")
    out.append(f"Baseline for {b['bytes']/1e6:.0f} MB: loopback TCP sink {b['tcp_mb_per_s']:.0f} MB/s, "
               f"O_DIRECT writes {b['disk_mb_per_s']:.0f} MB/s. corelog produced "
               f"{p.get('mb_per_s', 0):.0f} MB/s while a consumer read it all back: "
               f"{p.get('mb_per_s', 0)/b['tcp_mb_per_s']:.2f} of the TCP sink, "
               f"{p.get('mb_per_s', 0)/b['disk_mb_per_s']:.2f} of the disk.")
out.append("")
out.append(f"Raw results (not committed): `{results}/`.")
with open(report, "w") as f:
    f.write("\n".join(out) + "\n")
print(f"report: {report}")
PY
