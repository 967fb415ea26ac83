#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS (default 600) each, JOBS (default 2) at a time,
# from the committed seeds; new inputs go to $FUZZ_OUT/new/<target> (the committed corpus stays
# small), logs to $FUZZ_OUT/logs/<target>.log, crashes to fuzz/artifacts/<target>/.
# Prints one line per target: runs, coverage, new inputs, crashes. Needs nightly + cargo-fuzz.
# TARGETS="a b" limits the run. cargo-fuzz rebuilds a target when the sources changed, so run
# this from a checkout nobody edits meanwhile (e.g. a `git worktree`).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600} jobs=${JOBS:-2} out=${FUZZ_OUT:-/tmp/nodeimg-fuzz}
targets=${TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^nodeimg-fuzz$')}
mkdir -p "$out/logs"
cargo +nightly fuzz build -O $targets >/dev/null 2>&1 || cargo +nightly fuzz build -O
run() {
  local t=$1
  mkdir -p "$out/new/$t"
  nice -n 10 cargo +nightly fuzz run -O "$t" "$out/new/$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    > "$out/logs/$t.log" 2>&1 || true
  local runs cov
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/logs/$t.log")
  cov=$(grep -o 'cov: [0-9]*' "$out/logs/$t.log" | tail -n1)
  echo "$t: ${runs:-?} runs in ${secs} s, ${cov:-cov: ?}, $(ls "$out/new/$t" | wc -l) new inputs, crashes: $(ls artifacts/"$t" 2>/dev/null | grep -cE '^(crash|timeout|oom|leak)-')"
}
export -f run
export secs out
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run {}'
