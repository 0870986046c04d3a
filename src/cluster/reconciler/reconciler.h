// The level-triggered reconciler (spec cluster.md, Reconciler). One pass, under the cluster's
// lease: read the declared cluster and its status, do the next steps, write the status, and say
// when to come back. The steps, each over the nodes that need it, through the parallel manager:
//
//   delete      (deletionTimestamp set) uninstall and destroy every node, highest index first,
//               then forget the cluster
//   scale down  nodes no longer declared: uninstall and destroy, highest index first
//   provision   create the instance (idempotent: same cluster, pool, index -> same instance)
//               and check its prerequisites
//   install     copy the distribution's files, run its install script; for K3s the first
//               server alone first (the others join it), then the rest together
//   configure   join / wait until healthy
//   stop/start  desiredState
//
// A node's progress is written to the status as soon as each of its steps finishes, so a pass
// killed at any moment resumes from the last good step and never creates or starts anything
// twice. Every provider call goes through the provider's circuit breaker and the retry preset.
// A step that fails on some node puts the cluster in Failed with the reason; the next pass
// resumes.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "cluster/distribution/distribution.h"
#include "cluster/model.h"
#include "cluster/provider/provider.h"
#include "cluster/state/store.h"
#include "core/resilience/circuit_breaker.h"
#include "core/resilience/retry.h"

namespace gantry::cluster {

struct ReconcilerOptions {
  std::string holder;  // who holds leases, as others see it (default: host:pid)
  int concurrency = 3;
  std::chrono::milliseconds node_timeout{900'000};  // one node's step, retries included
  core::resilience::RetryPolicy retry = core::resilience::RetryPolicy::cloud();
  core::resilience::BreakerOverrides breaker;
  std::chrono::milliseconds lease_wait{30'000}, lease_ttl{900'000};
  core::resilience::Sleeper* sleeper = &core::resilience::Sleeper::real();
  core::Random* random = &core::Random::real();
};

// Where providers come from: the reconciler asks for the one a cluster names.
using ProviderLookup = std::function<core::Result<Provider*>(const Cluster&)>;

struct ProgressEvent {
  std::string cluster, phase, node;  // node empty: the phase began or ended
  std::string step;                  // what is done to each node: provision, install, configure, uninstall, stop, start
  int done = 0, total = 0;
  std::chrono::milliseconds elapsed{0};  // since the phase began
  core::Status status;                   // the node's step outcome
  bool simulated = false;
};

struct PassResult {
  core::Status status;  // OK, or why the pass stopped (the cluster's Failed reason)
  std::string phase;
  std::chrono::milliseconds requeue{30'000};
  bool deleted = false;
  // The pass's own figures.
  int steps_run = 0, steps_failed = 0, steps_skipped = 0, retries = 0;
  std::chrono::milliseconds wall{0};
  double efficiency = 0;  // node steps' busy time / (slots × wall), over the pass
  // The shortest wall time the pass's node steps allowed at its concurrency: per step, the
  // longer of its slowest node and its total work over the slots it could use.
  std::chrono::milliseconds critical_path{0};
  std::map<std::string, std::chrono::milliseconds> phase_time;  // Provisioning, Installing, ...
};

class Reconciler {
 public:
  Reconciler(Store& store, ProviderLookup providers, DistributionOptions dist, ReconcilerOptions o);
  ~Reconciler();

  // One pass over the named cluster.
  PassResult reconcile(const std::string& name);
  void on_progress(std::function<void(const ProgressEvent&)> f) { progress_ = std::move(f); }
  core::resilience::BreakerRegistry& breakers() { return breakers_; }
  const ReconcilerOptions& options() const { return o_; }

 private:
  class Pass;
  Store& store_;
  ProviderLookup providers_;
  DistributionOptions dist_;
  ReconcilerOptions o_;
  core::resilience::BreakerRegistry breakers_;
  std::function<void(const ProgressEvent&)> progress_;
  std::mutex dist_mu_;
  // Made once per distribution and controller URL (a gantry-node cluster's, from its annotation).
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Distribution>> dists_;
};

}  // namespace gantry::cluster
