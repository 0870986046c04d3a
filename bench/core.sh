#!/usr/bin/env bash
# The store and bus clients the systems build on, each against a reference client of the same
# server in the same run (bench/core/core_bench.cpp):
#   pg_pool_queries_per_s / pg_raw_libpq_queries_per_s / pg_ratio_vs_raw
#       64 coroutines on one io thread through the pool (2 connections) with co_query (batched)
#       vs a plain libpq loop on 2 threads, `SELECT $1::int` (goal ratio >= 0.8)
#   pg_pool_jobs_per_s / pg_jobs_ratio_vs_raw
#       the same statements through co_run, a pool job each
#   redis_pipeline_sets_per_s / redis_benchmark_sets_per_s / redis_pipeline_ratio_vs_redis_benchmark
#       Pipeline batches of 10,000 SETs (1,000 in flight) on one connection vs
#       `redis-benchmark -P 100 -t set` (50 connections), random keys of a 1M keyspace (goal >= 0.8)
#   amqp_confirmed_publishes_per_s / amqp_raw_confirmed_publishes_per_s / amqp_confirm_ratio_vs_raw
#       Pool::publish_batch of 100 vs a raw rabbitmq-c confirm loop of 100 (goal >= 0.8)
# Servers this starts (scripts/servers) are stopped at the end; ones already running are left.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
B=core
DUR=${BENCH_DURATION:-5}
bench_build
cmake --build --preset release --target gantry_bench_core >/dev/null
CORE=build/release/bench/gantry_bench_core
bench_servers pg redis amqp
trap bench_stop_servers EXIT

emit_load $B
$CORE pg "$GANTRY_PG_URL" "$DUR"

emit_load $B
rhost=${GANTRY_REDIS_URL#redis://}; rhost=${rhost%/*}; rport=${rhost##*:}; rhost=${rhost%:*}
ours=0; ref=0
for _ in 1 2; do
  o=$($CORE redis "$GANTRY_REDIS_URL" "$DUR" | awk -F'"value":' '{split($2, a, ","); print a[1]}')
  r=$(redis-benchmark -h "$rhost" -p "$rport" -P 100 -t set -r 1000000 -n $((DUR * 600000)) --csv -q \
      | awk -F'","' '/^"SET"/ {print $2}')
  awk "BEGIN{exit !($o > $ours)}" && ours=$o
  awk "BEGIN{exit !($r > $ref)}" && ref=$r
done
redis-cli -h "$rhost" -p "$rport" FLUSHDB >/dev/null
emit $B redis_pipeline_sets_per_s "$ours" 1/s
emit $B redis_benchmark_sets_per_s "$(awk "BEGIN{printf \"%.0f\", $ref}")" 1/s
emit $B redis_pipeline_ratio_vs_redis_benchmark "$(awk "BEGIN{printf \"%.3f\", $ours / $ref}")"

emit_load $B
$CORE amqp "$GANTRY_AMQP_URL" "$DUR"
