#!/usr/bin/env bash
# Broker CPU seconds per GB produced, read from /proc (utime + stime of the
# `corelog serve` process) around a fixed-rate produce-only run, for one or
# more corelog binaries in turn (e.g. the previous main's and this one's):
#
#   perf/cpu-per-gb.sh old/target/release/corelog target/release/corelog
#
# Each binary gets a fresh broker (--cores 2) on a fresh temporary data
# directory and RUNS runs (default 3) of 1 producer, 1 partition, 1000-byte
# messages, 100 KB batches at RATE msg/s (default 300000) for DURATION s
# (default 10) after 2 s of warm-up; the bench is the last binary given.
# Prints one line per run and the median per binary.
set -euo pipefail
runs=${RUNS:-3}
rate=${RATE:-300000}
duration=${DURATION:-10}
bench_bin=${!#}
hz=$(getconf CLK_TCK)
for bin in "$@"; do
    data=$(mktemp -d "${TMPDIR:-/tmp}/corelog-cpu-XXXXXX")
    "$bin" serve --data-dir "$data/d" --listen 127.0.0.1:0 --kafka-listen none --http-listen none --cores 2 \
        >"$data/out" 2>"$data/log" &
    pid=$!
    for _ in $(seq 1 300); do
        grep -q "listening on" "$data/out" 2>/dev/null && break
        sleep 0.1
    done
    addr=$(grep -o "listening on [0-9.]*:[0-9]*" "$data/out" | awk '{print $3}')
    figures=()
    for i in $(seq 1 "$runs"); do
        before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        "$bench_bin" bench --broker "$addr" --mode produce --partitions 1 --message-size 1000 \
            --batch-bytes 100000 --rate "$rate" --warmup 2 --duration "$duration" \
            --topic-prefix "cpu$i" --quiet --out "$data/bench$i" >/dev/null
        after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        # The CPU window covers the warm-up too; so do the bytes counted here.
        secs=$(python3 -c "print(($after - $before) / $hz)")
        total=$(python3 -c "
import json; d=json.load(open('$data/bench$i/summary.json'))
print(sum(s['produced_bytes'] for s in d['per_second']))")
        per_gb=$(python3 -c "print(round($secs / ($total / 1e9), 3))")
        echo "$bin run $i: ${secs} CPU s for $((total / 1000000)) MB produced = ${per_gb} s/GB"
        figures+=("$per_gb")
    done
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$data"
    printf '%s\n' "${figures[@]}" | sort -n | awk -v b="$bin" '{a[NR]=$1} END {print b ": median " a[int((NR+1)/2)] " CPU s per GB produced"}'
done
