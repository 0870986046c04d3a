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
