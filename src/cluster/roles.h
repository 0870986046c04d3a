// The Clusters system's commands, as the CLI offers them (spec cluster.md): `gantry cluster
// VERB` is the role cluster-VERB.
//
//   cluster-create cluster-list cluster-status cluster-scale cluster-stop cluster-start
//   cluster-delete cluster-reconcile cluster-metrics     jobs over the state store (cli/)
//
// model.h the declared and observed cluster; state/ the stores; provider/ how machines are
// obtained (sim); distribution/ what is installed (gantry-node, k3s); reconciler/ the passes.
#pragma once

#include <vector>

#include "core/runtime.h"

namespace gantry::cluster {

std::vector<core::runtime::RoleInfo> cluster_roles();

}  // namespace gantry::cluster
