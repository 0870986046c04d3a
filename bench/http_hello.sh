#!/usr/bin/env bash
# The core HTTP server answering a 13-byte GET, against nginx serving a static file of the
# same size. Both get 2 worker threads/processes, access logs off, and the same wrk settings;
# they run one after the other, twice each, alternating, and the better round of each counts.
# Metrics: gantry_rps, nginx_rps, ratio_vs_nginx (goal >= 1.0; below 0.7 the server design
# needs work), and p99 latencies for context.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
B=http_hello
DUR=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-64}
dir=$REPO/.run/bench/http_hello
rm -rf "$dir"; mkdir -p "$dir/www"
bench_build

printf 'Hello, World!' > "$dir/www/hello.txt"
nport=$(free_port); gport=$(free_port)
start_nginx "$dir" "$nport" "location / { root $dir/www; }"
build/gantry hello --address 127.0.0.1 --port "$gport" --http-threads 2 --access-log=false --log-level warn \
  >"$dir/gantry.log" 2>&1 &
gpid=$!
trap 'kill -TERM $gpid 2>/dev/null || true; wait $gpid 2>/dev/null || true; stop_nginx' EXIT
NURL=http://127.0.0.1:$nport/hello.txt
GURL=http://127.0.0.1:$gport/
wait_http "$NURL"; wait_http "$GURL"
[ "$(curl -s "$NURL")" = "$(curl -s "$GURL")" ] || { echo "bench: bodies differ" >&2; exit 1; }

emit_load $B
run_wrk() { wrk -t2 -c"$CONNS" -d"$2"s --latency "$1" > "$3"; }
run_wrk "$NURL" 2 "$dir/warm-n.txt"; run_wrk "$GURL" 2 "$dir/warm-g.txt"
best_n=0; best_g=0; p99_n=0; p99_g=0
for round in 1 2; do
  run_wrk "$NURL" "$DUR" "$dir/n$round.txt"
  run_wrk "$GURL" "$DUR" "$dir/g$round.txt"
  n=$(wrk_rps "$dir/n$round.txt"); g=$(wrk_rps "$dir/g$round.txt")
  if awk "BEGIN{exit !($n > $best_n)}"; then best_n=$n; p99_n=$(wrk_p99_ms "$dir/n$round.txt"); fi
  if awk "BEGIN{exit !($g > $best_g)}"; then best_g=$g; p99_g=$(wrk_p99_ms "$dir/g$round.txt"); fi
done
emit $B gantry_rps "$best_g" req/s
emit $B nginx_rps "$best_n" req/s
emit $B ratio_vs_nginx "$(awk "BEGIN{printf \"%.3f\", $best_g / $best_n}")"
emit $B gantry_p99_ms "$p99_g" ms
emit $B nginx_p99_ms "$p99_n" ms
