#!/usr/bin/env bash
# Trades figures, measured in this one run on this machine (NATS JetStream and Redis from
# scripts/servers):
#   aggregate_trades_per_s       in process: wire-format JSON bytes -> updated windows, 1,000
#                                tokens, default windows, one shard per core (goal >= 2,000,000)
#   parse_only_trades_per_s      the same bytes only parsed and validated, on as many threads
#   ratio_vs_parse_only          (goal >= 0.5)
#   e2e_trades_per_s             JetStream in (durable consumer, 1,000-message fetches), windows,
#                                Redis and NATS out: a backlog of trades drained by gantry trades
#   raw_jetstream_consume_per_s  the same backlog pulled and acked by a plain cnats consumer
#   e2e_ratio_vs_raw             (goal >= 0.5; e2e goal >= 200,000)
#   redis_visible_p50_ms_at_10k / redis_visible_p99_ms_at_10k   the same at 10,000 trades/s
#   redis_visible_p50_ms_at_50k / redis_visible_p99_ms_at_50k
#                                open loop 50,000 trades/s: from a trade's scheduled send to its
#                                token's aggregate in Redis counting it (goal p99 < 2 x flush
#                                interval + 10 ms = 210 ms, printed as redis_visible_goal_ms)
#   redis_writes_per_s           gantry's writer: pipelined SET … EX of rendered aggregates (the
#                                shards render them), pipeline 100, one connection
#   redis_benchmark_set_per_s    redis-benchmark -P 100 -t set, values of the same size (its
#                                default 50 connections)
#   redis_ratio_vs_redis_benchmark  (goal >= 0.8)
#   mb_per_1k_tokens             memory for 1,000 tokens at 100 trades/s each once the longest
#                                window (1 h, simulated time) is full, dedup on (the default);
#                                measured with 100 tokens and scaled (goal < 50)
#   mb_per_1k_tokens_no_dedup    the same without the TxHash set: the windows alone
#   original_design_trades_per_s the original's design (whole trade list rewritten to Redis per
#                                trade), reimplemented here
#   speedup_vs_original_design   e2e_trades_per_s / original_design_trades_per_s
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
B=trades
N=${BENCH_TRADES:-1000000}
dir=$REPO/.run/bench/trades
rm -rf "$dir"; mkdir -p "$dir"
bench_build
cmake --build --preset release --target gantry_bench_trades >/dev/null
TB=build/release/bench/gantry_bench_trades
bench_servers nats redis
PIDS=()
stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bench_stop_servers
}
trap stop_all EXIT
ratio() { awk "BEGIN{printf \"%.3f\", $1 / $2}"; }

emit_load $B
read -r agg parse threads < <($TB inproc 1000 2000000)
emit $B aggregate_trades_per_s "$agg" trades/s
emit $B parse_only_trades_per_s "$parse" trades/s
emit $B ratio_vs_parse_only "$(ratio "$agg" "$parse")"
emit $B inproc_threads "$threads"

# End to end: the role waits (SIGSTOP) while the backlog is published, then drains it.
id=$(printf '%08x' $((RANDOM * 32768 + RANDOM)))
stream=trades-bench-$id; subj=tb$id
port=$(free_port)
build/gantry trades --address 127.0.0.1 --port "$port" --nats-url "$GANTRY_NATS_URL" --redis-addr "$GANTRY_REDIS_URL" \
  --stream "$stream" --subject "$subj.>" --durable bench --batch-processing-size 1000 --worker-queue-size 20000 \
  --max-token-processors 10000 --nats-prefix "agg$id" --access-log=false --log-level warn >"$dir/trades.log" 2>&1 &
tp=$!
PIDS+=("$tp")
wait_http "http://127.0.0.1:$port/health/ready"
kill -STOP "$tp"
$TB publish "$GANTRY_NATS_URL" "$subj" "$N" 1000 >"$dir/publish.txt"
processed() { curl -fsS "http://127.0.0.1:$port/metrics/json" | jq '.trade_processing.processed'; }
kill -CONT "$tp"
t0=$(date +%s.%N)
for _ in $(seq 1 6000); do
  [ "$(processed)" -ge "$N" ] && break
  sleep 0.02
done
t1=$(date +%s.%N)
done_n=$(processed)
e2e=$(awk "BEGIN{printf \"%.0f\", $done_n / ($t1 - $t0)}")
emit $B e2e_trades_per_s "$e2e" trades/s
raw=$($TB raw_consume "$GANTRY_NATS_URL" "$stream" "$subj.>" "$N")
emit $B raw_jetstream_consume_per_s "$raw" msgs/s
emit $B e2e_ratio_vs_raw "$(ratio "$e2e" "$raw")"

read -r p50 p99 samples < <($TB latency "$GANTRY_NATS_URL" "$GANTRY_REDIS_URL" "$subj" 10000 5 1000)
emit $B redis_visible_p50_ms_at_10k "$p50" ms
emit $B redis_visible_p99_ms_at_10k "$p99" ms
read -r p50 p99 samples < <($TB latency "$GANTRY_NATS_URL" "$GANTRY_REDIS_URL" "$subj" 50000 5 1000)
emit $B redis_visible_p50_ms_at_50k "$p50" ms
emit $B redis_visible_p99_ms_at_50k "$p99" ms
emit $B redis_visible_goal_ms 210 ms
emit $B redis_visible_samples "$samples"
kill -TERM "$tp"; wait "$tp" || true
PIDS=()

read -r writes size < <($TB redis_writes "$GANTRY_REDIS_URL" 10000 3)
read -r rhost rport < <(echo "$GANTRY_REDIS_URL" | sed -E 's#redis://([^:/]+):([0-9]+).*#\1 \2#')
rb=$(redis-benchmark -h "$rhost" -p "$rport" -P 100 -t set -n 1000000 -d "$size" -r 10000 -q --csv | awk -F'"' '/SET/ {print $4}')
emit $B redis_writes_per_s "$writes" sets/s
emit $B redis_benchmark_set_per_s "$(printf '%.0f' "$rb")" sets/s
emit $B redis_value_bytes "$size" bytes
emit $B redis_ratio_vs_redis_benchmark "$(ratio "$writes" "$rb")"

emit $B mb_per_1k_tokens "$($TB memory 100 100 3600 1)" MB
emit $B mb_per_1k_tokens_no_dedup "$($TB memory 100 100 3600 0)" MB

orig=$($TB original "$GANTRY_REDIS_URL" 100 5)
emit $B original_design_trades_per_s "$orig" trades/s
emit $B speedup_vs_original_design "$(ratio "$e2e" "$orig")"
# The run's stream goes (its keys in Redis expire within the hour, or with the server).
$TB delete_stream "$GANTRY_NATS_URL" "$stream"
