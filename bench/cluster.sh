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
# OpenSSH or libssh (the spec leaves the choice to a measurement): N commands to one host as
# OpenSSH clients over one multiplexed master (what the ssh provider does) against libssh channels
# of one connection in one process. Per command: wall time and the client side's CPU (for
# OpenSSH the clients and the master; the host's sshd costs the same either way).
cmd_n=100
h1=root@10.213.0.11
sshv=(-o BatchMode=yes -o UserKnownHostsFile="$GANTRY_HOSTS_DIR/known_hosts" -o StrictHostKeyChecking=yes
  -i "$GANTRY_HOSTS_DIR/id_ed25519" -o ControlPath="$WORK/mux")
ssh "${sshv[@]}" -o ControlMaster=yes -o ControlPersist=60 -fN "$h1"
master=$(ssh "${sshv[@]}" -O check "$h1" 2>&1 | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
m0=$(ticks "$master")
# shellcheck disable=SC2016  # the loop's own arguments, expanded by the inner bash
/usr/bin/time -f '%e %U %S' -o "$WORK/mux.time" bash -c \
  'for _ in $(seq 1 "$0"); do ssh "${@}" true || exit 1; done' "$cmd_n" "${sshv[@]}" "$h1"
m1=$(ticks "$master")
ssh "${sshv[@]}" -O exit "$h1" 2>/dev/null
read -r mux_wall mux_user mux_sys < "$WORK/mux.time"
hz=$(getconf CLK_TCK)
emit $B openssh_mux_exec_ms "$(awk -v w="$mux_wall" -v n=$cmd_n 'BEGIN { printf "%.2f", w * 1000 / n }')"
mux_cpu=$(awk -v u="$mux_user" -v s="$mux_sys" -v m=$((m1 - m0)) -v hz="$hz" -v n=$cmd_n \
  'BEGIN { printf "%.2f", ((u + s) * 1000 + m * 1000 / hz) / n }')
emit $B openssh_mux_exec_client_cpu_ms "$mux_cpu"
cmake --build --preset release --target gantry_bench_ssh_exec >/dev/null
build/release/bench/gantry_bench_ssh_exec 10.213.0.11 22 root "$GANTRY_HOSTS_DIR/id_ed25519" \
  "$GANTRY_HOSTS_DIR/known_hosts" "$cmd_n" | tee "$WORK/libssh.json"
lib_cpu=$(sed -n 's/.*"libssh_exec_client_cpu_ms","value":\([0-9.]*\).*/\1/p' "$WORK/libssh.json")
emit $B libssh_vs_openssh_exec_client_cpu "$(awk -v a="$lib_cpu" -v b="$mux_cpu" 'BEGIN { printf "%.3f", a / b }')"

# The reference: plain `ssh HOST true`, 1 host against 5 at once, with the same key exchange.
# Everything here shares this machine's cores (the 5 hosts are namespaces), so connection setup
# alone is slower in parallel: the ratio gantry can reach is bounded by this one.
raw_ssh() {  # raw_ssh N [ssh options]
  local n=$1
  shift
  for i in $(seq 1 "$n"); do
    ssh -o BatchMode=yes -o UserKnownHostsFile="$GANTRY_HOSTS_DIR/known_hosts" -o StrictHostKeyChecking=yes \
      -i "$GANTRY_HOSTS_DIR/id_ed25519" "$@" "root@10.213.0.1$i" true &
  done
  wait
}
# parallel_vs_one SUFFIX [--ssh-options ...]: gantry create of 1 node and of 5 (concurrency 5,
# as Ansible's forks), each deleted after; prints its figures; leaves the 5-node time in $five.
parallel_vs_one() {
  local suffix=$1 one raw1 raw5
  shift
  local kex=()
  [ $# -gt 0 ] && kex=(-o "${2}")
  raw1=$(secs raw_ssh 1 "${kex[@]}")
  raw5=$(secs raw_ssh 5 "${kex[@]}")
  one=$(secs build/gantry cluster create one --provider ssh --controller-url "$url" --wait "$@")
  build/gantry cluster delete one --wait "$@" >/dev/null
  five=$(secs build/gantry cluster create five --provider ssh --workers 4 --controller-url "$url" \
    --parallel-max-concurrency 5 --wait "$@")
  build/gantry cluster delete five --wait "$@" >/dev/null
  emit $B "raw_ssh_parallel_vs_one$suffix" "$(ratio "$raw5" "$raw1")"
  emit $B "ssh_one_node_create_s$suffix" "$one"
  emit $B "ssh_five_nodes_create_s$suffix" "$five"
  emit $B "ssh_parallel_vs_one$suffix" "$(ratio "$five" "$one")"
}
# OpenSSH's default key exchange on Debian 12 (sntrup761x25519, post-quantum) and the classic
# curve25519 one, which costs ~8x less CPU per connection (docs/cluster.md).
parallel_vs_one _curve25519 --ssh-options KexAlgorithms=curve25519-sha256
parallel_vs_one ""
sha1=$(sha1sum build/gantry | cut -d' ' -f1)
ansible=$(ANSIBLE_HOST_KEY_CHECKING=True secs ansible-playbook -i "$GANTRY_HOSTS_DIR/inventory.ini" -f 5 \
  -e "gantry_binary=$REPO/build/gantry gantry_sha1=$sha1 controller_url=$url" bench/cluster/gantry-node.yml)
# Both with OpenSSH's default key exchange.
emit $B gantry_s "$five"
emit $B ansible_s "$ansible"
emit $B create_ratio_vs_ansible "$(ratio "$five" "$ansible")"
