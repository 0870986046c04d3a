// The Clusters system's commands, as the CLI offers them (spec cluster.md): `gantry cluster
// VERB` is the role cluster-VERB.
//
//   cluster-create cluster-list cluster-status cluster-scale cluster-stop cluster-start
//   cluster-delete cluster-reconcile cluster-metrics     jobs over the state store (cli/)
//   cluster-serve                                        the reconciler as a service (service/)
//
// model.h the declared and observed cluster; state/ the stores (directory, PostgreSQL);
// provider/ how machines are obtained (ssh, sim); distribution/ what is installed
// (gantry-node, k3s); reconciler/ the passes.
#pragma once

#include <vector>

#include "core/runtime.h"

namespace gantry::cluster {

std::vector<core::runtime::RoleInfo> cluster_roles();
// cluster-serve: the reconciler as a service (service/serve.cpp).
core::runtime::RoleInfo cluster_serve_role();

}  // namespace gantry::cluster
