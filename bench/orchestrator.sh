#!/usr/bin/env bash
# The Orchestrator against its peer and a raw client, in one run (real PostgreSQL and RabbitMQ):
#   notify_to_queue_p50_ms / notify_to_queue_p99_ms
#       1,000 domain INSERTs, each followed by waiting for its kick on qasmm8 (a raw rabbitmq-c
#       consumer), so the queue's length limit hides none: INSERT sent -> kick delivered (goal p99 < 20 ms)
#   graphile_worker_p50_ms / graphile_worker_p99_ms / latency_ratio_vs_graphile
#       Graphile Worker (npm, LISTEN/NOTIFY job queue) on the same PostgreSQL: add_job -> task
#       started, 1,000 jobs one at a time; ratio = our p99 / theirs (goal <= 1.0)
#   confirmed_publishes_per_s / raw_confirmed_per_s / publish_ratio_vs_raw
#       kick messages through the orchestrator's AMQP pool vs a plain rabbitmq-c confirm loop,
#       same messages, batches of 100, a durable queue without length limit (goal >= 0.8, >= 20,000/s);
#       transient_* the same on a transient queue (context: the broker's disk is the limit above)
#   failover_s
#       two orchestrators, an enabled domain, the leader killed with SIGKILL -> the standby's
#       first kick delivered (goal < 5 s)
# Servers this starts (scripts/servers) are stopped at the end, and so is every process it starts.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
B=orchestrator
N=${BENCH_INSERTS:-1000}
DUR=${BENCH_DURATION:-5}
bench_build
cmake --build --preset release --target gantry_bench_orchestrator >/dev/null
OB=build/release/bench/gantry_bench_orchestrator
GW=bench/orchestrator/graphile
(cd $GW && npm ci --no-audit --no-fund --silent >/dev/null)
bench_servers pg amqp
WORK=$(mktemp -d /tmp/gantry-bench-orch-XXXXXX)
PIDS=()
SCHEMA=bench_orch_$$
# The database URL with the benchmark's schema as search_path.
DB="$GANTRY_PG_URL&options=-csearch_path%3D$SCHEMA"
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  psql -q "$GANTRY_PG_URL" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" -c "DROP SCHEMA IF EXISTS graphile_worker CASCADE" \
    >/dev/null 2>&1 || true
  for q in qasmm8 qnaabum8 qkatanam8 qnum8; do amqp-delete-queue -u "$GANTRY_AMQP_URL" -q $q >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
  bench_stop_servers
}
trap cleanup EXIT

# start_orchestrator NAME: one instance on a free port (logs in $WORK/NAME.log); sets PORT.
start_orchestrator() {
  PORT=$(free_port)
  build/gantry orchestrator --port 0 --ip 127.0.0.1 --db-url "$GANTRY_PG_URL" --amqp-url "$GANTRY_AMQP_URL" \
    --postgresql-schema "$SCHEMA" --leader-retry 250ms --http-threads 1 >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
  for _ in $(seq 100); do
    PORT=$(grep -o 'url=http://127.0.0.1:[0-9]*' "$WORK/$1.log" 2>/dev/null | head -1 | sed 's/.*://') || true
    [ -n "$PORT" ] && break
    sleep 0.1
  done
  [ -n "$PORT" ] || { echo "orchestrator $1 did not start:" >&2; cat "$WORK/$1.log" >&2; exit 1; }
}
leader_of() { curl -s "http://127.0.0.1:$1/ready" | grep -q '"leader":"leader"'; }

emit_load $B
start_orchestrator a
A_PID=$LAST_PID A_PORT=$PORT
for _ in $(seq 50); do leader_of "$A_PORT" && break; sleep 0.1; done
amqp-delete-queue -u "$GANTRY_AMQP_URL" -q qasmm8 >/dev/null 2>&1 || true  # a kick from an earlier run
{ kill -9 "$A_PID"; wait "$A_PID"; } 2>/dev/null || true
start_orchestrator a
A_PID=$LAST_PID A_PORT=$PORT
for _ in $(seq 50); do leader_of "$A_PORT" && break; sleep 0.1; done
ours=$($OB latency "$DB" "$GANTRY_AMQP_URL" qasmm8 "$N")
o50=$(echo "$ours" | sed 's/.*"p50_ms":\([0-9.]*\).*/\1/')
o99=$(echo "$ours" | sed 's/.*"p99_ms":\([0-9.]*\).*/\1/')
emit $B notify_to_queue_p50_ms "$o50" ms
emit $B notify_to_queue_p99_ms "$o99" ms

emit_load $B
theirs=$(cd $GW && node latency.js "$GANTRY_PG_URL" "$N")
t50=$(echo "$theirs" | sed 's/.*"p50_ms":\([0-9.]*\).*/\1/')
t99=$(echo "$theirs" | sed 's/.*"p99_ms":\([0-9.]*\).*/\1/')
emit $B graphile_worker_p50_ms "$t50" ms
emit $B graphile_worker_p99_ms "$t99" ms
emit $B latency_ratio_vs_graphile "$(awk "BEGIN{printf \"%.3f\", $o99 / $t99}")"

emit_load $B
$OB publish "$GANTRY_AMQP_URL" "$DUR"

# Failover: a standby beside the leader, an enabled domain, the kick queue drained; then the
# leader killed. The standby's takeover kick (a non-empty enabled set) is the first publish.
emit_load $B
start_orchestrator b
B_PORT=$PORT
psql -q "$DB" -c "INSERT INTO cptm8domain (name, companyname) VALUES ('failover.example.com', 'bench')" >/dev/null
sleep 0.5
while amqp-get -u "$GANTRY_AMQP_URL" -q qasmm8 >/dev/null 2>&1; do :; done
leader_of "$A_PORT" || { echo "instance a is not the leader" >&2; exit 1; }
t0=$(date +%s.%N)
kill -9 "$A_PID"
wait "$A_PID" 2>/dev/null || true
got=0
for _ in $(seq 1000); do
  if amqp-get -u "$GANTRY_AMQP_URL" -q qasmm8 >/dev/null 2>&1; then got=1; break; fi
  sleep 0.01
done
t1=$(date +%s.%N)
[ $got = 1 ] || { echo "no kick from the standby within the wait" >&2; cat "$WORK/b.log" >&2; exit 1; }
leader_of "$B_PORT" || echo "note: b does not report leader" >&2
emit $B failover_s "$(awk "BEGIN{printf \"%.2f\", $t1 - $t0}")" s
