#!/usr/bin/env bash
# Telemetry figures, measured in this one run on this machine (NATS JetStream and PostgreSQL
# from scripts/servers, file storage):
#   raw_jetstream_events_per_s   the same events published straight to JetStream by a C client
#                                (async publish, every ack awaited): the bound for this design
#   ingest_events_per_s          single-event POSTs through gantry ingest (wrk, keep-alive), each
#                                answered 202 only after JetStream acked it (goal >= 50,000)
#   ingest_ratio_vs_raw_jetstream
#   ingest_p50_ms_at_20k / ingest_p99_ms_at_20k   open-loop 20,000 events/s for 10 s, latency
#                                from each event's scheduled send time (goal p99 < 10 ms)
#   raw_jetstream_p99_ms_at_20k  the same schedule published straight to JetStream (no HTTP):
#                                the floor the server itself sets for that p99
#   batch_ingest_events_per_s    NDJSON batches of 1,000 (goal >= 200,000)
#   aggregator_events_per_s      a fresh aggregator draining everything above from JetStream
#                                into PostgreSQL with dedup (spec's goal >= 100,000): the events
#                                it handled from the drain tool's first look to the last one
#                                (aggregator_events_timed), over that time (aggregator_drain_s)
#   raw_jetstream_consume_per_s  as many events of the same kind pulled and acked by cnats, no
#                                database (the better of two runs)
#   pg_copy_rows_per_s           the rows the aggregator stored, COPY'd again by psql into a
#                                table shaped like events_seen, in the same order
#   pg_copy_ascending_keys_rows_per_s  as many made-up rows with ascending keys (comparison only)
#   aggregator_ratio_vs_limit    aggregator_events_per_s / the smaller of the two (goal >= 0.6)
#   *_cpu_us_per_event / _per_row  the whole machine's busy CPU per event during the aggregator's
#                                drain and during each reference
#   aggregator_cpu_bound_events_per_s  every core busy at the two references' CPU per event: what
#                                the aggregator could reach doing both halves and nothing else
#   aggregator_ratio_vs_cpu_bound
#   e2e_p50_s / e2e_p99_s        5,000 events/s for 30 s through ingest and a live aggregator
#                                (10 s windows, 2 s flush delay): from the end of an event's
#                                window until its agg_1m row holds it (goal: p99 within flush
#                                delay + 2 s, printed as e2e_goal_s)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
B=telemetry
DUR=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-64}
RAW_N=${BENCH_RAW_EVENTS:-200000}
BATCH_N=${BENCH_BATCH_EVENTS:-400000}
FETCH=${BENCH_FETCH:-2000}  # messages per fetch, for the aggregator's lanes and their consume reference
dir=$REPO/.run/bench/telemetry
rm -rf "$dir"; mkdir -p "$dir"
bench_build
cmake --build --preset release --target gantry_bench_telemetry_load >/dev/null
LOAD=build/release/bench/gantry_bench_telemetry_load
bench_servers nats pg
export GANTRY_NATS_URL GANTRY_PG_URL

PIDS=()
# set -e holds inside the trap too: a wait on a process that already ended must not stop it
# before the servers are stopped.
stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bench_stop_servers
}
trap stop_all EXIT
iport=$(free_port)
build/gantry ingest --address 127.0.0.1 --port "$iport" --nats-url "$GANTRY_NATS_URL" --http-threads 2 \
  --access-log=false --log-level warn --rate-limit 1e9 --rate-limit-burst 1e9 >"$dir/ingest.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$iport/health"

$LOAD purge "$GANTRY_NATS_URL"  # what an earlier, interrupted run left is not this run's work

emit_load $B
read -r raw _ < <($LOAD raw "$GANTRY_NATS_URL" "$RAW_N" "$(printf '%08x' $((RANDOM * 32768 + RANDOM)))")
emit $B raw_jetstream_events_per_s "$raw" events/s

$LOAD lua "$(printf '%08x' $((RANDOM * 32768 + RANDOM)))" > "$dir/single.lua"
wrk -t2 -c"$CONNS" -d2s -s "$dir/single.lua" "http://127.0.0.1:$iport/events" > "$dir/warm.txt"
wrk -t2 -c"$CONNS" -d"$DUR"s -s "$dir/single.lua" "http://127.0.0.1:$iport/events" > "$dir/single.txt"
if grep -q 'Non-2xx' "$dir/single.txt"; then echo "bench: ingest errors" >&2; cat "$dir/single.txt" >&2; fi
ingest=$(wrk_rps "$dir/single.txt")
emit $B ingest_events_per_s "$ingest" events/s
emit $B ingest_ratio_vs_raw_jetstream "$(awk "BEGIN{printf \"%.3f\", $ingest / $raw}")"

emit_load $B
read -r _ p50 p99 errors < <($LOAD rate "http://127.0.0.1:$iport/events" 20000 "$DUR" 64 "$(printf '%08x' $((RANDOM * 32768 + RANDOM)))")
emit $B ingest_p50_ms_at_20k "$p50" ms
emit $B ingest_p99_ms_at_20k "$p99" ms
emit $B ingest_errors_at_20k "$errors"
read -r _ rp50 rp99 _ < <($LOAD rawrate "$GANTRY_NATS_URL" 20000 "$DUR" "$(printf '%08x' $((RANDOM * 32768 + RANDOM)))")
emit $B raw_jetstream_p50_ms_at_20k "$rp50" ms
emit $B raw_jetstream_p99_ms_at_20k "$rp99" ms

read -r batch _ < <($LOAD batch "http://127.0.0.1:$iport/events/batch" "$BATCH_N" 1000 8 "$(printf '%08x' $((RANDOM * 32768 + RANDOM)))")
emit $B batch_ingest_events_per_s "$batch" events/s

# --- aggregator: drain the stream into a fresh database -----------------------------------
emit_load $B
db=bench_telemetry_$$
psql "$GANTRY_PG_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null
psql "$GANTRY_PG_URL" -qc "CREATE DATABASE $db" >/dev/null
dburl=$(echo "$GANTRY_PG_URL" | sed "s#/gantry?#/$db?#; s#/gantry\$#/$db#")
aport=$(free_port)
build/gantry aggregator --address 127.0.0.1 --metrics-port "$aport" --nats-url "$GANTRY_NATS_URL" --db-url "$dburl" \
  --access-log=false --log-level warn --fetch-batch "$FETCH" --max-ack-pending 20000 >"$dir/aggregator.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$aport/health"
# Until drained (nothing left to deliver, nothing awaiting an ack), polled by the load tool
# over one connection: a curl, bash and awk per look took ~8% of the CPU it measured. It also
# gives the whole machine's busy CPU per event meanwhile, whichever processes it went to.
if ! drain=$($LOAD drained "http://127.0.0.1:$aport/metrics" 300); then
  echo "bench: aggregator still draining after 300 s" >&2; emit $B aggregator_drain_incomplete 1
fi
read -r last timed secs agg_cpu <<<"$drain"
agg_rate=$(awk "BEGIN{printf \"%.0f\", $timed / $secs}")
emit $B aggregator_events "$last"
emit $B aggregator_events_timed "$timed"
emit $B aggregator_drain_s "$secs" s
emit $B aggregator_events_per_s "$agg_rate" events/s
emit $B aggregator_cpu_us_per_event "$agg_cpu" us
kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

# The aggregator's two halves alone, as references measured now: pulling and acking the same
# kind of events with no database (cnats), and COPYing the same rows into a table shaped like
# events_seen (its key and indexes) with psql, a client nobody here wrote. Each handles as many
# events as the aggregator drained: a stream or table of that size behaves as the aggregator's
# did, and a run of seconds, not a fraction of one, is what the ratio compares with.
REF_N=$last
# The whole machine's busy CPU (user, nice, system, irq, softirq) in ticks of 1/100 s.
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
emit_load $B
# The better of two runs: from run to run it varies by up to a third here (91,000-127,000/s),
# far more than the aggregator's drain does, and the better one is the harder bound.
# A run that fails (its reason is on stderr) is not a figure; the benchmark ends only if both do.
consume=0
for _ in 1 2; do
  if ! out=$($LOAD consume "$GANTRY_NATS_URL" "$REF_N" "$(printf '%08x' $((RANDOM * 32768 + RANDOM)))" "$FETCH"); then
    echo "bench: a consume reference run failed" >&2; continue
  fi
  read -r c cc <<<"$out"
  if [ "$c" -gt "$consume" ]; then consume=$c; consume_cpu=$cc; fi
done
if [ "$consume" -eq 0 ]; then echo "bench: no consume reference run succeeded" >&2; exit 1; fi
emit $B raw_jetstream_consume_per_s "$consume" events/s
emit $B raw_jetstream_consume_cpu_us_per_event "$consume_cpu" us
# The rows are the aggregator's own, in the order it stored them, keys scattered like the random
# UUIDs probes send: ascending keys, which this benchmark used before 2026-12-04, COPY ~25%
# faster (printed below for comparison). Each COPY starts after a checkpoint, as the aggregator
# started on a fresh database.
cols="event_id, client_id, ts_ms, window_start_ts, target, success, error_stage, dns_ms, tcp_ms, tls_ms, ttfb_ms, throughput_kbps"
psql "$dburl" -qc "\\copy (SELECT $cols FROM events_seen) TO '$dir/copy_ref.tsv'" >/dev/null
copy_rate() {  # table, file -> "rows/s cpu_us_per_row"
  psql "$dburl" -qc "CREATE TABLE $1 (LIKE events_seen INCLUDING ALL)" -c "CHECKPOINT" >/dev/null
  local t0 t1 c0 c1 n
  t0=$(date +%s.%N); c0=$(busy_ticks)
  psql "$dburl" -qc "\\copy $1 ($cols) FROM '$2'" >/dev/null
  t1=$(date +%s.%N); c1=$(busy_ticks)
  n=$(psql "$dburl" -qtAc "SELECT count(*) FROM $1")
  awk "BEGIN{printf \"%.0f %.1f\\n\", $n / ($t1 - $t0), ($c1 - $c0) * 10000 / $n}"
}
read -r pg_copy copy_cpu < <(copy_rate copy_ref "$dir/copy_ref.tsv")
emit $B pg_copy_rows_per_s "$pg_copy" rows/s
emit $B pg_copy_cpu_us_per_row "$copy_cpu" us
# For comparison only (not a reference): the same number of rows with ascending keys, as this
# benchmark used before 2026-12-04.
awk -v n="$REF_N" -v now="$(($(date +%s) * 1000))" 'BEGIN {
  for (i = 0; i < n; i++) {
    ts = now - (i % 600) * 100; w = int(ts / 60000) * 60000
    printf "%08x-0000-4000-8000-%012x\tbench-%d\t%.0f\t%.0f\thttps://example.com/\tt\t\\N\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\n",
      i, i, i % 1000, ts, w, 1 + (i % 17) * 0.5, 2 + (i % 13) * 0.7, 3 + (i % 11) * 0.9, 20 + (i % 29) * 1.1, 1000 + i % 97
  }
}' > "$dir/copy_seq.tsv"
read -r seq_copy _ < <(copy_rate copy_seq "$dir/copy_seq.tsv")
emit $B pg_copy_ascending_keys_rows_per_s "$seq_copy" rows/s
limit=$(( consume < pg_copy ? consume : pg_copy ))
emit $B aggregator_ratio_vs_limit "$(awk "BEGIN{printf \"%.3f\", $agg_rate / $limit}")"
# The two references leave CPU idle (one COPY is one backend: about one core), so the halves can
# overlap: the aggregator's bound is every core busy at the two references' CPU per event. It
# is printed with the aggregator against it.
cores=$(nproc)
bound=$(awk "BEGIN{printf \"%.0f\", $cores * 1000000 / ($consume_cpu + $copy_cpu)}")
emit $B aggregator_cpu_bound_events_per_s "$bound" events/s
emit $B aggregator_ratio_vs_cpu_bound "$(awk "BEGIN{printf \"%.3f\", $agg_rate / $bound}")"
psql "$GANTRY_PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null

# --- end to end: ingest -> JetStream -> a live aggregator -> agg_1m -------------------------
emit_load $B
psql "$GANTRY_PG_URL" -qc "CREATE DATABASE $db" >/dev/null
build/gantry aggregator --address 127.0.0.1 --metrics-port "$aport" --nats-url "$GANTRY_NATS_URL" --db-url "$dburl" \
  --access-log=false --log-level warn --window-size 10s --flush-delay 2s --flush-every 100ms >"$dir/aggregator-e2e.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$aport/health"
read -r e2e_n e2e_p50 e2e_p99 e2e_open < <($LOAD e2e "http://127.0.0.1:$iport/events" "$dburl" 5000 30 10000 \
  "$(printf '%08x' $((RANDOM * 32768 + RANDOM)))")
emit $B e2e_events "$e2e_n"
emit $B e2e_p50_s "$e2e_p50" s
emit $B e2e_p99_s "$e2e_p99" s
emit $B e2e_goal_s 4 s
emit $B e2e_incomplete_windows "$e2e_open"
kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
psql "$GANTRY_PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
