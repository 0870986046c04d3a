#!/usr/bin/env bash
# The resilience toolkit's combined success path (breaker + retry + idempotency hit) and each
# piece alone, 1 and 2 threads, in ns/op and allocations/op. No reference program can run the
# guide's Go code here, so its published 1200 ns/op is the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
B=resilience
bench_build
cmake --build --preset release --target gantry_bench_resilience >/dev/null
emit_load $B
LOG_LEVEL=warn build/release/bench/gantry_bench_resilience --benchmark_min_time=${BENCH_MIN_TIME:-1} \
  --benchmark_repetitions=1
