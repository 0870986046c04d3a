#!/usr/bin/env bash
# Fleet controller figures, each measured in this one run on this machine:
#   poll_304_rps / nginx_304_rps / poll_304_ratio_vs_nginx
#       agents' steady state: GET /config with a Bearer token and a matching If-None-Match,
#       keep-alive, against nginx answering 304 for a static file's ETag; same wrk settings,
#       2 threads/processes each, alternating rounds, the better round of each counts
#       (goal ratio >= 1.0, floor 0.7)
#   hello_rps / poll_304_ratio_vs_hello
#       `gantry hello` (the bare core HTTP server answering 13 bytes) in the same rounds: what
#       the 304 path (Bearer lookup, If-None-Match compare, two headers) costs over a bare
#       answer (goal >= 0.95)
#   propagation_longpoll_p50_ms / _p99_ms, propagation_redis_p50_ms / _p99_ms
#       1,000 simulated agents (bench/fleet/fleet_load.cpp, one process) hold a long poll, or
#       are subscribed to Redis and fetch on a push; a new version is published ROUNDS times;
#       delay from publishing to every agent holding it (goal p99 < 100 ms)
#   heartbeats_per_s       POST /heartbeat from 1,000 agents via wrk; each answer means the
#                          row is committed to SQLite (group commit) (goal >= 20,000)
#   controller_rss_mb_10k_agents   controller RSS with 10,000 registered agents (goal < 64 MB)
#   propagation_longpoll_10k_p99_ms   the same 10,000 each holding a long poll (goal < 1 s)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
B=fleet
DUR=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-64}
AGENTS=${BENCH_AGENTS:-1000}
ROUNDS=${BENCH_ROUNDS:-5}
dir=$REPO/.run/bench/fleet
rm -rf "$dir"; mkdir -p "$dir/www"
bench_build
cmake --build --preset release --target gantry_bench_fleet_load >/dev/null
LOAD=build/release/bench/gantry_bench_fleet_load
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bench_servers redis
rhost=${GANTRY_REDIS_URL#redis://}; rhost=${rhost%/*}; rport=${rhost##*:}; rhost=${rhost%:*}

cport=$(free_port); nport=$(free_port); hport=$(free_port)
CURL=http://127.0.0.1:$cport
DATABASE_PATH=$dir/data.db REDIS_ENABLED=true REDIS_HOST=$rhost REDIS_PORT=$rport \
  build/gantry controller --address 127.0.0.1 --port "$cport" --http-threads 2 --access-log=false \
  --log-level warn --http-max-connections 30000 >"$dir/controller.log" 2>&1 &
cpid=$!
build/gantry hello --address 127.0.0.1 --port "$hport" --http-threads 2 --access-log=false --log-level warn \
  >"$dir/hello.log" 2>&1 &
hpid=$!
# set -e holds inside the trap too: the waits must not stop it before the servers are stopped.
trap 'kill -TERM $cpid $hpid 2>/dev/null || true; wait $cpid $hpid 2>/dev/null || true; stop_nginx || true; bench_stop_servers' EXIT
wait_http "$CURL/health"
HURL=http://127.0.0.1:$hport/
wait_http "$HURL"

# --- 304 poll path vs nginx --------------------------------------------------------------
emit_load $B
$LOAD register "$CURL" 1 "$dir/one.txt"
token=$(awk '{print $2}' "$dir/one.txt")
etag=$(curl -sfi -H "Authorization: Bearer $token" "$CURL/config" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H "If-None-Match: $etag" "$CURL/config")" = 304 ] \
  || { echo "bench: controller did not answer 304" >&2; exit 1; }
head -c 120 /dev/zero | tr '\0' 'x' > "$dir/www/config.json"
start_nginx "$dir" "$nport" "location / { root $dir/www; etag on; }"
NURL=http://127.0.0.1:$nport/config.json
wait_http "$NURL"
netag=$(curl -sfi "$NURL" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $netag" "$NURL")" = 304 ] \
  || { echo "bench: nginx did not answer 304" >&2; exit 1; }
run_wrk() { wrk -t2 -c"$CONNS" -d"$2"s --latency "${@:4}" "$1" > "$3"; }
run_n() { run_wrk "$NURL" "$1" "$2" -H "If-None-Match: $netag"; }
run_g() { run_wrk "$CURL/config" "$1" "$2" -H "Authorization: Bearer $token" -H "If-None-Match: $etag"; }
run_h() { run_wrk "$HURL" "$1" "$2"; }
run_n 2 "$dir/warm-n.txt"; run_g 2 "$dir/warm-g.txt"; run_h 2 "$dir/warm-h.txt"
best_n=0; best_g=0; best_h=0
for round in 1 2; do
  run_n "$DUR" "$dir/n$round.txt"; run_g "$DUR" "$dir/g$round.txt"; run_h "$DUR" "$dir/h$round.txt"
  h=$(wrk_rps "$dir/h$round.txt")
  awk "BEGIN{exit !($h > $best_h)}" && best_h=$h
  for f in "$dir/n$round.txt" "$dir/g$round.txt"; do
    grep -q 'Non-2xx' "$f" && ! grep -q "Non-2xx or 3xx responses: 0" "$f" && { echo "bench: errors in $f" >&2; cat "$f" >&2; exit 1; }
  done
  n=$(wrk_rps "$dir/n$round.txt"); g=$(wrk_rps "$dir/g$round.txt")
  awk "BEGIN{exit !($n > $best_n)}" && best_n=$n
  awk "BEGIN{exit !($g > $best_g)}" && best_g=$g
done
stop_nginx
emit $B poll_304_rps "$best_g" req/s
emit $B nginx_304_rps "$best_n" req/s
emit $B poll_304_ratio_vs_nginx "$(awk "BEGIN{printf \"%.3f\", $best_g / $best_n}")"
emit $B hello_rps "$best_h" req/s
emit $B poll_304_ratio_vs_hello "$(awk "BEGIN{printf \"%.3f\", $best_g / $best_h}")"
kill -TERM $hpid 2>/dev/null; wait $hpid 2>/dev/null || true

# --- propagation to 1,000 agents ---------------------------------------------------------
emit_load $B
$LOAD register "$CURL" "$AGENTS" "$dir/agents.txt"
read -r p50 p99 pmax n < <($LOAD propagate "$CURL" "$dir/agents.txt" longpoll "$ROUNDS")
emit $B propagation_longpoll_p50_ms "$p50" ms
emit $B propagation_longpoll_p99_ms "$p99" ms
emit $B propagation_longpoll_max_ms "$pmax" ms
read -r p50 p99 pmax n < <($LOAD propagate "$CURL" "$dir/agents.txt" redis "$ROUNDS" "$rhost" "$rport")
emit $B propagation_redis_p50_ms "$p50" ms
emit $B propagation_redis_p99_ms "$p99" ms
emit $B propagation_redis_max_ms "$pmax" ms

# --- heartbeats persisted per second -----------------------------------------------------
emit_load $B
{
  echo 'local tokens = {'
  awk '{printf "\"%s\",\n", $2}' "$dir/agents.txt"
  echo '}'
  cat <<'LUA'
local i = 0
request = function()
  i = i + 1
  local t = tokens[(i % #tokens) + 1]
  return wrk.format("POST", "/heartbeat",
    {["Authorization"] = "Bearer " .. t, ["Content-Type"] = "application/json"},
    '{"config_version":"bench","status":"healthy"}')
end
LUA
} > "$dir/heartbeat.lua"
wrk -t2 -c"$CONNS" -d"$DUR"s -s "$dir/heartbeat.lua" "$CURL" > "$dir/hb.txt"
if grep -q 'Non-2xx' "$dir/hb.txt"; then echo "bench: heartbeat errors" >&2; cat "$dir/hb.txt" >&2; exit 1; fi
emit $B heartbeats_per_s "$(wrk_rps "$dir/hb.txt")" 1/s
persisted=$(sqlite3 "$dir/data.db" "select count(*) from agents where last_config_version='bench'" 2>/dev/null || echo -1)
emit $B heartbeat_agents_persisted "$persisted"

# --- memory with 10,000 agents -----------------------------------------------------------
$LOAD register "$CURL" $((10000 - AGENTS - 1)) "$dir/more.txt"
total=$(( $(wc -l < "$dir/agents.txt") + $(wc -l < "$dir/more.txt") + 1 ))
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$cpid/status")
emit $B controller_agents "$total"
emit $B controller_rss_mb_10k_agents "$(awk "BEGIN{printf \"%.1f\", $rss_kb / 1024}")" MB

# --- and propagation to all 10,000 by long poll (goal < 1 s) -------------------------------
cat "$dir/one.txt" "$dir/agents.txt" "$dir/more.txt" > "$dir/all.txt"
read -r p50 p99 pmax n < <($LOAD propagate "$CURL" "$dir/all.txt" longpoll 2)
emit $B propagation_longpoll_10k_p50_ms "$p50" ms
emit $B propagation_longpoll_10k_p99_ms "$p99" ms
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$cpid/status")
emit $B controller_rss_mb_10k_agents_holding "$(awk "BEGIN{printf \"%.1f\", $rss_kb / 1024}")" MB
