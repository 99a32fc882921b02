#!/usr/bin/env bash
# Starts a 3-broker cluster on this machine (one core each, loopback) and
# keeps it running until Ctrl-C, which stops all three.
#
#   perf/cluster-up.sh                 # data in ./cluster-data/node{1,2,3}
#   DATA=/tmp/c BASE=9500 perf/cluster-up.sh
#
# Broker N: native port BASE+N*10, Kafka port BASE+N*10+1, HTTP port
# BASE+N*10+2, controller port BASE+N*10+3. Try:
#   corelog topic create demo --partitions 3 --broker 127.0.0.1:$((BASE+10))
#   corelog topic list --broker 127.0.0.1:$((BASE+20))
#   corelog cluster status --http 127.0.0.1:$((BASE+32))
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${DATA:-$PWD/cluster-data}
base=${BASE:-9500}
bin=${CORELOG:-$root/target/release/corelog}
[ -x "$bin" ] || (cd "$root" && cargo build --release --quiet)
controllers="1@127.0.0.1:$((base + 13)),2@127.0.0.1:$((base + 23)),3@127.0.0.1:$((base + 33))"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for n in 1 2 3; do
    mkdir -p "$data/node$n"
    "$bin" serve --node-id "$n" --cores 1 --data-dir "$data/node$n" \
        --listen "127.0.0.1:$((base + n * 10))" \
        --kafka-listen "127.0.0.1:$((base + n * 10 + 1))" \
        --http-listen "127.0.0.1:$((base + n * 10 + 2))" \
        --controller-listen "127.0.0.1:$((base + n * 10 + 3))" \
        --controllers "$controllers" >"$data/node$n.out" 2>"$data/node$n.log" &
    pids+=($!)
done
for n in 1 2 3; do
    for _ in $(seq 300); do
        grep -q "corelog listening" "$data/node$n.out" 2>/dev/null && break
        sleep 0.1
    done
    echo "node $n: $(grep 'corelog listening' "$data/node$n.out")  (log: $data/node$n.log)"
done
echo "cluster up; Ctrl-C stops it"
wait
