# shellcheck shell=bash
# Shared helpers for bench/*.sh (sourced).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

# Builds the release binary if anything changed (quiet when up to date).
bench_build() {
  bash scripts/install-deps >/dev/null
  cmake --preset release >/dev/null
  cmake --build --preset release >/dev/null
}

source "$REPO/scripts/lib.sh"  # free_port, wait_http

# bench_servers NAME...: starts the servers of scripts/servers not already running and exports
# their URLs; bench_stop_servers (put it in the EXIT trap) stops only the ones this started, so
# a benchmark leaves the machine as it found it.
BENCH_STARTED=()
bench_servers() {
  local s
  for s in "$@"; do
    bash scripts/servers status "$s" 2>/dev/null | grep -q ' running ' || BENCH_STARTED+=("$s")
  done
  eval "$(bash scripts/servers start "$@")"
}
bench_stop_servers() {
  if [ ${#BENCH_STARTED[@]} -gt 0 ]; then bash scripts/servers stop "${BENCH_STARTED[@]}" >/dev/null 2>&1 || true; fi
}

# emit BENCH METRIC VALUE [UNIT]: one JSON line.
emit() {
  if [ -n "${4:-}" ]; then
    printf '{"bench":"%s","metric":"%s","value":%s,"unit":"%s"}\n' "$1" "$2" "$3" "$4"
  else
    printf '{"bench":"%s","metric":"%s","value":%s}\n' "$1" "$2" "$3"
  fi
}

# The 1-minute load average before a run, so figures can be read against the machine's load.
emit_load() { emit "$1" loadavg_1m "$(cut -d' ' -f1 /proc/loadavg)"; }

# wrk_rps OUTPUT_FILE: requests/s from wrk's output.
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
# wrk_p99_ms OUTPUT_FILE: the 99th percentile latency in ms (needs --latency).
wrk_p99_ms() {
  awk '$1=="99%" { v=$2; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} }' "$1"
}

# A private nginx: start_nginx DIR PORT CONF_SERVER_BLOCK; sets NGINX_PID_FILE.
start_nginx() {
  local dir=$1 port=$2 server=$3 user=""
  mkdir -p "$dir/tmp"
  [ "$(id -u)" -eq 0 ] && user="user root;"
  cat > "$dir/nginx.conf" <<CONF
$user
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server_tokens off;
  sendfile on;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  default_type text/plain;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port reuseport;
    $server
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  NGINX_PID_FILE=$dir/nginx.pid
}
stop_nginx() { [ -s "${NGINX_PID_FILE:-}" ] && kill -QUIT "$(cat "$NGINX_PID_FILE")" 2>/dev/null || true; }
