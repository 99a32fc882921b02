#!/usr/bin/env bash
# The shard-aware Kafka mode (--kafka-shard-brokers) vs the normal one, in
# one session, modes alternating, every run REPEAT times (3 by default):
#
#  1. `corelog bench --protocol kafka` (the Rust Kafka client) against an
#     embedded 2-shard broker, with and without --kafka-shard-brokers;
#  2. confluent-kafka (perf/kafka_shard_probe.py) against an external
#     `corelog serve --cores 2`: connections per client, time to the first
#     acknowledgement, produce throughput and latency, and the cross-core
#     hops `corelog stats` counted.
#
#   perf/kafka-shard-aware.sh        # writes perf/reports/<date>-kafka-shard-aware.md
#   DURATION=10 REPEAT=5 perf/kafka-shard-aware.sh
#
# Loopback only, ports picked by the OS. Full outputs go to
# perf/results/<date-time>-kafka-shard-aware/ (not committed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${DURATION:-5}
warmup=${WARMUP:-2}
repeat=${REPEAT:-3}
records=${RECORDS:-1000000}
stamp=$(date -u +%Y%m%d-%H%M%S)
day=$(date -u +%Y-%m-%d)
results="perf/results/$stamp-kafka-shard-aware"
report=${REPORT:-perf/reports/$day-kafka-shard-aware.md}
mkdir -p "$results" "$(dirname "$report")"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/corelog"

# bench NAME ARGS...: one `corelog bench` run into $results/NAME/
bench() {
    local name=$1
    shift
    "$bin" bench --quiet --protocol kafka --cores 2 --duration "$duration" --warmup "$warmup" \
        --out "$results/$name" "$@" >"$results/$name.txt" 2>&1 ||
        { echo "run $name failed: see $results/$name.txt" >&2; exit 1; }
}

flag_of() { if [ "$1" = shard ]; then echo --kafka-shard-brokers; fi; }

echo "== 1. corelog bench, embedded broker"
for i in $(seq 1 "$repeat"); do
    for mode in normal shard; do
        flag=$(flag_of "$mode")
        bench "e2e-$mode-$i" $flag
        bench "produce-$mode-$i" --mode produce $flag
        bench "small-$mode-$i" --mode produce --message-size 100 $flag
        bench "consume-$mode-$i" --mode consume --messages 2000000 $flag
        bench "rate-$mode-$i" --rate 20000 $flag
    done
done
bench "baseline" --mode produce --baseline

# serve MODE DIR: starts `corelog serve --cores 2` and waits (at most 30 s)
# for its listening line; sets broker_pid, native and kafka.
serve() {
    local dir=$2
    mkdir -p "$dir"
    "$bin" serve --cores 2 --listen 127.0.0.1:0 --kafka-listen 127.0.0.1:0 --http-listen none $(flag_of "$1") \
        --data-dir "$dir/data" >"$dir/stdout" 2>"$dir/stderr" &
    broker_pid=$!
    for _ in $(seq 300); do
        grep -q "^corelog listening on" "$dir/stdout" && break
        sleep 0.1
    done
    local line
    line=$(grep -m 1 "^corelog listening on" "$dir/stdout")
    [[ $line == "corelog listening on "* ]] || { echo "broker did not start: $dir/stderr" >&2; kill "$broker_pid"; exit 1; }
    native=$(awk '{print $4}' <<<"$line")
    kafka=$(grep -o 'kafka=[^ ]*' <<<"$line" | cut -d= -f2)
}

stop() {
    kill -TERM "$broker_pid"
    wait "$broker_pid" || true
}

echo "== 2. confluent-kafka against corelog serve --cores 2"
probe="timeout 300 python3 $root/perf/kafka_shard_probe.py"
for i in $(seq 1 "$repeat"); do
    for mode in normal shard; do
        dir=$(mktemp -d)
        serve "$mode" "$dir"
        "$bin" topic create t --partitions 4 --broker "$native" >/dev/null
        $probe "$kafka" t 4 connect 20 >"$results/connect-$mode-$i.json"
        $probe "$kafka" t 4 produce "$records" 1024 >"$results/cf-produce-$mode-$i.json"
        $probe "$kafka" t 4 produce "$records" 100 >"$results/cf-small-$mode-$i.json"
        $probe "$kafka" t 4 serial 5000 >"$results/cf-serial-$mode-$i.json"
        "$bin" stats --broker "$native" >"$results/stats-$mode-$i.txt"
        stop
        rm -rf "$dir"
    done
done

python3 - "$results" "$report" "$repeat" "$duration" "$warmup" "$records" <<'PY'
import json, os, statistics, sys
results, report, repeat, duration, warmup, records = sys.argv[1:7]
repeat = int(repeat)
med = statistics.median

def load(name):
    with open(os.path.join(results, name)) as f:
        return json.load(f)

def bench(prefix, side, latency):
    runs = [load(f"{prefix}-{i}/summary.json") for i in range(1, repeat + 1)]
    mbs = [r[side]["mb_per_s"] for r in runs]
    msgs = [r[side]["msgs_per_s"] for r in runs]
    lat = [r[latency] for r in runs if latency and r.get(latency)]
    p50 = med([l["p50"] for l in lat]) if lat else None
    p99 = med([l["p99"] for l in lat]) if lat else None
    return med(mbs), mbs, med(msgs), p50, p99

def lat(p50, p99, unit_us=True):
    if p50 is None:
        return "—"
    if unit_us:
        return f"{p50/1000:.2f} / {p99/1000:.1f} ms"
    return f"{p50:.2f} / {p99:.1f} ms"

def runs_text(values, fmt="{:.0f}"):
    return ", ".join(fmt.format(v) for v in values)

base = load("baseline/summary.json")
m = base["machine"]
lines = []
w = lines.append
w(f"Machine: {m.get('cpu_model','?')}, {m.get('cores','?')} vCPUs (shared VM), kernel {m.get('kernel','?')}, "
  f"{m.get('memory_gib', m.get('memory', '?'))} GiB; corelog {base['corelog_version']} ({base['git_commit']}). "
  f"Every figure is the median of {repeat} runs (runs listed), modes alternating in one session.")
w("")
w("### 1. `corelog bench --protocol kafka`, embedded 2-shard broker")
w("")
w(f"DURATION={duration} s measured after WARMUP={warmup} s; 1 topic × 4 partitions, 1 producer, 1 consumer, "
  "acks=1, fsync never, linger 5 ms. Latency: produce→ack for produce runs, end to end otherwise.")
w("")
w("| workload | normal MB/s (runs) | shard-aware MB/s (runs) | shard / normal | normal p50 / p99 | shard-aware p50 / p99 |")
w("|---|---|---|---|---|---|")
rows = [
    ("e2e, 1 KiB, as fast as possible", "e2e", "consume", "e2e_latency_us"),
    ("produce, 1 KiB", "produce", "produce", "produce_latency_us"),
    ("produce, 100 B", "small", "produce", "produce_latency_us"),
    ("consume a 2 M-record backlog", "consume", "consume", None),
    ("e2e at 20,000 msg/s, 1 KiB", "rate", "consume", "e2e_latency_us"),
]
for label, prefix, side, latency in rows:
    n, nr, nm, n50, n99 = bench(f"{prefix}-normal", side, latency)
    s, sr, sm, s50, s99 = bench(f"{prefix}-shard", side, latency)
    w(f"| {label} | {n:.0f} ({runs_text(nr)}) | {s:.0f} ({runs_text(sr)}) | {s/n:.2f} | {lat(n50, n99)} | {lat(s50, s99)} |")
b = base.get("baseline") or {}
w("")
w(f"Raw baselines in the same session (`corelog bench --mode produce --baseline`): loopback TCP sink "
  f"{b.get('tcp_mb_per_s', 0):.0f} MB/s, O_DIRECT writes {b.get('disk_mb_per_s', 0):.0f} MB/s.")
w("")
w("### 2. confluent-kafka against `corelog serve --cores 2`")
w("")
w(f"`perf/kafka_shard_probe.py`; topic of 4 partitions (2 per shard). Connect: 20 new producers per run, each "
  f"sends one 100 B record to every partition (acks=1, linger 0) and flushes. Produce: {int(records):,} records "
  "round robin over the partitions, acks=1, linger 5 ms, one Python producer (Python-bound); latency is "
  "librdkafka's produce()→ack time per record, so it includes queueing in the client under saturation. "
  "Serial: 5,000 records of 100 B, one at a time (produce, flush), partitions in turn.")
w("")

def probe(prefix, key):
    return [load(f"{prefix}-{i}.json")[key] for i in range(1, repeat + 1)]

def hops(mode):
    out = []
    for i in range(1, repeat + 1):
        with open(os.path.join(results, f"stats-{mode}-{i}.txt")) as f:
            rows = [l.split() for l in f.read().splitlines()[1:] if l.strip()]
        out.append(sum(int(r[4]) for r in rows))
    return out

w("| | normal | shard-aware |")
w("|---|---|---|")
for mode_key, label in [("connections", "connections per producer (after its first flush)")]:
    cn = sorted({c for run in probe("connect-normal", "connections") for c in run})
    cs = sorted({c for run in probe("connect-shard", "connections") for c in run})
    w(f"| {label} | {', '.join(map(str, cn))} | {', '.join(map(str, cs))} |")
fn = probe("connect-normal", "first_ack_ms_median")
fs = probe("connect-shard", "first_ack_ms_median")
w(f"| new producer → first ack, ms (median of 20; runs) | {med(fn):.2f} ({runs_text(fn, '{:.2f}')}) | {med(fs):.2f} ({runs_text(fs, '{:.2f}')}) |")
an = probe("connect-normal", "all_acked_ms_median")
as_ = probe("connect-shard", "all_acked_ms_median")
w(f"| new producer → all 4 partitions acked, ms | {med(an):.2f} ({runs_text(an, '{:.2f}')}) | {med(as_):.2f} ({runs_text(as_, '{:.2f}')}) |")
slow_n = sum(1 for run in probe("connect-normal", "first_ack_ms") for x in run if x > 50)
slow_s = sum(1 for run in probe("connect-shard", "first_ack_ms") for x in run if x > 50)
w(f"| trials whose first ack took > 50 ms | {slow_n} of {20*repeat} | {slow_s} of {20*repeat} |")
for prefix, label in [("cf-produce", "1 KiB"), ("cf-small", "100 B")]:
    rn = probe(f"{prefix}-normal", "records_per_s")
    rs = probe(f"{prefix}-shard", "records_per_s")
    w(f"| produce {label}: records/s (runs) | {med(rn):,.0f} ({runs_text(rn)}) | {med(rs):,.0f} ({runs_text(rs)}) |")
    ln50 = med(probe(f"{prefix}-normal", "latency_ms_p50")); ln99 = med(probe(f"{prefix}-normal", "latency_ms_p99"))
    ls50 = med(probe(f"{prefix}-shard", "latency_ms_p50")); ls99 = med(probe(f"{prefix}-shard", "latency_ms_p99"))
    w(f"| produce {label}: latency p50 / p99 | {lat(ln50, ln99, False)} | {lat(ls50, ls99, False)} |")
def serial_row(key, label):
    rn = probe("cf-serial-normal", key); rs = probe("cf-serial-shard", key)
    w(f"| one 100 B record at a time: round trip {label}, µs (runs) | {med(rn):.0f} ({runs_text(rn)}) | {med(rs):.0f} ({runs_text(rs)}) |")
for key, label in [("round_trip_us_mean", "mean"), ("round_trip_us_p50", "p50"), ("round_trip_us_p90", "p90"), ("round_trip_us_p99", "p99")]:
    serial_row(key, label)
hn, hs = hops("normal"), hops("shard")
w(f"| cross-core hops per run (`corelog stats`, all of it) | {runs_text(hn, '{}')} | {runs_text(hs, '{}')} |")
text = "\n".join(lines) + "\n"
with open(os.path.join(results, "figures.md"), "w") as f:
    f.write(text)
print(text)
PY
echo "figures: $results/figures.md (paste into $report with the interpretation)"
