#!/usr/bin/env bash
# Builds the fuzz targets with coverage instrumentation and runs libFuzzer
# on each, starting from the committed seeds (fuzz/corpus/<target>/).
#
#   fuzz/run.sh [SECONDS] [TARGET...]   # each target for SECONDS (default 300)
#   fuzz/run.sh --runs N [TARGET...]    # each target for N executions, at most 60 s (CI)
#   fuzz/run.sh --build                 # build only
#
# Needs no cargo-fuzz: it builds exactly as `cargo fuzz build --sanitizer
# none --release` (cargo-fuzz 0.13) does, with the same flags on the
# stable toolchain, into the same directory, so both share a build; with
# cargo-fuzz installed, `cargo fuzz run --sanitizer none TARGET` works too.
#
# New inputs a run finds go to fuzz/work/<target>/ (not committed); a crash
# goes to fuzz/artifacts/<target>/ and fails the run. Replay one with
# `fuzz/target/x86_64-unknown-linux-gnu/release/TARGET FILE`. Each run's
# summary line (executions, rate, coverage) is printed at the end.
set -euo pipefail
cd "$(dirname "$0")"

mode=time
limit=300
case "${1:-}" in
    --runs) mode=runs; limit=${2:?--runs needs a number}; shift 2 ;;
    --build) mode=build; shift ;;
    '' | *[!0-9]*) ;;
    *) limit=$1; shift ;;
esac
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(frame_decoder record_batch kafka_request segment_recovery)
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
# Exactly what `cargo fuzz build --sanitizer none --codegen-units 16`
# (cargo-fuzz 0.13) runs: SanitizerCoverage feeding libFuzzer (inline 8-bit
# counters, PC table, compare tracing, stack depth), --cfg fuzzing, debug
# assertions (overflow checks included: an overflow is a finding even where
# a release build would wrap), 16 codegen units for a faster build. All
# stable rustc options.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions \
-Ccodegen-units=16"
cargo build --manifest-path Cargo.toml --target "$triple" --release \
    --config 'profile.release.debug="line-tables-only"' --locked --bins
[[ $mode == build ]] && exit 0

bin=target/$triple/release
# The recovery target writes a data directory per input: on tmpfs it runs
# some 25 times faster than on a disk (glommio's direct I/O works there on
# Linux 6.6 and later). TMPDIR set by the caller wins.
if [[ -z "${TMPDIR:-}" && -d /dev/shm && -w /dev/shm ]]; then
    export TMPDIR=/dev/shm
fi
status=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t"
    if [[ $mode == runs ]]; then
        # A time cap as well, should a target turn slow.
        bound=(-runs="$limit" -max_total_time=60)
    else
        bound=(-max_total_time="$limit")
    fi
    echo "== $t (${bound[*]})"
    log=$(mktemp)
    # New inputs go to work/; the committed corpus is read only.
    if ! "$bin/$t" "${bound[@]}" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "work/$t" "corpus/$t" 2>"$log"; then
        status=1
        tail -n 60 "$log"
    fi
    line=$(grep -aE '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    summary+=("$t: ${execs:-?} execs, ${rate:-?}/s; ${line:-no summary line}")
    rm -f "$log"
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $status
