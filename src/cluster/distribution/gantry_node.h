// gantry-node: the gantry binary (checksum-verified) running an agent+worker pair on the node
// that registers with a Fleet controller; a systemd unit where the node runs systemd, else a
// supervised process (a restart loop) with a pid file. Healthy once the agent's /health says
// "registered": true.
#pragma once

#include "cluster/distribution/distribution.h"

namespace gantry::cluster {

inline constexpr int kNodeAgentPort = 8081, kNodeWorkerPort = 8082;
core::Result<std::unique_ptr<Distribution>> make_gantry_node(const DistributionOptions& o);

}  // namespace gantry::cluster
