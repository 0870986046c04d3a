// k3s: an airgap install from a local k3s binary (checksum-verified; nothing is downloaded
// when one is given), the first server of an HA cluster with --cluster-init, the others joining
// https://<first>:6443 with the server token, agents with the agent token. Progress goes to
// /var/lib/rancher/k3s-install-progress at 25/50/75/100, as in the original's guide.
#pragma once

#include "cluster/distribution/distribution.h"

namespace gantry::cluster {

core::Result<std::unique_ptr<Distribution>> make_k3s(const DistributionOptions& o);

}  // namespace gantry::cluster
