#!/usr/bin/env bash
# TLS vs plaintext on the native listener, same machine, same run: an
# external `corelog serve` (fresh data directory each time) driven by
# `corelog bench --broker`, plaintext and TLS alternating REPEAT times (3 by
# default) for produce-only and end-to-end workloads of 1 KiB records; then
# the TLS handshake rate (connections per second, each a full TLS 1.3
# handshake with an ECDSA P-256 certificate, then closed) beside plain TCP
# connects to the same port kind. Medians and TLS/plaintext ratios go to
# perf/reports/<date>-tls.md; full outputs to perf/results/<stamp>-tls/.
#
#   perf/tls.sh
#   DURATION=10 REPEAT=5 perf/tls.sh
#
# Needs openssl (for the test certificate) and python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${DURATION:-8}
warmup=${WARMUP:-2}
repeat=${REPEAT:-3}
stamp=$(date -u +%Y%m%d-%H%M%S)
day=$(date -u +%Y-%m-%d)
results="$root/perf/results/$stamp-tls"
report="perf/reports/$day-tls.md"
mkdir -p "$results" perf/reports
cargo build --release --quiet
bin="$root/target/release/corelog"

# A CA and a server certificate it signs (rustls refuses a CA certificate
# as a server's).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$results/ca.key" -out "$results/ca.pem" -days 2 -subj "/CN=perf CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$results/key.pem" -out "$results/server.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$results/ext.cnf"
openssl x509 -req -in "$results/server.csr" -CA "$results/ca.pem" -CAkey "$results/ca.key" \
    -CAcreateserial -days 2 -extfile "$results/ext.cnf" -out "$results/cert.pem" 2>/dev/null

# serve NAME ARGS...: starts a broker, sets $pid and $addr.
serve() {
    local name=$1
    shift
    rm -rf "$results/data-$name"
    "$bin" serve --listen 127.0.0.1:0 --http-listen none --kafka-listen none \
        --data-dir "$results/data-$name" "$@" >"$results/serve-$name.out" 2>"$results/serve-$name.err" &
    pid=$!
    for _ in $(seq 1 300); do
        addr=$(grep -o 'listening on [0-9.:]*' "$results/serve-$name.out" 2>/dev/null | cut -d' ' -f3 || true)
        [ -n "$addr" ] && return 0
        sleep 0.1
    done
    echo "broker $name did not start: see $results/serve-$name.err" >&2
    exit 1
}

# stop NAME: stops the broker and deletes its data (runs write gigabytes).
stop() {
    kill -TERM "$pid"
    wait "$pid" || true
    rm -rf "$results/data-$1"
}

# bench NAME ARGS...
bench() {
    local name=$1
    shift
    "$bin" bench --quiet --broker "$addr" --duration "$duration" --warmup "$warmup" \
        --out "$results/$name" "$@" >"$results/$name.txt" 2>&1 \
        || { echo "bench $name failed: see $results/$name.txt" >&2; exit 1; }
}

tls=(--native-security tls --tls-cert "$results/cert.pem" --tls-key "$results/key.pem")
for i in $(seq 1 "$repeat"); do
    for kind in plain tls; do
        if [ "$kind" = tls ]; then serve "$kind-$i" "${tls[@]}"; extra=(--tls-ca "$results/ca.pem");
        else serve "$kind-$i"; extra=(); fi
        bench "produce-$kind-$i" --mode produce "${extra[@]}"
        bench "e2e-$kind-$i" --topic-prefix e2e "${extra[@]}"
        if [ "$i" = 1 ]; then
            python3 - "$addr" "$results/ca.pem" "$kind" >"$results/handshakes-$kind.json" <<'PY'
import json, multiprocessing, socket, ssl, sys, time
addr, ca, kind = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = addr.rsplit(":", 1)
SECONDS = 5
def loop(_):
    ctx = ssl.create_default_context(cafile=ca)
    n, end = 0, time.time() + SECONDS
    while time.time() < end:
        s = socket.create_connection((host, int(port)))
        if kind == "tls":
            t = ctx.wrap_socket(s, server_hostname="localhost")
            t.close()
        else:
            s.close()
        n += 1
    return n
with multiprocessing.Pool(4) as pool:
    counts = pool.map(loop, range(4))
print(json.dumps({"connections_per_s": sum(counts) / SECONDS, "clients": 4}))
PY
        fi
        stop "$kind-$i"
    done
done

python3 - "$results" "$report" "$repeat" "$duration" "$warmup" <<'PY'
import json, os, platform, statistics, subprocess, sys
results, report, repeat, duration, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def summary(name):
    with open(os.path.join(results, name, "summary.json")) as f:
        return json.load(f)
def fig(prefix, side, kind):
    runs = [summary(f"{prefix}-{kind}-{i}") for i in range(1, repeat + 1)]
    mbs = [r[side]["mb_per_s"] for r in runs]
    key = "produce_latency_us"
    p99 = [r[key]["p99"] for r in runs if r.get(key)]
    return statistics.median(mbs), mbs, (statistics.median(p99) if p99 else None)
cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"], capture_output=True, text=True).stdout.strip()
lines = [f"# TLS vs plaintext, native listener ({os.path.basename(report)[:10]})", "",
         f"Machine: {os.cpu_count()} vCPU ({cpu}), Linux {platform.release()}; shared and noisy.",
         f"Command: `perf/tls.sh` (DURATION={duration} s, WARMUP={warmup} s, REPEAT={repeat}); an external",
         "`corelog serve` on all cores, fresh data directory per run, driven by `corelog bench --broker`",
         "(1 producer, 1 consumer, 4 partitions, 1 KiB records, acks=1); plaintext and TLS runs alternate.",
         "TLS: rustls 0.23 on ring, TLS 1.3, ECDSA P-256 certificate, corelog's own client.", "",
         "| workload | plaintext MB/s (median) | TLS MB/s (median) | TLS / plaintext | produce p99 plain / TLS (µs) | runs plain | runs TLS |",
         "|---|---|---|---|---|---|---|"]
for prefix, side, label in [("produce", "produce", "produce only"), ("e2e", "produce", "end to end: produce"), ("e2e", "consume", "end to end: consume")]:
    pm, pr, pp = fig(prefix, side, "plain")
    tm, tr, tp = fig(prefix, side, "tls")
    lines.append(f"| {label} | {pm:.0f} | {tm:.0f} | {tm / pm:.2f} | {pp or 0:.0f} / {tp or 0:.0f} | {', '.join(f'{x:.0f}' for x in pr)} | {', '.join(f'{x:.0f}' for x in tr)} |")
hs = {k: json.load(open(os.path.join(results, f"handshakes-{k}.json"))) for k in ("plain", "tls")}
lines += ["", "Connection rate (4 Python clients for 5 s against the same broker; the clients are",
          "part of the cost, so this is a floor for the broker):", "",
          "| | connections/s |", "|---|---|",
          f"| plain TCP connect + close (baseline) | {hs['plain']['connections_per_s']:.0f} |",
          f"| TLS 1.3 handshake + close | {hs['tls']['connections_per_s']:.0f} |", ""]
with open(report, "w") as f:
    f.write("\n".join(lines))
print("\n".join(lines))
PY
