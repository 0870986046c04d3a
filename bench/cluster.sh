#!/usr/bin/env bash
# Clusters: the reconciler's parallelism with the simulated provider (bench/cluster/cluster_sim.cpp).
# Needs no server. The ssh figures (5 namespace hosts vs 1, and Ansible on the same hosts) come
# with the ssh provider.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
B=cluster
bench_build
cmake --build --preset release --target gantry_bench_cluster >/dev/null
emit_load $B
LOG_LEVEL=warn build/release/bench/gantry_bench_cluster

# Real hosts (needs root: scripts/hosts): a gantry-node cluster of 5 over ssh against 1
# (ssh_parallel_vs_one, goal <= 1.3), and against Ansible doing the same steps on the same 5
# hosts with forks = 5 (create_ratio_vs_ansible = gantry / ansible, goal <= 0.3).
if [ "$(id -u)" != 0 ]; then
  echo "bench cluster: the ssh figures need root (scripts/hosts); skipped" >&2
  exit 0
fi
command -v ansible-playbook >/dev/null || { echo "bench cluster: ansible-playbook missing (scripts/install-deps)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/gantry-bench-cluster.XXXXXX)
export GANTRY_HOSTS_DIR=$WORK/hosts GANTRY_STATE_DIR=$WORK/state
CTL_PID=
finish() {
  [ -n "$CTL_PID" ] && kill "$CTL_PID" 2>/dev/null
  pkill -f '^/bin/sh /var/lib/gantry-node/run' 2>/dev/null || true
  pkill -f '^/opt/gantry/bin/gantry up' 2>/dev/null || true
  bash scripts/hosts down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap finish EXIT
eval "$(bash scripts/hosts up 5 2>/dev/null)"
port=$(free_port)
DATABASE_PATH=$WORK/fleet.db LOG_LEVEL=warn build/gantry controller --address 0.0.0.0 --port "$port" >"$WORK/controller.log" 2>&1 &
CTL_PID=$!
wait_http "http://127.0.0.1:$port/health"
url=http://10.213.0.1:$port
# secs CMD...: runs it, prints its wall time in seconds (3 decimals); its failure ends the bench.
secs() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e9 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
one=$(secs build/gantry cluster create one --provider ssh --controller-url "$url" --wait)
build/gantry cluster delete one --wait >/dev/null
# Concurrency 5, as Ansible's forks.
five=$(secs build/gantry cluster create five --provider ssh --workers 4 --controller-url "$url" --parallel-max-concurrency 5 --wait)
build/gantry cluster delete five --wait >/dev/null
sha1=$(sha1sum build/gantry | cut -d' ' -f1)
ansible=$(ANSIBLE_HOST_KEY_CHECKING=True secs ansible-playbook -i "$GANTRY_HOSTS_DIR/inventory.ini" -f 5 \
  -e "gantry_binary=$REPO/build/gantry gantry_sha1=$sha1 controller_url=$url" bench/cluster/gantry-node.yml)
emit $B ssh_one_node_create_s "$one"
emit $B ssh_five_nodes_create_s "$five"
emit $B ssh_parallel_vs_one "$(ratio "$five" "$one")"
emit $B gantry_s "$five"
emit $B ansible_s "$ansible"
emit $B create_ratio_vs_ansible "$(ratio "$five" "$ansible")"
