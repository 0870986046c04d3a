# shellcheck shell=bash
# Shell helpers shared by scripts/demo and bench/*.sh (sourced).

# A loopback TCP port nobody listens on, below the ephemeral range.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 15000 + (RANDOM * 32768 + RANDOM) % 17000 ))
    ss -Hltn "( sport = :$p )" | grep -q . || { echo "$p"; return; }
  done
  echo "no free port" >&2; return 1
}

wait_http() {  # wait_http URL: until it answers 2xx, up to 10 s
  for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 did not answer" >&2; return 1
}
