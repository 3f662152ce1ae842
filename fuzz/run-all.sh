#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 10 million) or MAX_SECONDS, whichever
# comes first, seeding the corpus from fuzz/regressions/. Crashes land in fuzz/artifacts/;
# copy a minimized one into fuzz/regressions/<target>/ so `cargo test` replays it forever.
#   cargo install cargo-fuzz --locked; fuzz/run-all.sh
# Builds without a sanitizer (-s none): the stable toolchain ships no sanitizer runtimes.
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-10000000}
MAX_SECONDS=${MAX_SECONDS:-1800}
for target in ${TARGETS:-route sigv4 bencode announce peer_wire}; do
  mkdir -p "corpus/$target"
  cp -n regressions/"$target"/* "corpus/$target/" 2>/dev/null || true
  echo "== $target"
  cargo fuzz run -s none -O "$target" "corpus/$target" -- \
    -runs="$RUNS" -max_total_time="$MAX_SECONDS" -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|Done|ERROR|panicked|SUMMARY" || true
done
